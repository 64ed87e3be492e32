//! `m365sync serve`: the long-running service. A scheduler starts each tenant's runs on its
//! cadence; workers take mailboxes that owe a run work under database leases (so several
//! processes on one PostgreSQL share the work and take over a dead one's mailboxes); a watcher
//! picks up plugin swaps; the mail sender sends the CRM's outbox emails (E15); the admin API
//! serves health, metrics, runs, logs and retries, and on the same listener the Graph change
//! notification receiver (`POST /notifications`, issue 17), whose notifications only make a
//! mailbox owe a round now; the subscription maintainer creates, renews and deletes the
//! subscriptions behind it; the waker turns notifications into rounds and wakes idle workers
//! (on PostgreSQL, every process's, through LISTEN/NOTIFY).
//!
//! Stopping (SIGTERM, SIGINT): every worker finishes the page it is committing, abandons the
//! fetch in flight, gives its lease back, and the process exits; the next start resumes from
//! the stored cursors.

mod access;
mod api;
mod api_attachments;
mod api_calendar;
mod api_crm;
mod api_mail;
mod api_plugins;
mod api_send;
mod api_setup;
mod api_shadow;
mod console;
mod contexts;
mod extract;
mod mail_sender;
mod matcher;
pub mod metrics;
mod notifications;
mod oauth;
mod openapi;
mod plugin_watch;
pub mod retry;
mod routes;
pub mod sandbox;
mod scheduler;
mod subscriptions;
mod wake;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::sync::stop::StopSignal;
use crate::sync::SyncEnv;

pub use api::ApiBindError;
pub use routes::{route_access, route_list, Access};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Mailboxes this process syncs at once; 0 makes a receive-only process (API and
    /// notification receiver; other processes on the same PostgreSQL do the rounds).
    pub workers: usize,
    /// How long a lease lasts without renewal: how soon another process takes over the
    /// mailboxes of one that died.
    pub lease_ttl: Duration,
    /// How often the scheduler ticks and idle workers look for work.
    pub poll: Duration,
    /// How often the plugin registry is checked for swaps.
    pub plugin_poll: Duration,
    /// Where the admin API listens (`None`: no API).
    pub admin_listen: Option<SocketAddr>,
    /// The admin API's bearer token.
    pub admin_token: String,
    /// This process's name in leases: host, pid and a random part.
    pub holder: String,
    /// Where Graph posts change notifications for the subscriptions this process makes.
    pub notification_url: NotificationUrl,
    /// Whether the console's cookie is always `Secure` (`console_secure_cookie`), rather than
    /// only when a proxy says the browser came over https.
    pub console_secure_cookie: bool,
    /// The base URL browsers reach the admin listener at (`public_url`), for the redirect URI
    /// of the console's "Sign in with Microsoft" (`{public_url}/oauth/callback`); `None`:
    /// `http://` and the bound address, right for loopback only.
    pub public_url: Option<String>,
}

/// Where Graph reaches the notification receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationUrl {
    /// No subscriptions: the cadence alone syncs (no `notification_url` configured).
    Off,
    /// A public URL (`notification_url`), the same for every process of a deployment.
    Public(String),
    /// This process's own admin listener over plain http on its bound address: the sandbox,
    /// whose simulator runs on the same host.
    Loopback,
}

impl ServiceOptions {
    /// Defaults: 8 workers, 30 s leases, a 1 s tick, plugin swaps seen within 500 ms.
    pub fn new(admin_listen: Option<SocketAddr>, admin_token: String) -> ServiceOptions {
        ServiceOptions {
            workers: 8,
            lease_ttl: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            plugin_poll: Duration::from_millis(500),
            admin_listen,
            admin_token,
            holder: default_holder(),
            notification_url: NotificationUrl::Off,
            console_secure_cookie: false,
            public_url: None,
        }
    }
}

/// `host-pid-random`: unique per process, readable in the leases table.
pub fn default_holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// What the service's tasks share.
pub(crate) struct Shared {
    pub env: SyncEnv,
    pub opts: ServiceOptions,
    pub stop: StopSignal,
    pub contexts: contexts::Contexts,
    pub metrics: Arc<metrics::Metrics>,
    /// Pokes the matching task (a contact changed): it runs at once instead of next tick.
    pub match_wake: tokio::sync::Notify,
    /// Pokes the mail sender (an email was queued): it sends at once instead of next tick.
    pub mail_wake: tokio::sync::Notify,
    /// Bumped when mailboxes owe work now (a run started, a notification's round): idle
    /// workers wake at once instead of at their next poll. A counter, so no wake is lost
    /// between a worker's look and its wait.
    pub work_wake: tokio::sync::watch::Sender<u64>,
    /// Pokes the subscription maintainer (a lifecycle event asks for a renewal or a new
    /// subscription).
    pub subs_wake: tokio::sync::Notify,
    /// The notification URL subscriptions are made with (resolved: the loopback address once
    /// bound); `None` when notifications are off for this process.
    pub notification_url: Option<String>,
    /// The base URL of the console's sign-in redirect ([`ServiceOptions::public_url`], else the
    /// bound address over http); `None` without an admin listener.
    pub public_url: Option<String>,
    /// The Microsoft sign-ins the console started, waiting for their callback.
    pub sign_ins: oauth::SignIns,
}

