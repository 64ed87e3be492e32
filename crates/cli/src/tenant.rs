//! `m365sync tenant ...`: add, list, enable, disable, test connectivity (E11), authorize a
//! delegated tenant (A2), and manage client secrets. Secrets are read from a file or an
//! environment variable, never from the command line (it would land in shell history), and
//! are never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use m365sync::admin::connectivity::{test_connectivity, Report, Status};
use m365sync::admin::tenants::{declare_tenant, Declaration, DEFAULT_AUTHORITY, DEFAULT_GRAPH_URL};
use m365sync::credentials::{app_credentials, store_refresh_token};
use m365sync_graph::authorize::PendingAuthorization;
use m365sync_store::tenants::{AuthMode, SecretKind};

use super::admin::{open, open_with_http};

/// `m365sync tenant ...`
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Connect a Microsoft 365 tenant to an org (creating the org if needed). Syncing starts
    /// only after `m365sync activate`.
    Add {
        /// The org (the firm) the tenant belongs to; created if it does not exist yet.
        #[arg(long)]
        org: String,
        /// Our name for the tenant (unique within the org).
        #[arg(long)]
        name: String,
        /// The Entra tenant id (GUID) or a verified domain.
        #[arg(long)]
        ms_tenant: String,
        /// The app registration's application (client) id.
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        secret: SecretSource,
        /// A name for the secret, to tell it apart when rotating (e.g. its expiry month).
        #[arg(long, default_value = "initial")]
        secret_label: String,
        /// The identity platform.
        #[arg(long, default_value = DEFAULT_AUTHORITY)]
        authority: String,
        /// Microsoft Graph's base URL.
        #[arg(long, default_value = DEFAULT_GRAPH_URL)]
        graph_url: String,
        /// Authenticate as an admin account (delegated: authorization code + refresh token)
        /// instead of app-only client credentials; run `tenant authorize` next.
        #[arg(long)]
        delegated: bool,
    },
    /// Show a tenant's settings, or change the ones given: each change is validated with the
    /// rest and written alone (the settings not named keep their value).
    #[command(
        after_help = "Examples:\n  m365sync tenant settings --org acme --tenant main\n  m365sync tenant settings --org acme --tenant main --cadence 30 --excluded-folders junkemail,deleteditems,Inbox/Personal\n  m365sync tenant settings --org acme --tenant main --commencement 2026-01-01 --attachment-cap 10MB"
    )]
    Settings(SettingsArgs),
    /// List tenants (all orgs, or one with --org).
    List {
        /// Only this org's tenants.
        #[arg(long)]
        org: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Resume a disabled tenant's sync: it syncs on its schedule again.
    Enable {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
    },
    /// Stop a tenant's sync; its other settings, mailboxes and data stay, and other tenants
    /// go on.
    Disable {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
    },
    /// Test connectivity: a token, a directory read and one mailbox read, each failure
    /// named (wrong or expired secret, unknown app or tenant, missing permission, mailbox
    /// outside the access policy). Exits non-zero when a step fails.
    Test {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The mailbox to read (default: the tenant's first enabled mailbox).
        #[arg(long)]
        mailbox: Option<String>,
        /// Print the checklist as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Authorize a delegated tenant: prints an address to open in a browser, where an
    /// admin signs in and consents; the refresh token is stored encrypted. The app must have
    /// the redirect URI http://127.0.0.1/callback (any port).
    Authorize {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// Only print the address (for a browser on another machine; paste the address the
        /// browser ends on back here).
        #[arg(long)]
        no_browser: bool,
        /// The admin account to sign in as.
        #[arg(long)]
        login_hint: Option<String>,
        /// How long to wait for the browser.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Client secrets of a tenant's app (several may be valid at once, so a secret can be
    /// rotated without downtime).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
}

/// `m365sync tenant secret ...`
#[derive(Subcommand)]
pub enum SecretCommand {
    /// Store a new client secret (tried before older ones).
    Add {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// A name for the secret (e.g. its expiry month).
        #[arg(long)]
        label: String,
        #[command(flatten)]
        secret: SecretSource,
    },
    /// List the labels and dates of the stored secrets (never their values).
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
    /// Remove a secret by label (after rotating it out in Entra).
    Remove {
        /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The label of the secret to remove (`tenant secret list` shows them).
        #[arg(long)]
        label: String,
    },
}

/// Where a client secret comes from: never the command line itself.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct SecretSource {
    /// Read the client secret from this file (surrounding whitespace is ignored).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Read the client secret from this environment variable.
    #[arg(long)]
    secret_env: Option<String>,
}

impl SecretSource {
    fn read(&self) -> anyhow::Result<String> {
        let value = match (&self.secret_file, &self.secret_env) {
            (Some(f), _) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the secret file {}", f.display()))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!("the environment variable {var} (--secret-env) is not set")
            })?,
            (None, None) => anyhow::bail!("give --secret-file or --secret-env"),
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            anyhow::bail!(
                "the client secret is empty; copy the secret's value (not its id) from Entra"
            );
        }
        Ok(value)
    }
}

