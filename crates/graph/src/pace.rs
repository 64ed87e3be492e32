//! Pacing to Outlook's request budget. Graph allows an app a fixed number of requests per
//! mailbox in a window (10,000 per 10 minutes) and answers 429 with `Retry-After` beyond it.
//! A client that only reacts to 429s draws one per request in flight every window and loses
//! the rest of the window to `Retry-After`; one that keeps its own count never draws one.
//! Each mailbox gets a [`MailboxPace`]:
//!
//! - a sliding window: no more than 99% of the budget in any stretch of one window, counted in
//!   hundredths of the window (the oldest part-covered hundredth counts whole, so the count
//!   never understates). Any window Graph counts in, wherever it starts, is such a stretch, so the
//!   budget holds against Graph's clock too; the margin covers requests still on the wire.
//!   A mailbox with less work than the budget sends it at once (a sliding window, unlike an
//!   even spacing, costs no latency); a backlog spends the budget and then waits for the
//!   oldest hundredth to leave the window.
//! - a pause: a 429's `Retry-After` holds back every request for that mailbox until it has
//!   passed, not only the one that was refused, so the requests queued behind it do not each
//!   draw a 429 of their own.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Parts of a window the sliding count is kept in.
const PARTS: usize = 100;

/// A request budget: `requests` per `window`, per app and mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests the window allows.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

impl Budget {
    /// Outlook's documented budget: 10,000 requests per 10 minutes per app and mailbox.
    pub const OUTLOOK: Budget = Budget {
        requests: 10_000,
        window: Duration::from_secs(600),
    };

    /// What the client lets itself send per window: the budget less 1% (at least one).
    fn allowance(&self) -> u32 {
        ((f64::from(self.requests) * 0.99).floor() as u32).max(1)
    }
}

/// One mailbox's sliding count and pause (see the module's docs).
#[derive(Debug)]
pub struct MailboxPace {
    budget: Option<Budget>,
    state: Mutex<PaceState>,
}

#[derive(Debug)]
struct PaceState {
    /// When part 0 of the ring began; part `i` covers `[origin + i * part, ..)` modulo the ring.
    origin: Option<Instant>,
    /// Requests sent per part, a ring of `PARTS + 1` (the current part and a whole window).
    sent: [u32; PARTS + 1],
    /// The absolute index of the newest part written (parts since `origin`).
    newest: u64,
    /// No request before this instant (a 429's `Retry-After`).
    paused_until: Option<Instant>,
}

impl MailboxPace {
    /// Pacing to `budget`; `None` counts nothing but still honours pauses.
    pub fn new(budget: Option<Budget>) -> MailboxPace {
        MailboxPace {
            budget,
            state: Mutex::new(PaceState {
                origin: None,
                sent: [0; PARTS + 1],
                newest: 0,
                paused_until: None,
            }),
        }
    }

    /// Waits until this mailbox may send `cost` requests (a `$batch` costs one per
    /// sub-request: Graph throttles each alone), and counts them as sent.
    pub async fn wait_turn(&self, cost: u32) {
        while let Some(at) = self.try_send_n(Instant::now(), cost) {
            tokio::time::sleep_until(at).await;
        }
    }

    /// [`MailboxPace::try_send_n`] for one request.
    #[cfg(test)]
    fn try_send(&self, now: Instant) -> Option<Instant> {
        self.try_send_n(now, 1)
    }

