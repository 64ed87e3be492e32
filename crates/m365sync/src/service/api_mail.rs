//! The admin API's mail endpoints of a tenant (issue 14), under `/api/tenants/{org}/{tenant}/`
//! (an org admin reaches its own org's, the service admin all):
//! - `GET settings`, `PATCH settings` (the fields given change, the rest keep their value);
//! - `POST mailboxes/{address}/verify[?repair=1]`: each synced folder against Graph, id by id;
//! - `GET failures[?mailbox=&parked=1&limit=]`, `POST failures/retry` (`{"mailbox", "id"}`,
//!   both optional): the records a stage failed on, and the retry of parked ones;
//! - `PUT users/{email}/sync-emails` (`{"on": false}`): the user's Sync Emails switch (C2).

use std::sync::Arc;

use axum::extract::{Path, State};
use hyper::StatusCode;
use serde_json::{json, Value};

use m365sync_store::failures::FailureFilter;
use m365sync_store::tenants::Tenant;
use m365sync_store::StoreError;

use super::api::{error, respond, store_error, tenant_of, Answer};
use super::extract::{Body, Caller, Q};
use super::Shared;
use crate::admin::settings::{change_settings, SettingsChange};
use crate::sync::run::verify_tenant;

/// `GET /api/tenants/{org}/{tenant}/settings`.
pub(super) async fn get_settings(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    match shared.env.store.settings(t.id).await {
        Ok(s) => respond(StatusCode::OK, json!(s)),
        Err(e) => store_error(e),
    }
}

/// `PATCH /api/tenants/{org}/{tenant}/settings`: the fields given change.
pub(super) async fn patch_settings(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    Body(body): Body,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let change: SettingsChange = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the settings change is not valid JSON for tenant settings: {e}"),
            )
        }
    };
    match change_settings(&shared.env.store, &t, &change).await {
        Ok(s) => respond(StatusCode::OK, json!(s)),
        Err(e) => store_error(e),
    }
}

/// `POST /api/tenants/{org}/{tenant}/mailboxes/{address}/verify[?repair=1]`.
pub(super) async fn verify(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant, address)): Path<(String, String, String)>,
    Q(q): Q,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let repair = q.get("repair").is_some_and(|v| v == "1" || v == "true");
    match verify_tenant(&shared.env, &t, Some(&address), repair).await {
        Ok(reports) => respond(
            StatusCode::OK,
            json!({
                "complete": reports.iter().all(|r| r.complete()),
                "mailboxes": reports,
            }),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// `GET /api/tenants/{org}/{tenant}/failures[?mailbox=&parked=&limit=]`.
pub(super) async fn list_failures(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let mut filter = FailureFilter {
        tenant_id: Some(t.id),
        parked: q.get("parked").map(|v| v == "1" || v == "true"),
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(200),
        ..FailureFilter::default()
    };
    if let Err(e) = mailbox_scope(&shared, &t, q.get("mailbox"), &mut filter).await {
        return store_error(e);
    }
    match shared.env.store.failures(&filter).await {
        Ok(rows) => respond(StatusCode::OK, json!({ "items": rows })),
        Err(e) => store_error(e),
    }
}

/// `POST /api/tenants/{org}/{tenant}/failures/retry` (`{"mailbox", "id"}`, both optional).
pub(super) async fn retry_failures(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    Body(body): Body,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let store = &shared.env.store;
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
        }
    };
    let mut filter = FailureFilter {
        tenant_id: Some(t.id),
        graph_id: v["id"].as_str().map(str::to_string),
        ..FailureFilter::default()
    };
    let mailbox = v["mailbox"].as_str().map(str::to_string);
    if let Err(e) = mailbox_scope(&shared, &t, mailbox.as_ref(), &mut filter).await {
        return store_error(e);
    }
    let result = async {
        let mailboxes = store.unpark_failures(&filter).await?;
        if !mailboxes.is_empty() {
            store.request_run(t.id).await?;
        }
        Ok::<_, StoreError>(mailboxes.len())
    }
    .await;
    match result {
        Ok(n) => respond(
            StatusCode::ACCEPTED,
            json!({ "mailboxes": n, "run_requested": n > 0 }),
        ),
        Err(e) => store_error(e),
    }
}

/// `PUT /api/tenants/{org}/{tenant}/users/{email}/sync-emails` (`{"on": false}`).
pub(super) async fn put_sync_emails(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant, email)): Path<(String, String, String)>,
    Body(body): Body,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let store = &shared.env.store;
    let on = match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["on"].as_bool())
    {
        Some(on) => on,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "send {\"on\": true} or {\"on\": false}",
            )
        }
    };
    let result = async {
        let user = store.user_id(t.id, &email).await?.ok_or_else(|| {
            StoreError::NotFound(format!("tenant {org}/{tenant} has no user {email}"))
        })?;
        store.set_sync_emails(user, on).await
    }
    .await;
    match result {
        Ok(()) => respond(StatusCode::OK, json!({ "user": email, "sync_emails": on })),
        Err(e) => store_error(e),
    }
}

/// Narrows a failures filter to one mailbox of the tenant, by address.
async fn mailbox_scope(
    shared: &Shared,
    t: &Tenant,
    address: Option<&String>,
    filter: &mut FailureFilter,
) -> Result<(), StoreError> {
    if let Some(a) = address {
        let m = shared
            .env
            .store
            .mailbox_by_address(t.id, a)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no mailbox {a} in tenant {}", t.name)))?;
        filter.mailbox_id = Some(m.id);
    }
    Ok(())
}
