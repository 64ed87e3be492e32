//! Counters of what the simulator saw and refused, read through `GET /_sim/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Every counter the control API reports.
#[derive(Debug, Default)]
pub struct Stats {
    pub graph_requests: AtomicU64,
    pub token_requests: AtomicU64,
    /// 429s because a client had too many requests in flight for one mailbox.
    pub throttled_concurrency: AtomicU64,
    /// 429s because a client spent a mailbox's budget for the window.
    pub throttled_budget: AtomicU64,
    pub injected_429: AtomicU64,
    pub injected_503: AtomicU64,
    pub injected_504: AtomicU64,
    pub injected_reset: AtomicU64,
    pub injected_slow: AtomicU64,
    pub injected_malformed: AtomicU64,
    pub delta_items_served: AtomicU64,
    pub notifications_sent: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Default)]
pub struct StatsSnapshot {
    /// Requests admitted per mailbox (filled in by the control API from the throttle).
    #[serde(default)]
    pub mailbox_requests: Vec<super::throttle::MailboxRequests>,
    pub graph_requests: u64,
    pub token_requests: u64,
    pub throttled_concurrency: u64,
    pub throttled_budget: u64,
    /// Requests refused for exceeding a limit (the sum of the two above).
    pub violations: u64,
    pub injected_429: u64,
    pub injected_503: u64,
    pub injected_504: u64,
    pub injected_reset: u64,
    pub injected_slow: u64,
    pub injected_malformed: u64,
    pub delta_items_served: u64,
    pub notifications_sent: u64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            mailbox_requests: Vec::new(),
            graph_requests: g(&self.graph_requests),
            token_requests: g(&self.token_requests),
            throttled_concurrency: g(&self.throttled_concurrency),
            throttled_budget: g(&self.throttled_budget),
            violations: g(&self.throttled_concurrency) + g(&self.throttled_budget),
            injected_429: g(&self.injected_429),
            injected_503: g(&self.injected_503),
            injected_504: g(&self.injected_504),
            injected_reset: g(&self.injected_reset),
            injected_slow: g(&self.injected_slow),
            injected_malformed: g(&self.injected_malformed),
            delta_items_served: g(&self.delta_items_served),
            notifications_sent: g(&self.notifications_sent),
        }
    }

    /// Sets every counter back to zero.
    pub fn reset(&self) {
        for c in [
            &self.graph_requests,
            &self.token_requests,
            &self.throttled_concurrency,
            &self.throttled_budget,
            &self.injected_429,
            &self.injected_503,
            &self.injected_504,
            &self.injected_reset,
            &self.injected_slow,
            &self.injected_malformed,
            &self.delta_items_served,
            &self.notifications_sent,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
