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
}

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
