//! The change-notification receiver (issue 17), on the admin API's listener and open like
//! `/health` (Graph sends no bearer token; the per-subscription client state is what proves a
//! notification genuine):
//!
//! - `POST /notifications?validationToken=...` and `POST /notifications/lifecycle?...`: the
//!   validation handshake, answered at once (Graph waits 10 s) with the token as plain text;
//! - `POST /notifications`: a batch (`value` array) of change notifications; each one's
//!   subscription must be known here and its `clientState` match the one sealed for it
//!   (compared in constant time); a genuine one marks its mailbox as owing a look, nothing
//!   more: what changed is for the delta round to say;
//! - `POST /notifications/lifecycle`: `reauthorizationRequired`, `subscriptionRemoved` and
//!   `missed`, recorded for the subscription maintainer and the waker.
//!
//! Store first, work after: the answer (202) goes once the marks are committed, and the rounds
//! they start are started after it, so Graph's 3-second budget is spent on one short
//! transaction per subscription. A notification whose subscription is unknown or whose client
//! state is wrong changes nothing, is counted as rejected and logged without its client state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::Value;

use m365sync_store::now_ms;

use super::api::{error, Answer};
use super::Shared;

/// The most a notification POST may carry (Graph batches at most a few hundred).
pub const MAX_NOTIFICATION_BODY: usize = 4 << 20;

/// Equal strings in time that depends on their length only, so a forger learns nothing from
/// how long a wrong client state takes to refuse.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: StatusCode, body: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

/// Answers one POST to the receiver: `lifecycle` for `/notifications/lifecycle`.
pub async fn receive(
    shared: &Arc<Shared>,
    lifecycle: bool,
    q: &HashMap<String, String>,
    body: Bytes,
) -> Answer {
    if let Some(token) = q.get("validationToken") {
        // The handshake: echo the (decoded) token, as plain text, at once.
        return text(StatusCode::OK, token.clone());
    }
    let Ok(batch) = serde_json::from_slice::<Value>(&body) else {
        shared.metrics.notifications_rejected.inc();
        tracing::warn!("notification receiver: a POST that is not JSON was refused");
        return error(
            StatusCode::BAD_REQUEST,
            "a change notification is a JSON object with a value array",
        );
    };
    let Some(items) = batch["value"].as_array() else {
        shared.metrics.notifications_rejected.inc();
        tracing::warn!("notification receiver: a POST without a value array was refused");
        return error(
            StatusCode::BAD_REQUEST,
            "a change notification is a JSON object with a value array",
        );
    };
    let now = now_ms();
    // One look-up and one transaction per subscription, however many notifications it has in
    // the batch: a burst for one mailbox is one mark.
    let mut by_subscription: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for item in items {
        let id = item["subscriptionId"].as_str().unwrap_or("");
        by_subscription.entry(id).or_default().push(item);
    }
    let mut accepted = 0u64;
    let mut lifecycle_actions = false;
    for (graph_id, items) in by_subscription {
        let n = items.len() as u64;
        let known = if graph_id.is_empty() {
            None
        } else {
            match shared.env.store.subscription_by_graph_id(graph_id).await {
                Ok(k) => k,
                Err(e) => {
                    // Not stored, so not answered 2xx: Graph delivers it again.
                    tracing::error!(error = %e, "notification receiver: database error");
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the database is unavailable; deliver again later",
                    );
                }
            }
        };
        let Some(known) = known else {
            shared.metrics.notifications_rejected.inc_by(n);
            tracing::warn!(
                subscription = graph_id,
                notifications = n,
                "notification receiver: ignored notifications of a subscription unknown here"
            );
            continue;
        };
        let sub = &known.subscription;
        let ms_tenant = match shared.env.store.tenant_by_id(sub.tenant_id).await {
            Ok(t) => t.ms_tenant,
            Err(e) => {
                tracing::error!(error = %e, "notification receiver: database error");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; deliver again later",
                );
            }
        };
        let (genuine, forged): (Vec<&Value>, Vec<&Value>) = items.into_iter().partition(|i| {
            i["clientState"]
                .as_str()
                .is_some_and(|c| same_secret(c, &known.client_state))
                && of_tenant(i, &ms_tenant)
        });
        if !forged.is_empty() {
            shared
                .metrics
                .notifications_rejected
                .inc_by(forged.len() as u64);
            tracing::warn!(
                subscription = graph_id,
                mailbox = %sub.address,
                notifications = forged.len(),
                "notification receiver: ignored notifications whose clientState (or tenantId) does not match their subscription's"
            );
        }
        if genuine.is_empty() {
            continue;
        }
        let stored = if lifecycle {
            let mut result = Ok(());
            for item in &genuine {
                let event = item["lifecycleEvent"].as_str().unwrap_or("");
                if !matches!(
                    event,
                    "reauthorizationRequired" | "subscriptionRemoved" | "missed"
                ) {
                    tracing::warn!(
                        subscription = graph_id,
                        event,
                        "notification receiver: ignored an unknown lifecycle event"
                    );
                    continue;
                }
                tracing::info!(subscription = graph_id, mailbox = %sub.address, event, "lifecycle event");
                shared.metrics.lifecycle_events.inc();
                lifecycle_actions |= event != "missed";
                result = shared
                    .env
                    .store
                    .note_lifecycle(sub.id, sub.mailbox_id, event, now)
                    .await;
                if result.is_err() {
                    break;
                }
            }
            result
        } else {
            shared
                .env
                .store
                .note_notifications(sub.id, sub.mailbox_id, genuine.len() as i64, now)
                .await
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "notification receiver: database error");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; deliver again later",
            );
        }
        accepted += genuine.len() as u64;
    }
    shared.metrics.notifications_received.inc_by(accepted);
    if accepted > 0 {
        // Work after the answer: the rounds, and the wake of every process's workers.
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            if lifecycle_actions {
                shared.subs_wake.notify_one();
            }
            if let Err(e) = super::wake::start_notified_rounds(&shared).await {
                tracing::warn!(error = %e, "cannot start the rounds notifications asked for; the scheduler tries again");
            }
        });
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .body(Full::new(Bytes::new()))
        .expect("static response parts")
}

/// True unless the notification names another Microsoft tenant than its subscription's: its
/// `tenantId` must be the tenant's directory id when the tenant is declared by id (a GUID). A
/// tenant declared by domain name cannot be compared, and a notification without `tenantId`
/// is judged by its client state alone.
fn of_tenant(item: &Value, ms_tenant: &str) -> bool {
    match item["tenantId"].as_str() {
        Some(id) if is_guid(ms_tenant) => id.eq_ignore_ascii_case(ms_tenant),
        _ => true,
    }
}

/// `8-4-4-4-12` hex digits.
fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_of_another_tenant_is_not_of_this_one() {
        let ours = "0f8e5a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b";
        let item = |t: &str| serde_json::json!({ "tenantId": t });
        assert!(of_tenant(&item(ours), ours));
        assert!(of_tenant(&item(&ours.to_uppercase()), ours));
        assert!(!of_tenant(
            &item("11111111-1111-1111-1111-111111111111"),
            ours
        ));
        assert!(of_tenant(&serde_json::json!({}), ours));
        // Declared by domain: nothing to compare with.
        assert!(of_tenant(
            &item("11111111-1111-1111-1111-111111111111"),
            "contoso.onmicrosoft.com"
        ));
    }
}
