//! The admin API's CRM side (E8, E9, E12): an org's contacts and entities, their timelines,
//! the matching job on demand, review lists and the mass mapping action, and the org's API
//! tokens under `/api/orgs/{org}/...` (the service admin or that org's admin), and a user's own
//! view under `/api/me/...` (any user token). Calendar paths are handed to
//! [`super::api_calendar`], a tenant's setup (declare, test, import users, org and tenant
//! rules, activate) to [`super::api_setup`], an org's plugins to [`super::api_plugins`] and a plugin shadow's diff
//! to [`super::api_shadow`], which share this file's helpers.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crm::export::{export_contacts, export_entities};
use crate::crm::import::{import_contacts, import_entities, Format};
use crate::matching::job::run_org_waiting;
use m365sync_store::crm::{ContactInput, EntityInput, ListQuery};
use m365sync_store::review::{ReviewFilter, ReviewScope};
use m365sync_store::rules::{RuleScope, RuleSpec};
use m365sync_store::StoreError;

use super::access::{AccessError, Actor};
use super::api::{access_error, error, respond, store_error, Answer};
use super::Shared;
use hyper::Response;

/// What a handler returns: a JSON value with its status, or a refusal.
pub(super) type Handled = Result<(StatusCode, Value), AccessError>;

pub(super) fn ok(v: Value) -> Handled {
    Ok((StatusCode::OK, v))
}

pub(super) fn bad(message: impl Into<String>) -> AccessError {
    AccessError::Store(StoreError::Invalid(message.into()))
}

pub(super) fn parse_json<T: for<'de> Deserialize<'de>>(
    body: &Bytes,
    shape: &str,
) -> Result<T, AccessError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("the request body is not {shape}: {e}")))
}

pub(super) fn id(s: &str, what: &str) -> Result<i64, AccessError> {
    s.parse()
        .map_err(|_| bad(format!("'{s}' is not a {what} id")))
}

/// `1730000000000` or `2026-11-01`: epoch milliseconds.
pub(super) fn instant(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, AccessError> {
    let Some(v) = q.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms));
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(|d| {
            Some(
                d.and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc()
                    .timestamp_millis(),
            )
        })
        .map_err(|_| {
            bad(format!(
                "{key} must be a date like 2026-11-01 or epoch milliseconds"
            ))
        })
}

/// A page cursor `MS:ID` as the previous page's `next` gave it.
fn cursor(q: &HashMap<String, String>) -> Result<Option<(i64, i64)>, AccessError> {
    let Some(v) = q.get("before").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    v.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| bad("before must be the `next` value of the previous page (MS:ID)"))
}

fn limit(q: &HashMap<String, String>) -> i64 {
    q.get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50)
        .clamp(1, 1000)
}

/// A listing's paging and filter from the query string.
fn list_query(q: &HashMap<String, String>) -> Result<ListQuery, AccessError> {
    Ok(ListQuery {
        limit: limit(q),
        after_id: q
            .get("after")
            .filter(|a| !a.is_empty())
            .map(|a| id(a, "contact"))
            .transpose()?,
        filter: q.get("filter").filter(|f| !f.is_empty()).cloned(),
    })
}

/// `?format=csv|json` (JSON when absent).
fn format(q: &HashMap<String, String>) -> Result<Format, AccessError> {
    match q.get("format").map(String::as_str) {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(bad(format!("format must be csv or json, not '{other}'"))),
    }
}

fn review_filter(q: &HashMap<String, String>) -> Result<ReviewFilter, AccessError> {
    Ok(ReviewFilter {
        since_ms: instant(q, "since")?,
        until_ms: instant(q, "until")?,
        sender_domain: q.get("domain").filter(|d| !d.is_empty()).cloned(),
        before: cursor(q)?,
        limit: limit(q),
    })
}

/// The mass action's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapRequest {
    emails: Vec<i64>,
    contact: i64,
    #[serde(default)]
    add_address: bool,
}

/// A new token's body: a user's (by address, in a tenant) or the org admin's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