/// `m365sync tenant settings`: the tenant, and the settings to change.
#[derive(Args)]
pub struct SettingsArgs {
    /// The org (the firm) the tenant belongs to, as declared with `m365sync apply` or `tenant add`.
    #[arg(long)]
    org: String,
    /// The tenant's name within the org.
    #[arg(long)]
    tenant: String,
    /// Minutes between runs: 15 (recommended) to 10080 (weekly).
    #[arg(long)]
    cadence: Option<i64>,
    /// The oldest mail to sync (YYYY-MM-DD, UTC), or `none` for six months before activation.
    #[arg(long)]
    commencement: Option<String>,
    /// The firm's own email domains, comma-separated (addresses there count as internal); an
    /// empty value clears them.
    #[arg(long)]
    internal_domains: Option<String>,
    /// Skip an email whose every address is internal (in --internal-domains): on or off.
    #[arg(long, value_parser = ["on", "off"])]
    skip_internal_only: Option<String>,
    /// The attachment size cap: bytes, or with KB/MB (at most 128MB); larger attachments are
    /// recorded as skipped and never fetched.
    #[arg(long)]
    attachment_cap: Option<String>,
    /// The folders to sync with their subfolders, comma-separated: `*` for all, well-known
    /// names (inbox, sentitems, archive) or paths (Inbox/Clients).
    #[arg(long)]
    folders: Option<String>,
    /// The folders never synced with their subfolders, comma-separated, by well-known name or
    /// path (default: junkemail, deleteditems, drafts, outbox, conversationhistory,
    /// syncissues); an empty value excludes none.
    #[arg(long)]
    excluded_folders: Option<String>,
    /// Messages per Graph page (1 to 1000).
    #[arg(long)]
    page_size: Option<i64>,
    /// Graph requests in flight per tenant (1 to 256).
    #[arg(long)]
    max_concurrency: Option<i64>,
    /// Failures after which a record is parked (1 to 100).
    #[arg(long)]
    failure_attempts: Option<i64>,
    /// Graph requests per mailbox per --mailbox-budget-secs the client keeps to (10 to
    /// 1000000; Outlook allows 10000 per 600 seconds, the default).
    #[arg(long)]
    mailbox_budget: Option<i64>,
    /// The window of --mailbox-budget, seconds (Outlook's: 600).
    #[arg(long)]
    mailbox_budget_secs: Option<i64>,
    /// Graph change notifications (issue 17): on (the default) wakes the sync within seconds
    /// of a change; off leaves the cadence alone and deletes the tenant's subscriptions.
    #[arg(long, value_parser = ["on", "off"])]
    notifications: Option<String>,
    /// Print the settings as JSON.
    #[arg(long)]
    json: bool,
}

fn list_arg(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// A size such as `5242880`, `512KB` or `5MB`.
fn size_arg(s: &str) -> anyhow::Result<i64> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("MB") {
        (n, 1024 * 1024)
    } else if let Some(n) = t.strip_suffix("KB") {
        (n, 1024)
    } else {
        (t.strip_suffix('B').unwrap_or(&t), 1)
    };
    let n: i64 = num.trim().parse().with_context(|| {
        format!("--attachment-cap {s:?} is not a size: give bytes, or a number with KB or MB")
    })?;
    Ok(n * mult)
}

