//! A tenant's setup through the admin API (issue 16), the steps of the console's setup
//! assistant, for the service admin or that org's admin (scoped by the caller, as every
//! `/api/orgs/{org}/...` and `/api/tenants/{org}/...` route is):
//!
//! - `POST /api/orgs` creates an org (the service admin only), before its first tenant;
//! - `POST /api/orgs/{org}/tenants` declares a tenant with its client secret (`m365sync tenant
//!   add`); the secret is sealed and never answered or logged;
//! - `POST /api/orgs/{org}/tenants/{t}/test[?mailbox=ADDRESS]` runs the connectivity checklist
//!   `m365sync tenant test` runs (E11) and answers it step by step;
//! - `POST /api/orgs/{org}/tenants/{t}/users/import[?file=NAME&offline=true]` imports Entra's
//!   "Download users" CSV, sent as the body, with a result per line (`m365sync mailbox import`);
//! - `GET/POST /api/orgs/{org}/rules`, `DELETE .../rules/{id}`, and the same under
//!   `/api/orgs/{org}/tenants/{t}/rules`: exclusion rules at org and tenant level (E6), in the
//!   shape of a user's own `/api/me/rules`;
//! - `POST /api/orgs/{org}/tenants/{t}/activate[?force=true]` activates the tenant as `m365sync
//!   activate` does (E13), warnings included (C9's invitation warning among them);
//! - `POST /api/tenants/{org}/{t}/mailboxes/{address}/enable` and `.../disable` switch one
//!   mailbox (`m365sync mailbox enable/disable`).
//!
//! Each handler is self-contained (its arguments are the path's names, the query and the body)
//! and calls [`crate::admin`]'s functions, as the CLI does, so both say the same thing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};

use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::access::AccessError;
use super::api::Answer;
use super::api_crm::{answer, bad, id, ok, Handled};
use super::extract::{Body, Caller, OrgScope, Q};
use super::Shared;
use crate::admin::activate::{activate, ActivateError};
use crate::admin::connectivity::{test_connectivity, Report};
use crate::admin::import::{import_csv_bytes, ImportError};
use crate::admin::mailboxes::set_mailbox_enabled;
use crate::admin::orgs::{create_org, OrgError};
use crate::admin::rules::rule_scope;
use crate::admin::tenants::{
    declare_tenant, Declaration, DeclareError, DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL,
};
use m365sync_store::rules::RuleSpec;
use m365sync_store::StoreError;

/// The body of `POST /api/orgs/{org}/tenants`. `Debug` is not derived: it holds the secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareRequest {
    name: String,
    ms_tenant: String,
    client_id: String,
    secret: String,
    #[serde(default)]
    secret_label: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    graph_url: Option<String>,
    /// Delegated (an admin signs in with Microsoft: `.../authorize`) instead of app-only.
    #[serde(default)]
    delegated: bool,
}

/// Reads the declaration. serde's own message is passed on only when it names a field (missing
/// or unknown), never when it quotes a value: the value might be the secret.
fn declare_body(body: &Bytes) -> Result<DeclareRequest, AccessError> {
    serde_json::from_slice(body).map_err(|e| {
        let words = e.to_string();
        let why = if words.starts_with("missing field") || words.starts_with("unknown field") {
            format!(": {}", words.split(" at line").next().unwrap_or(&words))
        } else {
            String::new()
        };
        bad(format!(
            "the request body is not {{\"name\", \"ms_tenant\", \"client_id\", \"secret\", \"secret_label\"?, \"authority\"?, \"graph_url\"?, \"delegated\"?}} with text values{why}"
        ))
    })
}

/// Declares a tenant of `org` (app-only, or delegated with `"delegated": true`: then an admin
/// signs in with Microsoft through `.../authorize`) and seals its secret. 201 with the tenant and what comes
/// next; 409 in the CLI's words when the name is taken; 400 naming a missing field. The secret
/// is in no answer and no log line.
pub(super) async fn declare(shared: &Shared, org: &str, body: &Bytes) -> Handled {
    let r = declare_body(body)?;
    let d = Declaration {
        org: org.to_string(),
        name: r.name,
        ms_tenant: r.ms_tenant,
        client_id: r.client_id,
        secret: r.secret,
        secret_label: r.secret_label.unwrap_or_else(|| "initial".into()),
        authority: r.authority.unwrap_or_else(|| DEFAULT_AUTHORITY.into()),
        graph_url: r.graph_url.unwrap_or_else(|| DEFAULT_GRAPH_URL.into()),
        delegated: r.delegated,
    };
    match declare_tenant(&shared.env.store, shared.env.http.clone(), &d).await {
        Ok(done) => {
            tracing::info!(
                org,
                tenant = %done.tenant.name,
                "tenant declared through the API; client secret stored sealed"
            );
            Ok((StatusCode::CREATED, json!(done)))
        }
        Err(e @ DeclareError::Exists { .. }) => {
            Ok((StatusCode::CONFLICT, json!({ "error": e.to_string() })))
        }
        Err(DeclareError::Invalid(m)) => Err(bad(m)),
        Err(DeclareError::Store(e)) => Err(e.into()),
    }
}

