//! The admin API's outbound email (E15):
//! - `POST /api/orgs/{org}/tenants/{tenant}/mail` (the service admin or the org's admin): send
//!   from any linked mailbox of the tenant; `GET .../mail[?state=&limit=]` and
//!   `GET .../mail/{id}`: the outbox rows, their state and the email each became;
//! - `POST /api/me/mail` (a user token): send from the user's own mailbox (`from` defaults to
//!   it; a shared mailbox linked to the user may be named); `GET /api/me/mail[/{id}]`.
//!
//! The body: `{"from", "to": [..], "cc", "bcc", "subject", "body", "html", "regarding_contact",
//! "attachments": [{"name", "content_type", "content_base64"}]}`. An `Idempotency-Key` header
//! (or `idempotency_key` in the body) makes a repeat answer the first request's row (200)
//! instead of queuing another email (202). Mailboxes outside the caller's reach answer 404, as
//! missing ones do.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::outbound::mail::{describe, enqueue, SendError, SendRequest};
use m365sync_store::mail_outbox::{MailAttachment, MailFilter, MailState};
use m365sync_store::tenants::Tenant;
use m365sync_store::StoreError;

use super::access::{AccessError, Actor};
use super::api::{access_error, error, respond, store_error, Answer};
use super::extract::{Body, Caller, Q};
use super::Shared;

/// The most a mail request may carry: 35 MB of files grow by a third in base64.
pub(super) const MAX_MAIL_BODY: usize = 64 << 20;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Attachment {
    name: String,
    #[serde(default)]
    content_type: Option<String>,
    content_base64: String,
}

/// An email to send.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MailBody {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    html: bool,
    #[serde(default)]
    regarding_contact: Option<i64>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

fn send_error(e: SendError) -> Answer {
    let e = match e {
        SendError::Store(s) => return store_error(s),
        e => e,
    };
    let status = match &e {
        SendError::NoMailbox { .. } | SendError::NotYours { .. } => StatusCode::NOT_FOUND,
        SendError::NotLinked { .. } | SendError::Disabled { .. } | SendError::KeyReused(_) => {
            StatusCode::CONFLICT
        }
        SendError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        SendError::Invalid(_) | SendError::Store(_) => StatusCode::BAD_REQUEST,
    };
    // A mailbox that is not the caller's is answered as a missing one: a user cannot probe
    // which addresses the tenant holds.
    let message = match &e {
        SendError::NotYours { address } => {
            format!("no mailbox {address} of yours; a user sends only from their own mailboxes")
        }
        _ => e.to_string(),
    };
    error(status, message)
}

/// Whose outbox a request reaches: a tenant's (all of it, for its org's admin) or one user's
/// part of it, and who asked, as the row records it.
struct Sender {
    tenant: Tenant,
    only_user: Option<i64>,
    requested_by: String,
}

/// `/api/orgs/{org}/tenants/{tenant}/mail...`: the service admin or the org's admin.
async fn org_sender(
    shared: &Shared,
    actor: &Actor,
    org: &str,
    tenant: &str,
) -> Result<Sender, Answer> {
    actor.require_org_admin(org).map_err(access_error)?;
    let tenant = shared
        .env
        .store
        .tenant(org, tenant)
        .await
        .map_err(store_error)?;
    Ok(Sender {
        tenant,
        only_user: None,
        requested_by: match actor {
            Actor::Admin => "admin".to_string(),
            _ => format!("org-admin:{org}"),
        },
    })
}

/// `/api/me/mail...`: a user token, for the user's own mailboxes.
async fn me_sender(shared: &Shared, actor: &Actor) -> Result<Sender, Answer> {
    match actor {
        Actor::User {
            tenant_id,
            user_id,
            email,
            ..
        } => match shared.env.store.tenant_by_id(*tenant_id).await {
            Ok(t) => Ok(Sender {
                tenant: t,
                only_user: Some(*user_id),
                requested_by: format!("user:{email}"),
            }),
            Err(e) => Err(store_error(e)),
        },
        _ => Err(access_error(AccessError::Forbidden(
            "/api/me/mail sends as a CRM user: use that user's token (`m365sync token create --user`)".into(),
        ))),
    }
}

/// The `Idempotency-Key` header.
fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `POST /api/orgs/{org}/tenants/{tenant}/mail`: an email queued from a linked mailbox.
pub(super) async fn org_send(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    headers: HeaderMap,
    Body(body): Body,
) -> Answer {
    match org_sender(&shared, &actor, &org, &tenant).await {
        Ok(sender) => send(&shared, &actor, sender, idempotency_key(&headers), body).await,
        Err(refused) => refused,
    }
}

/// `GET /api/orgs/{org}/tenants/{tenant}/mail[?state=&limit=]`.
pub(super) async fn org_list(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    match org_sender(&shared, &actor, &org, &tenant).await {
        Ok(sender) => list(&shared, sender, &q).await,
        Err(refused) => refused,
    }
}