    /// Counts `cost` requests sent at `now` if the budget and any pause allow it (`None`);
    /// otherwise says when to ask again. A cost above the whole allowance goes when the
    /// window is empty.
    fn try_send_n(&self, now: Instant, cost: u32) -> Option<Instant> {
        let mut s = self.state.lock().expect("pace lock");
        if let Some(p) = s.paused_until.filter(|p| *p > now) {
            return Some(p);
        }
        let budget = self.budget?;
        let part = budget.window / PARTS as u32;
        let origin = *s.origin.get_or_insert(now);
        let index = (now.duration_since(origin).as_nanos() / part.as_nanos().max(1)) as u64;
        // Parts that fell out of the ring since the last request are empty now.
        let ring = (PARTS + 1) as u64;
        let stale = index.saturating_sub(s.newest).min(ring);
        for k in 1..=stale {
            let i = ((s.newest + k) % ring) as usize;
            s.sent[i] = 0;
        }
        s.newest = s.newest.max(index);
        let total: u32 = s.sent.iter().sum();
        if total == 0 || total + cost <= budget.allowance() {
            s.sent[(index % ring) as usize] += cost;
            return None;
        }
        // Full: ask again when the oldest part that holds a request leaves the window.
        let oldest = (index.saturating_sub(PARTS as u64)..=index)
            .find(|i| s.sent[(i % ring) as usize] > 0)
            .unwrap_or(index);
        Some(origin + part * (oldest + ring) as u32)
    }

    /// Holds back every request for this mailbox for `after` (a 429's `Retry-After`).
    pub fn pause(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut s = self.state.lock().expect("pace lock");
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` requests as fast as the pace lets them, on a simulated clock from `t0`, and
    /// answers their instants.
    fn send_all(pace: &MailboxPace, t0: Instant, n: usize) -> Vec<Instant> {
        let mut now = t0;
        let mut sent = Vec::with_capacity(n);
        while sent.len() < n {
            match pace.try_send(now) {
                None => sent.push(now),
                Some(at) => {
                    assert!(at > now, "asked to wait for the past");
                    now = at;
                }
            }
        }
        sent
    }

    #[test]
    fn a_backlog_never_puts_more_than_the_budget_in_any_window_yet_uses_most_of_it() {
        let budget = Budget {
            requests: 600,
            window: Duration::from_secs(60),
        };
        let pace = MailboxPace::new(Some(budget));
        let t0 = Instant::now();
        let at = send_all(&pace, t0, 3_000);
        // Every window of Graph's, wherever it starts: the most requests in any 60 s.
        let mut most = 0;
        let mut first = 0;
        for last in 0..at.len() {
            while at[last].duration_since(at[first]) >= budget.window {
                first += 1;
            }
            most = most.max(last - first + 1);
        }
        assert!(most <= 600, "{most} requests in one window");
        // The budget was used, not wasted: the first four windows carried at least 97% of it.
        let four = at
            .iter()
            .filter(|a| a.duration_since(t0) < budget.window * 4)
            .count();
        assert!(four >= 2_328, "{four} requests in four windows of 600");
    }

    #[test]
    fn less_work_than_the_budget_goes_at_once() {
        let pace = MailboxPace::new(Some(Budget::OUTLOOK));
        let t0 = Instant::now();
        assert!((0..9_900).all(|_| pace.try_send(t0).is_none()));
        assert!(pace.try_send(t0).is_some(), "the 9,901st waits");
    }

    #[test]
    fn a_batch_costs_one_per_sub_request() {
        let budget = Budget {
            requests: 100,
            window: Duration::from_secs(60),
        };
        let pace = MailboxPace::new(Some(budget));
        let t0 = Instant::now();
        // 99 allowed: nine batches of ten, then nine single requests, then nothing.
        assert!((0..9).all(|_| pace.try_send_n(t0, 10).is_none()));
        assert!(
            pace.try_send_n(t0, 10).is_some(),
            "a tenth batch would make 100"
        );
        assert!((0..9).all(|_| pace.try_send(t0).is_none()));
        assert!(pace.try_send(t0).is_some());
    }

    #[tokio::test]
    async fn a_pause_holds_back_every_request_for_the_mailbox() {
        let pace = MailboxPace::new(None);
        let now = Instant::now();
        assert_eq!(pace.try_send(now), None);
        pace.pause(Duration::from_secs(7));
        let at = pace.try_send(Instant::now()).expect("paused");
        assert!(at >= now + Duration::from_secs(6), "{at:?} vs {now:?}");
        // A shorter pause later does not shorten the first.
        pace.pause(Duration::from_secs(1));
        assert!(pace.try_send(Instant::now()).expect("still paused") >= at);
    }
}
