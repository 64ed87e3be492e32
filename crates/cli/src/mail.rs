//! `m365sync mail ...`: email sent from the CRM through a linked mailbox (E15), and its outbox.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use m365sync::config::ServiceConfig;
use m365sync::outbound::mail::{describe, enqueue, send_due, send_one, SendRequest, Sender};
use m365sync_store::mail_outbox::{MailAttachment, MailFilter, MailState, OutboxMail};
use m365sync_store::Store;

/// `m365sync mail ...`
#[derive(Subcommand)]
pub enum MailCommand {
    /// Send an email from a linked mailbox, exactly once: it is queued in the outbox under an
    /// idempotency key and sent at once (`--queue` leaves it to the service). The same
    /// --idempotency-key again answers the first email and sends nothing more. The sent copy
    /// is saved in the mailbox's Sent Items and, when it syncs back, is the same CRM email.
    #[command(
        after_help = "Examples:\n  m365sync mail send --org acme --tenant main --from alice@contoso.example \\\n      --to client@example.com --subject 'Your review' --body-file body.txt --attach report.pdf \\\n      --regarding contact:42 --idempotency-key crm-activity-1001"
    )]
    Send {
        /// The org (the firm) the tenant belongs to.
        #[arg(long)]
        org: String,
        /// The tenant's name within the org.
        #[arg(long)]
        tenant: String,
        /// The sending mailbox's address: a mailbox of the tenant linked to a CRM user.
        #[arg(long)]
        from: String,
        /// A recipient; repeat (or separate with commas) for more.
        #[arg(long, required = true)]
        to: Vec<String>,
        /// A copy recipient; repeat for more.
        #[arg(long)]
        cc: Vec<String>,
        /// A blind copy recipient; repeat for more.
        #[arg(long)]
        bcc: Vec<String>,
        /// The subject.
        #[arg(long)]
        subject: String,
        /// A file holding the body (text; HTML with --html).
        #[arg(long)]
        body_file: PathBuf,
        /// The body file is HTML.
        #[arg(long)]
        html: bool,
        /// A file to attach; repeat for more (35 MB in all, Exchange's default limit; files
        /// over 3 MB go through an upload session).
        #[arg(long = "attach")]
        attach: Vec<PathBuf>,
        /// The contact the email is about (`contact:ID` or `ID`): linked to the email when its
        /// sent copy syncs back.
        #[arg(long)]
        regarding: Option<String>,
        /// Your key for this email (e.g. the CRM activity's id): a repeat with the same key
        /// answers the first email instead of sending another. Made up when left out.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Only queue it: a running service sends it (at its next tick).
        #[arg(long)]
        queue: bool,
        /// Print the outbox row as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The outbox: what was sent, what waits, what failed and why.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
}

