//! The service's counters, rendered in the Prometheus text format at `/metrics`.
//!
//! Counters live in memory (they restart at zero with the process, as Prometheus expects);
//! gauges that describe shared state (mailbox health, owed work) are read from the database at
//! scrape time, so every process reports the same truth.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sync::Counts;
use m365sync_graph::client::ClientStatsSnapshot;

/// Counters since the process started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Tenant runs this process started.
    pub runs_started: AtomicU64,
    /// Tenant runs this process closed.
    pub runs_finished: AtomicU64,
    /// Mailbox syncs that finished.
    pub mailbox_syncs_ok: AtomicU64,
    /// Mailbox syncs that failed.
    pub mailbox_syncs_failed: AtomicU64,
    /// Mailbox syncs stopped by shutdown or a lost lease (the work resumes from its cursors).
    pub mailbox_syncs_interrupted: AtomicU64,
    /// Delta pages committed.
    pub pages: AtomicU64,
    /// Records passed through the plugin stages.
    pub processed: AtomicU64,
    /// Records stored.
    pub synced: AtomicU64,
    /// Records the exclusion stage dropped.
    pub excluded: AtomicU64,
    /// Records Graph reported removed.
    pub removed: AtomicU64,
    /// Records a plugin stage failed on (kept and retried).
    pub failed_records: AtomicU64,
    /// Plugin changes picked up without a restart: one per (org or tenant, slot) whose active
    /// component changed, whether or not a run was in progress.
    pub plugin_swaps: AtomicU64,
    /// The same swaps by the plugin swapped to: (slot, name, version) -> count.
    plugin_swaps_by: std::sync::Mutex<std::collections::BTreeMap<(String, String, String), u64>>,
    /// Workers syncing a mailbox now: a gauge, raised and lowered around each mailbox.
    pub workers_busy: AtomicU64,
    /// Graph counters of the clients of runs that are over (live ones are added at scrape).
    retired_graph: std::sync::Mutex<ClientStatsSnapshot>,
    /// Change notifications this process received and accepted (subscription known, client
    /// state matching), lifecycle events included.
    pub notifications_received: AtomicU64,
    /// Change notifications refused: unknown subscription, wrong client state, unreadable.
    pub notifications_rejected: AtomicU64,
    /// Lifecycle events accepted (`reauthorizationRequired`, `subscriptionRemoved`, `missed`).
    pub lifecycle_events: AtomicU64,
    /// Mailbox rounds notifications started here.
    pub notification_rounds: AtomicU64,
    /// Subscriptions created at Graph by this process.
    pub subscriptions_created: AtomicU64,
    /// Renewals (and reauthorizations) that succeeded.
    pub subscriptions_renewed: AtomicU64,
    /// Subscriptions deleted (mailbox or tenant disabled, notifications turned off).
    pub subscriptions_deleted: AtomicU64,
    /// Creations, renewals and deletions Graph refused or that failed in the network.
    pub subscription_failures: AtomicU64,
    /// From a mailbox's first notification to the end of the round that answered it, as a
    /// histogram over [`LAG_BUCKETS_SECS`]: counts per bucket, then the sum in ms and the count.
    lag: std::sync::Mutex<([u64; LAG_BUCKETS_SECS.len()], u64, u64)>,
}

