//! The admin API's CRM side (E8, E9, E12): an org's contacts and entities, their timelines,
//! the matching job on demand, review lists and the mass mapping action, and the org's API
//! tokens under `/api/orgs/{org}/...` (the service admin or that org's admin), and a user's own
//! view under `/api/me/...` (any user token): one handler per route of [`super::routes`]. The
//! handlers of a tenant's setup (declare, test, import users, org and tenant rules, activate),
//! an org's plugins and a plugin shadow's diff are here too, thin over [`super::api_setup`], [`super::api_plugins`] and
//! [`super::api_shadow`]; calendars are [`super::api_calendar`]'s. They all share this file's
//! helpers ([`Handled`], [`ok`], [`bad`], [`parse_json`], [`id`], [`instant`], [`answer`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::crm::export::{export_contacts, export_entities};
use crate::crm::import::{import_contacts, import_entities, Format};
use crate::matching::job::run_org_waiting;
use m365sync_store::crm::{ContactInput, EntityInput, ListQuery};
use m365sync_store::review::{ReviewFilter, ReviewScope};
use m365sync_store::rules::{RuleScope, RuleSpec};
use m365sync_store::StoreError;

use axum::extract::{Path, State};
use hyper::Response;

use super::access::{AccessError, Actor};
use super::api::{access_error, respond, Answer};
use super::extract::{Body, Caller, OrgScope, Q};
use super::Shared;

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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MapRequest {
    emails: Vec<i64>,
    contact: i64,
    #[serde(default)]
    add_address: bool,
}

/// A new token's body: a user's (by address, in a tenant) or the org admin's.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

/// A handler's result as the API answers it.
pub(super) fn answer(handled: Handled) -> Answer {
    match handled {
        Ok((status, v)) => respond(status, v),
        Err(e) => access_error(e),
    }
}

pub(super) fn no_endpoint() -> AccessError {
    AccessError::Store(StoreError::NotFound("no such endpoint".into()))
}

/// The caller of `/api/me/...`: a user token, else 403 saying which token to use.
pub(super) struct Me<'a> {
    pub org_id: i64,
    pub org: &'a str,
    pub tenant: &'a str,
    pub user_id: i64,
    pub email: &'a str,
}

pub(super) fn me_of(actor: &Actor) -> Result<Me<'_>, AccessError> {
    match actor {
        Actor::User {
            org_id,
            org,
            tenant,
            user_id,
            email,
            ..
        } => Ok(Me {
            org_id: *org_id,
            org,
            tenant,
            user_id: *user_id,
            email,
        }),
        _ => Err(AccessError::Forbidden(
            "/api/me is a user's own view; call it with a user token (`m365sync token create --user`)"
                .into(),
        )),
    }
}

impl Me<'_> {
    fn rules_scope(&self, actor: &Actor) -> RuleScope {
        let tenant_id = match actor {
            Actor::User { tenant_id, .. } => *tenant_id,
            _ => unreachable!("a Me is made of a user"),
        };
        RuleScope::User {
            org_id: self.org_id,
            tenant_id,
            user_id: self.user_id,
        }
    }
}

/// `GET /api/me`: who the token is.
pub(super) async fn me_get(Caller(actor): Caller) -> Answer {
    answer(
        me_of(&actor)
            .and_then(|me| ok(json!({ "org": me.org, "tenant": me.tenant, "user": me.email }))),
    )
}

/// `GET /api/me/review[?since=&until=&domain=&before=&limit=]`: the user's unmatched emails.
pub(super) async fn me_review(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            review_page(&shared, me.user_id, &q).await
        }
        .await,
    )
}

/// One page of a user's review list, with the cursor of the next.
async fn review_page(shared: &Shared, user_id: i64, q: &HashMap<String, String>) -> Handled {
    let items = shared
        .env
        .store
        .review_list(user_id, &review_filter(q)?)
        .await?;
    let next = items
        .last()
        .map(|i| format!("{}:{}", i.sent_ms, i.email_id));
    ok(json!({ "items": items, "next": next }))
}

/// `POST /api/me/review/map`: the user's emails mapped to a contact.
pub(super) async fn me_map(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            map(
                &shared,
                ReviewScope {
                    org_id: me.org_id,
                    user_id: Some(me.user_id),
                },
                &body,
                me.email,
            )
            .await
        }
        .await,
    )
}