/// Imports Entra's "Download users" CSV (the body, as the browser read the file) into the
/// tenant. 200 with the report even when rows failed: `lines` says per line what became of it
/// (`created`, `updated`, `unchanged`, `skipped`, `error` with the problem and its fix); the
/// other rows are stored. A body that is not such a CSV at all is 400. `?file=` names the file
/// in the report; `?offline=true` skips the directory look-up.
pub(super) async fn import_users(
    shared: &Shared,
    org: &str,
    tenant: &str,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Handled {
    let store = &shared.env.store;
    let t = store.tenant(org, tenant).await?;
    let offline = match q.get("offline").map(String::as_str) {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => return Err(bad(format!("offline must be true or false, not '{other}'"))),
    };
    let file = q
        .get("file")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .unwrap_or("the uploaded CSV");
    if body.is_empty() {
        return Err(bad(format!(
            "{file} is empty: send the CSV of Entra's Users > Download users as the request body"
        )));
    }
    let http = (!offline).then(|| shared.env.http.clone());
    match import_csv_bytes(store, &t, file, body, http).await {
        Ok(report) => {
            tracing::info!(
                org,
                tenant,
                created = report.created.len(),
                errors = report.errors.len(),
                "users imported through the API"
            );
            ok(json!(report))
        }
        Err(ImportError::Store(e)) => Err(e.into()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// The level a rules path names: the org's (`tenant` none) or one tenant's, and its words.
async fn level(
    shared: &Shared,
    org: &str,
    tenant: Option<&str>,
    user: Option<&str>,
) -> Result<(m365sync_store::rules::RuleScope, String), AccessError> {
    let scope = rule_scope(&shared.env.store, org, tenant, user).await?;
    let words = match (tenant, user) {
        (Some(t), Some(u)) => format!("user {u} of tenant {org}/{t}"),
        (Some(t), None) => format!("tenant {org}/{t}"),
        _ => format!("org {org}"),
    };
    Ok((scope, words))
}

/// The exclusion rules defined at the org's level, the tenant's (`tenant`) or one of its users'
/// (`user`, E6's user level as an admin sets it), as `/api/me/rules` lists a user's own:
/// `[{"id", "scope", "spec": {"effect", "target", "pattern"}}]`.
pub(super) async fn list_rules(
    shared: &Shared,
    org: &str,
    tenant: Option<&str>,
    user: Option<&str>,
) -> Handled {
    let (scope, _) = level(shared, org, tenant, user).await?;
    ok(json!(shared.env.store.rules_at(scope).await?))
}

/// Adds a rule at the org's, the tenant's or a user's level: 201 with its id. It acts on syncs
/// after now.
pub(super) async fn add_rule(
    shared: &Shared,
    org: &str,
    tenant: Option<&str>,
    user: Option<&str>,
    body: &Bytes,
) -> Handled {
    let spec: RuleSpec = super::api_crm::parse_json(
        body,
        "{\"effect\": \"exclude\"|\"include\", \"target\": \"any_address\"|\"sender\"|\"recipient\"|\"subject\", \"pattern\": \"...\"}",
    )?;
    let (scope, words) = level(shared, org, tenant, user).await?;
    let id = shared.env.store.add_rule(scope, &spec).await?;
    tracing::info!(
        org,
        tenant,
        user_level = user.is_some(),
        rule = id,
        "exclusion rule added through the API"
    );
    Ok((StatusCode::CREATED, json!({ "id": id, "level": words })))
}

/// Removes a rule defined at exactly this level (a tenant's path cannot remove the org's rule,
/// nor another tenant's): 404 naming the level otherwise.
pub(super) async fn remove_rule(
    shared: &Shared,
    org: &str,
    tenant: Option<&str>,
    user: Option<&str>,
    rule: &str,
) -> Handled {
    let rule = id(rule, "rule")?;
    let (scope, words) = level(shared, org, tenant, user).await?;
    if shared.env.store.remove_rule_at(scope, rule).await? {
        ok(json!({ "removed": rule }))
    } else {
        Err(AccessError::Store(StoreError::NotFound(format!(
            "no rule {rule} at the level of {words}; GET this path without the id lists them"
        ))))
    }
}

/// Enables (`enabled`) or disables one mailbox of the tenant and answers it as it is now.
pub(super) async fn mailbox_switch(
    shared: &Shared,
    org: &str,
    tenant: &str,
    address: &str,
    enabled: bool,
) -> Handled {
    let store = &shared.env.store;
    let t = store.tenant(org, tenant).await?;
    let m = set_mailbox_enabled(store, &t, address, enabled).await?;
    tracing::info!(org, tenant, enabled, "mailbox switched through the API");
    ok(json!(m))
}

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

/// The body of `POST /api/orgs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrgRequest {
    /// The org's name: one word (letters, digits, `-`, `_`, `.`).
    pub name: String,
}

/// Creates an org (the service admin only; checked by the route). 201 with its id and what
/// comes next; 409 when the name is taken; 400 naming what a name may hold.
pub(super) async fn add_org(shared: &Shared, body: &Bytes) -> Handled {
    let r: OrgRequest = super::api_crm::parse_json(body, "{\"name\"}")?;
    match create_org(&shared.env.store, &r.name).await {
        Ok(done) => {
            tracing::info!(org = %done.name, "org created through the API");
            Ok((StatusCode::CREATED, json!(done)))
        }
        Err(e @ OrgError::Exists(_)) => {
            Ok((StatusCode::CONFLICT, json!({ "error": e.to_string() })))
        }
        Err(OrgError::Invalid(m)) => Err(bad(m)),
        Err(OrgError::Store(e)) => Err(e.into()),
    }
}

// The routes' handlers (see [`super::routes`]): each takes the caller's rights over the path's
// org ([`OrgScope`]: 404 for another org's admin, 403 for a user) and calls the function above.

/// `POST /api/orgs`: [`add_org`], for the service admin only (an org admin's token belongs to
/// an org already; a user's reaches no admin route): 403 otherwise, as `/api/retry` answers.
pub(super) async fn add_org_route(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Body(body): Body,
) -> Answer {
    if let Err(e) = actor.require_service_admin() {
        return super::api::access_error(e);
    }
    answer(add_org(&shared, &body).await)
}

/// `POST /api/orgs/{org}/tenants`: [`declare`].
pub(super) async fn declare_route(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    answer(declare(&shared, &scope.org, &body).await)
}

/// `POST /api/orgs/{org}/tenants/{tenant}/users/import`: [`import_users`].
pub(super) async fn import_route(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
    Q(q): Q,
    Body(body): Body,
) -> Answer {
    answer(import_users(&shared, &scope.org, &tenant, &q, &body).await)
}

/// `GET /api/orgs/{org}/rules`: the org's rules.
pub(super) async fn org_rules(State(shared): State<Arc<Shared>>, scope: OrgScope) -> Answer {
    answer(list_rules(&shared, &scope.org, None, None).await)
}

/// `POST /api/orgs/{org}/rules`.
pub(super) async fn add_org_rule(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    answer(add_rule(&shared, &scope.org, None, None, &body).await)
}

/// `DELETE /api/orgs/{org}/rules/{rule}`.
pub(super) async fn remove_org_rule(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, rule)): Path<(String, String)>,
) -> Answer {
    answer(remove_rule(&shared, &scope.org, None, None, &rule).await)
}

/// `GET /api/orgs/{org}/tenants/{tenant}/rules`: the tenant's rules.
pub(super) async fn tenant_rules(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
) -> Answer {
    answer(list_rules(&shared, &scope.org, Some(&tenant), None).await)
}

/// `POST /api/orgs/{org}/tenants/{tenant}/rules`.
pub(super) async fn add_tenant_rule(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
    Body(body): Body,
) -> Answer {
    answer(add_rule(&shared, &scope.org, Some(&tenant), None, &body).await)
}

/// `DELETE /api/orgs/{org}/tenants/{tenant}/rules/{rule}`.
pub(super) async fn remove_tenant_rule(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, rule)): Path<(String, String, String)>,
) -> Answer {
    answer(remove_rule(&shared, &scope.org, Some(&tenant), None, &rule).await)
}

