//! Scenario `calendar` (issue 6): the initial pull of every user's primary calendar (series
//! expanded) and the push of CRM events from the outbox, each in a child process of its own so
//! its CPU time and memory are the sync's alone.
//!
//! It runs twice in one invocation against the same generated tenant: once under Outlook's own
//! limits (10,000 requests per 10 minutes per app and mailbox, 4 in flight), once under a
//! budget scaled down until it must bind (by default calibrated from the first pull: the busiest
//! mailbox alone would need 1.5 times that pull's time). The first says how fast the pull is and how much of
//! the machine it takes; the second says whether the budget, not our CPU, is what limits it:
//! the time the budget alone requires for the requests made (the floor) against the time taken.

use std::path::Path;

use serde::Serialize;

use m365sync::outbound::edits::{add_event, NewEvent};
use m365sync_store::events::{CalendarSettings, Direction};

use super::child::{cpu_seconds, load_average, run_child};
use super::db::{declare, BenchDb, DbKind, Declare};
use super::host::SimHost;
use super::ingest::{ChildIngest, IngestRun, Variant};
use super::report::{header, thousands};
use super::{BenchError, BenchOptions};
use m365sync_sim::stats::StatsSnapshot;

/// Mailboxes synced at once under Outlook's budget: the service's default worker count.
const SERVICE_WORKERS: usize = 8;

/// The generated tenant and the two budgets.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarOptions {
    /// Users of the generated tenant, each with a primary calendar.
    pub users: usize,
    /// Calendar items the simulator generates per user; series expand to many more events.
    pub items: usize,
    /// CRM events created per user and pushed from the outbox after each pull.
    pub pushes_per_user: usize,
    /// Delta page size of the calendar pull.
    pub page_size: i64,
    /// The tenant's inbound range (C4): how far ahead occurrences of series are expanded (3
    /// years gives about 2,000 events per user with the generator's mix).
    pub inbound_years: i64,
    /// The scaled-down budget: requests per app and mailbox per window (0: calibrated from the
    /// unthrottled pull, so the busiest mailbox alone would need 1.5 times that pull's time).
    pub scaled_limit: u64,
    /// The scaled-down budget's window, seconds.
    pub scaled_window_secs: u64,
}

impl Default for CalendarOptions {
    fn default() -> Self {
        CalendarOptions {
            users: 200,
            items: 14,
            pushes_per_user: 5,
            page_size: 100,
            inbound_years: 3,
            scaled_limit: 0,
            scaled_window_secs: 20,
        }
    }
}

/// One budget's pull and push.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarPhase {
    /// `outlook` or `scaled`.
    pub budget: String,
    /// The budget's requests per app and mailbox per window.
    pub limit: u64,
    /// The budget's window, seconds.
    pub window_secs: u64,
    /// Mailboxes the child synced at once.
    pub mailboxes_in_flight: usize,
    /// Delta items read (occurrences expanded, removals and skipped items included).
    pub pulled_items: u64,
    /// Event rows stored after the pull.
    pub stored_events: i64,
    /// Wall time of the pull child's sync, seconds.
    pub pull_seconds: f64,
    /// Delta items read per second of the pull.
    pub events_per_second: f64,
    /// The pull child's CPU seconds (the sync alone: the simulator runs elsewhere).
    pub pull_cpu_seconds: f64,
    /// Those CPU seconds as a share of one core over the pull, percent.
    pub pull_cpu_percent_of_core: f64,
    /// The simulator's CPU seconds over the pull (the harness's process; 0 with `--sim`).
    pub sim_cpu_seconds: f64,
    /// The pull child's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Graph requests the simulator counted over the pull.
    pub pull_requests: u64,
    /// Of those, the ones answered 429.
    pub pull_answered_429: u64,
    /// Graph requests per mailbox over the pull, on average.
    pub requests_per_mailbox: f64,
    /// The most Graph requests one mailbox made over the pull (what a calibrated scaled
    /// budget is derived from).
    pub most_requests_of_a_mailbox: u64,
    /// Seconds the budget alone requires: each mailbox waits for a new window every `limit`
    /// requests, `mailboxes_in_flight` at a time (from each mailbox's own requests).
    pub budget_floor_seconds: f64,
    /// [`CalendarPhase::budget_floor_seconds`] as a share of the pull's time, percent: how
    /// much of the pull the budget alone explains (100% = limited by the budget, not by our
    /// CPU; 0% = the budget never binds).
    pub budget_bound_percent: f64,
    /// CRM events queued in the outbox, all of them pushed by the push run.
    pub pushed: u64,
    /// Wall time of the push child's run, seconds (its incremental pass over every mailbox
    /// included).
    pub push_seconds: f64,
    /// Pushed events per second of the push run.
    pub pushes_per_second: f64,
    /// Graph requests the simulator counted over the push run.
    pub push_requests: u64,
    /// Of those, the ones answered 429.
    pub push_answered_429: u64,
    /// The machine's 1-minute load average when the phase ended.
    pub load_average: f64,
}