async fn settings(config: Option<&Path>, a: SettingsArgs) -> anyhow::Result<()> {
    use m365sync::admin::settings::{change_settings, SettingsChange};
    let store = open(config).await?;
    let t = store.tenant(&a.org, &a.tenant).await?;
    let commencement_ms = match a.commencement.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(d) => {
            let day = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").with_context(|| {
                format!("--commencement {d:?} is not a date: give YYYY-MM-DD, or none")
            })?;
            Some(Some(
                day.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis(),
            ))
        }
    };
    let change = SettingsChange {
        cadence_minutes: a.cadence,
        commencement_ms,
        internal_domains: a.internal_domains.as_deref().map(list_arg),
        skip_internal_only: a.skip_internal_only.as_deref().map(|v| v == "on"),
        attachment_cap_bytes: a.attachment_cap.as_deref().map(size_arg).transpose()?,
        folders: a.folders.as_deref().map(list_arg),
        excluded_folders: a.excluded_folders.as_deref().map(list_arg),
        page_size: a.page_size,
        max_concurrency: a.max_concurrency,
        failure_attempts: a.failure_attempts,
        mailbox_budget: a.mailbox_budget,
        mailbox_budget_secs: a.mailbox_budget_secs,
        notifications: a.notifications.as_deref().map(|v| v == "on"),
    };
    let s = if change.is_empty() {
        store.settings(t.id).await?
    } else {
        change_settings(&store, &t, &change).await?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    if !change.is_empty() {
        println!("changed the settings of tenant {}/{}:", a.org, a.tenant);
    }
    let when = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "six months before activation".into())
    };
    println!("cadence_minutes       {}", s.cadence_minutes);
    println!("commencement          {}", when(s.commencement_ms));
    println!("internal_domains      {}", s.internal_domains.join(", "));
    println!(
        "skip_internal_only    {}",
        if s.skip_internal_only { "on" } else { "off" }
    );
    println!("attachment_cap_bytes  {}", s.attachment_cap_bytes);
    println!("folders               {}", s.folders.join(", "));
    println!("excluded_folders      {}", s.excluded_folders.join(", "));
    println!("page_size             {}", s.page_size);
    println!("max_concurrency       {}", s.max_concurrency);
    println!("failure_attempts      {}", s.failure_attempts);
    println!(
        "mailbox_budget        {} requests per {} s",
        s.mailbox_budget, s.mailbox_budget_secs
    );
    println!(
        "notifications         {}",
        if s.notifications { "on" } else { "off" }
    );
    Ok(())
}

/// Runs `m365sync tenant ...`.
pub async fn run(config: Option<&Path>, cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Add {
            org,
            name,
            ms_tenant,
            client_id,
            secret,
            secret_label,
            authority,
            graph_url,
            delegated,
        } => {
            let value = secret.read()?;
            let (store, http) = open_with_http(config).await?;
            let done = declare_tenant(
                &store,
                http,
                &Declaration {
                    org: org.clone(),
                    name: name.clone(),
                    ms_tenant,
                    client_id,
                    secret: value,
                    secret_label: secret_label.clone(),
                    authority,
                    graph_url,
                    delegated,
                },
            )
            .await?;
            if let Some(d) = &done.internal_domains {
                println!(
                    "internal domains set from the tenant's verified domains: {}",
                    d.join(", ")
                );
            }
            if let Some(note) = &done.internal_domains_note {
                println!("note: {note}");
            }
            println!(
                "added tenant {name} to org {org} ({}); client secret stored encrypted as '{secret_label}'\nnext: {}",
                if delegated { "delegated" } else { "app-only" },
                done.next
            );
        }
        TenantCommand::Settings(args) => settings(config, args).await?,
        TenantCommand::List { org, json } => {
            let store = open(config).await?;
            if let Some(org) = &org {
                // A mistyped org is an error, not an empty list that looks like "no tenants".
                store.org_id(org).await?;
            }
            let tenants = store.tenants(org.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
            } else {
                println!(
                    "{:<16} {:<16} {:<36} {:<9} {:<8} {:<10} CLIENT ID",
                    "ORG", "TENANT", "MICROSOFT TENANT", "AUTH", "ENABLED", "ACTIVATED"
                );
                for t in tenants {
                    println!(
                        "{:<16} {:<16} {:<36} {:<9} {:<8} {:<10} {}",
                        t.org,
                        t.name,
                        t.ms_tenant,
                        match t.auth_mode {
                            AuthMode::App => "app",
                            AuthMode::Delegated => "delegated",
                        },
                        if t.enabled { "yes" } else { "no" },
                        t.activated_ms.map(date).unwrap_or_else(|| "no".into()),
                        t.client_id
                    );
                }
            }
        }
        TenantCommand::Enable { org, tenant } => set_enabled(config, &org, &tenant, true).await?,
        TenantCommand::Disable { org, tenant } => set_enabled(config, &org, &tenant, false).await?,
        TenantCommand::Test {
            org,
            tenant,
            mailbox,
            json,
        } => {
            let (store, http) = open_with_http(config).await?;
            let t = store.tenant(&org, &tenant).await?;
            let report = test_connectivity(&store, &t, http, mailbox.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_checklist(&report);
            }
            if let Some(f) = report.failure() {
                anyhow::bail!("tenant {org}/{tenant}: {f}");
            }
        }
        TenantCommand::Authorize {
            org,
            tenant,
            no_browser,
            login_hint,
            timeout_secs,
        } => authorize(config, &org, &tenant, no_browser, login_hint, timeout_secs).await?,
        TenantCommand::Secret { command } => secret(config, command).await?,
    }
    Ok(())
}

