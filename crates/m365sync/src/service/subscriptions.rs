//! The subscription maintainer (issue 17): every tick it makes the store's wanted
//! subscriptions real at Graph and keeps them so.
//!
//! - A synced mailbox without one gets a mail subscription (and, for a user's primary mailbox
//!   with Sync Events on, an events one), created with the tenant's app token and a fresh
//!   random client state sealed in the store; a look at the mailbox follows each creation, so
//!   a change made before the subscription existed is not left for the cadence.
//! - One is renewed before it lapses, when the store's `renew_after_ms` (half its remaining
//!   life, from the expiry Graph granted) comes.
//! - `reauthorizationRequired` is answered with a reauthorization (a renewal if that fails);
//!   `subscriptionRemoved` with a new subscription, then a look at the mailbox.
//! - One no longer wanted (mailbox or tenant disabled, notifications turned off) is deleted.
//!
//! Several processes may run it: each subscription is claimed in the store before its Graph
//! call. A failure leaves the subscription `failing` with what went wrong (shown with the
//! mailbox) and retries it later; the cadence poll syncs the mailbox meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use m365sync_graph::subscriptions::{self as graph_subs, NewSubscription, Resource};
use m365sync_graph::{ClientConfig, GraphClient};
use m365sync_store::subscriptions::{ResourceKind, Subscription};
use m365sync_store::{now_ms, StoreError};

use super::Shared;
use crate::credentials::token_cache_for;

/// How long a claim on a subscription lasts: longer than a Graph call with its retries.
const CLAIM_MS: i64 = 120_000;
/// How long after a first failure a subscription is tried again (doubling with each failure
/// in a row, up to [`MAX_RETRY_MS`]).
const RETRY_MS: i64 = 60_000;
/// The longest wait between attempts of a failing subscription.
const MAX_RETRY_MS: i64 = 3_600_000;
/// How long a tenant's Graph client is kept before it is built again (credentials rotate).
const CLIENT_TTL: Duration = Duration::from_secs(600);

/// Graph clients per tenant, built on first use.
#[derive(Default)]
struct Clients(HashMap<i64, (Instant, Arc<GraphClient>)>);

impl Clients {
    async fn get(&mut self, shared: &Shared, tenant_id: i64) -> Result<Arc<GraphClient>, String> {
        if let Some((built, c)) = self.0.get(&tenant_id) {
            if built.elapsed() < CLIENT_TTL {
                return Ok(Arc::clone(c));
            }
        }
        let env = &shared.env;
        let tenant = env
            .store
            .tenant_by_id(tenant_id)
            .await
            .map_err(|e| e.to_string())?;
        let tokens = token_cache_for(&env.store, &tenant, env.http.clone())
            .await
            .map_err(|e| e.to_string())?;
        let client = Arc::new(GraphClient::new(
            env.http.clone(),
            tokens,
            ClientConfig {
                graph_url: tenant.graph_url.clone(),
                // A subscription call is one request; it must not wait out a long storm.
                max_attempts: 4,
                ..ClientConfig::default()
            },
        ));
        self.0
            .insert(tenant_id, (Instant::now(), Arc::clone(&client)));
        Ok(client)
    }

    fn forget(&mut self, tenant_id: i64) {
        self.0.remove(&tenant_id);
    }
}

/// The maintainer's loop, until the service stops. Without a notification URL it does nothing:
/// the cadence alone syncs.
pub async fn maintainer(shared: Arc<Shared>) {
    let Some(url) = shared.notification_url.clone() else {
        return;
    };
    let stop = shared.stop.clone();
    let mut clients = Clients::default();
    while !stop.is_stopping() {
        if let Err(e) = tick(&shared, &url, &mut clients).await {
            tracing::warn!(error = %e, "subscription maintenance failed; trying again");
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.opts.poll.max(Duration::from_millis(500))) => {}
            _ = shared.subs_wake.notified() => {}
            _ = stop.stopped() => {}
        }
    }
}

