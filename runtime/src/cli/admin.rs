//! Administration commands over the database: `apply`, `tenant list`, `key generate`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use m365sync::config::ServiceConfig;
use m365sync::store::{SecretKey, Store};

/// `m365sync tenant ...`
#[derive(Subcommand)]
pub enum TenantCommand {
    /// List tenants (all orgs, or one with --org).
    List {
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of a table.
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

async fn open(config: Option<&Path>) -> anyhow::Result<Store> {
    let cfg = ServiceConfig::load(config)?;
    let key = cfg.secret_key()?;
    Ok(Store::open(&cfg.database_url, key).await?)
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

/// `m365sync tenant ...`.
pub async fn tenant(config: Option<&Path>, cmd: TenantCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        TenantCommand::List { org, json } => {
            let tenants = store.tenants(org.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
            } else {
                println!(
                    "{:<16} {:<16} {:<28} {:<8} CLIENT ID",
                    "ORG", "TENANT", "MICROSOFT TENANT", "ENABLED"
                );
                for t in tenants {
                    println!(
                        "{:<16} {:<16} {:<28} {:<8} {}",
                        t.org,
                        t.name,
                        t.ms_tenant,
                        if t.enabled { "yes" } else { "no" },
                        t.client_id
                    );
                }
            }
        }
    }
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
