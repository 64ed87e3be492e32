//! Administration commands over the database: `apply`, `key generate`, `sync run` (tenants,
//! mailboxes and rules have their own modules).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use m365sync::config::ServiceConfig;
use m365sync::sync::SyncEnv;
use m365sync_plugin::engine::PluginEngine;
use m365sync_store::{SecretKey, Store};

/// `m365sync sync ...`
#[derive(Subcommand)]
pub enum SyncCommand {
    /// Sync one tenant (or one of its mailboxes) now, through its plugins, and record the run.
    Run {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Only this mailbox (its address).
        #[arg(long)]
        mailbox: Option<String>,
        /// Print the run report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure a backfill: a generated tenant (simulator in this process) into a fresh SQLite
    /// file, through the default plugins and with the plugin stages bypassed.
    Bench {
        /// Mailboxes of the generated tenant.
        #[arg(long, default_value_t = 20)]
        mailboxes: usize,
        /// Messages each mailbox starts with.
        #[arg(long, default_value_t = 5000)]
        messages: usize,
        /// plugins, bypass, or both (each in its own process, so peak memory is its own).
        #[arg(long, default_value = "both")]
        variant: String,
        /// Messages per Graph delta page.
        #[arg(long, default_value_t = 100)]
        page_size: i64,
        /// Share of messages with attachments: 0 prices the message pipeline alone, 0.18 is
        /// the simulator's usual mail.
        #[arg(long, default_value_t = 0.0)]
        attachment_rate: f64,
    },
}

/// `m365sync key ...`
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Write a new random key for sealing secrets (keep it out of the database's backups).
    Generate {
        /// The file to write the key to (refused if it exists; written with mode 600 on Unix).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Opens the store the configuration names.
pub(super) async fn open(config: Option<&Path>) -> anyhow::Result<Store> {
    let cfg = ServiceConfig::load(config)?;
    let key = cfg.secret_key()?;
    Ok(Store::open(&cfg.database_url, key).await?)
}

/// Opens the store and an HTTP client for Graph and the identity platform (trusting the
/// configured extra CA, such as the simulator's).
pub(super) async fn open_with_http(
    config: Option<&Path>,
) -> anyhow::Result<(Store, reqwest::Client)> {
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    let ca = cfg.extra_ca()?;
    Ok((store, m365sync_graph::http_client(ca.as_deref())?))
}

/// What sync work needs, as the configuration describes it: the store, the plugin engine
/// with its artifact cache, and an HTTP client trusting the configured extra CA.
pub(super) fn sync_env(cfg: &ServiceConfig, store: Store) -> anyhow::Result<SyncEnv> {
    let ca = cfg.extra_ca()?;
    Ok(SyncEnv::new(
        store,
        PluginEngine::new(cfg.engine_config())?,
        m365sync_graph::http_client(ca.as_deref())?,
    ))
}

/// `m365sync apply FILE`.
pub async fn apply(config: Option<&Path>, file: &Path) -> anyhow::Result<()> {
    let store = open(config).await?;
    let report = m365sync::apply::apply_file(&store, file).await?;
    println!(
        "applied {}: {} org(s), {} tenant(s), {} secret(s), {} user(s), {} mailbox(es); rules +{} -{}",
        file.display(),
        report.orgs,
        report.tenants,
        report.secrets,
        report.users,
        report.mailboxes,
        report.rules_added,
        report.rules_removed
    );
    Ok(())
}

/// `m365sync key ...`.
pub fn key(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Generate { out } => {
            if out.exists() {
                anyhow::bail!(
                    "{} exists; refusing to overwrite a key that may seal stored secrets",
                    out.display()
                );
            }
            std::fs::write(&out, SecretKey::generate().to_base64() + "\n")
                .with_context(|| format!("cannot write {}", out.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("cannot restrict {}", out.display()))?;
            }
            println!(
                "wrote a new key to {} (mode 600); point key_file in m365sync.toml at it",
                out.display()
            );
            Ok(())
        }
    }
}

/// `m365sync sync ...`.
pub async fn sync(config: Option<&Path>, cmd: SyncCommand) -> anyhow::Result<()> {
    match cmd {
        SyncCommand::Run {
            org,
            tenant,
            mailbox,
            json,
        } => sync_run(config, &org, &tenant, mailbox.as_deref(), json).await,
        SyncCommand::Bench {
            mailboxes,
            messages,
            variant,
            page_size,
            attachment_rate,
        } => sync_bench(mailboxes, messages, &variant, page_size, attachment_rate).await,
    }
}

async fn sync_run(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    mailbox: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    let tenant = store.tenant(org, tenant).await?;
    if !tenant.enabled {
        anyhow::bail!(
            "tenant {} of org {org} is disabled; enable it first",
            tenant.name
        );
    }
    let env = sync_env(&cfg, store)?;
    // A progress line on a terminal; nothing when piped (scripts read the report).
    let progress: Option<m365sync::sync::run::Progress> =
        std::io::stderr().is_terminal().then(|| {
            Box::new(
                |done: usize, total: usize, mailbox: &str, c: &m365sync::sync::Counts| {
                    let width = 24;
                    let filled = done * width / total.max(1);
                    eprint!(
                        "\r[{}{}] {done}/{total} mailboxes  {mailbox}: {} synced\x1b[K",
                        "#".repeat(filled),
                        " ".repeat(width - filled),
                        c.synced
                    );
                    if done == total {
                        eprintln!();
                    }
                },
            ) as m365sync::sync::run::Progress
        });
    let opts = m365sync::sync::run::RunOptions {
        bypass_plugins: false,
        progress,
        ..Default::default()
    };
    let report =
        m365sync::sync::run::run_tenant_with(&env, &tenant, mailbox, "manual", &opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report.recorded {
            Some(run) => println!(
                "run {} {}: {}; {} pages",
                report.run_id,
                run.status_text(),
                run.figures_text(),
                report.pages
            ),
            None => println!(
                "run {}: {} processed, {} synced, {} excluded, {} removed, {} failed records, {} pages",
                report.run_id,
                report.processed,
                report.synced,
                report.excluded,
                report.removed,
                report.failed,
                report.pages
            ),
        }
        for (mailbox, error) in &report.mailbox_errors {
            println!("  {mailbox}: {error}");
        }
        for (mailbox, why) in &report.skipped {
            println!("  {mailbox}: skipped: {why}");
        }
        for (mailbox, run) in &report.resumed {
            println!(
                "  {mailbox}: resumed: run {run} owed it work nobody was doing (its process was killed or stopped); this run finished it for run {run}"
            );
        }
    }
    if !report.mailbox_errors.is_empty() {
        return Err(crate::Partial(format!(
            "{} mailbox(es) could not be synced; see above",
            report.mailbox_errors.len()
        ))
        .into());
    }
    if report.failed > 0 {
        return Err(crate::Partial(format!(
            "{} record(s) failed in the plugins; `m365sync failures list` names them",
            report.failed
        ))
        .into());
    }
    Ok(())
}

async fn sync_bench(
    mailboxes: usize,
    messages: usize,
    variant: &str,
    page_size: i64,
    attachment_rate: f64,
) -> anyhow::Result<()> {
    use m365sync_bench::sync_backfill::{backfill, SyncBenchOptions};
    let one = |bypass: bool| SyncBenchOptions {
        mailboxes,
        messages,
        bypass_plugins: bypass,
        page_size,
        attachment_rate,
    };
    match variant {
        "plugins" | "bypass" => {
            let report = backfill(&one(variant == "bypass")).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        "both" => {
            // Each variant in its own process: peak memory is a per-process figure.
            let exe = std::env::current_exe().context("cannot find this program")?;
            let mut reports = Vec::new();
            for v in ["plugins", "bypass"] {
                let out = std::process::Command::new(&exe)
                    .args(["sync", "bench", "--variant", v])
                    .args(["--mailboxes", &mailboxes.to_string()])
                    .args(["--messages", &messages.to_string()])
                    .args(["--page-size", &page_size.to_string()])
                    .args(["--attachment-rate", &attachment_rate.to_string()])
                    .output()
                    .context("cannot start the benchmark's child process")?;
                if !out.status.success() {
                    anyhow::bail!(
                        "the {v} variant failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .context("the benchmark's child printed no report")?;
                reports.push(report);
            }
            let rate = |r: &serde_json::Value| r["messages_per_second"].as_f64().unwrap_or(0.0);
            let cost = 1.0 - rate(&reports[0]) / rate(&reports[1]).max(f64::MIN_POSITIVE);
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "runs": reports,
                    "plugin_stage_cost_percent": (cost * 1000.0).round() / 10.0,
                }))?
            );
            Ok(())
        }
        other => anyhow::bail!("--variant must be plugins, bypass or both, not '{other}'"),
    }
}
