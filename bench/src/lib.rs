//! `m365sync bench SCENARIO...`: the benchmark suite behind every speed claim of the project.
//!
//! One simulator (in this process, or a separate one with `--sim URL`) serves a generated
//! sandbox; each measured piece of work runs in its own child process ([`child`]) so CPU time
//! and peak memory are its own. Every scenario writes `SCENARIO.json` and `SCENARIO.md` into the
//! output directory, and the throughput chart is drawn as SVG by [`chart`]. Figures worth
//! comparing are taken in the same invocation and reported as ratios: the machines are noisy.
//!
//! Scenarios: [`ingest`] (ingest and floor), [`peer`] (Microsoft's Python SDK, fairly written),
//! [`throttle`] (share of Outlook's budget used), [`swap`] (plugin swaps under load), [`scale`],
//! [`capture`], [`calendar`] (initial calendar pull and outbox push, at Outlook's budget and a
//! binding one).
//!
//! The benches of single parts, each behind its own command, live here too: [`sim_delta`]
//! (`m365sync sim bench`: the simulator alone), [`plugin_calls`] (`m365sync plugin bench`: load
//! and per-record costs of the default plugins), [`sync_backfill`] (`m365sync sync bench`: an
//! in-process backfill with and without the plugin stages) and [`match_job`]
//! (`m365sync match bench`: the matching job at size).

pub mod calendar;
pub mod capture;
pub mod chart;
pub mod child;
pub mod db;
pub mod host;
pub mod ingest;
pub mod match_job;
pub mod peer;
pub mod plugin_calls;
pub mod procfs;
pub mod report;
pub mod scale;
pub mod serve_child;
pub mod sim_delta;
pub mod swap;
pub mod sync_backfill;
pub mod throttle;

use std::path::PathBuf;

use serde::Serialize;

use db::DbKind;
use host::SimHost;
use m365sync_sim::generate::GenerateOptions;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Preparing or reading back a measurement failed: files, databases, the store, starting
    /// a child, a service that never got going.
    #[error("benchmark setup: {0}")]
    Setup(String),
    /// The simulator could not be started, or its control API or Graph answered wrongly.
    #[error("simulator: {0}")]
    Sim(String),
    /// A measured child process failed, or its report could not be read.
    #[error("the {label} run failed: {detail}")]
    Child {
        /// The run's label, which also names its log file in the work directory.
        label: String,
        /// Its exit status and the end of its log, or why its report is unreadable.
        detail: String,
    },
    /// The Python peer is missing, failed, or reported something unreadable.
    #[error("the peer (Python) failed: {0}")]
    Peer(String),
    /// A sync run in this process failed.
    #[error(transparent)]
    Sync(#[from] m365sync::sync::SyncError),
}

/// A scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Backfill through the default plugins, and the floor (plugin stages bypassed).
    Ingest,
    /// A Python msgraph-sdk script on the same data, beside m365sync's SQLite ingest.
    Peer,
    /// A scaled-down Outlook budget: share of it used, share of requests answered 429.
    Throttle,
    /// The exclusion plugin installed twice and rolled back while the service backfills.
    Swap,
    /// 1,000 mailboxes in 20 tenants with their own plugins: idle RSS, one incremental pass.
    Scale,
    /// New mail delivered while the service runs: time until it is stored.
    Capture,
    /// Initial calendar pull (series expanded) and outbox push, at Outlook's budget and a
    /// scaled-down one.
    Calendar,
}

impl Scenario {
    /// The scenario's name on the command line and in its result files (`NAME.json`,
    /// `NAME.md`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ingest => "ingest",
            Scenario::Peer => "peer",
            Scenario::Throttle => "throttle",
            Scenario::Swap => "swap",
            Scenario::Scale => "scale",
            Scenario::Capture => "capture",
            Scenario::Calendar => "calendar",
        }
    }
}