/// The upper bounds, in seconds, of the notification lag histogram's buckets.
pub const LAG_BUCKETS_SECS: [f64; 9] = [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// A label value in the exposition format: backslash, quote and newline escaped (plugin names
/// and versions come from the plugins' own `describe()`).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Adds one mailbox's work.
    pub fn add_counts(&self, c: &Counts) {
        add(&self.pages, c.pages);
        add(&self.processed, c.processed);
        add(&self.synced, c.synced);
        add(&self.excluded, c.excluded);
        add(&self.removed, c.removed);
        add(&self.failed_records, c.failed);
    }

    /// Counts one swap of a slot to the plugin `name` `version` (the built-in one after an
    /// uninstall).
    pub fn add_swap(&self, slot: &str, name: &str, version: &str) {
        add(&self.plugin_swaps, 1);
        *self
            .plugin_swaps_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((slot.to_string(), name.to_string(), version.to_string()))
            .or_default() += 1;
    }

    /// Records one round's notification lag (from its mailbox's first notification to the
    /// round's end), in ms.
    pub fn observe_notification_lag(&self, ms: i64) {
        let ms = ms.max(0) as u64;
        let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (i, le) in LAG_BUCKETS_SECS.iter().enumerate() {
            if ms as f64 <= le * 1000.0 {
                lag.0[i] += 1;
            }
        }
        lag.1 += ms;
        lag.2 += 1;
    }

    /// Adds a retired Graph client's request counters.
    pub fn add_graph(&self, s: &ClientStatsSnapshot) {
        *self.retired_graph.lock().expect("metrics lock") += s;
    }

    /// The Prometheus exposition: counters plus `live_graph` (clients still in use) and the
    /// database gauges `health` (mailboxes per health), `pending` (mailboxes owing work) and
    /// `failing` (records failing now per stage and plugin stamp `name version sha256:...`).
    pub fn render(
        &self,
        live_graph: &ClientStatsSnapshot,
        health: &[(String, i64)],
        pending: i64,
        failing: &[(String, String, i64)],
    ) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut graph = self.retired_graph.lock().expect("metrics lock").clone();
        graph += live_graph;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP m365sync_{name} {help}\n# TYPE m365sync_{name} counter\nm365sync_{name} {value}"
            );
        };
        counter(
            "runs_started_total",
            "Tenant runs this process started.",
            g(&self.runs_started),
        );
        counter(
            "runs_finished_total",
            "Tenant runs this process closed.",
            g(&self.runs_finished),
        );
        counter(
            "mailbox_syncs_ok_total",
            "Mailbox syncs that finished.",
            g(&self.mailbox_syncs_ok),
        );
        counter(
            "mailbox_syncs_failed_total",
            "Mailbox syncs that failed.",
            g(&self.mailbox_syncs_failed),
        );
        counter(
            "mailbox_syncs_interrupted_total",
            "Mailbox syncs stopped by shutdown or a lost lease.",
            g(&self.mailbox_syncs_interrupted),
        );
        counter(
            "delta_pages_total",
            "Delta pages committed.",
            g(&self.pages),
        );
        counter(
            "messages_processed_total",
            "Messages passed through the plugin stages.",
            g(&self.processed),
        );
        counter("messages_synced_total", "Messages stored.", g(&self.synced));
        counter(
            "messages_excluded_total",
            "Messages the exclusion plugin dropped.",
            g(&self.excluded),
        );
        counter(
            "messages_removed_total",
            "Messages removed from a folder.",
            g(&self.removed),
        );
        counter(
            "records_failed_total",
            "Records a plugin stage failed on (kept and retried).",
            g(&self.failed_records),
        );
        counter(
            "graph_requests_total",
            "Graph requests sent.",
            graph.requests,
        );
        counter(
            "graph_retries_total",
            "Graph requests retried.",
            graph.retries,
        );
        counter(
            "graph_throttled_total",
            "Graph answers of 429.",
            graph.throttled,
        );
        counter(
            "graph_server_errors_total",
            "Graph answers of 5xx.",
            graph.server_errors,
        );
        counter(
            "graph_network_errors_total",
            "Graph requests that failed in the network.",
            graph.network_errors,
        );
        counter(
            "token_renewals_total",
            "Access tokens requested.",
            graph.token_renewals,
        );
        counter(
            "notifications_received_total",
            "Change notifications and lifecycle events accepted (known subscription, matching client state).",
            g(&self.notifications_received),
        );
        counter(
            "notifications_rejected_total",
            "Change notifications refused (unknown subscription, wrong client state, unreadable).",
            g(&self.notifications_rejected),
        );
        counter(
            "notification_lifecycle_events_total",
            "Lifecycle events accepted (reauthorizationRequired, subscriptionRemoved, missed).",
            g(&self.lifecycle_events),
        );
        counter(
            "notification_rounds_total",
            "Mailbox rounds notifications started.",
            g(&self.notification_rounds),
        );
        counter(
            "subscriptions_created_total",
            "Graph subscriptions created.",
            g(&self.subscriptions_created),
        );
        counter(
            "subscriptions_renewed_total",
            "Graph subscriptions renewed or reauthorized.",
            g(&self.subscriptions_renewed),
        );
        counter(
            "subscriptions_deleted_total",
            "Graph subscriptions deleted.",
            g(&self.subscriptions_deleted),
        );
        counter(
            "subscription_failures_total",
            "Subscription creations, renewals and deletions that failed.",
            g(&self.subscription_failures),
        );
        {
            let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(
                out,
                "# HELP m365sync_notification_lag_seconds From a mailbox's first notification to the end of the round that answered it.\n# TYPE m365sync_notification_lag_seconds histogram"
            );
            for (i, le) in LAG_BUCKETS_SECS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "m365sync_notification_lag_seconds_bucket{{le=\"{le}\"}} {}",
                    lag.0[i]
                );
            }
            let _ = writeln!(
                out,
                "m365sync_notification_lag_seconds_bucket{{le=\"+Inf\"}} {}\nm365sync_notification_lag_seconds_sum {}\nm365sync_notification_lag_seconds_count {}",
                lag.2,
                lag.1 as f64 / 1000.0,
                lag.2
            );
        }
        let _ = writeln!(
            out,
            "# HELP m365sync_workers_busy Workers syncing a mailbox now.\n# TYPE m365sync_workers_busy gauge\nm365sync_workers_busy {}",
            g(&self.workers_busy)
        );
        let _ = writeln!(
            out,
            "# HELP m365sync_pending_mailboxes Mailboxes owing work to a run (all processes).\n# TYPE m365sync_pending_mailboxes gauge\nm365sync_pending_mailboxes {pending}"
        );
        let _ = writeln!(
            out,
            "# HELP m365sync_mailboxes Mailboxes by health (all processes).\n# TYPE m365sync_mailboxes gauge"
        );
        for (health, n) in health {
            let _ = writeln!(out, "m365sync_mailboxes{{health=\"{health}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP m365sync_plugin_swaps_total Plugin changes picked up without a restart, by the plugin swapped to.\n# TYPE m365sync_plugin_swaps_total counter"
        );
        for ((slot, name, version), n) in self
            .plugin_swaps_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "m365sync_plugin_swaps_total{{slot=\"{}\",plugin=\"{}\",version=\"{}\"}} {n}",
                label(slot),
                label(name),
                label(version)
            );
        }
        let _ = writeln!(
            out,
            "# HELP m365sync_plugin_failing_records Records failing now (kept and retried), by stage and the plugin version that failed them (all processes).\n# TYPE m365sync_plugin_failing_records gauge"
        );
        for (stage, stamp, n) in failing {
            let mut parts = stamp.splitn(3, ' ');
            let (name, version, digest) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
            let _ = writeln!(
                out,
                "m365sync_plugin_failing_records{{stage=\"{}\",plugin=\"{}\",version=\"{}\",sha256=\"{}\"}} {n}",
                label(stage),
                label(name),
                label(version),
                label(&digest[..digest.len().min(16)])
            );
        }
        out
    }
}