/// The mass mapping action in `scope`, recorded as done `by` someone.
async fn map(shared: &Shared, scope: ReviewScope, body: &Bytes, by: &str) -> Handled {
    let r: MapRequest = parse_json(
        body,
        "{\"emails\": [ids], \"contact\": id, \"add_address\": bool}",
    )?;
    let report = shared
        .env
        .store
        .map_to_contact(scope, &r.emails, r.contact, r.add_address, by)
        .await?;
    if !report.added_addresses.is_empty() {
        shared.match_wake.notify_one();
    }
    ok(json!(report))
}

/// `GET /api/me/contacts`: read-only, a user looks a contact up to map mail to it.
pub(super) async fn me_contacts(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            ok(json!(
                shared
                    .env
                    .store
                    .list_contacts(me.org_id, &list_query(&q)?)
                    .await?
            ))
        }
        .await,
    )
}

/// `GET /api/me/rules`: the user's personal exclusion rules.
pub(super) async fn me_rules(State(shared): State<Arc<Shared>>, Caller(actor): Caller) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            ok(json!(
                shared.env.store.rules_at(me.rules_scope(&actor)).await?
            ))
        }
        .await,
    )
}

/// `POST /api/me/rules`: a personal rule added.
pub(super) async fn me_add_rule(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            let spec: RuleSpec = parse_json(
                &body,
                "{\"effect\": \"exclude\"|\"include\", \"target\": \"any_address\"|\"sender\"|\"recipient\"|\"subject\", \"pattern\": \"...\"}",
            )?;
            let id = shared
                .env
                .store
                .add_rule(me.rules_scope(&actor), &spec)
                .await?;
            Ok((StatusCode::CREATED, json!({ "id": id })))
        }
        .await,
    )
}

/// `DELETE /api/me/rules/{rule}`.
pub(super) async fn me_remove_rule(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path(rule): Path<String>,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            let rule = id(&rule, "rule")?;
            if shared
                .env
                .store
                .remove_rule_at(me.rules_scope(&actor), rule)
                .await?
            {
                ok(json!({ "removed": rule }))
            } else {
                Err(AccessError::Store(StoreError::NotFound(format!(
                    "no personal rule {rule} of yours"
                ))))
            }
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/match`: the org's matching job, now, waited for.
pub(super) async fn org_match(State(shared): State<Arc<Shared>>, scope: OrgScope) -> Answer {
    answer(
        async {
            let report = run_org_waiting(
                &shared.env,
                &scope.org,
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
        .await,
    )
}

/// `GET /api/tenants/{org}/{tenant}/match/failures[?limit=]`: the tenant's records the
/// matching plugin failed on, most recent first, with the total (the console shows them
/// beside the tenant's failed records).
pub(super) async fn match_failures(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    let t = match super::api::tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    answer(
        async {
            let (failures, total) = shared
                .env
                .store
                .match_failure_list(t.org_id, Some(t.id), limit(&q))
                .await?;
            ok(json!({ "failures": failures, "total": total }))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/contacts[?limit=&after=&filter=]`.
pub(super) async fn list_contacts(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            ok(json!(
                shared
                    .env
                    .store
                    .list_contacts(scope.org_id, &list_query(&q)?)
                    .await?
            ))
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/contacts`: 201 with the contact.
pub(super) async fn create_contact(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let input: ContactInput = parse_json(&body, "a contact: {\"name\", \"email\", \"alt_email\", \"contact_points\", \"entity_id\", \"external_id\"}")?;
            let c = shared.env.store.create_contact(scope.org_id, &input).await?;
            shared.match_wake.notify_one();
            Ok((StatusCode::CREATED, json!(c)))
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/contacts/import[?format=csv|json]`.
pub(super) async fn import_contacts_body(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Q(q): Q,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let text =
                std::str::from_utf8(&body).map_err(|_| bad("the import is not UTF-8 text"))?;
            let report = import_contacts(
                &shared.env.store,
                scope.org_id,
                "the request body",
                text,
                format(&q)?,
            )
            .await
            .map_err(|e| bad(e.to_string()))?;
            shared.match_wake.notify_one();
            ok(json!(report))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/contacts/warnings`: contacts holding a synced user's address.
pub(super) async fn contact_warnings(State(shared): State<Arc<Shared>>, scope: OrgScope) -> Answer {
    answer(
        async {
            ok(json!(
                shared
                    .env
                    .store
                    .contacts_with_sync_user_addresses(scope.org_id)
                    .await?
            ))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/contacts/{contact}`.
pub(super) async fn get_contact(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, contact)): Path<(String, String)>,
) -> Answer {
    answer(
        async {
            ok(json!(
                shared
                    .env
                    .store
                    .contact(scope.org_id, id(&contact, "contact")?)
                    .await?
            ))
        }
        .await,
    )
}

/// `PUT /api/orgs/{org}/contacts/{contact}`: every field replaced.
pub(super) async fn put_contact(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, contact)): Path<(String, String)>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let input: ContactInput = parse_json(
                &body,
                "a contact (every field; read it first to change one)",
            )?;
            let (outcome, c) = shared
                .env
                .store
                .update_contact(scope.org_id, id(&contact, "contact")?, &input)
                .await?;
            shared.match_wake.notify_one();
            ok(json!({ "outcome": format!("{outcome:?}").to_lowercase(), "contact": c }))
        }
        .await,
    )
}