/// Everything a benchmark invocation can be told.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    /// Mailboxes of the generated tenant for `ingest` and `peer`.
    pub mailboxes: usize,
    /// Messages each of those mailboxes starts with.
    pub messages: usize,
    /// Share of messages with attachments, 0 to 1, for `ingest` and `peer`.
    pub attachment_rate: f64,
    /// Delta page size (`Prefer: odata.maxpagesize`) of `ingest`, `peer`, `scale` and
    /// `capture`, for m365sync and the peer alike.
    pub page_size: i64,
    /// The databases `ingest` measures, each in turn; `scale` and `capture` use the first.
    pub dbs: Vec<DbKind>,
    /// A separate simulator's base URL (`None`: start one in this process).
    pub sim: Option<String>,
    /// The CA certificate a separate simulator's https needs.
    pub sim_ca: Option<PathBuf>,
    /// Where results go: `SCENARIO.json`, `SCENARIO.md`, `throughput.svg`, and a `work`
    /// directory removed at the end.
    pub out: PathBuf,
    /// An existing PostgreSQL database URL; benchmark databases are created beside it.
    pub postgres: String,
    /// The Python interpreter with msgraph-sdk (default: `.venv/bin/python`).
    pub python: PathBuf,
    /// The peer script (default: `bench/peer/peer.py`).
    pub peer_script: PathBuf,
    /// The `throttle` scenario's budget and load.
    pub throttle: throttle::ThrottleOptions,
    /// The `swap` scenario's load.
    pub swap: swap::SwapOptions,
    /// The `scale` scenario's size.
    pub scale: scale::ScaleOptions,
    /// The `capture` scenario's size.
    pub capture: capture::CaptureOptions,
    /// The `calendar` scenario's tenant and budgets.
    pub calendar: calendar::CalendarOptions,
    /// `ingest` also measures the default plugins with a shadow exclusion plugin beside them.
    pub shadow: bool,
    /// The command line, recorded in every result file.
    pub command: String,
}

/// The results of one invocation, scenario by scenario.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    /// The ingest and floor runs, per database; also there when only `peer` ran, which
    /// measures against the SQLite ones.
    pub ingest: Option<Vec<ingest::IngestRun>>,
    /// The peer beside m365sync's SQLite runs, when `peer` ran.
    pub peer: Option<peer::PeerResult>,
    /// The share of the budget used, when `throttle` ran.
    pub throttle: Option<throttle::ThrottleResult>,
    /// The swaps under load, when `swap` ran.
    pub swap: Option<swap::SwapResult>,
    /// The many-tenant service's memory and pass, when `scale` ran.
    pub scale: Option<scale::ScaleResult>,
    /// Delivery to stored, when `capture` ran.
    pub capture: Option<capture::CaptureResult>,
    /// The calendar pull and push under both budgets, when `calendar` ran.
    pub calendar: Option<calendar::CalendarResult>,
}