/// `m365sync mail outbox ...`
#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Outbox emails, newest first: state (queued, sending, sent, failed with the reason),
    /// tries, and the synced email each became.
    List {
        /// The org.
        #[arg(long)]
        org: String,
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Only emails in this state: queued, sending, sent or failed.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send every due outbox email now, as the service's mail sender does at each tick
    /// (emails left `sending` by a process that died are looked for in the mailbox first).
    Send,
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("zip") => "application/zip",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

fn sender(cfg: &ServiceConfig, what: &str) -> Sender {
    Sender {
        holder: format!("{}/{what}", m365sync::service::default_holder()),
        claim_ttl: Duration::from_secs(cfg.lease_secs.max(1)),
    }
}

fn print_row(m: &OutboxMail, json: bool) {
    if json {
        println!("{}", describe(m));
        return;
    }
    let email = m
        .email_id
        .map(|e| format!("email {e}"))
        .unwrap_or_else(|| "email not synced yet".into());
    println!(
        "outbox {}: {} from {} to {} '{}' ({} tries; {}); Message-ID {}",
        m.id,
        m.state.as_str(),
        m.from,
        m.recipients.to.join(", "),
        m.subject,
        m.attempts,
        email,
        m.internet_message_id
    );
    if let Some(e) = &m.error {
        println!(
            "  {}: {e}",
            if m.state == MailState::Failed {
                "failed"
            } else {
                "last try"
            }
        );
    }
}

/// `m365sync mail ...`
pub async fn run(config: Option<&Path>, command: MailCommand) -> anyhow::Result<()> {
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    let http = m365sync_graph::http_client(cfg.extra_ca()?.as_deref())?;
    match command {
        MailCommand::Send {
            org,
            tenant,
            from,
            to,
            cc,
            bcc,
            subject,
            body_file,
            html,
            attach,
            regarding,
            idempotency_key,
            queue,
            json,
        } => {
            let t = store.tenant(&org, &tenant).await?;
            let body = std::fs::read_to_string(&body_file)
                .with_context(|| format!("cannot read the body file {}", body_file.display()))?;
            let mut attachments = Vec::new();
            for path in &attach {
                let content = std::fs::read(path)
                    .with_context(|| format!("cannot read the attachment {}", path.display()))?;
                attachments.push(MailAttachment {
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "attachment".into()),
                    content_type: content_type(path).into(),
                    content,
                });
            }
            let regarding_contact = match regarding.as_deref() {
                None => None,
                Some(r) => Some(
                    r.strip_prefix("contact:")
                        .unwrap_or(r)
                        .parse::<i64>()
                        .map_err(|_| {
                            anyhow::anyhow!("--regarding '{r}': use contact:ID (`m365sync contact list` shows the ids)")
                        })?,
                ),
            };
            let req = SendRequest {
                from,
                to,
                cc,
                bcc,
                subject,
                body,
                html,
                attachments,
                regarding_contact,
                idempotency_key,
                requested_by: "cli".into(),
            };
            let (row, created) = enqueue(&store, &t, &req, None).await?;
            if !created {
                eprintln!(
                    "idempotency key '{}' was used before: this is outbox {} ({}); nothing new is sent",
                    row.idempotency_key,
                    row.id,
                    row.state.as_str()
                );
            }
            let row = if queue || matches!(row.state, MailState::Sent | MailState::Failed) {
                row
            } else {
                send_now(&store, &http, &sender(&cfg, "cli-mail"), row.id).await?
            };
            print_row(&row, json);
            match row.state {
                MailState::Failed => anyhow::bail!(
                    "outbox {} was not sent: {}",
                    row.id,
                    row.error.as_deref().unwrap_or("no reason recorded")
                ),
                MailState::Queued if !queue => {
                    eprintln!("not sent yet; a running service tries again, or run `m365sync mail outbox send`");
                }
                _ => {}
            }
            Ok(())
        }
        MailCommand::Outbox {
            command:
                OutboxCommand::List {
                    org,
                    tenant,
                    state,
                    limit,
                    json,
                },
        } => {
            let mut filter = MailFilter {
                org_id: Some(store.org_id(&org).await?),
                limit,
                ..MailFilter::default()
            };
            if let Some(t) = tenant {
                filter.tenant_id = Some(store.tenant(&org, &t).await?.id);
            }
            filter.state = match state.as_deref() {
                None => None,
                Some("queued") => Some(MailState::Queued),
                Some("sending") => Some(MailState::Sending),
                Some("sent") => Some(MailState::Sent),
                Some("failed") => Some(MailState::Failed),
                Some(o) => anyhow::bail!("--state '{o}': one of queued, sending, sent, failed"),
            };
            let rows = store.mails(&filter).await?;
            if json {
                let items: Vec<_> = rows.iter().map(describe).collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if rows.is_empty() {
                println!("no outbox emails");
            } else {
                for r in &rows {
                    print_row(r, false);
                }
            }
            Ok(())
        }
        MailCommand::Outbox {
            command: OutboxCommand::Send,
        } => {
            let (_handle, stop) = m365sync::sync::stop::stop_pair();
            let n = send_due(&store, &http, &sender(&cfg, "cli-mail"), &stop).await?;
            println!("{n} outbox email(s) tried");
            Ok(())
        }
    }
}

/// Sends the row now: claims it, or, while another process holds it (a service sending it, or
/// a process that died mid-send whose claim has not run out yet), waits for that claim.
async fn send_now(
    store: &Store,
    http: &reqwest::Client,
    sender: &Sender,
    id: i64,
) -> anyhow::Result<OutboxMail> {
    let deadline = Instant::now() + sender.claim_ttl * 3 + Duration::from_secs(5);
    let mut said = false;
    loop {
        if let Some(row) = send_one(store, http, sender, id, true).await? {
            return Ok(row);
        }
        let row = store.mail(id).await?;
        if row.state != MailState::Sending || Instant::now() > deadline {
            return Ok(row);
        }
        if !said {
            eprintln!(
                "outbox {id} is being sent by another process; waiting for it (or for its claim to run out)"
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