/// A fresh client state: 32 random bytes, URL-safe base64 (43 characters; Graph allows 128).
fn new_client_state() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn tick(shared: &Shared, url: &str, clients: &mut Clients) -> Result<(), StoreError> {
    let store = &shared.env.store;
    for wanted in store.wanted_subscriptions().await? {
        if shared.stop.is_stopping() {
            return Ok(());
        }
        let Some(id) = store
            .begin_subscription(&wanted, &new_client_state(), CLAIM_MS)
            .await?
        else {
            continue;
        };
        // Read back through the store so the row's own columns (mailbox id, address) are used.
        let sub = store
            .mailbox_subscriptions(wanted.mailbox_id)
            .await?
            .into_iter()
            .find(|s| s.id == id);
        if let Some(sub) = sub {
            create(shared, url, clients, &sub).await?;
        }
    }
    let now = now_ms();
    // The unwanted first, so none is renewed just before it is deleted.
    for sub in store.unwanted_subscriptions(now).await? {
        if shared.stop.is_stopping() {
            return Ok(());
        }
        if !store.claim_subscription(sub.id, CLAIM_MS).await? {
            continue;
        }
        delete(shared, clients, &sub).await?;
    }
    // Made for a notification URL the service no longer has: Graph would go on posting to the
    // old one. Deleted here; the wanted pass makes each again for `url` on the next tick.
    for sub in store.subscriptions_for_other_url(url, now).await? {
        if shared.stop.is_stopping() {
            return Ok(());
        }
        if !store.claim_subscription(sub.id, CLAIM_MS).await? {
            continue;
        }
        tracing::info!(mailbox = %sub.address, resource = sub.resource.as_str(),
            "the notification URL changed: the subscription is made again for the new one");
        delete(shared, clients, &sub).await?;
    }
    for sub in store.subscriptions_due(now).await? {
        if shared.stop.is_stopping() {
            return Ok(());
        }
        if !store.claim_subscription(sub.id, CLAIM_MS).await? {
            continue;
        }
        let recreate = sub.graph_id.is_none() || sub.pending_action.as_deref() == Some("recreate");
        if recreate {
            create(shared, url, clients, &sub).await?;
        } else if sub.pending_action.as_deref() == Some("reauthorize") {
            reauthorize(shared, url, clients, &sub).await?;
        } else {
            renew(shared, url, clients, &sub).await?;
        }
    }
    Ok(())
}

fn resource(sub: &Subscription) -> Resource {
    match sub.resource {
        ResourceKind::Mail => Resource::Mail,
        ResourceKind::Events => Resource::Events,
    }
}

/// Records a failed Graph call on the subscription, with what to do.
async fn failed(
    shared: &Shared,
    clients: &mut Clients,
    sub: &Subscription,
    what: &str,
    error: &str,
) -> Result<(), StoreError> {
    shared.metrics.subscription_failures.inc();
    clients.forget(sub.tenant_id);
    let wait = retry_wait_ms(sub.failures);
    let detail = format!(
        "mailbox {}: cannot {what} its {} subscription: {error}; the cadence syncs it meanwhile and this is tried again in {} s (check that notification_url is reachable from Microsoft Graph and the app has Mail.Read / Calendars.Read)",
        sub.address,
        sub.resource.as_str(),
        wait / 1000
    );
    tracing::warn!(mailbox = %sub.address, resource = sub.resource.as_str(), "{detail}");
    shared
        .env
        .store
        .subscription_failed(sub.id, &detail, now_ms() + wait)
        .await
}

/// How long after its `failures`-th failure in a row (counting from 0) a subscription call is
/// tried again: a minute, doubling, at most an hour, so a notification URL Graph cannot reach
/// is not asked about every minute for days.
fn retry_wait_ms(failures: i64) -> i64 {
    (RETRY_MS << failures.clamp(0, 6)).min(MAX_RETRY_MS)
}

async fn create(
    shared: &Shared,
    url: &str,
    clients: &mut Clients,
    sub: &Subscription,
) -> Result<(), StoreError> {
    let store = &shared.env.store;
    let client = match clients.get(shared, sub.tenant_id).await {
        Ok(c) => c,
        Err(e) => return failed(shared, clients, sub, "create", &e).await,
    };
    let client_state = store.subscription_client_state(sub.id).await?;
    let lifecycle_url = format!("{}/lifecycle", url.trim_end_matches('/'));
    let asked = NewSubscription {
        mailbox: &sub.mailbox_graph_id,
        resource: resource(sub),
        notification_url: url,
        lifecycle_url: &lifecycle_url,
        client_state: &client_state,
    };
    match graph_subs::create(&client, &asked).await {
        Ok(granted) => {
            store
                .subscription_created(sub.id, &granted.id, granted.expires.timestamp_millis(), url)
                .await?;
            shared.metrics.subscriptions_created.inc();
            tracing::info!(mailbox = %sub.address, resource = sub.resource.as_str(), expires = %granted.expires,
                "subscription created");
            // What changed before the subscription existed is read now, not at the cadence.
            store.request_look(sub.mailbox_id).await?;
            super::wake::start_notified_rounds(shared).await
        }
        Err(e) => failed(shared, clients, sub, "create", &e.to_string()).await,
    }
}

