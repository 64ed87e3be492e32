//! Change notifications: `POST /subscriptions` with the validation handshake, renewal by PATCH
//! (a lifetime no longer than the protocol's `subscription_max_secs`), `POST
//! /subscriptions/{id}/reauthorize`, delivery of `created`/`updated`/`deleted` notifications to the notificationUrl (retried on
//! failure), and lifecycle events on request of the control API.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use super::graph::Ctx;
use super::identity::Caller;
use super::model::{Change, World};
use super::request::{GraphError, GraphResult, SimRequest, SimResponse};
use super::Sim;

/// Outlook's longest subscription: 10,080 minutes (7 days).
pub const MAX_MINUTES: i64 = 10_080;

/// A subscription as the simulator keeps it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// The subscription id, a GUID.
    pub id: String,
    /// The resource watched, such as `users/{id}/mailFolders('inbox')/messages`.
    pub resource: String,
    /// The change types asked for, comma-separated: `created`, `updated`, `deleted`.
    pub change_type: String,
    /// Where notifications are posted.
    pub notification_url: String,
    /// Where lifecycle events (`reauthorizationRequired`, `subscriptionRemoved`, `missed`) go.
    pub lifecycle_notification_url: Option<String>,
    /// When the subscription lapses unless renewed; at most [`MAX_MINUTES`] ahead.
    pub expiration_date_time: DateTime<Utc>,
    /// Echoed in every notification so the receiver can tell them genuine.
    pub client_state: Option<String>,
    /// The client id of the app that created the subscription.
    pub application_id: String,
    /// Index of the tenant in the world.
    #[serde(skip)]
    pub tenant: usize,
    /// The tenant id, sent in every notification.
    #[serde(skip)]
    pub tenant_id: String,
    /// (user index, folder index or None for all folders, is_event)
    #[serde(skip)]
    target: (usize, Option<usize>, bool),
}

/// A notification on its way out.
#[derive(Debug)]
struct Delivery {
    url: String,
    body: serde_json::Value,
}

/// All subscriptions and the queue to the delivery task.
#[derive(Debug, Default)]
pub struct Registry {
    subs: Mutex<Vec<Subscription>>,
    tx: OnceLock<mpsc::UnboundedSender<Delivery>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSubscription {
    change_type: String,
    notification_url: String,
    #[serde(default)]
    lifecycle_notification_url: Option<String>,
    resource: String,
    expiration_date_time: DateTime<Utc>,
    #[serde(default)]
    client_state: Option<String>,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("http client builds")
}

/// Parses a subscription resource into (user, folder, is_event) within `tenant`.
fn parse_resource(
    world: &World,
    tenant: usize,
    caller: &Caller,
    resource: &str,
) -> Option<(usize, Option<usize>, bool)> {
    let parts: Vec<&str> = resource.trim_start_matches('/').split('/').collect();
    let (user, rest) = match parts.first()?.to_ascii_lowercase().as_str() {
        "users" => (
            world.tenants[tenant].user_by_key(
                parts
                    .get(1)?
                    .trim_start_matches("('")
                    .trim_end_matches("')"),
            )?,
            &parts[2..],
        ),
        "me" => (caller.user?, &parts[1..]),
        _ => return None,
    };
    let first = rest.first()?.to_ascii_lowercase();
    if first == "events" {
        return Some((user, None, true));
    }
    if first == "messages" {
        return Some((user, None, false));
    }
    if first.starts_with("mailfolders") {
        let folder_name = if let Some(inner) = first.strip_prefix("mailfolders(") {
            inner.trim_end_matches(')').trim_matches('\'').to_string()
        } else {
            rest.get(1)?.to_string()
        };
        let f = world.tenants[tenant].users[user].folder_index(&folder_name)?;
        return Some((user, Some(f), false));
    }
    None
}

/// The expiry granted for `asked`: no later than the simulator's `subscription_max_secs` from
/// now (Graph may grant less than asked; clients must renew from the answer).
fn granted(sim: &Sim, asked: DateTime<Utc>) -> DateTime<Utc> {
    let cap = Utc::now() + chrono::Duration::seconds(sim.protocol().subscription_max_secs.max(1));
    asked.min(cap)
}

fn check_expiration(at: DateTime<Utc>) -> Result<(), GraphError> {
    let minutes = (at - Utc::now()).num_minutes();
    if minutes > MAX_MINUTES {
        return Err(GraphError::bad_request(format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )));
    }
    if minutes < 0 {
        return Err(GraphError::bad_request(
            "Subscription expiration must be in the future.",
        ));
    }
    Ok(())
}

