//! Scenario `throttle`: the simulator holds Outlook's limits scaled down (by default 600
//! requests a minute per app and mailbox, 4 in flight), the real service syncs 50 mailboxes
//! that hold more work than the budget allows, and the simulator's own counters say what share
//! of the permitted request rate was used and what share of requests was answered 429.
//!
//! The measurement starts at the first Graph request and lasts whole windows, so a client that
//! spends a window's budget early and waits out `Retry-After` is not penalised for the wait.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::child::{load_average, run_child};
use super::db::{declare, BenchDb, DbKind, Declare};
use super::host::SimHost;
use super::serve_child::{ChildServe, ServeReport};
use super::{BenchError, BenchOptions};

/// The scaled-down budget and the load.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleOptions {
    /// Mailboxes of the generated tenant, each synced by a worker of its own.
    pub mailboxes: usize,
    /// Messages each mailbox starts with: more than the budget lets through in the windows
    /// measured.
    pub messages: usize,
    /// Small pages make the budget, not the data, run out first.
    pub page_size: i64,
    /// The budget's window, seconds.
    pub window_secs: u64,
    /// Requests per app and mailbox per window.
    pub limit: u64,
    /// Requests in flight per app and mailbox before the simulator answers 429.
    pub concurrency: u32,
    /// Windows measured.
    pub windows: u64,
    /// Requests in flight for the tenant (the product's `max_concurrency` setting).
    pub tenant_concurrency: i64,
    /// The tenant's `mailbox_budget` and its window set to the simulator's, so the client keeps
    /// to it; false sets it far above, so the client only reacts to 429s.
    pub paced: bool,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            mailboxes: 50,
            messages: 6_000,
            page_size: 5,
            window_secs: 60,
            limit: 600,
            concurrency: 4,
            windows: 2,
            tenant_concurrency: 64,
            paced: true,
        }
    }
}

/// What the simulator counted over the measured windows.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleResult {
    /// The budget and load it ran with.
    pub options: ThrottleOptions,
    /// From the first Graph request to the end of the last window measured, seconds.
    pub measured_seconds: f64,
    /// Requests the budget allowed: mailboxes x limit x windows.
    pub permitted: u64,
    /// Graph requests the simulator answered without refusing them.
    pub admitted: u64,
    /// Graph requests over the windows, refused ones included.
    pub requests: u64,
    /// Requests the simulator answered 429.
    pub answered_429: u64,
    /// Of those, refused for too many in flight for one mailbox.
    pub refused_concurrency: u64,
    /// Of those, refused for a mailbox's spent budget.
    pub refused_budget: u64,
    /// `admitted` as a share of `permitted`, percent (the goal is at least 95%).
    pub used_percent: f64,
    /// `answered_429` as a share of `requests`, percent (the goal is under 0.5%).
    pub percent_429: f64,
    /// Delta items served over the window (messages moved).
    pub delta_items: u64,
    /// (second, admitted requests in that second) through the measurement.
    pub per_second: Vec<(u64, u64)>,
    /// The `serve` child's own report of its CPU and memory.
    pub service: Option<ServeReport>,
    /// The machine's 1-minute load average when the scenario ended.
    pub load_average: f64,
}

/// Runs the scenario against `host` (a world of `options.mailboxes` mailboxes).
pub async fn run(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
) -> Result<ThrottleResult, BenchError> {
    let t = opts.throttle.clone();
    let tenants = host.tenants().await?;
    let db = BenchDb::create(DbKind::Sqlite, "throttle", work, &opts.postgres).await?;
    let store = db.open().await?;
    let tenant = declare(
        &store,
        &host.base_url,
        &tenants[0],
        "throttle",
        &Declare {
            page_size: t.page_size,
            cadence_minutes: 15,
            max_concurrency: t.tenant_concurrency,
        },
    )
    .await?;
    // The client paces to the budget it is told; the simulator's is scaled down from Outlook's.
    let mut settings = store
        .settings(tenant.id)
        .await
        .map_err(|e| BenchError::Setup(format!("tenant throttle: {e}")))?;
    settings.mailbox_budget = if t.paced { t.limit as i64 } else { 1_000_000 };
    settings.mailbox_budget_secs = t.window_secs as i64;
    store
        .set_settings(tenant.id, &settings)
        .await
        .map_err(|e| BenchError::Setup(format!("tenant throttle: {e}")))?;
    store.close().await;
    host.set_throttle(t.window_secs, t.limit, t.concurrency)
        .await?;
    let measure = Duration::from_secs(t.window_secs * t.windows);
    let child = ChildServe {
        database_url: db.url.clone(),
        key_file: db.key_file.clone(),
        ca_cert: host.ca_cert.clone(),
        workers: t.mailboxes,
        // Startup (migrations, plugin loads) comes before the first request.
        seconds: measure.as_secs_f64() + 15.0,
        stop_file: None,
        notifications: false,
    };
    let base = host.stats().await?;
    let args = child.args();
    let work_dir = work.to_path_buf();
    let service =
        tokio::spawn(
            async move { run_child::<ServeReport>(&args, "throttle-serve", &work_dir).await },
        );
    // The first Graph request starts the clock.
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = loop {
        let s = host.stats().await?;
        if s.graph_requests > base.graph_requests {
            break s;
        }
        if Instant::now() > deadline || service.is_finished() {
            return Err(BenchError::Sim(
                "the service made no Graph request within a minute".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let began = Instant::now();
    let admitted = |s: &m365sync_sim::stats::StatsSnapshot| s.graph_requests - s.violations;
    let mut per_second = Vec::new();
    let mut last = admitted(&start);
    let mut second = 0;
    let end = loop {
        second += 1;
        let at = began + Duration::from_secs(second).min(measure);
        tokio::time::sleep_until(at.into()).await;
        let s = host.stats().await?;
        per_second.push((second, admitted(&s) - last));
        last = admitted(&s);
        if at >= began + measure {
            break s;
        }
    };
    let measured_seconds = began.elapsed().as_secs_f64();
    let service = service
        .await
        .map_err(|e| BenchError::Setup(format!("the service child's task: {e}")))?;
    db.remove().await;
    let service = service?;
    let permitted = t.mailboxes as u64 * t.limit * t.windows;
    let requests = end.graph_requests - start.graph_requests + 1;
    let answered_429 = end.violations - start.violations;
    let admitted_n = admitted(&end) - admitted(&start) + 1;
    Ok(ThrottleResult {
        measured_seconds,
        permitted,
        admitted: admitted_n,
        requests,
        answered_429,
        refused_concurrency: end.throttled_concurrency - start.throttled_concurrency,
        refused_budget: end.throttled_budget - start.throttled_budget,
        used_percent: 100.0 * admitted_n as f64 / permitted.max(1) as f64,
        percent_429: 100.0 * answered_429 as f64 / requests.max(1) as f64,
        delta_items: end.delta_items_served - start.delta_items_served,
        per_second,
        service: Some(service),
        load_average: load_average(),
        options: t,
    })
}
