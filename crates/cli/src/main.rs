//! The `m365sync` command line: parsing and the top-level error report (the one place `anyhow`
//! is used). Each subcommand lives in a module of its own; what it does lives in the library crates.

mod admin;
mod bench;
mod crm;
mod events;
mod examples;
mod failures;
mod mail;
mod mailbox;
mod matching;
mod ops;
mod plugin;
mod plugin_shadow;
mod rules;
mod serve;
mod sim;
mod telemetry;
mod tenant;
mod tokens;

use clap::{CommandFactory, Parser, Subcommand};

/// Server-side Microsoft 365 email and calendar sync for CRMs.
#[derive(Parser)]
#[command(
    name = "m365sync",
    version,
    about,
    after_help = "Exit codes: 0 done; 1 failed (the message says what to do); 2 usage error; \
                  3 partly done (some mailboxes, rows or retries failed: see the lines above)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: human or json.
    #[arg(
        long,
        global = true,
        default_value = "human",
        env = "M365SYNC_LOG_FORMAT"
    )]
    log_format: String,
    /// The service configuration (default: ./m365sync.toml if present).
    #[arg(long, global = true, env = "M365SYNC_CONFIG")]
    config: Option<std::path::PathBuf>,
}

// Parsed once per process, so variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// The local Microsoft Graph + identity simulator (the sandbox).
    Sim {
        #[command(subcommand)]
        command: sim::SimCommand,
    },
    /// Declare orgs, tenants, secrets, settings, users, mailboxes and rules from a TOML file
    /// (idempotent).
    #[command(after_help = examples::APPLY)]
    Apply {
        /// The declaration file (TOML); applying it again changes nothing.
        file: std::path::PathBuf,
    },
    /// Connected Microsoft 365 tenants: add, list, enable, disable, test, authorize, secrets.
    #[command(after_help = examples::TENANT)]
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// A tenant's mailboxes: import from Entra's CSV, add, list with health, enable, disable.
    #[command(after_help = examples::MAILBOX)]
    Mailbox {
        #[command(subcommand)]
        command: mailbox::MailboxCommand,
    },
    /// CRM users: link a shared mailbox to its nominated user, list.
    User {
        #[command(subcommand)]
        command: mailbox::UserCommand,
    },
    /// CRM contacts (name, Email, Alternate Email, contact points, entity): add, update,
    /// remove, show, list, import and export (CSV, JSON), and those carrying a sync user's
    /// address (warnings).
    #[command(after_help = examples::CONTACT)]
    Contact {
        #[command(subcommand)]
        command: crm::ContactCommand,
    },
    /// CRM entities (households and companies, with domains): add, update, remove, show, list,
    /// import and export (CSV, JSON).
    #[command(after_help = examples::ENTITY)]
    Entity {
        #[command(subcommand)]
        command: crm::EntityCommand,
    },
    /// Exclusion rules at org, tenant and user level.
    #[command(after_help = examples::RULES)]
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// Confirm a tenant's settings and activate it: connectivity is tested, then its initial
    /// sync is due now and its schedule starts.
    #[command(after_help = examples::ACTIVATE)]
    Activate {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Activate even if the connectivity test fails or no mailbox is enabled.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// CRM events and calendar sync: add, update, remove, list, deactivate, settings, the
    /// Sync Events switch, the benchmark.
    #[command(after_help = examples::EVENTS)]
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Email sent from the CRM through a linked mailbox: send (exactly once, with an
    /// idempotency key), and the outbox.
    #[command(after_help = examples::MAIL)]
    Mail {
        #[command(subcommand)]
        command: mail::MailCommand,
    },
    /// Email sync.
    #[command(after_help = examples::SYNC)]
    Sync {
        #[command(subcommand)]
        command: admin::SyncCommand,
    },
    /// Run the service: the scheduler, the workers and the admin API (`--sandbox`: on the
    /// built-in simulator, a SQLite file and the default plugins).
    #[command(after_help = examples::SERVE)]
    Serve(serve::ServeArgs),
    /// A tenant's runs, newest first.
    #[command(after_help = examples::RUNS)]
    Runs(ops::RunsArgs),
    /// Records a stage failed on, named by id, subject, mailbox and folder with the stage,
    /// the plugin version and the error; retry parked ones.
    Failures {
        #[command(subcommand)]
        command: failures::FailuresCommand,
    },
    /// Run log lines, filtered by org, tenant, run, age, and to errors.
    #[command(after_help = examples::LOGS)]
    Logs(ops::LogsArgs),
    /// Sync again what failed: one run's errors, or every error since an age.
    #[command(after_help = examples::RETRY)]
    Retry(ops::RetryArgs),
    /// The key that seals stored secrets.
    #[command(after_help = examples::KEY)]
    Key {
        #[command(subcommand)]
        command: admin::KeyCommand,
    },
    /// The benchmark suite: ingest and floor, the Python peer, throttle efficiency (results as
    /// JSON and Markdown in --out).
    Bench(bench::BenchArgs),
    /// WebAssembly plugins: run a plugin on its cases, measure the default plugins.
    #[command(after_help = examples::PLUGIN)]
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// The matching job: link stored emails to CRM contacts now; measure it.
    #[command(after_help = examples::MATCH)]
    Match {
        #[command(subcommand)]
        command: matching::MatchCommand,
    },
    /// A user's review list of unmatched emails, and mapping them to a contact in bulk.
    #[command(after_help = examples::REVIEW)]
    Review {
        #[command(subcommand)]
        command: matching::ReviewCommand,
    },
    /// Admin API tokens: an org's admin token, and users' tokens for their own review list
    /// and rules.
    #[command(after_help = examples::TOKEN)]
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
    },
    /// Print a shell completion script, e.g. `m365sync completions bash >
    /// /etc/bash_completion.d/m365sync` or `m365sync completions zsh > ~/.zfunc/_m365sync`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Logs to stderr (`--log-format human|json`, filtered by `M365SYNC_LOG`), and OpenTelemetry
/// traces when `otlp_endpoint` is set (see [`telemetry`]). The configuration is read here only
/// for the trace settings: a command that cannot read it says so itself, and a command that
/// needs none (`sim`, `completions`) runs without traces.
fn init_tracing(
    format: &str,
    config: Option<&std::path::Path>,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Option<telemetry::Telemetry>> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // Each layer filters for itself: logs quieted with M365SYNC_LOG=warn still leave the
    // traces their INFO spans (a mailbox sync, a Graph request, a page commit, a plugin call).
    let filter = tracing_subscriber::EnvFilter::try_from_env("M365SYNC_LOG")
        .unwrap_or_else(|_| "info".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let mut layers = vec![fmt];
    let cfg = m365sync::config::ServiceConfig::load(config).ok();
    let Some((cfg, endpoint)) = cfg.and_then(|c| c.otlp_endpoint.clone().map(|e| (c, e))) else {
        tracing_subscriber::registry().with(layers).init();
        return Ok(None);
    };
    let ca = cfg.extra_ca()?;
    let (layer, handle) = telemetry::layer(
        &endpoint,
        cfg.otlp_service_name.as_deref(),
        ca.as_deref(),
        runtime.handle().clone(),
    )?;
    layers.push(layer);
    tracing_subscriber::registry().with(layers).init();
    Ok(Some(handle))
}

/// A reader that closes the pipe early (`m365sync runs ... | head`) ends the command quietly,
/// as it ends `ls` or `grep`: without this, the standard library's print panics on the broken
/// pipe and prints a backtrace hint to a user who did nothing wrong.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info)
    }));
}