/// `GET /api/orgs/{org}/tenants/{tenant}/users/{user}/rules`.
pub(super) async fn user_rules(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user)): Path<(String, String, String)>,
) -> Answer {
    answer(list_rules(&shared, &scope.org, Some(&tenant), Some(&user)).await)
}

/// `POST /api/orgs/{org}/tenants/{tenant}/users/{user}/rules`.
pub(super) async fn add_user_rule(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user)): Path<(String, String, String)>,
    Body(body): Body,
) -> Answer {
    answer(add_rule(&shared, &scope.org, Some(&tenant), Some(&user), &body).await)
}

/// `DELETE /api/orgs/{org}/tenants/{tenant}/users/{user}/rules/{rule}`.
pub(super) async fn remove_user_rule(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user, rule)): Path<(String, String, String, String)>,
) -> Answer {
    answer(remove_rule(&shared, &scope.org, Some(&tenant), Some(&user), &rule).await)
}

/// `POST /api/tenants/{org}/{tenant}/mailboxes/{address}/enable`.
pub(super) async fn enable_mailbox(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, address)): Path<(String, String, String)>,
) -> Answer {
    answer(mailbox_switch(&shared, &scope.org, &tenant, &address, true).await)
}

/// `POST /api/tenants/{org}/{tenant}/mailboxes/{address}/disable`.
pub(super) async fn disable_mailbox(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, address)): Path<(String, String, String)>,
) -> Answer {
    answer(mailbox_switch(&shared, &scope.org, &tenant, &address, false).await)
}
