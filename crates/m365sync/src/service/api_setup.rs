//! Two steps of a tenant's setup through the admin API (issue 16), for the service admin or
//! that org's admin: `POST /api/orgs/{org}/tenants/{t}/test[?mailbox=ADDRESS]` runs the
//! connectivity checklist `m365sync tenant test` runs (E11) and answers it step by step, and
//! `POST /api/orgs/{org}/tenants/{t}/activate[?force=true]` activates the tenant as `m365sync
//! activate` does (E13), warnings included (C9's invitation warning among them). Both call
//! [`crate::admin`]'s functions, as the CLI does. Declaring a tenant, storing its secret and
//! importing users stay with the CLI for now.

use std::collections::HashMap;

use hyper::StatusCode;
use serde_json::json;

use super::api_crm::{bad, ok, Handled};
use super::Shared;
use crate::admin::activate::{activate, ActivateError};
use crate::admin::connectivity::{test_connectivity, Report};

/// The checklist: token, directory, one mailbox (`?mailbox=` or the tenant's first). A failed
/// step is part of the answer (`ok: false`, the step's `failure` and `fix` naming what to fix),
/// not an HTTP error: the check itself ran.
pub(super) async fn test(
    shared: &Shared,
    org: &str,
    tenant: &str,
    q: &HashMap<String, String>,
) -> Handled {
    let store = &shared.env.store;
    let t = store.tenant(org, tenant).await?;
    let mailbox = q
        .get("mailbox")
        .map(String::as_str)
        .filter(|m| !m.is_empty());
    let report = test_connectivity(store, &t, shared.env.http.clone(), mailbox).await?;
    ok(checklist(&report))
}

/// A checklist as JSON, each failed step with `fix`: its failure in the words `tenant test`
/// prints, beside the failure's fields.
fn checklist(report: &Report) -> serde_json::Value {
    let mut v = json!(report);
    for (i, step) in report.steps.iter().enumerate() {
        if let Some(f) = &step.failure {
            v["steps"][i]["fix"] = f.to_string().into();
        }
    }
    v
}

/// Activates the tenant after its checks. Refusals are 409 with the CLI's words; a failed
/// connectivity test answers its checklist beside them.
pub(super) async fn activate_tenant(
    shared: &Shared,
    org: &str,
    tenant: &str,
    q: &HashMap<String, String>,
) -> Handled {
    let force = match q.get("force").map(String::as_str) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("force must be true or false, not '{other}'"))),
    };
    let store = &shared.env.store;
    let t = store.tenant(org, tenant).await?;
    let api_force = "through the API: POST this address with ?force=true";
    match activate(store, &t, shared.env.http.clone(), force).await {
        Ok(done) => {
            tracing::info!(
                org,
                tenant,
                newly = done.newly_activated,
                "tenant activated through the API"
            );
            ok(json!(done))
        }
        Err(ActivateError::Store(e)) => Err(e.into()),
        Err(e) => {
            let report = match &e {
                ActivateError::Connectivity { report, .. } => Some(checklist(report)),
                _ => None,
            };
            let words = match e {
                ActivateError::Disabled { .. } => e.to_string(),
                _ => format!("{e} ({api_force})"),
            };
            Ok((
                StatusCode::CONFLICT,
                json!({ "error": words, "report": report }),
            ))
        }
    }
}
