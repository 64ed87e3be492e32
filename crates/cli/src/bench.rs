//! `m365sync bench SCENARIO...`: the benchmark suite (see `m365sync_bench` and BENCHMARKS.md).
//! `m365sync bench child ...` is the measured half, started by the harness itself.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use m365sync_bench::calendar::CalendarOptions;
use m365sync_bench::db::DbKind;
use m365sync_bench::ingest::{child_ingest, ChildIngest, Variant};
use m365sync_bench::scale::ScaleOptions;
use m365sync_bench::serve_child::{child_serve, ChildServe};
use m365sync_bench::swap::SwapOptions;
use m365sync_bench::throttle::ThrottleOptions;
use m365sync_bench::{BenchOptions, Scenario};

/// Which databases the ingest scenario writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbChoice {
    /// A SQLite file only.
    Sqlite,
    /// PostgreSQL only (see --postgres).
    Postgres,
    /// SQLite, then PostgreSQL.
    Both,
}

/// `m365sync bench` arguments.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    child: Option<ChildCommand>,
    /// Scenarios to run, in this order: ingest (with floor), peer, throttle, swap, scale, capture,
    /// calendar.
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Mailboxes of the generated tenant (ingest, peer).
    #[arg(long, default_value_t = 20)]
    mailboxes: usize,
    /// Messages each mailbox starts with (internal mail also lands in colleagues' mailboxes).
    #[arg(long, default_value_t = 5000)]
    messages: usize,
    /// Share of messages with attachments (the generator's realistic rate is 0.18; 0 prices
    /// the message pipeline alone).
    #[arg(long, default_value_t = 0.18)]
    attachment_rate: f64,
    /// Delta page size (`Prefer: odata.maxpagesize`), for m365sync and the peer alike.
    #[arg(long, default_value_t = 100)]
    page_size: i64,
    /// Databases for the ingest scenario.
    #[arg(long, value_enum, default_value = "both")]
    db: DbChoice,
    /// ingest: also measure the default plugins with a shadow exclusion plugin beside them
    /// (the builtin tagged as another version), the price of a shadow run.
    #[arg(long)]
    shadow: bool,
    /// An existing PostgreSQL database; benchmark databases are created beside it and dropped.
    #[arg(
        long,
        env = "M365SYNC_BENCH_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// A separate simulator (`m365sync sim serve --https`) instead of one in this process.
    #[arg(long)]
    sim: Option<String>,
    /// The CA certificate a separate simulator's https needs.
    #[arg(long, requires = "sim")]
    sim_ca: Option<PathBuf>,
    /// Where results go: SCENARIO.json, SCENARIO.md, throughput.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// The Python with msgraph-sdk (`bash scripts/python-env.sh` builds .venv).
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// The peer script.
    #[arg(long, default_value = "bench/peer/peer.py")]
    peer_script: PathBuf,
    /// throttle: mailboxes.
    #[arg(long, default_value_t = ThrottleOptions::default().mailboxes)]
    throttle_mailboxes: usize,
    /// throttle: messages per mailbox (more than the budget lets through).
    #[arg(long, default_value_t = ThrottleOptions::default().messages)]
    throttle_messages: usize,
    /// throttle: requests per app and mailbox per window.
    #[arg(long, default_value_t = ThrottleOptions::default().limit)]
    throttle_limit: u64,
    /// throttle: window length in seconds.
    #[arg(long, default_value_t = ThrottleOptions::default().window_secs)]
    throttle_window_secs: u64,
    /// throttle: whole windows measured.
    #[arg(long, default_value_t = ThrottleOptions::default().windows)]
    throttle_windows: u64,
    /// throttle: requests in flight per app and mailbox.
    #[arg(long, default_value_t = ThrottleOptions::default().concurrency)]
    throttle_concurrency: u32,
    /// throttle: delta page size.
    #[arg(long, default_value_t = ThrottleOptions::default().page_size)]
    throttle_page_size: i64,
    /// throttle: the client's own pacing off (the tenant's mailbox budget set far above the
    /// simulator's), to compare with a client that only reacts to 429s.
    #[arg(long)]
    throttle_unpaced: bool,
    /// swap: mailboxes.
    #[arg(long, default_value_t = SwapOptions::default().mailboxes)]
    swap_mailboxes: usize,
    /// swap: messages per mailbox.
    #[arg(long, default_value_t = SwapOptions::default().messages)]
    swap_messages: usize,
    /// scale: tenants.
    #[arg(long, default_value_t = ScaleOptions::default().tenants)]
    scale_tenants: usize,
    /// scale: mailboxes per tenant.
    #[arg(long, default_value_t = ScaleOptions::default().mailboxes)]
    scale_mailboxes: usize,
    /// throttle: the tenant's max_concurrency setting.
    #[arg(long, default_value_t = ThrottleOptions::default().tenant_concurrency)]
    throttle_tenant_concurrency: i64,
    /// capture: mailboxes of the generated tenant.
    #[arg(long, default_value_t = m365sync_bench::capture::CaptureOptions::default().mailboxes)]
    capture_mailboxes: usize,
    /// capture: messages delivered (one sample each).
    #[arg(long, default_value_t = m365sync_bench::capture::CaptureOptions::default().samples)]
    capture_samples: usize,
    /// capture: change notifications drive the sync (a weekly cadence, no "sync now"); the
    /// messages are delivered at --capture-per-minute, spread over the mailboxes.
    #[arg(long)]
    capture_notifications: bool,
    /// capture with notifications: deliveries per minute.
    #[arg(long, default_value_t = m365sync_bench::capture::CaptureOptions::default().per_minute)]
    capture_per_minute: usize,
    /// calendar: users of the generated tenant.
    #[arg(long, default_value_t = CalendarOptions::default().users)]
    calendar_users: usize,
    /// calendar: calendar items generated per user (series expand to many more events).
    #[arg(long, default_value_t = CalendarOptions::default().items)]
    calendar_items: usize,
    /// calendar: the tenant's inbound range in years (series expand that far ahead).
    #[arg(long, default_value_t = CalendarOptions::default().inbound_years)]
    calendar_inbound_years: i64,
    /// calendar: CRM events pushed per user after each pull.
    #[arg(long, default_value_t = CalendarOptions::default().pushes_per_user)]
    calendar_pushes: usize,
    /// calendar: the scaled-down budget, requests per app and mailbox per window (0: calibrated
    /// so the busiest mailbox alone needs 1.5 times the unthrottled pull's time).
    #[arg(long, default_value_t = CalendarOptions::default().scaled_limit)]
    calendar_limit: u64,
    /// calendar: the scaled-down budget's window in seconds.
    #[arg(long, default_value_t = CalendarOptions::default().scaled_window_secs)]
    calendar_window_secs: u64,
}

