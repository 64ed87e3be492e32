//! `m365sync match` (the matching job on demand, its benchmark) and `m365sync review` (a user's
//! review list of unmatched emails and its mass mapping action), E8.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use m365sync::config::ServiceConfig;
use m365sync::matching::job::run_org_waiting;
use m365sync::service::default_holder;
use m365sync_store::review::{ReviewFilter, ReviewScope};
use m365sync_store::Store;

/// `m365sync match ...`
#[derive(Subcommand)]
pub enum MatchCommand {
    /// Match the org's stored emails not matched yet (and those a contact change affects) now.
    /// The service also runs this after every sync run.
    Run {
        /// The org (the firm) whose emails are matched, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// Accepted for clarity; the job covers every tenant of the org (contacts are per org).
        #[arg(long)]
        tenant: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The records the matching plugin failed on: each with its owner, the plugin version
    /// that failed it and the error. They are kept out of review lists and retried by every
    /// later job (after a fixed plugin is installed, the next `match run` retries them).
    Failures {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`.
        #[arg(long)]
        org: String,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many, most recently failed first.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// Print JSON (`failures` and `total`) instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Measure the matching job: generated emails against generated contacts in a scratch
    /// SQLite (or `--database-url`) store, then the cost of a re-match after one new contact.
    Bench {
        /// Generated emails to match.
        #[arg(long, default_value_t = 1_000_000)]
        emails: usize,
        /// Generated contacts to match them against.
        #[arg(long, default_value_t = 100_000)]
        contacts: usize,
        /// Database to fill (default: a fresh SQLite file in a temporary directory).
        #[arg(long)]
        database_url: Option<String>,
        /// Print the report as JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
}

/// `m365sync review ...`
#[derive(Subcommand)]
pub enum ReviewCommand {
    /// A user's unmatched emails, newest first.
    List {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The CRM user (their email address).
        #[arg(long)]
        user: String,
        /// Only mail sent on or after this date (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Only mail sent before this date (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
        /// Only senders of this domain.
        #[arg(long)]
        domain: Option<String>,
        /// At most this many emails (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Map emails of a user's review list to a contact (the mass action).
    Map {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The CRM user whose review list it is (their email address).
        #[arg(long)]
        user: String,
        /// The contact's id (`m365sync contact list`).
        #[arg(long)]
        contact: i64,
        /// Also add each email's sender to the contact as a contact-point email, so their
        /// future mail matches by itself.
        #[arg(long)]
        add_address: bool,
        /// The email ids (from `review list`).
        #[arg(required = true)]
        emails: Vec<i64>,
    },
}

async fn open(config: Option<&Path>) -> anyhow::Result<(ServiceConfig, Store)> {
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    Ok((cfg, store))
}

/// Parses `YYYY-MM-DD` as midnight UTC, in epoch ms.
fn day_ms(s: &str) -> anyhow::Result<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("'{s}' is not a date like 2026-11-01"))?;
    Ok(d.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis())
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

pub async fn run_match(config: Option<&Path>, cmd: MatchCommand) -> anyhow::Result<()> {
    match cmd {
        MatchCommand::Run { org, tenant, json } => {
            let (cfg, store) = open(config).await?;
            if let Some(t) = &tenant {
                store.tenant(&org, t).await?;
            }
            let env = super::admin::sync_env(&cfg, store)?;
            let report =
                run_org_waiting(&env, &org, &default_holder(), Duration::from_secs(120)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "org {org}: {} records matched in {} ms: {} linked to contacts ({} links), {} unmatched (review lists), {} failed (retried next time); {} changed addresses sent {} records back",
                    report.records,
                    report.millis,
                    report.matched,
                    report.links,
                    report.unmatched,
                    report.failed,
                    report.changed_addresses,
                    report.rematched_records
                );
                for w in &report.warnings {
                    println!("warning: {w}");
                }
            }
            Ok(())
        }
        MatchCommand::Failures {
            org,
            tenant,
            limit,
            json,
        } => {
            let (_, store) = open(config).await?;
            let org_id = store.org_id(&org).await?;
            let tenant_id = match &tenant {
                Some(t) => Some(store.tenant(&org, t).await?.id),
                None => None,
            };
            let (failures, total) = store.match_failure_list(org_id, tenant_id, limit).await?;
            if json {
                let out = serde_json::json!({ "failures": failures, "total": total });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            if failures.is_empty() {
                println!("org {org}: the matching plugin fails on no record");
                return Ok(());
            }
            for f in &failures {
                println!(
                    "{org}/{} {} {} of {} {:?}",
                    f.tenant, f.kind, f.record_id, f.owner, f.subject
                );
                println!(
                    "    by {}, {} attempt(s), first {} last {}: {}",
                    f.plugin,
                    f.attempts,
                    when(f.first_ms),
                    when(f.last_ms),
                    f.error
                );
            }
            println!(
                "{} of {total} record(s); each is retried by the next `m365sync match run` (the service runs it after every sync run)",
                failures.len()
            );
            Ok(())
        }
        MatchCommand::Bench {
            emails,
            contacts,
            database_url,
            json,
        } => {
            let report = m365sync_bench::match_job::run(emails, contacts, database_url).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.markdown());
            }
            Ok(())
        }
    }
}

pub async fn run_review(config: Option<&Path>, cmd: ReviewCommand) -> anyhow::Result<()> {
    let (_, store) = open(config).await?;
    match cmd {
        ReviewCommand::List {
            org,
            tenant,
            user,
            since,
            until,
            domain,
            limit,
            json,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let user_id = store.user_id(t.id, &user).await?.with_context(|| {
                format!("no user {user} in tenant {tenant}; `m365sync user list` shows them")
            })?;
            let filter = ReviewFilter {
                since_ms: since.as_deref().map(day_ms).transpose()?,
                until_ms: until.as_deref().map(day_ms).transpose()?,
                sender_domain: domain,
                before: None,
                limit,
            };
            let items = store.review_list(user_id, &filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
            }
            println!("{:<8} {:<17} {:<32} SUBJECT", "EMAIL", "SENT", "SENDER");
            for i in items {
                println!(
                    "{:<8} {:<17} {:<32} {}",
                    i.email_id,
                    when(i.sent_ms),
                    i.sender,
                    i.subject
                );
            }
            Ok(())
        }
        ReviewCommand::Map {
            org,
            tenant,
            user,
            contact,
            add_address,
            emails,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let user_id = store.user_id(t.id, &user).await?.with_context(|| {
                format!("no user {user} in tenant {tenant}; `m365sync user list` shows them")
            })?;
            let report = store
                .map_to_contact(
                    ReviewScope {
                        org_id: t.org_id,
                        user_id: Some(user_id),
                    },
                    &emails,
                    contact,
                    add_address,
                    &user,
                )
                .await?;
            println!(
                "{} emails mapped to contact {contact} ({} already were)",
                report.mapped, report.already
            );
            for a in &report.added_addresses {
                println!(
                    "added {a} to the contact; its other mail matches at the next matching job"
                );
            }
            for (a, why) in &report.refused_addresses {
                println!("not added {a}: {why}");
            }
            Ok(())
        }
    }
}

/// `m365sync contact timeline ID`: the contact's emails (and events), newest first; a message
/// received in several tenants of the org is one line, naming every tenant and mailbox.
pub async fn timeline(
    config: Option<&Path>,
    org: &str,
    contact: i64,
    limit: i64,
    before: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let (_, store) = open(config).await?;
    let org_id = store.org_id(org).await?;
    let before = before
        .map(|b| {
            b.split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .with_context(|| format!("'{b}' is not a page cursor like 1730000000000:42 (the `next` of the previous page)"))
        })
        .transpose()?;
    let items = store.timeline(org_id, contact, before, limit).await?;
    if json {
        let next = items
            .last()
            .map(|i| format!("{}:{}", i.occurred_ms, i.record_id));
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "items": items, "next": next }))?
        );
        return Ok(());
    }
    println!(
        "{:<6} {:<8} {:<17} {:<32} {:<15} {:<40} SEEN IN (TENANT/MAILBOX)",
        "KIND", "ID", "WHEN", "FROM", "LINKED BY", "SUBJECT"
    );
    for i in &items {
        // One line per activity: a message the org's tenants each stored is shown once, with
        // every tenant and mailbox it reached.
        let seen: Vec<String> = i
            .seen_in
            .iter()
            .map(|s| format!("{}/{}", s.tenant, s.mailbox))
            .collect();
        println!(
            "{:<6} {:<8} {:<17} {:<32} {:<15} {:<40} {}",
            serde_json::to_value(i.kind)?.as_str().unwrap_or(""),
            i.record_id,
            when(i.occurred_ms),
            i.from,
            i.field,
            i.subject,
            seen.join(", ")
        );
    }
    if let Some(last) = items.last() {
        if items.len() as i64 == limit {
            println!("more: --before {}:{}", last.occurred_ms, last.record_id);
        }
    }
    Ok(())
}
