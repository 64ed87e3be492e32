//! The service's metrics, exposed at `/metrics` in the OpenMetrics text format (which
//! Prometheus scrapes) through the `prometheus-client` library.
//!
//! Names follow Prometheus' conventions: one name per thing counted with its outcome as a label
//! (`m365sync_mailbox_syncs_total{result}`, `m365sync_graph_responses_total{status}`), counters
//! ending in `_total`, durations as histograms in seconds (Graph requests by route, page
//! commits by kind, plugin calls by slot, plugin and version), and `m365sync_build_info`.
//!
//! Counters and histograms live in memory: they restart at zero with the process, as Prometheus
//! expects. Gauges that describe shared state (mailboxes by health, owed work, the matching
//! queue, failing records) are read from the database at scrape time, so every process of a
//! PostgreSQL deployment reports the same truth.
//!
//! Every service has its own registry (tests run several services in one process); the sync
//! pipeline and the Graph client report their timings to it through
//! [`SyncObserver`] and [`RequestObserver`], so neither depends on this library.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::sync::env::SyncObserver;
use crate::sync::Counts;
use m365sync_graph::RequestObserver;

/// The upper bounds, in seconds, of the notification lag histogram's buckets.
pub const LAG_BUCKETS_SECS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// A label set of one label, `result`, `outcome`, `status`, `health` or `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// What happened to records: `synced`, `excluded`, `removed`, `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// A Graph answer's HTTP status, or `none` when no whole answer came.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// A Graph route's template (`/users/{id}/mailFolders/{id}/messages/delta`): no ids,
/// addresses or tokens, so the label set stays small and holds no personal data.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// What a page commit wrote: `mail` or `calendar`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// A plugin version in a slot: what a plugin call or swap is labelled with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    slot: String,
    plugin: String,
    version: String,
}

/// A shadow's compared records: its plugin version, the slot, and how each compared.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    slot: String,
    plugin: String,
    version: String,
    /// `agreed`, `disagreed` or `failed` (the shadow failed on a record the live plugin
    /// decided).
    outcome: &'static str,
}

/// Failing records by stage and the plugin version (with its digest's first 16 hex digits)
/// that failed them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailingLabels {
    stage: String,
    plugin: String,
    version: String,
    sha256: String,
}

/// A mailbox health (`healthy`, `failing`, `backing_off`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabel {
    health: String,
}