/// The measured halves, run by the harness in child processes.
#[derive(Subcommand)]
enum ChildCommand {
    /// (internal) Measured halves of the benchmark, started by `m365sync bench`.
    #[command(hide = true)]
    Child {
        #[command(subcommand)]
        what: ChildWhat,
    },
}

#[derive(Subcommand)]
enum ChildWhat {
    /// One backfill of a declared tenant.
    Ingest {
        /// The benchmark database to open (a SQLite or PostgreSQL URL).
        #[arg(long)]
        database_url: String,
        /// The key file that database's secrets are sealed with.
        #[arg(long)]
        key_file: PathBuf,
        /// The declared tenant's name, in the benchmark's org.
        #[arg(long)]
        tenant: String,
        /// ingest (through the tenant's plugins), floor (the plugin stages bypassed) or shadow
        /// (ingest with a shadow exclusion plugin beside the live one).
        #[arg(long, value_parser = ["ingest", "floor", "shadow"])]
        variant: String,
        /// The database's name in the report: sqlite or postgres.
        #[arg(long)]
        db: String,
        /// The CA certificate the simulator's https needs, when the system's roots do not cover it.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Mailboxes synced at once (0: the CLI's default).
        #[arg(long, default_value_t = 0)]
        in_flight: usize,
    },
    /// The service for a fixed time.
    Serve {
        /// The benchmark database the service opens (a SQLite or PostgreSQL URL).
        #[arg(long)]
        database_url: String,
        /// The key file that database's secrets are sealed with.
        #[arg(long)]
        key_file: PathBuf,
        /// The service's sync workers (at least one).
        #[arg(long)]
        workers: usize,
        /// The longest the service runs, in seconds.
        #[arg(long)]
        seconds: f64,
        /// The CA certificate the simulator's https needs, when the system's roots do not cover it.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Stop as soon as this file exists (the harness's signal that it is done).
        #[arg(long)]
        stop_file: Option<PathBuf>,
        /// Change notifications on (a loopback receiver and subscriptions pointing there).
        #[arg(long)]
        notifications: bool,
    },
}