/// Both phases.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarResult {
    /// The options the phases ran with (`scaled_limit` as given: 0 when calibrated).
    pub options: CalendarOptions,
    /// The phase under Outlook's budget, then the one under the scaled-down budget.
    pub phases: Vec<CalendarPhase>,
}

/// Runs both phases against `host` (a world of `options.users` users with calendars).
pub async fn run(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
) -> Result<CalendarResult, BenchError> {
    let o = opts.calendar.clone();
    let outlook = m365sync_sim::config::ThrottleConfig::default();
    let first = measured(
        host,
        opts,
        work,
        &Budget {
            name: "outlook",
            window_secs: outlook.window_secs,
            limit: outlook.limit,
            in_flight: SERVICE_WORKERS,
        },
    )
    .await?;
    let limit = match o.scaled_limit {
        0 => calibrated_limit(&first, o.scaled_window_secs),
        n => n,
    };
    let second = measured(
        host,
        opts,
        work,
        &Budget {
            name: "scaled",
            window_secs: o.scaled_window_secs,
            limit,
            in_flight: SERVICE_WORKERS,
        },
    )
    .await?;
    let phases = vec![first, second];
    Ok(CalendarResult { options: o, phases })
}

/// The simulator's budget for one phase, and how many mailboxes the child syncs at once.
struct Budget {
    name: &'static str,
    window_secs: u64,
    limit: u64,
    in_flight: usize,
}

impl Budget {
    /// The least time the budget allows for the requests each mailbox made: a mailbox waits
    /// for a new window after every `limit` requests, and `in_flight` mailboxes wait at once.
    /// `requests` holds each mailbox's count over the pull.
    fn floor_seconds(&self, requests: &[u64]) -> f64 {
        let waits = |r: u64| r.saturating_sub(1) / self.limit.max(1) * self.window_secs;
        let longest = requests.iter().map(|&r| waits(r)).max().unwrap_or(0);
        let total: u64 = requests.iter().map(|&r| waits(r)).sum();
        (longest as f64).max(total as f64 / self.in_flight.max(1) as f64)
    }
}

/// Each mailbox's requests between two snapshots of the simulator's counters.
fn requests_per_mailbox(before: &StatsSnapshot, after: &StatsSnapshot) -> Vec<u64> {
    let earlier: std::collections::HashMap<(usize, usize), u64> = before
        .mailbox_requests
        .iter()
        .map(|m| ((m.tenant, m.mailbox), m.admitted))
        .collect();
    after
        .mailbox_requests
        .iter()
        .map(|m| m.admitted - earlier.get(&(m.tenant, m.mailbox)).copied().unwrap_or(0))
        .filter(|&r| r > 0)
        .collect()
}

/// One phase under `budget`, its figures logged as soon as they exist (a full-size run takes
/// a while).
async fn measured(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
    budget: &Budget,
) -> Result<CalendarPhase, BenchError> {
    let concurrency = m365sync_sim::config::ThrottleConfig::default().concurrency;
    host.set_throttle(budget.window_secs, budget.limit, concurrency)
        .await?;
    tracing::info!(budget = budget.name, limit = budget.limit, "calendar pull");
    let p = phase(host, opts, work, budget).await?;
    tracing::info!(
        budget = p.budget,
        events = p.pulled_items,
        seconds = p.pull_seconds,
        events_per_second = p.events_per_second as u64,
        cpu_seconds = p.pull_cpu_seconds,
        budget_bound_percent = p.budget_bound_percent as u64,
        peak_rss_mib = p.peak_rss_mib as u64,
        "calendar pull measured"
    );
    Ok(p)
}