impl Registry {
    /// Forgets every subscription.
    pub fn clear(&self) {
        self.subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn sender(&self) -> &mpsc::UnboundedSender<Delivery> {
        self.tx.get_or_init(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
            tokio::spawn(async move {
                let client = http_client();
                while let Some(d) = rx.recv().await {
                    let client = client.clone();
                    tokio::spawn(async move {
                        // Graph retries for hours; the simulator retries a few times with backoff.
                        for attempt in 0..5u32 {
                            match client.post(&d.url).json(&d.body).send().await {
                                Ok(r) if r.status().is_success() => return,
                                _ => {
                                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await
                                }
                            }
                        }
                    });
                }
            });
            tx
        })
    }

    /// Queues notifications for the changes a request made.
    pub fn enqueue(&self, sim: &Sim, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        if self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
        {
            return;
        }
        // Lock order is world before subscriptions, so read the user ids first.
        let uids: Vec<String> = {
            let w = sim.world();
            changes
                .iter()
                .map(|c| w.tenants[c.tenant].users[c.user].id.clone())
                .collect()
        };
        let subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Utc::now();
        for (change, uid) in changes.into_iter().zip(uids) {
            for s in subs.iter() {
                let (user, folder, is_event) = s.target;
                let matches = s.tenant == change.tenant
                    && user == change.user
                    && is_event == change.is_event
                    && (folder.is_none() || folder == change.folder)
                    && s.change_type
                        .split(',')
                        .any(|c| c.trim() == change.change_type)
                    && s.expiration_date_time > now;
                if !matches {
                    continue;
                }
                let kind = if change.is_event {
                    "Events"
                } else {
                    "Messages"
                };
                let path = format!("Users/{uid}/{kind}/{}", change.id);
                let body = json!({"value": [{
                    "subscriptionId": s.id,
                    "subscriptionExpirationDateTime": s.expiration_date_time,
                    "changeType": change.change_type,
                    "resource": path,
                    "clientState": s.client_state,
                    "tenantId": s.tenant_id,
                    "resourceData": {
                        "@odata.type": if change.is_event { "#Microsoft.Graph.Event" } else { "#Microsoft.Graph.Message" },
                        "@odata.id": path,
                        "id": change.id,
                    }
                }]});
                super::stats::Stats::inc(&sim.stats.notifications_sent);
                let _ = self.sender().send(Delivery {
                    url: s.notification_url.clone(),
                    body,
                });
            }
        }
    }

    /// Sends a lifecycle event (`reauthorizationRequired`, `subscriptionRemoved`, `missed`).
    pub fn lifecycle(&self, id: &str, event: &str) -> Result<(), String> {
        let mut subs = self
            .subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = subs
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| format!("no subscription '{id}'"))?;
        let url = s
            .lifecycle_notification_url
            .clone()
            .ok_or_else(|| format!("subscription '{id}' has no lifecycleNotificationUrl"))?;
        let body = json!({"value": [{
            "subscriptionId": s.id,
            "subscriptionExpirationDateTime": s.expiration_date_time,
            "tenantId": s.tenant_id,
            "clientState": s.client_state,
            "lifecycleEvent": event,
        }]});
        if event == "subscriptionRemoved" {
            subs.retain(|s| s.id != id);
        }
        let _ = self.sender().send(Delivery { url, body });
        Ok(())
    }

    /// All subscriptions (for the control API).
    pub fn list(&self) -> Vec<Subscription> {
        self.subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// True for `POST /subscriptions`, which needs the async validation handshake.
pub fn is_create(req: &SimRequest) -> bool {
    req.method == hyper::Method::POST
        && req.segments.len() == 2
        && req.segments[1] == "subscriptions"
}

/// `POST /subscriptions`: validates the endpoint (it must echo the validationToken within 10 s)
/// before the subscription exists.
pub async fn create(
    sim: &Arc<Sim>,
    caller: &Caller,
    req: &SimRequest,
) -> Result<SimResponse, GraphError> {
    let body: NewSubscription = req.json()?;
    check_expiration(body.expiration_date_time)?;
    if body.client_state.as_ref().is_some_and(|c| c.len() > 128) {
        return Err(GraphError::bad_request(
            "clientState must be at most 128 characters.",
        ));
    }
    for c in body.change_type.split(',') {
        if !matches!(c.trim(), "created" | "updated" | "deleted") {
            return Err(GraphError::bad_request(format!(
                "Invalid changeType '{c}'."
            )));
        }
    }
    let (target, tenant_id, id) = {
        let mut world = sim.world();
        let target =
            parse_resource(&world, caller.tenant, caller, &body.resource).ok_or_else(|| {
                GraphError::bad_request(format!(
                    "Resource '{}' is not supported for subscriptions.",
                    body.resource
                ))
            })?;
        let perm = if target.2 {
            "Calendars.Read"
        } else {
            "Mail.Read"
        };
        if !caller.has(perm) {
            return Err(GraphError::new(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied.]",
            ));
        }
        let seq = world.bump();
        let id = super::ids::Rng::new(seq ^ world.salt as u64).guid();
        (target, world.tenants[caller.tenant].id.clone(), id)
    };
    for url in
        std::iter::once(&body.notification_url).chain(body.lifecycle_notification_url.as_ref())
    {
        validate_endpoint(url).await?;
    }
    let sub = Subscription {
        id,
        resource: body.resource,
        change_type: body.change_type,
        notification_url: body.notification_url,
        lifecycle_notification_url: body.lifecycle_notification_url,
        expiration_date_time: granted(sim, body.expiration_date_time),
        client_state: body.client_state,
        application_id: caller.client_id.clone(),
        tenant: caller.tenant,
        tenant_id,
        target,
    };
    sim.subscriptions
        .subs
        .lock()
        .expect("subs lock")
        .push(sub.clone());
    let mut v = serde_json::to_value(&sub).expect("subscription serialises");
    v["@odata.context"] =
        format!("{}/v1.0/$metadata#subscriptions/$entity", sim.public_base()).into();
    Ok(SimResponse::json(201, &v))
}