/// Runs the scenarios in order against one simulator and writes their results.
pub async fn run(scenarios: &[Scenario], opts: &BenchOptions) -> Result<Results, BenchError> {
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", opts.out.display())))?;
    let work = opts.out.join("work");
    std::fs::create_dir_all(&work)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", work.display())))?;
    let mut results = Results::default();
    let wants = |s: Scenario| scenarios.contains(&s);
    if wants(Scenario::Ingest) || wants(Scenario::Peer) {
        let host = sim_host(
            opts,
            opts.mailboxes,
            opts.messages,
            opts.attachment_rate,
            &work,
        )
        .await?;
        // The budget is not what these scenarios measure: lift it, keep Outlook's concurrency.
        host.set_throttle(600, 1_000_000_000, 4).await?;
        let dbs: Vec<DbKind> = if wants(Scenario::Ingest) {
            opts.dbs.clone()
        } else {
            vec![DbKind::Sqlite]
        };
        let runs = ingest::ingest_and_floor(
            &host,
            &dbs,
            &work,
            &opts.postgres,
            opts.page_size,
            opts.shadow && wants(Scenario::Ingest),
        )
        .await?;
        if wants(Scenario::Ingest) {
            report::write(opts, "ingest", &runs, &report::ingest_markdown(opts, &runs))?;
        }
        if wants(Scenario::Peer) {
            let peer = peer::run(&host, opts, &work, &runs).await?;
            report::write(opts, "peer", &peer, &report::peer_markdown(opts, &peer))?;
            let svg = chart::throughput_svg(&peer);
            std::fs::write(opts.out.join("throughput.svg"), svg)
                .map_err(|e| BenchError::Setup(format!("throughput.svg: {e}")))?;
            results.peer = Some(peer);
        }
        results.ingest = Some(runs);
    }
    if wants(Scenario::Throttle) {
        let t = &opts.throttle;
        // Requests, not bytes, are what this scenario is about: no attachments.
        let host = sim_host(opts, t.mailboxes, t.messages, 0.0, &work).await?;
        let r = throttle::run(&host, opts, &work).await?;
        report::write(opts, "throttle", &r, &report::throttle_markdown(opts, &r))?;
        results.throttle = Some(r);
    }
    if wants(Scenario::Swap) {
        let o = &opts.swap;
        let host = sim_host(opts, o.mailboxes, o.messages, 0.0, &work).await?;
        host.set_throttle(600, 1_000_000_000, 4).await?;
        let r = swap::run(&host, opts, &work).await?;
        report::write(opts, "swap", &r, &report::swap_markdown(opts, &r))?;
        results.swap = Some(r);
    }
    if wants(Scenario::Scale) {
        let o = &opts.scale;
        let host = sim_host_world(
            opts,
            GenerateOptions {
                tenants: o.tenants,
                users: o.mailboxes,
                shared: 0,
                messages: o.messages,
                events: 0,
                attachment_rate: 0.0,
                ..GenerateOptions::default()
            },
            &work,
        )
        .await?;
        host.set_throttle(600, 1_000_000_000, 4).await?;
        let r = scale::run(&host, opts, &work).await?;
        report::write(opts, "scale", &r, &report::scale_markdown(opts, &r))?;
        results.scale = Some(r);
    }
    if wants(Scenario::Capture) {
        let o = &opts.capture;
        let host = sim_host(opts, o.mailboxes, o.messages, 0.0, &work).await?;
        host.set_throttle(600, 1_000_000_000, 4).await?;
        let r = capture::run(&host, opts, &work).await?;
        report::write(opts, "capture", &r, &report::capture_markdown(opts, &r))?;
        results.capture = Some(r);
    }
    if wants(Scenario::Calendar) {
        let o = &opts.calendar;
        let host = sim_host_world(
            opts,
            GenerateOptions {
                users: o.users,
                shared: 0,
                messages: 0,
                events: o.items,
                attachment_rate: 0.0,
                ..GenerateOptions::default()
            },
            &work,
        )
        .await?;
        let r = calendar::run(&host, opts, &work).await?;
        report::write(opts, "calendar", &r, &calendar::markdown(opts, &r))?;
        results.calendar = Some(r);
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(results)
}

/// The simulator for a scenario: a fresh generated world in this process, or the remote one.
async fn sim_host(
    opts: &BenchOptions,
    mailboxes: usize,
    messages: usize,
    attachment_rate: f64,
    work: &std::path::Path,
) -> Result<SimHost, BenchError> {
    sim_host_world(
        opts,
        GenerateOptions {
            users: mailboxes,
            shared: 0,
            messages,
            events: 0,
            attachment_rate,
            ..GenerateOptions::default()
        },
        work,
    )
    .await
}

/// [`sim_host`] for any generated world.
async fn sim_host_world(
    opts: &BenchOptions,
    world: GenerateOptions,
    work: &std::path::Path,
) -> Result<SimHost, BenchError> {
    match &opts.sim {
        Some(url) => SimHost::remote(url, opts.sim_ca.clone()).await,
        None => {
            let started = std::time::Instant::now();
            let (tenants, users, messages) = (world.tenants, world.users, world.messages);
            let host = SimHost::start(world, work).await?;
            tracing::info!(
                tenants,
                users,
                messages,
                seconds = started.elapsed().as_secs_f64(),
                "simulator generated"
            );
            Ok(host)
        }
    }
}