/// A budget that must bind: the busiest mailbox of the unthrottled pull would need half as
/// long again as that whole pull took, waiting for new windows alone. If our CPU kept up, the
/// throttled pull takes about that long; if our CPU were what limits the pull, it takes longer.
fn calibrated_limit(unthrottled: &CalendarPhase, window_secs: u64) -> u64 {
    let target_seconds = 1.5 * unthrottled.pull_seconds;
    let waits = (target_seconds / window_secs.max(1) as f64)
        .floor()
        .max(1.0) as u64;
    unthrottled
        .most_requests_of_a_mailbox
        .saturating_sub(1)
        .div_ceil(waits)
        .max(1)
}

async fn phase(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
    b: &Budget,
) -> Result<CalendarPhase, BenchError> {
    let o = &opts.calendar;
    let budget = b.name;
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let tenants = host.tenants().await?;
    let label = format!("calendar-{budget}");
    let db = BenchDb::create(DbKind::Sqlite, &label, work, &opts.postgres).await?;
    let store = db.open().await?;
    let tenant = declare(
        &store,
        &host.base_url,
        &tenants[0],
        "calendar",
        &Declare {
            page_size: o.page_size,
            cadence_minutes: 15,
            max_concurrency: 8,
        },
    )
    .await?;
    // Two-way, so the same tenant pushes afterwards; everything the calendar holds is pulled.
    store
        .set_calendar_settings(
            tenant.org_id,
            Some(tenant.id),
            &CalendarSettings {
                direction: Direction::TwoWay,
                sync_internal_events: true,
                inbound_years: o.inbound_years,
                ..CalendarSettings::default()
            },
        )
        .await
        .map_err(|e| setup(&e))?;
    let mailboxes = store.mailboxes(tenant.id).await.map_err(|e| setup(&e))?;
    store.close().await;
    let child = ChildIngest {
        database_url: db.url.clone(),
        key_file: db.key_file.clone(),
        tenant: "calendar".into(),
        ca_cert: host.ca_cert.clone(),
        variant: Variant::Ingest,
        db: "sqlite".into(),
        in_flight: b.in_flight,
    };
    let before = host.stats().await?;
    let sim_cpu = cpu_seconds();
    let pull = run_child::<IngestRun>(&child.args(), &format!("{label}-pull"), work).await;
    let sim_cpu_seconds = if host.in_process().is_some() {
        cpu_seconds() - sim_cpu
    } else {
        0.0
    };
    let after_pull = host.stats().await?;
    let pull = pull?;
    let store = db.open().await?;
    let stored_events = store.event_count(tenant.id).await.map_err(|e| setup(&e))?;
    // The push: future CRM events for every user, then one run drains the outbox.
    let soon = chrono::Utc::now() + chrono::Duration::days(2);
    let mut queued = 0u64;
    for m in &mailboxes {
        for i in 0..o.pushes_per_user {
            let start = soon + chrono::Duration::hours(i as i64);
            add_event(
                &store,
                &tenant,
                &m.address,
                &NewEvent {
                    subject: format!("Bench {i}"),
                    start: m365sync::sync::calendar::convert::rfc3339(start),
                    end: m365sync::sync::calendar::convert::rfc3339(
                        start + chrono::Duration::minutes(30),
                    ),
                    ..NewEvent::default()
                },
            )
            .await
            .map_err(|e| setup(&e))?;
            queued += 1;
        }
    }
    store.close().await;
    let push = run_child::<IngestRun>(&child.args(), &format!("{label}-push"), work).await;
    let after_push = host.stats().await?;
    let push = push?;
    let store = db.open().await?;
    let left = store.outbox_len(tenant.id).await.map_err(|e| setup(&e))?;
    store.close().await;
    db.remove().await;
    if left != 0 {
        return Err(BenchError::Setup(format!(
            "the push left {left} of {queued} outbox rows"
        )));
    }
    let pull_requests = after_pull.graph_requests - before.graph_requests;
    let per_mailbox = requests_per_mailbox(&before, &after_pull);
    let budget_floor_seconds = b.floor_seconds(&per_mailbox);
    Ok(CalendarPhase {
        budget: budget.into(),
        limit: b.limit,
        window_secs: b.window_secs,
        mailboxes_in_flight: b.in_flight,
        requests_per_mailbox: pull_requests as f64 / mailboxes.len().max(1) as f64,
        most_requests_of_a_mailbox: per_mailbox.iter().copied().max().unwrap_or(0),
        pulled_items: pull.processed,
        stored_events,
        pull_seconds: pull.seconds,
        events_per_second: pull.processed as f64 / pull.seconds.max(1e-9),
        pull_cpu_seconds: pull.cpu_seconds,
        pull_cpu_percent_of_core: 100.0 * pull.cpu_seconds / pull.seconds.max(1e-9),
        sim_cpu_seconds,
        peak_rss_mib: pull.peak_rss_mib,
        pull_requests,
        pull_answered_429: after_pull.violations - before.violations,
        budget_floor_seconds,
        budget_bound_percent: 100.0 * budget_floor_seconds / pull.seconds.max(1e-9),
        pushed: queued,
        push_seconds: push.seconds,
        pushes_per_second: queued as f64 / push.seconds.max(1e-9),
        push_requests: after_push.graph_requests - after_pull.graph_requests,
        push_answered_429: after_push.violations - after_pull.violations,
        load_average: load_average(),
    })
}

