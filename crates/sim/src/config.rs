//! The simulator's tunable behaviour: lifetimes, throttling budgets and injected faults.
//!
//! All of it can change at run time through the control API, so tests can, for example, shrink
//! the request budget to a handful of requests or make every fifth response a 503.

use serde::{Deserialize, Serialize};

/// Lifetimes and protocol knobs that do not change while a client is connected.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Access token lifetime in seconds (Entra: about an hour).
    pub access_token_secs: i64,
    /// A refresh token unused for this long answers AADSTS700082.
    pub refresh_token_idle_secs: i64,
    /// A delta token older than this answers 410 SyncStateNotFound.
    pub sync_state_secs: i64,
    /// File attachments larger than this come without `contentBytes` in lists (fetch `$value`).
    pub inline_attachment_limit: u64,
    /// Default page size of delta when no `Prefer: odata.maxpagesize` is sent.
    pub default_delta_page: usize,
    /// Largest page size a client may ask for.
    pub max_page: usize,
    /// The longest lifetime, in seconds, a subscription is granted on creation or renewal: a
    /// later `expirationDateTime` asked for (up to Outlook's 10,080 minutes, beyond which the
    /// request is refused) is cut to now plus this, and the answer says so, as Graph may grant
    /// less than asked. Tests shrink it to see subscriptions renewed before they lapse.
    pub subscription_max_secs: i64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            access_token_secs: 3599,
            refresh_token_idle_secs: 90 * 24 * 3600,
            sync_state_secs: 7 * 24 * 3600,
            inline_attachment_limit: 3 * 1024 * 1024,
            default_delta_page: 10,
            max_page: 1000,
            subscription_max_secs: super::subscriptions::MAX_MINUTES * 60,
        }
    }
}

/// Outlook's per app-and-mailbox limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Length of the budget window in seconds (Outlook: 600).
    pub window_secs: u64,
    /// Requests allowed per app and mailbox in one window (Outlook: 10,000).
    pub limit: u64,
    /// Requests allowed in flight at once per app and mailbox (Outlook: 4).
    pub concurrency: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            window_secs: 600,
            limit: 10_000,
            concurrency: 4,
        }
    }
}

/// Faults injected into Graph answers, each as a rate in `[0, 1]`.
///
/// Which requests fail is decided by a hash of `seed` and the request's sequence number, so a
/// run with the same traffic sees the same faults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of requests answered 429 with `Retry-After: 1`, as if over a mailbox limit.
    pub rate_429: f64,
    /// Share of requests answered 503 ServiceUnavailable with `Retry-After: 1`.
    pub rate_503: f64,
    /// Share of requests answered 504 GatewayTimeout.
    pub rate_504: f64,
    /// The connection is dropped without an answer.
    pub rate_reset: f64,
    /// The answer is delayed by `slow_ms`.
    pub rate_slow: f64,
    /// How long a slow answer is held back, in milliseconds.
    pub slow_ms: u64,
    /// The JSON body is cut short.
    pub rate_malformed: f64,
    /// Added to every Graph answer (models server time; makes concurrency limits reachable).
    pub latency_ms: u64,
    /// Share of delta items sent a second time in the same round, as Graph sometimes does.
    pub replay_rate: f64,
    /// Mixed into the hash that picks the failing requests; another seed fails other requests.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate_429: 0.0,
            rate_503: 0.0,
            rate_504: 0.0,
            rate_reset: 0.0,
            rate_slow: 0.0,
            slow_ms: 2000,
            rate_malformed: 0.0,
            latency_ms: 0,
            replay_rate: 0.0,
            seed: 1,
        }
    }
}

impl FaultConfig {
    /// Rates outside `[0, 1]` are a caller's mistake worth naming.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("rate_429", self.rate_429),
            ("rate_503", self.rate_503),
            ("rate_504", self.rate_504),
            ("rate_reset", self.rate_reset),
            ("rate_slow", self.rate_slow),
            ("rate_malformed", self.rate_malformed),
            ("replay_rate", self.replay_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }
}
