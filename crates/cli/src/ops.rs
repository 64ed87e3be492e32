//! Operating commands over the run history (E10): `runs`, `logs`, `retry`.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use m365sync::config::ServiceConfig;
use m365sync::sync::run::run_mailboxes;
use m365sync_store::logs::LogFilter;
use m365sync_store::{now_ms, Store};

async fn open(config: Option<&Path>) -> anyhow::Result<(ServiceConfig, Store)> {
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    Ok((cfg, store))
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Parses `30d`, `12h` or `45m` into milliseconds.
pub(crate) fn parse_age(s: &str) -> anyhow::Result<i64> {
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .with_context(|| format!("'{s}' is not an age like 30d, 12h or 45m"))?;
    Ok(n * match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => anyhow::bail!("'{s}' is not an age like 30d, 12h or 45m"),
    })
}

/// `m365sync runs` options.
#[derive(Args)]
pub struct RunsArgs {
    /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or `tenant add`.
    #[arg(long)]
    org: String,
    /// The tenant's name within the org.
    #[arg(long)]
    tenant: String,
    /// Show at most this many runs.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `m365sync runs`: a tenant's runs, newest first.
pub async fn runs(config: Option<&Path>, a: RunsArgs) -> anyhow::Result<()> {
    let (_, store) = open(config).await?;
    let tenant = store.tenant(&a.org, &a.tenant).await?;
    let runs = store.runs(tenant.id, a.limit).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    // Emails and events apart (issue 19): each READ = KEPT + EXCL(uded) + FAILED.
    println!(
        "{:<6} {:<20} {:<22} {:<20} {:>8} {:>8} {:>6} {:>6}   {:>8} {:>8} {:>6} {:>6} {:>7} {:>7}",
        "RUN",
        "STARTED",
        "STATUS",
        "TRIGGER",
        "EMAILS",
        "KEPT",
        "EXCL",
        "FAILED",
        "EVENTS",
        "KEPT",
        "EXCL",
        "FAILED",
        "ERRORS",
        "RESUMED"
    );
    let mut notes = Vec::new();
    for r in runs {
        println!(
            "{:<6} {:<20} {:<22} {:<20} {:>8} {:>8} {:>6} {:>6}   {:>8} {:>8} {:>6} {:>6} {:>7} {:>7}",
            r.id,
            when(r.started_ms),
            r.status,
            r.trigger_kind,
            r.emails.processed,
            r.emails.kept,
            r.emails.excluded,
            r.emails.failed,
            r.events.processed,
            r.events.kept,
            r.events.excluded,
            r.events.failed,
            r.errors,
            r.interruptions
        );
        if r.totals_only() {
            notes.push(format!("run {}: {}", r.id, r.figures_text()));
        }
        if r.interruptions > 0 {
            notes.push(format!(
                "run {}: {}; `m365sync logs --run {}` says where it was resumed",
                r.id,
                r.status_text(),
                r.id
            ));
        }
    }
    for n in notes {
        println!("{n}");
    }
    Ok(())
}

/// `m365sync logs` options.
#[derive(Args)]
pub struct LogsArgs {
    /// Only this org's tenants.
    #[arg(long)]
    org: Option<String>,
    /// Only this tenant (needs --org).
    #[arg(long, requires = "org")]
    tenant: Option<String>,
    /// Only errors.
    #[arg(long)]
    errors_only: bool,
    /// Only this run.
    #[arg(long)]
    run: Option<i64>,
    /// Only lines newer than this age: 30d, 12h, 45m.
    #[arg(long)]
    since: Option<String>,
    /// Show at most this many lines.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print JSON instead of lines.
    #[arg(long)]
    json: bool,
}

/// `m365sync logs`: run log lines, newest first (E10, T3).
pub async fn logs(config: Option<&Path>, a: LogsArgs) -> anyhow::Result<()> {
    let (_, store) = open(config).await?;
    let mut filter = LogFilter {
        errors_only: a.errors_only,
        run_id: a.run,
        limit: a.limit,
        since_ms: a
            .since
            .as_deref()
            .map(parse_age)
            .transpose()?
            .map(|age| now_ms() - age),
        ..LogFilter::default()
    };
    match (&a.org, &a.tenant) {
        (Some(org), Some(t)) => filter.tenant_id = Some(store.tenant(org, t).await?.id),
        (Some(org), None) => filter.org_id = Some(store.org_id(org).await?),
        _ => {}
    }
    let lines = store.logs(&filter).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    for l in lines {
        println!(
            "{} run {:<5} {}/{} {:<7} {}",
            when(l.at_ms),
            l.run_id,
            l.org,
            l.tenant,
            l.level.to_uppercase(),
            l.message
        );
    }
    Ok(())
}

/// `m365sync retry` options.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["run", "errors"]))]
pub struct RetryArgs {
    /// The run to retry: its failed records and failed mailboxes are synced again now.
    run: Option<i64>,
    /// Retry every error of every tenant since --since.
    #[arg(long)]
    errors: bool,
    /// With --errors: how far back, like 30d.
    #[arg(long, default_value = "30d")]
    since: String,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

/// `m365sync retry`: syncs the mailboxes with errors again, in this process, under leases.
pub async fn retry(config: Option<&Path>, a: RetryArgs) -> anyhow::Result<()> {
    let (cfg, store) = open(config).await?;
    let mut plans = Vec::new();
    match a.run {
        Some(run_id) => {
            let run = store.run(run_id).await?;
            let ids = store
                .mailboxes_to_retry(run.tenant_id, Some(run_id), 0)
                .await?;
            plans.push((run.tenant_id, ids, format!("retry of run {run_id}")));
        }
        None => {
            let since = now_ms() - parse_age(&a.since)?;
            for t in store.tenants(None).await? {
                let ids = store.mailboxes_to_retry(t.id, None, since).await?;
                plans.push((t.id, ids, format!("retry of errors since {}", a.since)));
            }
        }
    }
    plans.retain(|(_, ids, _)| !ids.is_empty());
    if plans.is_empty() {
        println!("nothing to retry");
        return Ok(());
    }
    let env = super::admin::sync_env(&cfg, store.clone())?;
    let mut reports = Vec::new();
    let mut failures = 0;
    for (tenant_id, ids, trigger) in plans {
        let tenant = store.tenant_by_id(tenant_id).await?;
        let mut mailboxes = Vec::new();
        for id in ids {
            mailboxes.push(store.mailbox_by_id(id).await?);
        }
        let report = run_mailboxes(&env, &tenant, mailboxes, &trigger).await?;
        failures += report.mailbox_errors.len() + report.failed as usize;
        if !a.json {
            println!(
                "{}/{}: run {}: {} processed, {} synced, {} failed records, {} mailbox error(s)",
                tenant.org,
                tenant.name,
                report.run_id,
                report.processed,
                report.synced,
                report.failed,
                report.mailbox_errors.len()
            );
            for (m, e) in &report.mailbox_errors {
                println!("  {m}: {e}");
            }
            for (m, why) in &report.skipped {
                println!("  {m}: skipped: {why}");
            }
            for (m, run) in &report.resumed {
                println!(
                    "  {m}: resumed: run {run} owed it work nobody was doing (its process was killed or stopped); this run finished it for run {run}"
                );
            }
        }
        reports.push(report);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if failures > 0 {
        return Err(crate::Partial(format!(
            "{failures} error(s) remain; `m365sync logs --errors-only` shows them"
        ))
        .into());
    }
    Ok(())
}