/// Runs `m365sync bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(ChildCommand::Child { what }) = args.child {
        return child(what).await;
    }
    if args.scenarios.is_empty() {
        anyhow::bail!("name at least one scenario: ingest, peer, throttle, swap, scale, capture or calendar (e.g. `m365sync bench ingest peer`)");
    }
    if !(0.0..=1.0).contains(&args.attachment_rate) {
        anyhow::bail!(
            "--attachment-rate must be between 0 and 1, got {}",
            args.attachment_rate
        );
    }
    if !(1..=1000).contains(&args.page_size) {
        anyhow::bail!(
            "--page-size must be between 1 and 1000, got {}",
            args.page_size
        );
    }
    let command = std::env::args()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    let opts = BenchOptions {
        mailboxes: args.mailboxes,
        messages: args.messages,
        attachment_rate: args.attachment_rate,
        page_size: args.page_size,
        dbs: match args.db {
            DbChoice::Sqlite => vec![DbKind::Sqlite],
            DbChoice::Postgres => vec![DbKind::Postgres],
            DbChoice::Both => vec![DbKind::Sqlite, DbKind::Postgres],
        },
        sim: args.sim,
        sim_ca: args.sim_ca,
        shadow: args.shadow,
        out: args.out.clone(),
        postgres: args.postgres,
        python: args.python,
        peer_script: args.peer_script,
        throttle: ThrottleOptions {
            mailboxes: args.throttle_mailboxes,
            messages: args.throttle_messages,
            page_size: args.throttle_page_size,
            window_secs: args.throttle_window_secs,
            limit: args.throttle_limit,
            concurrency: args.throttle_concurrency,
            windows: args.throttle_windows,
            tenant_concurrency: args.throttle_tenant_concurrency,
            paced: !args.throttle_unpaced,
        },
        swap: SwapOptions {
            mailboxes: args.swap_mailboxes,
            messages: args.swap_messages,
            ..SwapOptions::default()
        },
        capture: m365sync_bench::capture::CaptureOptions {
            mailboxes: args.capture_mailboxes,
            samples: args.capture_samples,
            notifications: args.capture_notifications,
            per_minute: args.capture_per_minute,
            ..m365sync_bench::capture::CaptureOptions::default()
        },
        calendar: CalendarOptions {
            users: args.calendar_users,
            items: args.calendar_items,
            pushes_per_user: args.calendar_pushes,
            page_size: args.page_size,
            inbound_years: args.calendar_inbound_years,
            scaled_limit: args.calendar_limit,
            scaled_window_secs: args.calendar_window_secs,
        },
        scale: ScaleOptions {
            tenants: args.scale_tenants,
            mailboxes: args.scale_mailboxes,
            ..ScaleOptions::default()
        },
        command,
    };
    let mut scenarios = args.scenarios.clone();
    scenarios.dedup();
    m365sync_bench::run(&scenarios, &opts).await?;
    for s in &scenarios {
        let md = args.out.join(format!("{}.md", s.name()));
        let text = std::fs::read_to_string(&md).with_context(|| md.display().to_string())?;
        println!("{text}");
    }
    println!("Results in {}", args.out.display());
    Ok(())
}

async fn child(what: ChildWhat) -> anyhow::Result<()> {
    let json = match what {
        ChildWhat::Ingest {
            database_url,
            key_file,
            tenant,
            variant,
            db,
            ca,
            in_flight,
        } => {
            let c = ChildIngest {
                database_url,
                key_file,
                tenant,
                ca_cert: ca,
                variant: match variant.as_str() {
                    "floor" => Variant::Floor,
                    "shadow" => Variant::Shadow,
                    _ => Variant::Ingest,
                },
                db,
                in_flight,
            };
            serde_json::to_string(&child_ingest(&c).await?)?
        }
        ChildWhat::Serve {
            database_url,
            key_file,
            workers,
            seconds,
            ca,
            stop_file,
            notifications,
        } => {
            let c = ChildServe {
                database_url,
                key_file,
                ca_cert: ca,
                workers,
                seconds,
                stop_file,
                notifications,
            };
            serde_json::to_string(&child_serve(&c).await?)?
        }
    };
    println!("{json}");
    Ok(())
}
