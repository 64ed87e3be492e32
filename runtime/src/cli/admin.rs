//! Administration commands over the database: `apply`, `key generate`, `sync run` (tenants,
//! mailboxes and rules have their own modules).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use m365sync::config::ServiceConfig;
use m365sync::store::{SecretKey, Store};

/// `m365sync sync ...`
#[derive(Subcommand)]
pub enum SyncCommand {
    /// Sync one tenant (or one of its mailboxes) now, through its plugins, and record the run.
    Run {
        #[arg(long)]
        org: String,
        #[arg(long)]
        tenant: String,
        /// Only this mailbox (its address).
        #[arg(long)]
        mailbox: Option<String>,
        /// Print the run report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `m365sync key ...`
#[derive(Subcommand)]
pub enum KeyCommand {
    /// Write a new random key for sealing secrets (keep it out of the database's backups).
    Generate {
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
    Ok((store, m365sync::graph::http_client(ca.as_deref())?))
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
    let SyncCommand::Run {
        org,
        tenant,
        mailbox,
        json,
    } = cmd;
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    let tenant = store.tenant(&org, &tenant).await?;
    if !tenant.enabled {
        anyhow::bail!(
            "tenant {} of org {org} is disabled; enable it first",
            tenant.name
        );
    }
    let ca = cfg.extra_ca()?;
    let env = m365sync::sync::run::SyncEnv {
        store: store.clone(),
        engine: m365sync::plugin::engine::PluginEngine::new(
            m365sync::plugin::engine::EngineConfig::default(),
        )?,
        http: m365sync::graph::http_client(ca.as_deref())?,
    };
    let report =
        m365sync::sync::run::run_tenant(&env, &tenant, mailbox.as_deref(), "manual").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "run {}: {} processed, {} synced, {} excluded, {} removed, {} failed records, {} pages",
            report.run_id,
            report.processed,
            report.synced,
            report.excluded,
            report.removed,
            report.failed,
            report.pages
        );
        for (mailbox, error) in &report.mailbox_errors {
            println!("  {mailbox}: {error}");
        }
    }
    if !report.mailbox_errors.is_empty() {
        anyhow::bail!(
            "{} mailbox(es) could not be synced; see above",
            report.mailbox_errors.len()
        );
    }
    Ok(())
}