/// `DELETE /api/orgs/{org}/contacts/{contact}`.
pub(super) async fn delete_contact(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, contact)): Path<(String, String)>,
) -> Answer {
    answer(
        async {
            let c = shared
                .env
                .store
                .delete_contact(scope.org_id, id(&contact, "contact")?)
                .await?;
            shared.match_wake.notify_one();
            ok(json!({ "removed": c.id }))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/entities[?limit=&after=&filter=]`.
pub(super) async fn list_entities(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            ok(json!(
                shared
                    .env
                    .store
                    .list_entities(scope.org_id, &list_query(&q)?)
                    .await?
            ))
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/entities`: 201 with the entity.
pub(super) async fn create_entity(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let input: EntityInput = parse_json(
                &body,
                "an entity: {\"name\", \"kind\", \"domains\", \"external_id\"}",
            )?;
            Ok((
                StatusCode::CREATED,
                json!(shared.env.store.create_entity(scope.org_id, &input).await?),
            ))
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/entities/import[?format=csv|json]`.
pub(super) async fn import_entities_body(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Q(q): Q,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let text =
                std::str::from_utf8(&body).map_err(|_| bad("the import is not UTF-8 text"))?;
            let report = import_entities(
                &shared.env.store,
                scope.org_id,
                "the request body",
                text,
                format(&q)?,
            )
            .await
            .map_err(|e| bad(e.to_string()))?;
            ok(json!(report))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/entities/{entity}`.
pub(super) async fn get_entity(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, entity)): Path<(String, String)>,
) -> Answer {
    answer(
        async {
            ok(json!(
                shared
                    .env
                    .store
                    .entity(scope.org_id, id(&entity, "entity")?)
                    .await?
            ))
        }
        .await,
    )
}

/// `PUT /api/orgs/{org}/entities/{entity}`: every field replaced.
pub(super) async fn put_entity(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, entity)): Path<(String, String)>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let input: EntityInput = parse_json(&body, "an entity (every field)")?;
            let (outcome, e) = shared
                .env
                .store
                .update_entity(scope.org_id, id(&entity, "entity")?, &input)
                .await?;
            ok(json!({ "outcome": format!("{outcome:?}").to_lowercase(), "entity": e }))
        }
        .await,
    )
}

