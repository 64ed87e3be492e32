//! Counters of what the simulator saw and refused, read through `GET /_sim/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Every counter the control API reports.
#[derive(Debug, Default)]
pub struct Stats {
    /// Graph requests received, `$batch` sub-requests included.
    pub graph_requests: AtomicU64,
    /// Requests to the token endpoint.
    pub token_requests: AtomicU64,
    /// Graph and token requests that came without a `client-request-id` header (Microsoft's
    /// own clients send one with every request, so support can find it).
    pub missing_client_request_id: AtomicU64,
    /// 429s because a client had too many requests in flight for one mailbox.
    pub throttled_concurrency: AtomicU64,
    /// 429s because a client spent a mailbox's budget for the window.
    pub throttled_budget: AtomicU64,
    /// 429s injected by [`crate::config::FaultConfig::rate_429`].
    pub injected_429: AtomicU64,
    /// 503s injected by [`crate::config::FaultConfig::rate_503`].
    pub injected_503: AtomicU64,
    /// 504s injected by [`crate::config::FaultConfig::rate_504`].
    pub injected_504: AtomicU64,
    /// Connections dropped by [`crate::config::FaultConfig::rate_reset`].
    pub injected_reset: AtomicU64,
    /// Answers delayed by [`crate::config::FaultConfig::rate_slow`].
    pub injected_slow: AtomicU64,
    /// Bodies cut short by [`crate::config::FaultConfig::rate_malformed`].
    pub injected_malformed: AtomicU64,
    /// Items sent in message, folder and calendar delta pages.
    pub delta_items_served: AtomicU64,
    /// Change notifications queued for delivery to subscribers.
    pub notifications_sent: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Default)]
pub struct StatsSnapshot {
    /// Requests admitted per mailbox (filled in by the control API from the throttle).
    #[serde(default)]
    pub mailbox_requests: Vec<super::throttle::MailboxRequests>,
    /// See [`Stats::graph_requests`].
    pub graph_requests: u64,
    /// See [`Stats::token_requests`].
    pub token_requests: u64,
    /// See [`Stats::missing_client_request_id`].
    #[serde(default)]
    pub missing_client_request_id: u64,
    /// See [`Stats::throttled_concurrency`].
    pub throttled_concurrency: u64,
    /// See [`Stats::throttled_budget`].
    pub throttled_budget: u64,
    /// Requests refused for exceeding a limit (the sum of the two above).
    pub violations: u64,
    /// See [`Stats::injected_429`].
    pub injected_429: u64,
    /// See [`Stats::injected_503`].
    pub injected_503: u64,
    /// See [`Stats::injected_504`].
    pub injected_504: u64,
    /// See [`Stats::injected_reset`].
    pub injected_reset: u64,
    /// See [`Stats::injected_slow`].
    pub injected_slow: u64,
    /// See [`Stats::injected_malformed`].
    pub injected_malformed: u64,
    /// See [`Stats::delta_items_served`].
    pub delta_items_served: u64,
    /// See [`Stats::notifications_sent`].
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
            missing_client_request_id: g(&self.missing_client_request_id),
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
            &self.missing_client_request_id,
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