/// Routes `/api/orgs/...` and `/api/me/...`.
pub async fn route(
    shared: &Shared,
    actor: &Actor,
    method: &Method,
    segs: &[&str],
    q: &HashMap<String, String>,
    body: Bytes,
) -> Answer {
    let handled = match segs {
        ["api", "me", rest @ ..] => me(shared, actor, method, rest, q, &body).await,
        ["api", "orgs", org, kind @ ("contacts" | "entities"), "export"]
            if method == Method::GET =>
        {
            return match export(shared, actor, org, kind, q).await {
                Ok(answer) => answer,
                Err(AccessError::Store(e)) => store_error(e),
                Err(e) => access_error(e),
            };
        }
        ["api", "orgs", org, rest @ ..] => match actor.require_org_admin(org) {
            Ok(()) => org_route(shared, actor, org, method, rest, q, &body).await,
            Err(e) => Err(e),
        },
        _ => Err(AccessError::Store(StoreError::NotFound(
            "no such endpoint".into(),
        ))),
    };
    match handled {
        Ok((status, v)) => respond(status, v),
        Err(AccessError::Store(StoreError::NotFound(m))) if m == "no such endpoint" => error(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {method} /{}", segs.join("/")),
        ),
        Err(AccessError::Store(e)) => store_error(e),
        Err(e) => access_error(e),
    }
}

pub(super) fn no_endpoint() -> AccessError {
    AccessError::Store(StoreError::NotFound("no such endpoint".into()))
}