/// `DELETE /api/orgs/{org}/entities/{entity}`: its contacts are detached.
pub(super) async fn delete_entity(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, entity)): Path<(String, String)>,
) -> Answer {
    answer(
        async {
            let (e, detached) = shared
                .env
                .store
                .delete_entity(scope.org_id, id(&entity, "entity")?)
                .await?;
            shared.match_wake.notify_one();
            ok(json!({ "removed": e.id, "contacts_detached": detached }))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/contacts/{contact}/timeline[?before=&limit=]`.
pub(super) async fn contact_timeline(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, contact)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            let contact = id(&contact, "contact")?;
            let items = shared
                .env
                .store
                .timeline(scope.org_id, contact, cursor(&q)?, limit(&q))
                .await?;
            let next = items
                .last()
                .map(|i| format!("{}:{}", i.occurred_ms, i.record_id));
            ok(json!({ "items": items, "next": next }))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/tenants/{tenant}/users/{user}/review`: a user's review list, for
/// the org's admin.
pub(super) async fn user_review(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user)): Path<(String, String, String)>,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            let user_id = store.user_id(t.id, &user).await?.ok_or_else(|| {
                StoreError::NotFound(format!("no user {user} in tenant {tenant}"))
            })?;
            review_page(&shared, user_id, &q).await
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/review/map`: any emails of the org mapped to a contact.
pub(super) async fn org_map(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    let by = match &scope.actor {
        Actor::OrgAdmin { org, .. } => format!("the {org} admin"),
        _ => "the service admin".to_string(),
    };
    answer(
        map(
            &shared,
            ReviewScope {
                org_id: scope.org_id,
                user_id: None,
            },
            &body,
            &by,
        )
        .await,
    )
}

/// `GET /api/orgs/{org}/tokens`: the org's tokens (never their secrets).
pub(super) async fn list_tokens(State(shared): State<Arc<Shared>>, scope: OrgScope) -> Answer {
    answer(async { ok(json!(shared.env.store.api_tokens(scope.org_id).await?)) }.await)
}

/// `POST /api/orgs/{org}/tokens`: a user's token, or (the service admin only) the org
/// admin's; the secret is answered once.
pub(super) async fn create_token(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let org = &scope.org;
            let r: TokenRequest = parse_json(
                &body,
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
                    scope.actor.require_service_admin()?;
                    None
                }
                _ => return Err(bad("a user token names both its tenant and its user")),
            };
            let label = r.label.unwrap_or_else(|| match &r.user {
                Some(u) => format!("user {u}"),
                None => format!("{org} admin"),
            });
            let (id, token) = store
                .create_api_token(scope.org_id, user_id, &label)
                .await?;
            Ok((
                StatusCode::CREATED,
                json!({ "id": id, "token": token, "label": label }),
            ))
        }
        .await,
    )
}

/// `DELETE /api/orgs/{org}/tokens/{token}`.
pub(super) async fn revoke_token(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, token)): Path<(String, String)>,
) -> Answer {
    answer(
        async {
            let token = id(&token, "token")?;
            shared
                .env
                .store
                .revoke_api_token(scope.org_id, token)
                .await?;
            ok(json!({ "revoked": token }))
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/tenants/{tenant}/test[?mailbox=]`: [`super::api_setup::test`].
pub(super) async fn tenant_test(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    answer(super::api_setup::test(&shared, &scope.org, &tenant, &q).await)
}

/// `POST /api/orgs/{org}/tenants/{tenant}/activate[?force=true]`:
/// [`super::api_setup::activate_tenant`].
pub(super) async fn tenant_activate(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    answer(super::api_setup::activate_tenant(&shared, &scope.org, &tenant, &q).await)
}

/// `GET /api/orgs/{org}/plugins`: [`super::api_plugins::list`].
pub(super) async fn plugins(State(shared): State<Arc<Shared>>, scope: OrgScope) -> Answer {
    answer(super::api_plugins::list(&shared, &scope.org, scope.org_id).await)
}

/// `GET /api/orgs/{org}/plugins/{slot}/history[?tenant=]`.
pub(super) async fn plugin_history(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, slot)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    answer(super::api_plugins::history(&shared, &scope.org, scope.org_id, &slot, &q).await)
}

/// `POST /api/orgs/{org}/plugins/{slot}/rollback[?tenant=]`.
pub(super) async fn plugin_rollback(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, slot)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    answer(super::api_plugins::roll_back(&shared, &scope.org, scope.org_id, &slot, &q).await)
}

/// `POST /api/orgs/{org}/plugins/{slot}/install[?tenant=]`: [`super::api_plugins::install`].
pub(super) async fn plugin_install(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, slot)): Path<(String, String)>,
    Q(q): Q,
    Body(body): Body,
) -> Answer {
    answer(super::api_plugins::install(&shared, &scope.org, scope.org_id, &slot, &q, &body).await)
}

/// `GET /api/orgs/{org}/plugins/{slot}/shadow[?tenant=&limit=]`.
pub(super) async fn plugin_shadow(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, slot)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    answer(super::api_shadow::shadow_diff(&shared, &scope.org, scope.org_id, &slot, &q).await)
}

/// `GET /api/orgs/{org}/contacts/export[?format=]`.
pub(super) async fn export_contacts_file(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path(org): Path<String>,
    Q(q): Q,
) -> Answer {
    match export(&shared, &actor, &org, "contacts", &q).await {
        Ok(answer) => answer,
        Err(e) => access_error(e),
    }
}

/// `GET /api/orgs/{org}/entities/export[?format=]`.
pub(super) async fn export_entities_file(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path(org): Path<String>,
    Q(q): Q,
) -> Answer {
    match export(&shared, &actor, &org, "entities", &q).await {
        Ok(answer) => answer,
        Err(e) => access_error(e),
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