/// `tenant enable` / `tenant disable`.
async fn set_enabled(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    enabled: bool,
) -> anyhow::Result<()> {
    let store = open(config).await?;
    let t = store.tenant(org, tenant).await?;
    store.set_tenant_enabled(t.id, enabled).await?;
    println!(
        "tenant {org}/{tenant} {}",
        if enabled {
            "enabled: it syncs on its schedule again"
        } else {
            "disabled: its sync stops; other tenants go on"
        }
    );
    Ok(())
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn print_checklist(report: &Report) {
    println!(
        "connectivity of tenant {} ({})",
        report.tenant,
        match report.auth_mode {
            AuthMode::App => "app-only",
            AuthMode::Delegated => "delegated",
        }
    );
    for s in &report.steps {
        let mark = match s.status {
            Status::Passed => "[ok]  ",
            Status::Failed => "[FAIL]",
            Status::Skipped => "[skip]",
        };
        println!("  {mark} {:<10} {}", s.name, s.detail);
        if let Some(f) = &s.failure {
            println!("         {f}");
        }
    }
    println!(
        "{}",
        if report.ok {
            "all checks passed"
        } else {
            "connectivity test failed"
        }
    );
}

async fn authorize(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    no_browser: bool,
    login_hint: Option<String>,
    timeout_secs: u64,
) -> anyhow::Result<()> {
    let (store, http) = open_with_http(config).await?;
    let t = store.tenant(org, tenant).await?;
    if t.auth_mode != AuthMode::Delegated {
        anyhow::bail!("tenant {org}/{tenant} is app-only (client credentials) and needs no authorization; `m365sync tenant test` checks it");
    }
    let app = app_credentials(&store, &t).await?;
    let pending = PendingAuthorization::start(app, login_hint.as_deref()).await?;
    println!("Open this address in a browser, sign in as an admin of the tenant and consent:\n");
    println!("{}\n", pending.url());
    println!(
        "Waiting for the browser's redirect to {} (up to {timeout_secs} s).\nIf the browser runs on another machine, paste the address it ends on here and press Enter.",
        pending.redirect_uri()
    );
    if !no_browser {
        open_browser(pending.url());
    }
    // Standard input is read on a plain thread: a blocked read must never hold up exit.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if tx.send(std::mem::take(&mut line)).is_err() {
                break;
            }
        }
    });
    let done = pending
        .finish(&http, Some(rx), Duration::from_secs(timeout_secs))
        .await?;
    store_refresh_token(&store, t.id, &done.refresh_token).await?;
    println!(
        "authorized tenant {org}/{tenant}; refresh token stored encrypted{}\nnext: m365sync tenant test --org {org} --tenant {tenant}",
        done.scope
            .map(|s| format!(" (granted: {s})"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Best effort: the address is printed either way.
fn open_browser(url: &str) {
    let cmd = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(cmd)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

async fn secret(config: Option<&Path>, cmd: SecretCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        SecretCommand::Add {
            org,
            tenant,
            label,
            secret,
        } => {
            let value = secret.read()?;
            let t = store.tenant(&org, &tenant).await?;
            store
                .put_secret(t.id, SecretKind::ClientSecret, &label, &value)
                .await?;
            println!("stored client secret '{label}' of tenant {org}/{tenant} (encrypted); it is tried first");
        }
        SecretCommand::List { org, tenant, json } => {
            let t = store.tenant(&org, &tenant).await?;
            let labels = store.secret_labels(t.id, SecretKind::ClientSecret).await?;
            if json {
                let v: Vec<_> = labels
                    .iter()
                    .map(|(l, ms)| serde_json::json!({"label": l, "created_ms": ms}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{:<24} ADDED", "LABEL");
                for (l, ms) in labels {
                    println!("{l:<24} {}", date(ms));
                }
            }
        }
        SecretCommand::Remove { org, tenant, label } => {
            let t = store.tenant(&org, &tenant).await?;
            if !store
                .remove_secret(t.id, SecretKind::ClientSecret, &label)
                .await?
            {
                anyhow::bail!("tenant {org}/{tenant} has no client secret labelled '{label}'; `m365sync tenant secret list` shows them");
            }
            println!("removed client secret '{label}' of tenant {org}/{tenant}");
        }
    }
    Ok(())
}