/// `GET /api/orgs/{org}/tenants/{tenant}/mail/{id}`.
pub(super) async fn org_one(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant, id)): Path<(String, String, String)>,
) -> Answer {
    match org_sender(&shared, &actor, &org, &tenant).await {
        Ok(sender) => one(&shared, sender, &id).await,
        Err(refused) => refused,
    }
}

/// `POST /api/me/mail`: an email queued from the user's own mailbox.
pub(super) async fn me_send(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Answer {
    match me_sender(&shared, &actor).await {
        Ok(sender) => send(&shared, &actor, sender, idempotency_key(&headers), body).await,
        Err(refused) => refused,
    }
}

/// `GET /api/me/mail[?state=&limit=]`.
pub(super) async fn me_list(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    match me_sender(&shared, &actor).await {
        Ok(sender) => list(&shared, sender, &q).await,
        Err(refused) => refused,
    }
}

/// `GET /api/me/mail/{id}`.
pub(super) async fn me_one(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Answer {
    match me_sender(&shared, &actor).await {
        Ok(sender) => one(&shared, sender, &id).await,
        Err(refused) => refused,
    }
}

/// Queues one email: 202 with its row, or 200 with the first request's row for a repeated
/// idempotency key.
async fn send(
    shared: &Shared,
    actor: &Actor,
    sender: Sender,
    key: Option<String>,
    body: Bytes,
) -> Answer {
    let store = &shared.env.store;
    let Sender {
        tenant,
        only_user,
        requested_by,
    } = sender;
    let b: MailBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the request body is not an email to send: {e}"),
            )
        }
    };
    let key = match (key, b.idempotency_key) {
        (Some(h), Some(k)) if h != k => {
            return error(
                StatusCode::BAD_REQUEST,
                "the Idempotency-Key header and idempotency_key differ; send one",
            )
        }
        (h, k) => h.or(k),
    };
    let mut attachments = Vec::new();
    for a in b.attachments {
        match STANDARD.decode(a.content_base64.trim()) {
            Ok(content) => attachments.push(MailAttachment {
                content_type: a
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
                name: a.name,
                content,
            }),
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("attachment '{}': content_base64 is not base64", a.name),
                )
            }
        }
    }
    let from = match (b.from, only_user, actor) {
        (Some(f), _, _) => f,
        (None, Some(_), Actor::User { email, .. }) => email.clone(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "from: the sending mailbox's address is needed",
            )
        }
    };
    let req = SendRequest {
        from,
        to: b.to,
        cc: b.cc,
        bcc: b.bcc,
        subject: b.subject,
        body: b.body,
        html: b.html,
        attachments,
        regarding_contact: b.regarding_contact,
        idempotency_key: key,
        requested_by,
    };
    match enqueue(store, &tenant, &req, only_user).await {
        Ok((row, created)) => {
            if created {
                shared.mail_wake.notify_one();
            }
            respond(
                if created {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::OK
                },
                describe(&row),
            )
        }
        Err(e) => send_error(e),
    }
}

/// A page of the outbox rows the caller reaches.
async fn list(shared: &Shared, sender: Sender, q: &HashMap<String, String>) -> Answer {
    let store = &shared.env.store;
    let Sender {
        tenant, only_user, ..
    } = sender;
    let state = match q.get("state").map(String::as_str) {
        None | Some("") => None,
        Some("queued") => Some(MailState::Queued),
        Some("sending") => Some(MailState::Sending),
        Some("sent") => Some(MailState::Sent),
        Some("failed") => Some(MailState::Failed),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("state '{other}': one of queued, sending, sent, failed"),
            )
        }
    };
    let filter = MailFilter {
        tenant_id: Some(tenant.id),
        user_id: only_user,
        state,
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100),
        ..MailFilter::default()
    };
    match store.mails(&filter).await {
        Ok(rows) => respond(
            StatusCode::OK,
            json!({"items": rows.iter().map(describe).collect::<Vec<Value>>()}),
        ),
        Err(e) => store_error(e),
    }
}

/// One outbox row the caller reaches; any other id answers as a missing one.
async fn one(shared: &Shared, sender: Sender, id: &str) -> Answer {
    let store = &shared.env.store;
    let Sender {
        tenant, only_user, ..
    } = sender;
    let missing = || store_error(StoreError::NotFound(format!("no outbox email {id}")));
    let Ok(id) = id.parse::<i64>() else {
        return missing();
    };
    match store.mail(id).await {
        Ok(m) if m.tenant_id == tenant.id && only_user.is_none_or(|u| m.user_id == Some(u)) => {
            respond(StatusCode::OK, describe(&m))
        }
        Ok(_) | Err(StoreError::NotFound(_)) => missing(),
        Err(e) => store_error(e),
    }
}
