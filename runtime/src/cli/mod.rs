//! Command-line parsing and the top-level error report (the one place `anyhow` is used).

mod admin;
mod ops;
mod plugin;
mod serve;
mod sim;

use clap::{Parser, Subcommand};

/// Server-side Microsoft 365 email and calendar sync for CRMs.
#[derive(Parser)]
#[command(name = "m365sync", version, about)]
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
    Apply { file: std::path::PathBuf },
    /// Tenants in the database.
    Tenant {
        #[command(subcommand)]
        command: admin::TenantCommand,
    },
    /// Email sync.
    Sync {
        #[command(subcommand)]
        command: admin::SyncCommand,
    },
    /// Run the service: the scheduler, the workers and the admin API (`--sandbox`: on the
    /// built-in simulator, a SQLite file and the default plugins).
    Serve(serve::ServeArgs),
    /// A tenant's runs, newest first.
    Runs(ops::RunsArgs),
    /// Run log lines, filtered by org, tenant, run, age, and to errors.
    Logs(ops::LogsArgs),
    /// Sync again what failed: one run's errors, or every error since an age.
    Retry(ops::RetryArgs),
    /// The key that seals stored secrets.
    Key {
        #[command(subcommand)]
        command: admin::KeyCommand,
    },
    /// WebAssembly plugins: run a plugin on its cases, measure the default plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("M365SYNC_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Parses arguments, runs the command, and reports errors with their causes.
pub fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
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
    let config = cli.config.clone();
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cli.command {
            Command::Sim { command } => sim::run(command).await,
            Command::Apply { file } => admin::apply(config.as_deref(), &file).await,
            Command::Tenant { command } => admin::tenant(config.as_deref(), command).await,
            Command::Key { command } => admin::key(command),
            Command::Sync { command } => admin::sync(config.as_deref(), command).await,
            Command::Plugin { command } => plugin::run(command, config.as_deref()).await,
            Command::Serve(args) => serve::run(config.as_deref(), args).await,
            Command::Runs(args) => ops::runs(config.as_deref(), args).await,
            Command::Logs(args) => ops::logs(config.as_deref(), args).await,
            Command::Retry(args) => ops::retry(config.as_deref(), args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