async fn validate_endpoint(url: &str) -> Result<(), GraphError> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let failed = |why: String| {
        GraphError::bad_request(format!("Subscription validation request failed. {why}"))
    };
    let resp = http_client()
        .post(url)
        .query(&[("validationToken", &token)])
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .map_err(|e| {
            failed(format!(
                "Notification endpoint must respond with 200 OK to validation request: {e}"
            ))
        })?;
    if resp.status().as_u16() != 200 {
        return Err(failed(format!(
            "Notification endpoint must respond with 200 OK to validation request, got {}.",
            resp.status()
        )));
    }
    let echoed = resp.text().await.unwrap_or_default();
    if echoed != token {
        return Err(failed(
            "Response must exactly match validationToken query parameter.".into(),
        ));
    }
    Ok(())
}

/// `GET /subscriptions`, `GET|PATCH|DELETE /subscriptions/{id}`.
pub fn handle(ctx: &Ctx, _world: &mut World, rest: &[String]) -> GraphResult {
    let reg = &ctx.sim.subscriptions;
    let mut subs = reg
        .subs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mine = |s: &Subscription| {
        s.tenant == ctx.caller.tenant && s.application_id == ctx.caller.client_id
    };
    let not_found = || GraphError::not_found("ResourceNotFound", "The object was not found.");
    match (ctx.req.method.as_str(), rest.first()) {
        ("GET", None) => {
            let value: Vec<&Subscription> = subs.iter().filter(|s| mine(s)).collect();
            Ok(SimResponse::json(200, &json!({"value": value})))
        }
        ("GET", Some(id)) => subs
            .iter()
            .find(|s| &s.id == id && mine(s))
            .map(|s| SimResponse::json(200, s))
            .ok_or_else(not_found),
        ("PATCH", Some(id)) => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Renew {
                expiration_date_time: DateTime<Utc>,
            }
            let renew: Renew = ctx.req.json()?;
            check_expiration(renew.expiration_date_time)?;
            let s = subs
                .iter_mut()
                .find(|s| &s.id == id && mine(s))
                .ok_or_else(not_found)?;
            s.expiration_date_time = granted(ctx.sim, renew.expiration_date_time);
            Ok(SimResponse::json(200, &*s))
        }
        // Reauthorizing answers a `reauthorizationRequired` event: the subscription goes on
        // with its expiry unchanged.
        ("POST", Some(id)) if rest.get(1).map(String::as_str) == Some("reauthorize") => {
            subs.iter()
                .find(|s| &s.id == id && mine(s))
                .ok_or_else(not_found)?;
            Ok(SimResponse::empty(204))
        }
        ("DELETE", Some(id)) => {
            let before = subs.len();
            subs.retain(|s| !(&s.id == id && mine(s)));
            if subs.len() == before {
                return Err(not_found());
            }
            Ok(SimResponse::empty(204))
        }
        _ => Err(super::mail::unsupported(ctx)),
    }
}