/// A command that did part of its work: some mailboxes synced and some not, some rows imported
/// and some refused, errors left after a retry. It exits 3, apart from a failure (1) and a usage
/// error (2), so a script can tell "look at the errors" from "nothing happened".
#[derive(Debug)]
pub struct Partial(pub String);

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Partial {}

/// The exit code of a partial result ([`Partial`]).
const EXIT_PARTIAL: u8 = 3;

/// Writes `bytes` to stdout; a reader that closed the pipe early is not an error.
fn print_quietly(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Parses arguments, runs the command, and reports errors with their causes.
pub fn run() -> std::process::ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let telemetry = match init_tracing(&cli.log_format, cli.config.as_deref(), &runtime) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = cli.config.clone();
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Sim { command } => sim::run(command).await,
            Command::Apply { file } => admin::apply(config.as_deref(), &file).await,
            Command::Tenant { command } => tenant::run(config.as_deref(), command).await,
            Command::Mailbox { command } => mailbox::run(config.as_deref(), command).await,
            Command::User { command } => mailbox::user(config.as_deref(), command).await,
            Command::Rules { command } => rules::run(config.as_deref(), command).await,
            Command::Contact { command } => crm::contact(config.as_deref(), command).await,
            Command::Entity { command } => crm::entity(config.as_deref(), command).await,
            Command::Activate {
                org,
                tenant,
                force,
                json,
            } => rules::activate_tenant(config.as_deref(), &org, &tenant, force, json).await,
            Command::Key { command } => admin::key(command),
            Command::Sync { command } => admin::sync(config.as_deref(), command).await,
            Command::Mail { command } => mail::run(config.as_deref(), command).await,
            Command::Events { command } => events::run(config.as_deref(), command).await,
            Command::Plugin { command } => plugin::run(command, config.as_deref()).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Serve(args) => serve::run(config.as_deref(), args).await,
            Command::Runs(args) => ops::runs(config.as_deref(), args).await,
            Command::Failures { command } => failures::run(config.as_deref(), command).await,
            Command::Logs(args) => ops::logs(config.as_deref(), args).await,
            Command::Retry(args) => ops::retry(config.as_deref(), args).await,
            Command::Match { command } => matching::run_match(config.as_deref(), command).await,
            Command::Review { command } => matching::run_review(config.as_deref(), command).await,
            Command::Token { command } => tokens::run(config.as_deref(), command).await,
            Command::Completions { shell } => {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "m365sync", &mut script);
                print_quietly(&script)
            }
        }
    });
    // Spans still queued go out now, while the runtime that sends them still runs.
    if let Some(t) = telemetry {
        t.shutdown();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Partial>().is_some() => {
            eprintln!("partly done: {e:#}");
            std::process::ExitCode::from(EXIT_PARTIAL)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn main() -> std::process::ExitCode {
    run()
}