impl Shared {
    fn lease_ttl_ms(&self) -> i64 {
        self.opts.lease_ttl.as_millis() as i64
    }

    /// Wakes this process's idle workers: mailboxes owe work now.
    pub(crate) fn wake_workers(&self) {
        self.work_wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A started service.
pub struct Service {
    /// Where the admin API listens, once bound.
    pub admin_addr: Option<SocketAddr>,
    tasks: tokio::task::JoinSet<()>,
    /// The admin API, apart from the other tasks: it keeps answering (`/ready` with 503)
    /// while they drain after the stop signal, and closes only once they have finished.
    api: tokio::task::JoinSet<()>,
    /// Tells the admin API to close.
    api_close: Arc<tokio::sync::Notify>,
}

impl Service {
    /// Binds the admin API and starts the scheduler, the workers and the plugin watcher.
    pub async fn start(
        env: SyncEnv,
        opts: ServiceOptions,
        stop: StopSignal,
    ) -> Result<Service, ApiBindError> {
        let listener = match opts.admin_listen {
            Some(addr) => Some(api::bind(addr).await?),
            None => None,
        };
        let notification_url = match (&opts.notification_url, &listener) {
            (NotificationUrl::Off, _) | (NotificationUrl::Loopback, None) => None,
            (NotificationUrl::Public(url), _) => Some(url.clone()),
            (NotificationUrl::Loopback, Some((_, addr))) => {
                Some(format!("http://{addr}/notifications"))
            }
        };
        let public_url = match (&opts.public_url, &listener) {
            (Some(url), _) => Some(url.trim_end_matches('/').to_string()),
            (None, Some((_, addr))) => Some(format!("http://{addr}")),
            (None, None) => None,
        };
        // The service's metrics see the pipeline's timings: Graph requests, page commits,
        // plugin calls.
        let metrics = Arc::new(metrics::Metrics::new());
        let mut env = env;
        env.observer = metrics.clone();
        let shared = Arc::new(Shared {
            env,
            opts,
            stop,
            contexts: contexts::Contexts::default(),
            metrics,
            match_wake: tokio::sync::Notify::new(),
            mail_wake: tokio::sync::Notify::new(),
            work_wake: tokio::sync::watch::Sender::new(0),
            subs_wake: tokio::sync::Notify::new(),
            notification_url,
            public_url,
            sign_ins: oauth::SignIns::default(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(scheduler::scheduler(Arc::clone(&shared)));
        // The registry as it is now, read before the service says it started: a change made
        // the moment it is up is then a change to this baseline, never part of it.
        let baseline = plugin_watch::Baseline::read(&shared).await;
        tasks.spawn(plugin_watch::plugin_watch(Arc::clone(&shared), baseline));
        tasks.spawn(matcher::matcher(Arc::clone(&shared)));
        tasks.spawn(mail_sender::mail_sender(Arc::clone(&shared)));
        tasks.spawn(wake::waker(Arc::clone(&shared)));
        tasks.spawn(subscriptions::maintainer(Arc::clone(&shared)));
        // No workers is a receive-only process: its API and notification receiver answer, and
        // the processes with workers do the rounds.
        for i in 0..shared.opts.workers {
            tasks.spawn(workers::worker(Arc::clone(&shared), i));
        }
        let admin_addr = listener.as_ref().map(|(_, a)| *a);
        let api_close = Arc::new(tokio::sync::Notify::new());
        let mut api = tokio::task::JoinSet::new();
        if let Some((listener, _)) = listener {
            api.spawn(api::serve(
                Arc::clone(&shared),
                listener,
                Arc::clone(&api_close),
            ));
        }
        tracing::info!(holder = %shared.opts.holder, workers = shared.opts.workers, admin = ?admin_addr,
            notifications = shared.notification_url.as_deref().unwrap_or("off"), "service started");
        Ok(Service {
            admin_addr,
            tasks,
            api,
            api_close,
        })
    }

    /// Waits until every task has stopped (after the stop signal fired): first the workers
    /// and the scheduler drain, with the admin API still answering (`/ready`: 503, draining),
    /// then the API closes.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.api_close.notify_one();
        while self.api.join_next().await.is_some() {}
    }
}