async fn renew(
    shared: &Shared,
    url: &str,
    clients: &mut Clients,
    sub: &Subscription,
) -> Result<(), StoreError> {
    let client = match clients.get(shared, sub.tenant_id).await {
        Ok(c) => c,
        Err(e) => return failed(shared, clients, sub, "renew", &e).await,
    };
    let graph_id = sub.graph_id.as_deref().unwrap_or_default();
    match graph_subs::renew(&client, &sub.mailbox_graph_id, graph_id).await {
        Ok(granted) => {
            shared
                .env
                .store
                .subscription_renewed(sub.id, granted.expires.timestamp_millis())
                .await?;
            shared.metrics.subscriptions_renewed.inc();
            tracing::info!(mailbox = %sub.address, resource = sub.resource.as_str(), expires = %granted.expires,
                "subscription renewed");
            Ok(())
        }
        // Graph no longer has it (it lapsed, or was removed): make a new one.
        Err(m365sync_graph::GraphError::NotFound { .. }) => {
            tracing::info!(mailbox = %sub.address, resource = sub.resource.as_str(),
                "subscription gone at Graph; creating it again");
            create(shared, url, clients, sub).await
        }
        Err(e) => failed(shared, clients, sub, "renew", &e.to_string()).await,
    }
}

async fn reauthorize(
    shared: &Shared,
    url: &str,
    clients: &mut Clients,
    sub: &Subscription,
) -> Result<(), StoreError> {
    let client = match clients.get(shared, sub.tenant_id).await {
        Ok(c) => c,
        Err(e) => return failed(shared, clients, sub, "reauthorize", &e).await,
    };
    let graph_id = sub.graph_id.as_deref().unwrap_or_default();
    match graph_subs::reauthorize(&client, &sub.mailbox_graph_id, graph_id).await {
        Ok(()) => {
            let expires = sub.expires_ms.unwrap_or_else(now_ms);
            shared
                .env
                .store
                .subscription_renewed(sub.id, expires)
                .await?;
            shared.metrics.subscriptions_renewed.inc();
            tracing::info!(mailbox = %sub.address, resource = sub.resource.as_str(), "subscription reauthorized");
            Ok(())
        }
        // Graph's other answer to reauthorizationRequired: a renewal.
        Err(e) => {
            tracing::info!(mailbox = %sub.address, error = %e, "reauthorization refused; renewing instead");
            renew(shared, url, clients, sub).await
        }
    }
}

async fn delete(
    shared: &Shared,
    clients: &mut Clients,
    sub: &Subscription,
) -> Result<(), StoreError> {
    // One that has lapsed at Graph needs no call (and a tenant whose credentials are gone
    // could not make one).
    let lapsed = sub.expires_ms.is_some_and(|e| e < now_ms());
    if let (Some(graph_id), false) = (&sub.graph_id, lapsed) {
        let client = match clients.get(shared, sub.tenant_id).await {
            Ok(c) => c,
            Err(e) => return failed(shared, clients, sub, "delete", &e).await,
        };
        if let Err(e) = graph_subs::delete(&client, &sub.mailbox_graph_id, graph_id).await {
            return failed(shared, clients, sub, "delete", &e.to_string()).await;
        }
    }
    shared.env.store.remove_subscription(sub.id).await?;
    shared.metrics.subscriptions_deleted.inc();
    tracing::info!(mailbox = %sub.address, resource = sub.resource.as_str(), "subscription deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_subscription_waits_a_minute_then_doubles_up_to_an_hour() {
        let waits: Vec<i64> = (0..9).map(|n| retry_wait_ms(n) / 60_000).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
