//! `m365sync mailbox ...` (import from Entra's CSV, add, list with health, enable, disable) and
//! `m365sync user ...` (link a shared mailbox to its nominated user, list users).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use m365sync::admin::import::{add_mailbox, import_csv};
use m365sync::admin::mailboxes::set_mailbox_enabled;
use m365sync_store::mailboxes::MailboxKind;

use super::admin::{open, open_with_http};

/// `m365sync mailbox ...`
#[derive(Subcommand)]
pub enum MailboxCommand {
    /// Import users and their mailboxes from the CSV of Entra ID's "Download users".
    /// Disabled accounts and guests are skipped with a note; bad rows are reported by line and
    /// the rest is imported; importing again changes nothing. Exits non-zero when a row failed.
    Import {
        /// The downloaded CSV file.
        #[arg(long)]
        csv: PathBuf,
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Do not look addresses up in the directory (addresses serve as Graph ids; groups
        /// cannot be told apart).
        #[arg(long)]
        offline: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add one mailbox: a person's own, or a shared one linked to its nominated user.
    Add {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The mailbox's address.
        #[arg(long)]
        address: String,
        /// A shared mailbox (needs --user).
        #[arg(long, requires = "user")]
        shared: bool,
        /// The CRM user it belongs to (default: a user with the mailbox's own address).
        #[arg(long)]
        user: Option<String>,
        /// Do not look the address up in the directory.
        #[arg(long)]
        offline: bool,
    },
    /// List a tenant's mailboxes with their health (its state and detail, consecutive
    /// failures, backoff).
    List {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A tenant's change-notification subscriptions (issue 17), per mailbox: mail and, for a
    /// user's primary mailbox with Sync Events on, events; their state, expiry, last
    /// notification and last lifecycle event.
    Subscriptions {
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
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Resume a mailbox's sync and clear its failure count.
    Enable {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The mailbox's address.
        #[arg(long)]
        address: String,
    },
    /// Stop syncing one mailbox (its stored mail stays).
    Disable {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The mailbox's address.
        #[arg(long)]
        address: String,
    },
    /// Compare each synced folder with Graph, message by message: Graph's count since the
    /// commencement date against what is stored (kept, excluded or failed), the differences
    /// listed by id. Each folder is brought up to date first, and a difference is confirmed by
    /// one more delta round before it is reported. Exits 1 when a folder still differs.
    #[command(
        after_help = "Examples:\n  m365sync mailbox verify --org acme --tenant main\n  m365sync mailbox verify --org acme --tenant main --mailbox alice@contoso.example --repair"
    )]
    Verify {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Only this mailbox (its address); default: every enabled mailbox of the tenant.
        #[arg(long)]
        mailbox: Option<String>,
        /// Read a folder that differs again at once from its first URL (a full round, its
        /// listing backfill and its reconcile), then check it again. Without it, such a folder
        /// is read again at its next run.
        #[arg(long)]
        repair: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `m365sync user ...`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Link a mailbox (typically a shared one) to a CRM user of the same tenant: its mail is
    /// synced as that user's.
    Link {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The CRM user's email.
        #[arg(long)]
        user: String,
        /// The mailbox's address.
        #[arg(long)]
        mailbox: String,
    },
    /// List a tenant's CRM users and their mailboxes.
    List {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A user's Sync Emails switch: off, none of the user's mailboxes has its mail
    /// synced (mail already stored stays; the calendar follows Sync Events alone).
    SyncEmails {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The CRM user's email.
        #[arg(long)]
        user: String,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Runs `m365sync mailbox ...`.
pub async fn run(config: Option<&Path>, cmd: MailboxCommand) -> anyhow::Result<()> {
    match cmd {
        MailboxCommand::Import {
            csv,
            org,
            tenant,
            offline,
            json,
        } => {
            let (store, http) = open_with_http(config).await?;
            let t = store.tenant(&org, &tenant).await?;
            let report = import_csv(&store, &t, &csv, (!offline).then_some(http)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                if let Some(note) = &report.directory_note {
                    println!("note: {note}");
                }
                for s in &report.skipped {
                    println!("{}:{}: skipped {}: {}", report.file, s.line, s.who, s.note);
                }
                for e in &report.errors {
                    println!("{}:{}: error: {}", report.file, e.line, e.message);
                }
                println!(
                    "imported {} into tenant {org}/{tenant}: {} new, {} updated, {} unchanged, {} skipped, {} error(s)",
                    report.file,
                    report.created.len(),
                    report.updated.len(),
                    report.unchanged.len(),
                    report.skipped.len(),
                    report.errors.len()
                );
            }
            if !report.errors.is_empty() {
                anyhow::bail!(
                    "{} row(s) of {} could not be imported (see their lines above); fix them and import again: the other rows are stored and will not change",
                    report.errors.len(),
                    report.file
                );
            }
        }
        MailboxCommand::Add {
            org,
            tenant,
            address,
            shared,
            user,
            offline,
        } => {
            let (store, http) = open_with_http(config).await?;
            let t = store.tenant(&org, &tenant).await?;
            let kind = if shared {
                MailboxKind::Shared
            } else {
                MailboxKind::Person
            };
            let added = add_mailbox(
                &store,
                &t,
                &address,
                kind,
                user.as_deref(),
                (!offline).then_some(http),
            )
            .await?;
            if let Some(note) = &added.directory_note {
                println!("note: {note}");
            }
            println!(
                "added {} mailbox {} to tenant {org}/{tenant}, linked to user {}",
                if shared { "shared" } else { "the" },
                added.address,
                added.user
            );
        }
        MailboxCommand::List { org, tenant, json } => {
            let store = open(config).await?;
            let t = store.tenant(&org, &tenant).await?;
            let mailboxes = store.mailboxes(t.id).await?;
            let users: std::collections::HashMap<i64, String> =
                store.users(t.id).await?.into_iter().collect();
            let mut subs: std::collections::HashMap<i64, Vec<_>> = Default::default();
            for s in store.tenant_subscriptions(t.id).await? {
                subs.entry(s.mailbox_id).or_default().push(s);
            }
            // Its subscriptions in a word each: `mail:active events:failing`.
            let notify = |id: i64| {
                subs.get(&id)
                    .map(|v| {
                        v.iter()
                            .map(|s| format!("{}:{}", s.resource.as_str(), s.status))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| "-".into())
            };
            // A failing subscription leaves the mailbox healthy but slow to capture: say so
            // beside its health, with Graph's reason.
            let capture_note = |id: i64| {
                subs.get(&id)
                    .into_iter()
                    .flatten()
                    .filter(|s| s.status == "failing")
                    .map(|s| {
                        format!(
                            "{} notifications failing, polled at the cadence: {}",
                            s.resource.as_str(),
                            s.detail.as_deref().unwrap_or("no reason given")
                        )
                    })
                    .collect::<Vec<_>>()
            };
            if json {
                let v: Vec<_> = mailboxes
                    .iter()
                    .map(|m| {
                        let mut v = serde_json::to_value(m).expect("mailbox serialises");
                        v["user"] = m.user_id.and_then(|u| users.get(&u)).cloned().into();
                        v["subscriptions"] =
                            serde_json::to_value(subs.get(&m.id)).expect("subscriptions serialise");
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<32} {:<7} {:<8} {:<28} {:<12} {:<9} {:<17} {:<28} DETAIL",
                    "ADDRESS",
                    "KIND",
                    "ENABLED",
                    "USER",
                    "HEALTH",
                    "FAILURES",
                    "BACKOFF UNTIL",
                    "NOTIFICATIONS"
                );
                for m in mailboxes {
                    println!(
                        "{:<32} {:<7} {:<8} {:<28} {:<12} {:<9} {:<17} {:<28} {}",
                        m.address,
                        match m.kind {
                            MailboxKind::Person => "person",
                            MailboxKind::Shared => "shared",
                        },
                        if m.enabled { "yes" } else { "no" },
                        m.user_id
                            .and_then(|u| users.get(&u))
                            .map(String::as_str)
                            .unwrap_or("-"),
                        m.health,
                        m.consecutive_failures,
                        when(m.backoff_until_ms),
                        notify(m.id),
                        m.health_detail
                            .iter()
                            .cloned()
                            .chain(m.mail_backlog.as_ref().and_then(|b| b.words()))
                            .chain(capture_note(m.id))
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
        }
        MailboxCommand::Subscriptions {
            org,
            tenant,
            mailbox,
            json,
        } => subscriptions(config, &org, &tenant, mailbox.as_deref(), json).await?,
        MailboxCommand::Enable {
            org,
            tenant,
            address,
        } => set_enabled(config, &org, &tenant, &address, true).await?,
        MailboxCommand::Disable {
            org,
            tenant,
            address,
        } => set_enabled(config, &org, &tenant, &address, false).await?,
        MailboxCommand::Verify {
            org,
            tenant,
            mailbox,
            repair,
            json,
        } => verify(config, &org, &tenant, mailbox.as_deref(), repair, json).await?,
    }
    Ok(())
}

async fn subscriptions(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    mailbox: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let store = open(config).await?;
    let t = store.tenant(org, tenant).await?;
    let subs = match mailbox {
        Some(address) => {
            let m = store.mailbox_by_address(t.id, address).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no mailbox {address} in tenant {org}/{tenant}; `m365sync mailbox list --org {org} --tenant {tenant}` lists them"
                )
            })?;
            store.mailbox_subscriptions(m.id).await?
        }
        None => store.tenant_subscriptions(t.id).await?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&subs)?);
        return Ok(());
    }
    let settings = store.settings(t.id).await?;
    if !settings.notifications {
        println!(
            "notifications are off for tenant {org}/{tenant} (`m365sync tenant settings --notifications on` turns them on)"
        );
    }
    if subs.is_empty() {
        println!(
            "no subscriptions in tenant {org}/{tenant}: they are made by `m365sync serve` with notification_url set, for enabled mailboxes of an activated tenant"
        );
        return Ok(());
    }
    println!(
        "{:<32} {:<7} {:<9} {:<17} {:<17} {:>6} {:<17} {:<24} DETAIL",
        "MAILBOX",
        "KIND",
        "STATE",
        "EXPIRES",
        "LAST NOTIFIED",
        "COUNT",
        "RENEWED",
        "LAST LIFECYCLE"
    );
    for s in subs {
        let lifecycle = match (&s.last_lifecycle, s.last_lifecycle_ms) {
            (Some(e), at) => format!("{e} {}", when(at)),
            _ => "-".into(),
        };
        println!(
            "{:<32} {:<7} {:<9} {:<17} {:<17} {:>6} {:<17} {:<24} {}",
            s.address,
            s.resource.as_str(),
            s.status,
            when(s.expires_ms),
            when(s.last_notification_ms),
            s.notifications,
            when(s.renewed_ms),
            lifecycle,
            s.detail.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

async fn verify(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    mailbox: Option<&str>,
    repair: bool,
    json: bool,
) -> anyhow::Result<()> {
    let cfg = m365sync::config::ServiceConfig::load(config)?;
    let store = open(config).await?;
    let t = store.tenant(org, tenant).await?;
    let env = super::admin::sync_env(&cfg, store)?;
    let reports = m365sync::sync::run::verify_tenant(&env, &t, mailbox, repair).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            if let Some(e) = &r.error {
                println!("{}: not verified: {e}", r.mailbox);
                continue;
            }
            for f in &r.folders {
                let state = match (f.complete(), f.repaired) {
                    (true, true) => "repaired",
                    (true, false) => "ok",
                    (false, true) => "differs; read again at its next run",
                    (false, false) => "differs",
                };
                println!(
                    "{} {:<40} graph {:>7}  stored {:>7} (kept {}, excluded {}, failed {})  missing {}  extra {}  {state}",
                    r.mailbox,
                    f.path,
                    f.graph,
                    f.kept + f.excluded + f.failed,
                    f.kept,
                    f.excluded,
                    f.failed,
                    f.missing,
                    f.extra
                );
                for id in &f.missing_ids {
                    println!("    missing {id}");
                }
                for id in &f.extra_ids {
                    println!("    extra   {id}");
                }
            }
        }
    }
    let bad = reports.iter().filter(|r| !r.complete()).count();
    if bad > 0 {
        anyhow::bail!(
            "{bad} mailbox(es) of tenant {org}/{tenant} differ from Graph or could not be verified (see above){}",
            if repair { "" } else { "; `--repair` reads a differing folder again now" }
        );
    }
    Ok(())
}

async fn set_enabled(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    address: &str,
    enabled: bool,
) -> anyhow::Result<()> {
    let store = open(config).await?;
    let t = store.tenant(org, tenant).await?;
    let m = set_mailbox_enabled(&store, &t, address, enabled).await?;
    println!(
        "mailbox {} of tenant {org}/{tenant} {}",
        m.address,
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(())
}

/// Runs `m365sync user ...`.
pub async fn user(config: Option<&Path>, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        UserCommand::Link {
            org,
            tenant,
            user,
            mailbox,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let user_id = store.user_id(t.id, &user).await?.ok_or_else(|| {
                anyhow::anyhow!("tenant {org}/{tenant} has no user {user}; import or add their own mailbox first (`m365sync mailbox import` or `mailbox add`)")
            })?;
            let m = store.mailbox_by_address(t.id, &mailbox).await?.ok_or_else(|| {
                anyhow::anyhow!("tenant {org}/{tenant} has no mailbox {mailbox}; add it with `m365sync mailbox add --shared --user {user}`")
            })?;
            store.link_mailbox(m.id, user_id).await?;
            println!(
                "linked mailbox {} to user {} in tenant {org}/{tenant}",
                m.address,
                user.to_ascii_lowercase()
            );
        }
        UserCommand::SyncEmails {
            org,
            tenant,
            user,
            state,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let user_id = store.user_id(t.id, &user).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "tenant {org}/{tenant} has no user {user}; `m365sync user list` shows them"
                )
            })?;
            store.set_sync_emails(user_id, state == "on").await?;
            println!(
                "Sync Emails of user {} in tenant {org}/{tenant} is {state}{}",
                user.to_ascii_lowercase(),
                if state == "on" {
                    ": their mailboxes' folders go on from where they stopped at the next run"
                } else {
                    ": their mail is not synced from the next run on (stored mail stays)"
                }
            );
        }
        UserCommand::List { org, tenant, json } => {
            let t = store.tenant(&org, &tenant).await?;
            let mailboxes = store.mailboxes(t.id).await?;
            let rows: Vec<(String, Vec<String>)> = store
                .users(t.id)
                .await?
                .into_iter()
                .map(|(id, email)| {
                    let linked = mailboxes
                        .iter()
                        .filter(|m| m.user_id == Some(id))
                        .map(|m| m.address.clone())
                        .collect();
                    (email, linked)
                })
                .collect();
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(u, m)| serde_json::json!({"user": u, "mailboxes": m}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{:<32} MAILBOXES", "USER");
                for (u, m) in rows {
                    println!("{u:<32} {}", m.join(", "));
                }
            }
        }
    }
    Ok(())
}
