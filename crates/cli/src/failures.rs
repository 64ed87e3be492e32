//! `m365sync failures ...`: the records a stage failed on (a plugin's trap, a record it
//! refused, an event whose series is gone), each named by id, subject, mailbox and folder with
//! the stage, the plugin version and the error; and the retry of parked ones.

use std::path::Path;

use clap::Subcommand;
use m365sync_store::failures::{Failure, FailureFilter};

use super::admin::open;

/// `m365sync failures ...`
#[derive(Subcommand)]
pub enum FailuresCommand {
    /// List failed records, most recently failed first. A record is retried by every run of
    /// its mailbox until it has failed the tenant's `failure_attempts` times (5 by default);
    /// then it is parked: kept and listed here, retried only by `failures retry`.
    #[command(
        after_help = "Examples:\n  m365sync failures list --org acme\n  m365sync failures list --org acme --tenant main --mailbox alice@contoso.example --parked"
    )]
    List {
        /// Only this org's.
        #[arg(long)]
        org: Option<String>,
        /// Only this tenant's (needs --org).
        #[arg(long, requires = "org")]
        tenant: Option<String>,
        /// Only this mailbox's (its address; needs --org and --tenant).
        #[arg(long, requires = "tenant")]
        mailbox: Option<String>,
        /// Only parked records.
        #[arg(long)]
        parked: bool,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Take parked records out of the parking lot (their attempts start again) and make their
    /// mailboxes' next run due now, so a running service retries them at its next tick (or
    /// run `m365sync sync run`).
    Retry {
        /// Only this org's.
        #[arg(long)]
        org: String,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this mailbox's (its address; needs --tenant).
        #[arg(long, requires = "tenant")]
        mailbox: Option<String>,
        /// Only this record (its Graph id).
        #[arg(long)]
        id: Option<String>,
    },
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Runs `m365sync failures ...`.
pub async fn run(config: Option<&Path>, cmd: FailuresCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        FailuresCommand::List {
            org,
            tenant,
            mailbox,
            parked,
            limit,
            json,
        } => {
            let mut filter = FailureFilter {
                parked: parked.then_some(true),
                limit,
                ..FailureFilter::default()
            };
            scope(
                &store,
                &mut filter,
                org.as_deref(),
                tenant.as_deref(),
                mailbox.as_deref(),
            )
            .await?;
            let rows = store.failures(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no failed records");
                return Ok(());
            }
            for f in &rows {
                print_failure(f);
            }
            println!(
                "{} record(s); `m365sync failures retry --org ORG` retries parked ones",
                rows.len()
            );
        }
        FailuresCommand::Retry {
            org,
            tenant,
            mailbox,
            id,
        } => {
            let mut filter = FailureFilter {
                graph_id: id,
                ..FailureFilter::default()
            };
            scope(
                &store,
                &mut filter,
                Some(&org),
                tenant.as_deref(),
                mailbox.as_deref(),
            )
            .await?;
            let mailboxes = store.unpark_failures(&filter).await?;
            let mut tenants = std::collections::BTreeSet::new();
            for m in &mailboxes {
                tenants.insert(store.mailbox_by_id(*m).await?.tenant_id);
            }
            for t in &tenants {
                store.request_run(*t).await?;
            }
            println!(
                "{} mailbox(es) will retry their failed records at their tenant's next run (made due now)",
                mailboxes.len()
            );
        }
    }
    Ok(())
}

/// Narrows `filter` to an org, tenant and mailbox given by name.
async fn scope(
    store: &m365sync_store::Store,
    filter: &mut FailureFilter,
    org: Option<&str>,
    tenant: Option<&str>,
    mailbox: Option<&str>,
) -> anyhow::Result<()> {
    let Some(org) = org else { return Ok(()) };
    filter.org_id = Some(store.org_id(org).await?);
    let Some(tenant) = tenant else { return Ok(()) };
    let t = store.tenant(org, tenant).await?;
    filter.tenant_id = Some(t.id);
    let Some(address) = mailbox else {
        return Ok(());
    };
    let m = store.mailbox_by_address(t.id, address).await?.ok_or_else(|| {
        anyhow::anyhow!("tenant {org}/{tenant} has no mailbox {address}; `m365sync mailbox list` shows them")
    })?;
    filter.mailbox_id = Some(m.id);
    Ok(())
}

fn print_failure(f: &Failure) {
    println!(
        "{}/{} {} [{}] {} {:?}",
        f.org, f.tenant, f.mailbox, f.folder_path, f.graph_id, f.subject
    );
    let plugin = if f.plugin.is_empty() {
        String::new()
    } else {
        format!(" by {}", f.plugin)
    };
    println!(
        "    {} stage{plugin}, {} attempt(s){}, first {} last {}: {}",
        f.stage,
        f.attempts,
        if f.parked { ", PARKED" } else { "" },
        when(f.first_ms),
        when(f.last_ms),
        f.error
    );
}