fn graph_histogram() -> Histogram {
    // 5 ms to about 20 s: a delta page from Graph takes 100 ms to a few seconds.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

fn commit_histogram() -> Histogram {
    // 1 ms to about 4 s: one transaction per page.
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

fn plugin_histogram() -> Histogram {
    // 50 us to about 3 s: one call per page of up to a few hundred records.
    Histogram::new(exponential_buckets(0.00005, 3.0, 11))
}

/// The database's gauges, as the scrape read them.
pub struct DatabaseGauges {
    /// Mailboxes per health.
    pub health: Vec<(String, i64)>,
    /// Mailboxes owing work to a run.
    pub pending: i64,
    /// Records owed a matching pass.
    pub match_queue: i64,
    /// Records failing now per stage and plugin stamp (`name version sha256:...`).
    pub failing: Vec<(String, String, i64)>,
}

/// One service's metrics and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    /// Tenant runs this process started.
    pub runs_started: Counter,
    /// Tenant runs this process closed.
    pub runs_finished: Counter,
    /// Mailbox syncs that finished (`result="ok"`).
    pub mailbox_syncs_ok: Counter,
    /// Mailbox syncs that failed (`result="failed"`).
    pub mailbox_syncs_failed: Counter,
    /// Mailbox syncs stopped by shutdown or a lost lease (`result="interrupted"`; the work
    /// resumes from its cursors).
    pub mailbox_syncs_interrupted: Counter,
    pages: Counter,
    processed: Counter,
    records: Family<OutcomeLabel, Counter>,
    plugin_swaps: Family<PluginLabels, Counter>,
    /// Workers syncing a mailbox now.
    pub workers_busy: Gauge,
    graph_responses: Family<StatusLabel, Counter>,
    graph_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    commit_seconds: Family<KindLabel, Histogram, fn() -> Histogram>,
    plugin_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
    shadow_records: Family<ShadowLabels, Counter>,
    /// Change notifications this process received and accepted (subscription known, client
    /// state matching), lifecycle events included.
    pub notifications_received: Counter,
    /// Change notifications refused: unknown subscription, wrong client state, unreadable.
    pub notifications_rejected: Counter,
    /// Lifecycle events accepted (`reauthorizationRequired`, `subscriptionRemoved`, `missed`).
    pub lifecycle_events: Counter,
    /// Mailbox rounds notifications started here.
    pub notification_rounds: Counter,
    /// Subscriptions created at Graph by this process.
    pub subscriptions_created: Counter,
    /// Renewals (and reauthorizations) that succeeded.
    pub subscriptions_renewed: Counter,
    /// Subscriptions deleted (mailbox or tenant disabled, notifications turned off).
    pub subscriptions_deleted: Counter,
    /// Creations, renewals and deletions Graph refused or that failed in the network.
    pub subscription_failures: Counter,
    lag: Histogram,
    health: Family<HealthLabel, Gauge>,
    pending: Gauge,
    match_queue: Gauge,
    failing: Family<FailingLabels, Gauge>,
    /// One scrape at a time: the database gauges are cleared and set before encoding.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `m365sync` prefix.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("m365sync");
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let runs_started = counter(&mut r, "runs_started", "Tenant runs this process started.");
        let runs_finished = counter(&mut r, "runs_finished", "Tenant runs this process closed.");
        let syncs = Family::<ResultLabel, Counter>::default();
        r.register(
            "mailbox_syncs",
            "Mailbox syncs by result: ok, failed, or interrupted (shutdown or a lost lease; the work resumes from its cursors).",
            syncs.clone(),
        );
        let result = |result| syncs.get_or_create(&ResultLabel { result }).clone();
        let (mailbox_syncs_ok, mailbox_syncs_failed, mailbox_syncs_interrupted) =
            (result("ok"), result("failed"), result("interrupted"));
        let pages = counter(&mut r, "delta_pages", "Delta pages committed.");
        let processed = counter(
            &mut r,
            "records_processed",
            "Records (messages and events) read from Graph and passed through the plugin stages.",
        );
        let records = Family::<OutcomeLabel, Counter>::default();
        r.register(
            "records",
            "Records by outcome: synced (stored), excluded (dropped by the exclusion plugin), removed (Graph reported them gone), failed (a stage failed; kept and retried).",
            records.clone(),
        );
        for outcome in ["synced", "excluded", "removed", "failed"] {
            let _ = records.get_or_create(&OutcomeLabel { outcome });
        }
        let plugin_swaps = Family::<PluginLabels, Counter>::default();
        r.register(
            "plugin_swaps",
            "Plugin changes picked up without a restart, by slot and the plugin version swapped to.",
            plugin_swaps.clone(),
        );
        let workers_busy = Gauge::default();
        r.register(
            "workers_busy",
            "Workers syncing a mailbox now.",
            workers_busy.clone(),
        );
        let graph_responses = Family::<StatusLabel, Counter>::default();
        r.register(
            "graph_responses",
            "Graph requests by the answer's HTTP status; 'none' when no whole answer came (network).",
            graph_responses.clone(),
        );
        let graph_seconds: Family<RouteLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(graph_histogram);
        r.register_with_unit(
            "graph_request_duration",
            "Graph requests from send to the answer's last byte, by route template.",
            Unit::Seconds,
            graph_seconds.clone(),
        );
        let commit_seconds: Family<KindLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(commit_histogram);
        r.register_with_unit(
            "page_commit_duration",
            "One page's transaction in the store, by kind (mail, calendar).",
            Unit::Seconds,
            commit_seconds.clone(),
        );
        let plugin_seconds: Family<PluginLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(plugin_histogram);
        r.register_with_unit(
            "plugin_call_duration",
            "One batch call of a plugin (a page's records), by slot, plugin and version.",
            Unit::Seconds,
            plugin_seconds.clone(),
        );
        let shadow_records = Family::<ShadowLabels, Counter>::default();
        r.register(
            "plugin_shadow_records",
            "Records a shadow plugin (a candidate beside the version in force, deciding nothing) was compared on, by slot, the candidate's plugin and version, and outcome (agreed, disagreed, failed).",
            shadow_records.clone(),
        );
        let notifications_received = counter(
            &mut r,
            "notifications_received",
            "Change notifications and lifecycle events accepted (known subscription, matching client state).",
        );
        let notifications_rejected = counter(
            &mut r,
            "notifications_rejected",
            "Change notifications refused (unknown subscription, wrong client state, unreadable).",
        );
        let lifecycle_events = counter(
            &mut r,
            "notification_lifecycle_events",
            "Lifecycle events accepted (reauthorizationRequired, subscriptionRemoved, missed).",
        );
        let notification_rounds = counter(
            &mut r,
            "notification_rounds",
            "Mailbox rounds notifications started.",
        );
        let subscriptions_created = counter(
            &mut r,
            "subscriptions_created",
            "Graph subscriptions created.",
        );
        let subscriptions_renewed = counter(
            &mut r,
            "subscriptions_renewed",
            "Graph subscriptions renewed or reauthorized.",
        );
        let subscriptions_deleted = counter(
            &mut r,
            "subscriptions_deleted",
            "Graph subscriptions deleted.",
        );
        let subscription_failures = counter(
            &mut r,
            "subscription_failures",
            "Subscription creations, renewals and deletions that failed.",
        );
        let lag = Histogram::new(LAG_BUCKETS_SECS);
        r.register_with_unit(
            "notification_lag",
            "From a mailbox's first notification to the end of the round that answered it.",
            Unit::Seconds,
            lag.clone(),
        );
        let health = Family::<HealthLabel, Gauge>::default();
        r.register(
            "mailboxes",
            "Mailboxes by health (all processes).",
            health.clone(),
        );
        let pending = Gauge::default();
        r.register(
            "pending_mailboxes",
            "Mailboxes owing work to a run (all processes).",
            pending.clone(),
        );
        let match_queue = Gauge::default();
        r.register(
            "match_queue_depth",
            "Records owed a matching pass (all tenants, all processes).",
            match_queue.clone(),
        );
        let failing = Family::<FailingLabels, Gauge>::default();
        r.register(
            "plugin_failing_records",
            "Records failing now (kept and retried), by stage (convert, series, exclude, map, match) and the plugin version that failed them (all processes).",
            failing.clone(),
        );
        r.register(
            "build",
            "The running build.",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry: r,
            runs_started,
            runs_finished,
            mailbox_syncs_ok,
            mailbox_syncs_failed,
            mailbox_syncs_interrupted,
            pages,
            processed,
            records,
            plugin_swaps,
            workers_busy,
            graph_responses,
            graph_seconds,
            commit_seconds,
            plugin_seconds,
            shadow_records,
            notifications_received,
            notifications_rejected,
            lifecycle_events,
            notification_rounds,
            subscriptions_created,
            subscriptions_renewed,
            subscriptions_deleted,
            subscription_failures,
            lag,
            health,
            pending,
            match_queue,
            failing,
            scrape: Mutex::new(()),
        }
    }

    /// Adds one mailbox's work.
    pub fn add_counts(&self, c: &Counts) {
        self.pages.inc_by(c.pages);
        self.processed.inc_by(c.processed);
        for (outcome, n) in [
            ("synced", c.synced),
            ("excluded", c.excluded),
            ("removed", c.removed),
            ("failed", c.failed),
        ] {
            self.records
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n);
        }
    }

    /// Counts one swap of a slot to the plugin `name` `version` (the built-in one after an
    /// uninstall).
    pub fn add_swap(&self, slot: &str, name: &str, version: &str) {
        self.plugin_swaps
            .get_or_create(&PluginLabels {
                slot: slot.to_string(),
                plugin: name.to_string(),
                version: version.to_string(),
            })
            .inc();
    }

    /// Records one round's notification lag (from its mailbox's first notification to the
    /// round's end), in ms.
    pub fn observe_notification_lag(&self, ms: i64) {
        self.lag.observe(ms.max(0) as f64 / 1000.0);
    }

    /// The OpenMetrics exposition, with the database's gauges as `db` read them.
    pub fn render(&self, db: &DatabaseGauges) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.health.clear();
        for (health, n) in &db.health {
            self.health
                .get_or_create(&HealthLabel {
                    health: health.clone(),
                })
                .set(*n);
        }
        self.pending.set(db.pending);
        self.match_queue.set(db.match_queue);
        self.failing.clear();
        for (stage, stamp, n) in &db.failing {
            let mut parts = stamp.splitn(3, ' ');
            let (name, version, digest) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
            self.failing
                .get_or_create(&FailingLabels {
                    stage: stage.clone(),
                    plugin: name.to_string(),
                    version: version.to_string(),
                    sha256: digest[..digest.len().min(16)].to_string(),
                })
                .set(*n);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl RequestObserver for Metrics {
    fn request_ended(&self, route: &str, status: Option<u16>, elapsed: Duration) {
        let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        self.graph_responses
            .get_or_create(&StatusLabel { status })
            .inc();
        self.graph_seconds
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

impl SyncObserver for Metrics {
    fn page_committed(&self, kind: &'static str, elapsed: Duration) {
        self.commit_seconds
            .get_or_create(&KindLabel { kind })
            .observe(elapsed.as_secs_f64());
    }

    fn plugin_called(
        &self,
        slot: &'static str,
        name: &str,
        version: &str,
        _records: usize,
        elapsed: Duration,
    ) {
        self.plugin_seconds
            .get_or_create(&PluginLabels {
                slot: slot.to_string(),
                plugin: name.to_string(),
                version: version.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn shadow_compared(&self, slot: &'static str, name: &str, version: &str, counts: [u64; 3]) {
        for (outcome, n) in ["agreed", "disagreed", "failed"].into_iter().zip(counts) {
            self.shadow_records
                .get_or_create(&ShadowLabels {
                    slot: slot.to_string(),
                    plugin: name.to_string(),
                    version: version.to_string(),
                    outcome,
                })
                .inc_by(n);
        }
    }
}
