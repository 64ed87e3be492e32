//! Outlook's throttling, per app and mailbox: a request budget per window and a cap on
//! concurrent requests. A client that trips either gets 429 with `Retry-After`, and the
//! simulator counts it as a violation so tests can prove a client stays inside the limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::config::ThrottleConfig;

/// Who is throttled: (client id, tenant index, mailbox index).
pub type ThrottleKey = (String, usize, usize);

#[derive(Debug)]
struct Bucket {
    window_start: Instant,
    count: u64,
    in_flight: u32,
    /// Requests admitted since the simulator started (never reset by a window).
    admitted: u64,
}

/// Per app-and-mailbox budgets and concurrency.
#[derive(Debug, Default)]
pub struct Throttle {
    config: RwLock<ThrottleConfig>,
    buckets: Mutex<HashMap<ThrottleKey, Bucket>>,
}

/// Requests admitted for one mailbox (indexes into the simulator's world).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MailboxRequests {
    /// Index of the tenant in the world.
    pub tenant: usize,
    /// Index of the mailbox in its tenant's users.
    pub mailbox: usize,
    /// Requests admitted since the simulator started.
    pub admitted: u64,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// More than `concurrency` requests in flight for this mailbox.
    Concurrency,
    /// The window's budget is spent; retry after this many seconds.
    Budget {
        /// Seconds until the window ends, sent as `Retry-After`.
        retry_after_secs: u64,
    },
}

/// A slot in a mailbox's concurrency; released when dropped.
#[derive(Debug)]
pub struct Permit {
    throttle: Arc<Throttle>,
    key: Option<ThrottleKey>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if let Some(b) = self
                .throttle
                .buckets
                .lock()
                .expect("throttle lock")
                .get_mut(&key)
            {
                b.in_flight = b.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Throttle {
    /// The limits in force.
    pub fn config(&self) -> ThrottleConfig {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Changes the limits and starts every budget afresh.
    pub fn set_config(&self, config: ThrottleConfig) {
        *self
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        for b in buckets.values_mut() {
            b.window_start = now;
            b.count = 0;
        }
    }

    /// Requests admitted so far per (tenant index, mailbox index), all apps together, by
    /// tenant and mailbox: what a benchmark needs to know the budget's least time per mailbox.
    pub fn admitted_by_mailbox(&self) -> Vec<MailboxRequests> {
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by: std::collections::BTreeMap<(usize, usize), u64> = Default::default();
        for ((_, tenant, mailbox), b) in buckets.iter() {
            *by.entry((*tenant, *mailbox)).or_default() += b.admitted;
        }
        by.into_iter()
            .map(|((tenant, mailbox), admitted)| MailboxRequests {
                tenant,
                mailbox,
                admitted,
            })
            .collect()
    }

    /// Forgets all budgets (on reset).
    pub fn clear(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Admits a request for `key` or says why not. An admitted request holds its permit until
    /// its answer is complete.
    pub fn admit(self: &Arc<Self>, key: ThrottleKey) -> Result<Permit, Refusal> {
        let cfg = self.config();
        let window = Duration::from_secs(cfg.window_secs.max(1));
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let b = buckets.entry(key.clone()).or_insert(Bucket {
            window_start: now,
            count: 0,
            in_flight: 0,
            admitted: 0,
        });
        if now.duration_since(b.window_start) >= window {
            b.window_start = now;
            b.count = 0;
        }
        if b.in_flight >= cfg.concurrency {
            return Err(Refusal::Concurrency);
        }
        if b.count >= cfg.limit {
            let left = window.saturating_sub(now.duration_since(b.window_start));
            return Err(Refusal::Budget {
                retry_after_secs: left.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
        b.count += 1;
        b.admitted += 1;
        b.in_flight += 1;
        Ok(Permit {
            throttle: Arc::clone(self),
            key: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_and_budget_are_enforced_per_mailbox() {
        let t = Arc::new(Throttle::default());
        t.set_config(ThrottleConfig {
            window_secs: 60,
            limit: 6,
            concurrency: 2,
        });
        let key = ("app".to_string(), 0, 0);
        let a = t.admit(key.clone()).unwrap();
        let _b = t.admit(key.clone()).unwrap();
        assert_eq!(t.admit(key.clone()).unwrap_err(), Refusal::Concurrency);
        assert!(
            t.admit(("app".to_string(), 0, 1)).is_ok(),
            "other mailbox unaffected"
        );
        drop(a);
        let _c = t.admit(key.clone()).unwrap();
        drop(_b);
        drop(_c);
        for _ in 0..3 {
            drop(t.admit(key.clone()).unwrap());
        }
        assert!(matches!(t.admit(key), Err(Refusal::Budget { .. })));
    }
}