/// The table BENCHMARKS.md quotes.
pub fn markdown(opts: &BenchOptions, r: &CalendarResult) -> String {
    let o = &r.options;
    let mut md = header(opts, "Calendar: initial pull and outbox push");
    md.push_str(&format!(
        "{} users x {} generated calendar items (series expanded from six months back to {} \
         years ahead), pages of {}, two-way, internal events on; the CLI sync in a child process, SQLite. Then {} \
         CRM events per user pushed from the outbox by one more run.\n\n",
        o.users, o.items, o.inbound_years, o.page_size, o.pushes_per_user
    ));
    md.push_str(
        "| budget | mailboxes in flight | events pulled | stored | pull s | events/s | pull CPU s (% of a core) | simulator CPU s | peak RSS MiB | requests (per mailbox, most) | 429 | budget floor s (share of pull) | pushes | push s | push/s | push 429 | load avg |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in &r.phases {
        md.push_str(&format!(
            "| {} ({} per {} s) | {} | {} | {} | {:.1} | **{:.0}** | {:.1} ({:.0}%) | {:.1} | {:.0} | {} ({:.0}, {}) | {} | {:.1} (**{:.0}%**) | {} | {:.1} | **{:.1}** | {} | {:.2} |\n",
            p.budget,
            thousands(p.limit),
            p.window_secs,
            p.mailboxes_in_flight,
            thousands(p.pulled_items),
            thousands(p.stored_events.max(0) as u64),
            p.pull_seconds,
            p.events_per_second,
            p.pull_cpu_seconds,
            p.pull_cpu_percent_of_core,
            p.sim_cpu_seconds,
            p.peak_rss_mib,
            thousands(p.pull_requests),
            p.requests_per_mailbox,
            p.most_requests_of_a_mailbox,
            thousands(p.pull_answered_429),
            p.budget_floor_seconds,
            p.budget_bound_percent,
            thousands(p.pushed),
            p.push_seconds,
            p.pushes_per_second,
            thousands(p.push_answered_429),
            p.load_average
        ));
    }
    md.push_str(
        "\n\"budget floor\": each mailbox waits for a new window after every `limit` of its own \
         requests, as many mailboxes at once as are in flight: the least time the budget \
         allows (the longest mailbox's waits, or all waits shared among the mailboxes in \
         flight, whichever is longer). Its share of the pull's time is how much of the pull the budget alone \
         explains (0%: the budget never binds). The push's time includes the run's incremental pass over every \
         mailbox (one calendar delta and the mail folders' delta requests each).\n",
    );
    md
}
