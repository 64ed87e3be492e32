//! `GET /api/orgs/{org}/plugins/{slot}/shadow[?tenant=T&limit=N]`: a shadow run's diff, read
//! only, for the service admin or that org's admin (issue 18). The same counts and records as
//! `m365sync plugin shadow diff --json`; setting, promoting and stopping a shadow stay with the
//! CLI, where installs are.

use std::collections::HashMap;

use serde_json::json;

use m365sync_store::plugins::PluginScope;
use m365sync_store::StoreError;

use super::api_crm::{bad, ok, Handled};
use super::Shared;

/// The diff of the org's (or `?tenant=`'s) shadow in `slot`.
pub(super) async fn shadow_diff(
    shared: &Shared,
    org: &str,
    org_id: i64,
    slot: &str,
    q: &HashMap<String, String>,
) -> Handled {
    if !matches!(slot, "exclusion" | "mapping") {
        return Err(bad(format!(
            "no shadow runs in the '{slot}' slot: use exclusion or mapping"
        )));
    }
    let store = &shared.env.store;
    let tenant = q.get("tenant").filter(|t| !t.is_empty());
    let tenant_id = match tenant {
        Some(t) => Some(store.tenant(org, t).await?.id),
        None => None,
    };
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| bad(format!("limit '{l}' is not a positive number")))?,
        None => 200,
    };
    let scope = PluginScope { org_id, tenant_id };
    let Some(shadow) = store.shadow(scope, slot).await? else {
        let level = tenant.map_or_else(|| format!("org {org}"), |t| format!("tenant {t}"));
        return Err(StoreError::NotFound(format!("no {slot} shadow runs for {level}")).into());
    };
    let names: HashMap<i64, String> = store
        .tenants(Some(org))
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let records: Vec<serde_json::Value> = store
        .shadow_diffs(scope, slot, limit)
        .await?
        .into_iter()
        .map(|r| {
            let tenant = names.get(&r.tenant_id).cloned().unwrap_or_default();
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["tenant"] = tenant.into();
            v
        })
        .collect();
    ok(json!({
        "shadow": {
            "name": shadow.name,
            "version": shadow.version,
            "digest": shadow.digest,
            "tenant_level": shadow.tenant_scope != 0,
            "started_ms": shadow.started_ms,
            "cases": shadow.cases,
        },
        "agreed": shadow.agreed,
        "disagreed": shadow.disagreed,
        "failed": shadow.failed,
        "records": records,
    }))
}
