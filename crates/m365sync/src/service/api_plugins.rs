//! An org's plugins through the admin API (issue 16), for the service admin or that org's admin:
//! `GET /api/orgs/{org}/plugins` (what runs in each slot of the org and its tenants, and why,
//! the same rows as `m365sync plugin list --json`), `GET .../plugins/{slot}/history[?tenant=T]`
//! (as `plugin history`) and `POST .../plugins/{slot}/rollback[?tenant=T]` (as `plugin
//! rollback`, refused with its words when there is nothing to roll back to). Both the CLI and
//! these routes call [`crate::admin::plugins`], so they answer alike. Installing stays with the
//! CLI, which validates a component against its cases.

use std::collections::HashMap;

use serde_json::json;

use m365sync_plugin::Kind;
use m365sync_store::plugins::PluginScope;

use super::api_crm::{bad, ok, Handled};
use super::Shared;
use crate::admin::plugins::{in_force, rollback};

/// `slot` from the path: exclusion, mapping or matching.
fn slot(s: &str) -> Result<Kind, super::access::AccessError> {
    s.parse::<Kind>().map_err(bad)
}

/// The level `?tenant=T` names (the org's default without it): its scope and its name.
async fn level<'q>(
    shared: &Shared,
    org: &str,
    org_id: i64,
    q: &'q HashMap<String, String>,
) -> Result<(PluginScope, Option<&'q str>), super::access::AccessError> {
    let tenant = q
        .get("tenant")
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    let tenant_id = match tenant {
        Some(t) => Some(shared.env.store.tenant(org, t).await?.id),
        None => None,
    };
    Ok((PluginScope { org_id, tenant_id }, tenant))
}

/// `GET /api/orgs/{org}/plugins`: every slot at the org's level, then each tenant's.
pub(super) async fn list(shared: &Shared, org: &str, org_id: i64) -> Handled {
    let rows = in_force(&shared.env.store, org, org_id).await?;
    ok(json!({ "org": org, "slots": rows }))
}

/// `GET /api/orgs/{org}/plugins/{slot}/history[?tenant=T]`: installs, rollbacks, uninstalls
/// and shadows at one level, oldest first.
pub(super) async fn history(
    shared: &Shared,
    org: &str,
    org_id: i64,
    slot_name: &str,
    q: &HashMap<String, String>,
) -> Handled {
    let slot = slot(slot_name)?;
    let (scope, tenant) = level(shared, org, org_id, q).await?;
    let entries = shared.env.store.plugin_history(scope, slot.world()).await?;
    ok(json!({
        "org": org,
        "tenant": tenant,
        "slot": slot.world(),
        "history": entries,
    }))
}

/// `POST /api/orgs/{org}/plugins/{slot}/rollback[?tenant=T]`: the version before the current
/// one back in force at that level; 400 with the store's words when there is none.
pub(super) async fn roll_back(
    shared: &Shared,
    org: &str,
    org_id: i64,
    slot_name: &str,
    q: &HashMap<String, String>,
) -> Handled {
    let slot = slot(slot_name)?;
    let (scope, tenant) = level(shared, org, org_id, q).await?;
    let done = rollback(&shared.env.store, org, tenant, scope, slot).await?;
    tracing::info!(org, tenant, slot = slot.world(), "{}", done.summary);
    ok(json!(done))
}