/// A user's own view.
async fn me(
    shared: &Shared,
    actor: &Actor,
    method: &Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Handled {
    let store = &shared.env.store;
    let Actor::User {
        org_id,
        org,
        tenant_id,
        tenant,
        user_id,
        email,
    } = actor
    else {
        return Err(AccessError::Forbidden(
            "/api/me is a user's own view; call it with a user token (`m365sync token create --user`)"
                .into(),
        ));
    };
    let rules_scope = RuleScope::User {
        org_id: *org_id,
        tenant_id: *tenant_id,
        user_id: *user_id,
    };
    match (method, rest) {
        (&Method::GET, []) => ok(json!({ "org": org, "tenant": tenant, "user": email })),
        (&Method::GET, ["review"]) => {
            let items = store.review_list(*user_id, &review_filter(q)?).await?;
            let next = items
                .last()
                .map(|i| format!("{}:{}", i.sent_ms, i.email_id));
            ok(json!({ "items": items, "next": next }))
        }
        (&Method::POST, ["review", "map"]) => {
            let r: MapRequest = parse_json(
                body,
                "{\"emails\": [ids], \"contact\": id, \"add_address\": bool}",
            )?;
            let report = store
                .map_to_contact(
                    ReviewScope {
                        org_id: *org_id,
                        user_id: Some(*user_id),
                    },
                    &r.emails,
                    r.contact,
                    r.add_address,
                    email,
                )
                .await?;
            if !report.added_addresses.is_empty() {
                shared.match_wake.notify_one();
            }
            ok(json!(report))
        }
        // Read-only: a user looks a contact up to map mail to it.
        (&Method::GET, ["contacts"]) => {
            ok(json!(store.list_contacts(*org_id, &list_query(q)?).await?))
        }
        (&Method::GET, ["rules"]) => ok(json!(store.rules_at(rules_scope).await?)),
        (&Method::POST, ["rules"]) => {
            let spec: RuleSpec = parse_json(
                body,
                "{\"effect\": \"exclude\"|\"include\", \"target\": \"any_address\"|\"sender\"|\"recipient\"|\"subject\", \"pattern\": \"...\"}",
            )?;
            let id = store.add_rule(rules_scope, &spec).await?;
            Ok((StatusCode::CREATED, json!({ "id": id })))
        }
        (&Method::DELETE, ["rules", rule]) => {
            let rule = id(rule, "rule")?;
            if store.remove_rule_at(rules_scope, rule).await? {
                ok(json!({ "removed": rule }))
            } else {
                Err(AccessError::Store(StoreError::NotFound(format!(
                    "no personal rule {rule} of yours"
                ))))
            }
        }
        (_, ["events", ..]) => {
            super::api_calendar::me_route(shared, actor, method, rest, q, body).await
        }
        _ => Err(no_endpoint()),
    }
}

/// An org's admin endpoints (the caller's rights over `org` are already checked).
async fn org_route(
    shared: &Shared,
    actor: &Actor,
    org: &str,
    method: &Method,
    rest: &[&str],
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Handled {
    let store = &shared.env.store;
    let org_id = store.org_id(org).await?;
    let by = match actor {
        Actor::OrgAdmin { org, .. } => format!("the {org} admin"),
        _ => "the service admin".to_string(),
    };
    match (method, rest) {
        (&Method::POST, ["match"]) => {
            let report = run_org_waiting(
                &shared.env,
                org,
                &shared.opts.holder,
                Duration::from_secs(60),
            )
            .await
            .map_err(|e| match e {
                crate::matching::MatchError::Store(s) => AccessError::Store(s),
                other => AccessError::Store(StoreError::Invalid(other.to_string())),
            })?;
            ok(json!(report))
        }
        (&Method::GET, ["contacts"]) => {
            ok(json!(store.list_contacts(org_id, &list_query(q)?).await?))
        }
        (&Method::POST, ["contacts"]) => {
            let input: ContactInput = parse_json(body, "a contact: {\"name\", \"email\", \"alt_email\", \"contact_points\", \"entity_id\", \"external_id\"}")?;
            let c = store.create_contact(org_id, &input).await?;
            shared.match_wake.notify_one();
            Ok((StatusCode::CREATED, json!(c)))
        }
        (&Method::POST, ["contacts", "import"]) => {
            let text =
                std::str::from_utf8(body).map_err(|_| bad("the import is not UTF-8 text"))?;
            let report = import_contacts(store, org_id, "the request body", text, format(q)?)
                .await
                .map_err(|e| bad(e.to_string()))?;
            shared.match_wake.notify_one();
            ok(json!(report))
        }
        (&Method::GET, ["contacts", "warnings"]) => ok(json!(
            store.contacts_with_sync_user_addresses(org_id).await?
        )),
        (&Method::GET, ["contacts", contact]) => {
            ok(json!(store.contact(org_id, id(contact, "contact")?).await?))
        }
        (&Method::PUT, ["contacts", contact]) => {
            let input: ContactInput =
                parse_json(body, "a contact (every field; read it first to change one)")?;
            let (outcome, c) = store
                .update_contact(org_id, id(contact, "contact")?, &input)
                .await?;
            shared.match_wake.notify_one();
            ok(json!({ "outcome": format!("{outcome:?}").to_lowercase(), "contact": c }))
        }
        (&Method::DELETE, ["contacts", contact]) => {
            let c = store
                .delete_contact(org_id, id(contact, "contact")?)
                .await?;
            shared.match_wake.notify_one();
            ok(json!({ "removed": c.id }))
        }
        (&Method::GET, ["entities"]) => {
            ok(json!(store.list_entities(org_id, &list_query(q)?).await?))
        }
        (&Method::POST, ["entities"]) => {
            let input: EntityInput = parse_json(
                body,
                "an entity: {\"name\", \"kind\", \"domains\", \"external_id\"}",
            )?;
            Ok((
                StatusCode::CREATED,
                json!(store.create_entity(org_id, &input).await?),
            ))
        }
        (&Method::POST, ["entities", "import"]) => {
            let text =
                std::str::from_utf8(body).map_err(|_| bad("the import is not UTF-8 text"))?;
            let report = import_entities(store, org_id, "the request body", text, format(q)?)
                .await
                .map_err(|e| bad(e.to_string()))?;
            ok(json!(report))
        }
        (&Method::GET, ["entities", entity]) => {
            ok(json!(store.entity(org_id, id(entity, "entity")?).await?))
        }
        (&Method::PUT, ["entities", entity]) => {
            let input: EntityInput = parse_json(body, "an entity (every field)")?;
            let (outcome, e) = store
                .update_entity(org_id, id(entity, "entity")?, &input)
                .await?;
            ok(json!({ "outcome": format!("{outcome:?}").to_lowercase(), "entity": e }))
        }
        (&Method::DELETE, ["entities", entity]) => {
            let (e, detached) = store.delete_entity(org_id, id(entity, "entity")?).await?;
            shared.match_wake.notify_one();
            ok(json!({ "removed": e.id, "contacts_detached": detached }))
        }
        (&Method::GET, ["contacts", contact, "timeline"]) => {
            let contact = id(contact, "contact")?;
            let items = store
                .timeline(org_id, contact, cursor(q)?, limit(q))
                .await?;
            let next = items
                .last()
                .map(|i| format!("{}:{}", i.occurred_ms, i.record_id));
            ok(json!({ "items": items, "next": next }))
        }
        (&Method::GET, ["tenants", tenant, "users", user, "review"]) => {
            let t = store.tenant(org, tenant).await?;
            let user_id = store.user_id(t.id, user).await?.ok_or_else(|| {
                StoreError::NotFound(format!("no user {user} in tenant {tenant}"))
            })?;
            let items = store.review_list(user_id, &review_filter(q)?).await?;
            let next = items
                .last()
                .map(|i| format!("{}:{}", i.sent_ms, i.email_id));
            ok(json!({ "items": items, "next": next }))
        }
        (&Method::POST, ["review", "map"]) => {
            let r: MapRequest = parse_json(
                body,
                "{\"emails\": [ids], \"contact\": id, \"add_address\": bool}",
            )?;
            let report = store
                .map_to_contact(
                    ReviewScope {
                        org_id,
                        user_id: None,
                    },
                    &r.emails,
                    r.contact,
                    r.add_address,
                    &by,
                )
                .await?;
            if !report.added_addresses.is_empty() {
                shared.match_wake.notify_one();
            }
            ok(json!(report))
        }
        (&Method::GET, ["tokens"]) => ok(json!(store.api_tokens(org_id).await?)),
        (&Method::POST, ["tokens"]) => {
            let r: TokenRequest = parse_json(
                body,
                "{\"tenant\": \"T\", \"user\": \"EMAIL\", \"label\": \"...\"} (tenant and user for a user token)",
            )?;
            let user_id = match (&r.tenant, &r.user) {
                (Some(tenant), Some(user)) => {
                    let t = store.tenant(org, tenant).await?;
                    Some(store.user_id(t.id, user).await?.ok_or_else(|| {
                        StoreError::NotFound(format!("no user {user} in tenant {tenant}"))
                    })?)
                }
                (None, None) => {
                    // Only the service admin makes org admin tokens.
                    actor.require_service_admin()?;
                    None
                }
                _ => return Err(bad("a user token names both its tenant and its user")),
            };
            let label = r.label.unwrap_or_else(|| match &r.user {
                Some(u) => format!("user {u}"),
                None => format!("{org} admin"),
            });
            let (id, token) = store.create_api_token(org_id, user_id, &label).await?;
            Ok((
                StatusCode::CREATED,
                json!({ "id": id, "token": token, "label": label }),
            ))
        }
        (&Method::DELETE, ["tokens", token]) => {
            let token = id(token, "token")?;
            store.revoke_api_token(org_id, token).await?;
            ok(json!({ "revoked": token }))
        }
        (&Method::POST, ["tenants"]) => super::api_setup::declare(shared, org, body).await,
        (&Method::POST, ["tenants", t, "users", "import"]) => {
            super::api_setup::import_users(shared, org, t, q, body).await
        }
        (&Method::GET, ["rules"]) => super::api_setup::list_rules(shared, org, None).await,
        (&Method::POST, ["rules"]) => super::api_setup::add_rule(shared, org, None, body).await,
        (&Method::DELETE, ["rules", r]) => {
            super::api_setup::remove_rule(shared, org, None, r).await
        }
        (&Method::GET, ["tenants", t, "rules"]) => {
            super::api_setup::list_rules(shared, org, Some(t)).await
        }
        (&Method::POST, ["tenants", t, "rules"]) => {
            super::api_setup::add_rule(shared, org, Some(t), body).await
        }
        (&Method::DELETE, ["tenants", t, "rules", r]) => {
            super::api_setup::remove_rule(shared, org, Some(t), r).await
        }
        (&Method::POST, ["tenants", tenant, "test"]) => {
            super::api_setup::test(shared, org, tenant, q).await
        }
        (&Method::POST, ["tenants", tenant, "activate"]) => {
            super::api_setup::activate_tenant(shared, org, tenant, q).await
        }
        (&Method::GET, ["plugins"]) => super::api_plugins::list(shared, org, org_id).await,
        (&Method::GET, ["plugins", slot, "history"]) => {
            super::api_plugins::history(shared, org, org_id, slot, q).await
        }
        (&Method::POST, ["plugins", slot, "rollback"]) => {
            super::api_plugins::roll_back(shared, org, org_id, slot, q).await
        }
        (&Method::POST, ["plugins", slot, "install"]) => {
            super::api_plugins::install(shared, org, org_id, slot, q, body).await
        }
        (&Method::GET, ["plugins", slot, "shadow"]) => {
            super::api_shadow::shadow_diff(shared, org, org_id, slot, q).await
        }
        (
            _,
            ["calendar", ..]
            | ["tenants", _, "calendar" | "events", ..]
            | ["tenants", _, "users", _, "events" | "sync-events"],
        ) => super::api_calendar::org_route(shared, org, org_id, method, rest, q, body).await,
        _ => Err(no_endpoint()),
    }
}

/// `GET /api/orgs/{org}/contacts/export` and `.../entities/export`: the file itself, CSV or
/// JSON, as `import` reads it back.
async fn export(
    shared: &Shared,
    actor: &Actor,
    org: &str,
    kind: &str,
    q: &HashMap<String, String>,
) -> Result<Answer, AccessError> {
    actor.require_org_admin(org)?;
    let store = &shared.env.store;
    let org_id = store.org_id(org).await?;
    let format = format(q)?;
    let text = if kind == "contacts" {
        export_contacts(store, org_id, format).await?
    } else {
        export_entities(store, org_id, format).await?
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(
            "content-type",
            match format {
                Format::Csv => "text/csv; charset=utf-8",
                Format::Json => "application/json",
            },
        )
        .body(http_body_util::Full::new(Bytes::from(text)))
        .expect("static response parts"))
}
