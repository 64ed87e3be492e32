//! An org's plugins through the admin API (issue 16), for the service admin or that org's admin:
//! `GET /api/orgs/{org}/plugins` (what runs in each slot of the org and its tenants, and why,
//! the same rows as `m365sync plugin list --json`), `GET .../plugins/{slot}/history[?tenant=T]`
//! (as `plugin history`) and `POST .../plugins/{slot}/rollback[?tenant=T]` (as `plugin
//! rollback`, refused with its words when there is nothing to roll back to), and `POST
//! .../plugins/{slot}/install[?tenant=T]` (as `plugin install`: the component checked in the
//! sandbox against the cases it came with, then in force). The CLI and these routes call
//! [`crate::admin::plugins`] and [`crate::admin::install`], so they answer alike.

use std::collections::HashMap;

use base64::Engine as _;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use m365sync_plugin::Kind;
use m365sync_store::plugins::PluginScope;

use super::api_crm::{bad, ok, Handled};
use super::Shared;
use crate::admin::install::{check, install as install_checked, Cases, InstallError};
use crate::admin::plugins::{history_with_counts, in_force, place, rollback};

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
/// and shadows at one level, oldest first, each with what its version decided there
/// (`decided`), and the built-in plugin with its own (`builtin`).
pub(super) async fn history(
    shared: &Shared,
    org: &str,
    org_id: i64,
    slot_name: &str,
    q: &HashMap<String, String>,
) -> Handled {
    let slot = slot(slot_name)?;
    let (scope, tenant) = level(shared, org, org_id, q).await?;
    let (entries, builtin) = history_with_counts(&shared.env.store, org, scope, slot).await?;
    ok(json!({
        "org": org,
        "tenant": tenant,
        "slot": slot.world(),
        "history": entries,
        "builtin": builtin,
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

/// An install's body: the component, base64 (a browser reads a file as bytes and a JSON body
/// carries it with its cases in one request), and its cases, or `no_cases`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InstallRequest {
    /// The `.wasm` component, base64 (standard alphabet, padded).
    pub wasm_base64: String,
    /// The component's file name, for the messages and the history.
    #[serde(default)]
    pub file_name: Option<String>,
    /// The case file's text (`cases.toml`), which the component must pass.
    #[serde(default)]
    pub cases: Option<String>,
    /// The case file's name, for the history.
    #[serde(default)]
    pub cases_name: Option<String>,
    /// Install without cases (the history records that it ran none).
    #[serde(default)]
    pub no_cases: bool,
}

/// `POST /api/orgs/{org}/plugins/{slot}/install[?tenant=T]`: 201 with what was installed and
/// the case report, 200 when the same component was already in force (nothing changed), 422
/// with the report when a case differs, 400 when it does not load or the cases are missing or
/// invalid. Nothing is written unless every check passed.
pub(super) async fn install(
    shared: &Shared,
    org: &str,
    org_id: i64,
    slot_name: &str,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Handled {
    let slot = slot(slot_name)?;
    let (scope, tenant) = level(shared, org, org_id, q).await?;
    let req: InstallRequest = super::api_crm::parse_json(
        &bytes::Bytes::copy_from_slice(body),
        "an install: {wasm_base64, file_name?, cases?, cases_name?, no_cases?}",
    )?;
    let file = req
        .file_name
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| "the component".into());
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(req.wasm_base64.trim())
        .map_err(|e| bad(format!("wasm_base64 is not base64 of {file}: {e}")))?;
    let cases = match (req.cases.filter(|c| !c.trim().is_empty()), req.no_cases) {
        (Some(_), true) => return Err(bad("give cases or no_cases, not both")),
        (Some(text), false) => {
            let name = req.cases_name.unwrap_or_else(|| "cases".into());
            Cases {
                what: format!(
                    "cases {name} ({}), through the API",
                    &m365sync_plugin::cache::digest(text.as_bytes())[..16]
                ),
                text: Some(text),
            }
        }
        (None, true) => Cases {
            what: "installed through the API with no_cases: no cases were run".into(),
            text: None,
        },
        (None, false) => {
            return Err(bad(format!(
                "{file} was not installed: a firm's component needs the cases it must pass \
                 before it runs on {}'s mail; send its cases.toml as `cases`, or `no_cases: \
                 true` to install it untested (the history records that)",
                place(org, tenant)
            )))
        }
    };
    let checked = match check(&file, slot, wasm, cases).await {
        Ok(c) => c,
        Err(InstallError::CasesDiffer {
            failed,
            total,
            report,
            ..
        }) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": format!("{file}: {failed} of {total} cases differ; nothing was installed"),
                    "report": report,
                }),
            ))
        }
        Err(InstallError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let done = install_checked(&shared.env.store, org, tenant, scope, slot, checked).await?;
    tracing::info!(org, tenant, slot = slot.world(), "{}", done.summary);
    let status = if done.activated {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, json!(done)))
}
