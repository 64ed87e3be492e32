//! Email sent from the CRM through a linked mailbox (E15), exactly once.
//!
//! ```text
//! CLI `mail send`, POST .../mail --enqueue--> mail_outbox row (idempotency key, Message-ID fixed)
//!                                                 |
//! the service's mail sender, or the CLI at once --send_one--> claim the row, then in Graph:
//!     look for the Message-ID (a retry) -> create the draft with it -> attachments
//!     (<= 3 MB in the request, larger through an upload session) -> renew the claim -> send
//!                                                 |
//! the sender's Sent Items sync --store::sync's page commit--> the row's email and its link
//! ```
//!
//! Why a crash never sends twice: Graph's send has no idempotency key, so the message is made
//! findable instead. Its `internetMessageId` is derived from the row's idempotency key and
//! stored before any Graph call. Every try after the first starts by asking the mailbox for that
//! Message-ID: a sent copy means the earlier try's send went through (the row is marked sent,
//! nothing is sent), a draft is finished (the files it lacks added) and sent, nothing at all
//! means the earlier try never got as far as a draft and starts over. Only the holder of the
//! row's claim calls Graph for it, and it renews the claim (a fenced update) right before the
//! send, so a worker that stalled past its claim cannot send after another took the row over.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::credentials::token_cache_for;
use m365sync_graph::{ClientConfig, GraphClient, GraphError};
use m365sync_store::address::normalise_address;
use m365sync_store::mail_outbox::{MailAttachment, MailRecipients, MailState, NewMail, OutboxMail};
use m365sync_store::tenants::Tenant;
use m365sync_store::{now_ms, Store, StoreError};

/// The largest file one request adds to a draft; larger ones go through an upload session.
pub const INLINE_ATTACHMENT_MAX: usize = 3 * 1024 * 1024;
/// The most attachment bytes one email may carry: Exchange's default message size limit
/// (35 MB). A tenant with a lower limit has Graph refuse the send, and the row says so.
pub const MESSAGE_MAX: usize = 35 * 1024 * 1024;
/// Outlook's upload budget per mailbox: 150 MB of uploads per 5 minutes. A row that would go
/// over it waits in the queue until the window has room.
pub const UPLOAD_BUDGET: i64 = 150 * 1024 * 1024;
/// The window of [`UPLOAD_BUDGET`].
pub const UPLOAD_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Tries before a row failing for passing reasons (throttling that outlasts the client's
/// retries, an unreachable Graph) is given up.
pub const MAX_ATTEMPTS: i64 = 5;
/// The failpoint that aborts the process right after Graph accepted a send, before the row is
/// marked sent: `M365SYNC_FAILPOINT=mail-after-send` (tests of exactly-once).
pub const FAILPOINT_AFTER_SEND: &str = "mail-after-send";

/// The failpoint that aborts the process once the draft holds its files, before the send
/// (`M365SYNC_FAILPOINT=mail-before-send`): the next try must finish that draft, not make
/// another.
pub const FAILPOINT_BEFORE_SEND: &str = "mail-before-send";

/// Aborts the process when `M365SYNC_FAILPOINT` (read once per process) names `point`.
fn failpoint(point: &str, outbox: i64) {
    static SET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if SET
        .get_or_init(|| std::env::var("M365SYNC_FAILPOINT").ok())
        .as_deref()
        == Some(point)
    {
        eprintln!("failpoint {point}: aborting at outbox {outbox}");
        std::process::abort();
    }
}

/// What the CRM asks to send.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    /// The sending mailbox's address (a mailbox of the tenant linked to a CRM user).
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Copy recipients.
    pub cc: Vec<String>,
    /// Blind copy recipients.
    pub bcc: Vec<String>,
    /// The subject.
    pub subject: String,
    /// The body.
    pub body: String,
    /// True for an HTML body, false for text.
    pub html: bool,
    /// Files to attach (name, content type, bytes).
    pub attachments: Vec<MailAttachment>,
    /// The contact the email is about: linked to the synced email when its copy comes back.
    pub regarding_contact: Option<i64>,
    /// The caller's idempotency key; one is made when none is given (then only this call
    /// knows it, and a repeat is a new email).
    pub idempotency_key: Option<String>,
    /// Who asks, for the record (`cli`, `admin`, `user:alice@...`).
    pub requested_by: String,
}

/// Why an email cannot be queued. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The address is not a mailbox of the tenant.
    #[error("tenant {tenant}: no mailbox {address}; `m365sync mailbox list --org ORG --tenant {tenant}` shows the mailboxes")]
    NoMailbox {
        /// The tenant.
        tenant: String,
        /// The address asked for.
        address: String,
    },
    /// The mailbox is not linked to a CRM user, so the CRM may not send from it.
    #[error("mailbox {address} is not linked to a CRM user; link it (`m365sync mailbox add ... --user USER`) before sending from it")]
    NotLinked {
        /// The mailbox.
        address: String,
    },
    /// The mailbox (or its tenant) is disabled.
    #[error("{what} is disabled; enable it (`m365sync {how}`) and send again")]
    Disabled {
        /// `mailbox X` or `tenant Y`.
        what: String,
        /// The command that enables it.
        how: String,
    },
    /// The caller may not send from this mailbox (a user token, another user's mailbox).
    #[error("mailbox {address} is not yours: a user sends only from the mailboxes linked to them")]
    NotYours {
        /// The mailbox.
        address: String,
    },
    /// Too large for Graph: the message or an attachment.
    #[error("{0}")]
    TooLarge(String),
    /// A bad value: the message names the field and the value.
    #[error("{0}")]
    Invalid(String),
    /// The idempotency key was used for another email.
    #[error("{0}")]
    KeyReused(String),
    /// The database.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for SendError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) if m.starts_with("idempotency key") => SendError::KeyReused(m),
            e => SendError::Store(e),
        }
    }
}

fn addresses(field: &str, raw: &[String]) -> Result<Vec<String>, SendError> {
    raw.iter()
        .flat_map(|a| a.split([',', ';']))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            normalise_address(a).map_err(|e| {
                SendError::Invalid(format!("{field}: '{a}' is not an email address: {e}"))
            })
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Message-ID of the email with idempotency key `key` in `tenant_id`, sent from `from`:
/// derived from the key, so the same key always means the same message in Graph.
pub fn message_id_for(tenant_id: i64, key: &str, from: &str) -> String {
    let digest = Sha256::digest(format!("{tenant_id}\n{key}").as_bytes());
    let domain = from.rsplit('@').next().unwrap_or("m365sync.invalid");
    format!("<m365sync.{}@{domain}>", &hex(&digest)[..32])
}

/// Checks a request and queues it: the outbox row, or the one an earlier request with the same
/// idempotency key made (then `false`: nothing new is sent). `only_user`: a user's own request
/// (`/api/me/mail`), which may use only the mailboxes linked to that user.
pub async fn enqueue(
    store: &Store,
    tenant: &Tenant,
    req: &SendRequest,
    only_user: Option<i64>,
) -> Result<(OutboxMail, bool), SendError> {
    let from = normalise_address(&req.from).map_err(|e| {
        SendError::Invalid(format!("from: '{}' is not an email address: {e}", req.from))
    })?;
    let mailbox = store
        .mailbox_by_address(tenant.id, &from)
        .await?
        .ok_or_else(|| SendError::NoMailbox {
            tenant: tenant.name.clone(),
            address: from.clone(),
        })?;
    if let Some(user) = only_user {
        if mailbox.user_id != Some(user) {
            return Err(SendError::NotYours { address: from });
        }
    }
    let Some(user_id) = mailbox.user_id else {
        return Err(SendError::NotLinked { address: from });
    };
    if !tenant.enabled {
        return Err(SendError::Disabled {
            what: format!("tenant {}", tenant.name),
            how: format!(
                "tenant enable --org {} --tenant {}",
                tenant.org, tenant.name
            ),
        });
    }
    if !mailbox.enabled {
        return Err(SendError::Disabled {
            what: format!("mailbox {from}"),
            how: format!(
                "mailbox enable --org {} --tenant {} {from}",
                tenant.org, tenant.name
            ),
        });
    }
    let recipients = MailRecipients {
        to: addresses("to", &req.to)?,
        cc: addresses("cc", &req.cc)?,
        bcc: addresses("bcc", &req.bcc)?,
    };
    if recipients.to.is_empty() && recipients.cc.is_empty() && recipients.bcc.is_empty() {
        return Err(SendError::Invalid(
            "to: at least one recipient is needed".into(),
        ));
    }
    if req.subject.len() > 255 {
        return Err(SendError::Invalid(format!(
            "subject: {} characters; Outlook takes at most 255",
            req.subject.chars().count()
        )));
    }
    let mut total = req.body.len();
    for a in &req.attachments {
        if a.name.trim().is_empty() || a.name.contains(['/', '\\']) {
            return Err(SendError::Invalid(format!(
                "attachment: '{}' is not a file name",
                a.name
            )));
        }
        if a.content.is_empty() {
            return Err(SendError::Invalid(format!(
                "attachment '{}' is empty; Graph refuses empty attachments",
                a.name
            )));
        }
        total += a.content.len();
    }
    if total > MESSAGE_MAX {
        return Err(SendError::TooLarge(format!(
            "the email is {total} bytes with its attachments; Exchange's default message size limit is 35 MB ({MESSAGE_MAX} bytes): send fewer or smaller files"
        )));
    }
    if let Some(c) = req.regarding_contact {
        store.mail_contact_in_org(tenant.org_id, c).await?;
    }
    let key = match req.idempotency_key.as_deref().map(str::trim) {
        Some(k) if k.is_empty() || k.len() > 200 || k.chars().any(char::is_control) => {
            return Err(SendError::Invalid(format!(
                "idempotency key '{k}': 1 to 200 printable characters"
            )))
        }
        Some(k) => k.to_string(),
        None => format!("auto-{:032x}", rand::random::<u128>()),
    };
    let mut digest = Sha256::new();
    let canonical = json!({
        "from": from,
        "recipients": recipients,
        "subject": req.subject,
        "body": req.body,
        "html": req.html,
        "regarding": req.regarding_contact,
        "attachments": req.attachments.iter().map(|a| json!([a.name, a.content_type, hex(&Sha256::digest(&a.content))])).collect::<Vec<_>>(),
    });
    digest.update(canonical.to_string().as_bytes());
    let new = NewMail {
        org_id: tenant.org_id,
        tenant_id: tenant.id,
        mailbox_id: mailbox.id,
        user_id: Some(user_id),
        internet_message_id: message_id_for(tenant.id, &key, &from),
        idempotency_key: key,
        request_digest: hex(&digest.finalize()),
        subject: req.subject.clone(),
        body: req.body.clone(),
        body_type: if req.html { "html" } else { "text" }.into(),
        recipients,
        regarding_contact_id: req.regarding_contact,
        attachments: req.attachments.clone(),
        requested_by: req.requested_by.clone(),
    };
    Ok(store.enqueue_mail(&new).await?)
}

/// Why one try of a row ended without a send.
#[derive(Debug)]
enum TryError {
    /// Graph refused or failed.
    Graph(GraphError),
    /// Another worker took the row over: stop touching it.
    ClaimLost,
    /// The database.
    Store(StoreError),
}

impl From<GraphError> for TryError {
    fn from(e: GraphError) -> Self {
        TryError::Graph(e)
    }
}

impl From<StoreError> for TryError {
    fn from(e: StoreError) -> Self {
        TryError::Store(e)
    }
}

/// Who sends: the claim's holder name and how long a claim lasts without renewal.
#[derive(Debug, Clone)]
pub struct Sender {
    /// This worker's name in claims (`host-pid-rand/mail`).
    pub holder: String,
    /// How long a claim lasts: how soon another process takes over a row whose sender died.
    pub claim_ttl: Duration,
}

impl Sender {
    fn ttl_ms(&self) -> i64 {
        self.claim_ttl.as_millis() as i64
    }
}

/// Sends every outbox row that is due (queued, or sending under a claim that ran out): the
/// service's mail sender calls this every tick. Answers how many rows it finished.
pub async fn send_due(
    store: &Store,
    http: &reqwest::Client,
    sender: &Sender,
    stop: &crate::sync::stop::StopSignal,
) -> Result<usize, StoreError> {
    let ids = store.claimable_mail(32).await?;
    let mut done = 0;
    for id in ids {
        if stop.is_stopping() {
            break;
        }
        if send_one(store, http, sender, id, false).await?.is_some() {
            done += 1;
        }
    }
    Ok(done)
}

/// Sends one outbox row now if it can be claimed (`force`: even while a passing failure's
/// back-off runs): the one code path of the service and the CLI. Answers the row as it ended,
/// or `None` when another worker has it or it was already finished.
pub async fn send_one(
    store: &Store,
    http: &reqwest::Client,
    sender: &Sender,
    id: i64,
    force: bool,
) -> Result<Option<OutboxMail>, StoreError> {
    let Some(row) = store
        .claim_mail(id, &sender.holder, sender.ttl_ms(), force)
        .await?
    else {
        return Ok(None);
    };
    let tenant = store.tenant_by_id(row.tenant_id).await?;
    let mailbox = store.mailbox_by_id(row.mailbox_id).await?;
    let refuse = |detail: String| give_up(store, &sender.holder, id, detail);
    // Checked again at the send: things change while a row waits.
    if !tenant.enabled {
        return refuse(format!(
            "tenant {} is disabled; enable it (`m365sync tenant enable --org {} --tenant {}`) and send again with a new idempotency key",
            tenant.name, tenant.org, tenant.name
        ))
        .await;
    }
    if !mailbox.enabled {
        return refuse(format!(
            "mailbox {} is disabled ({}); enable it (`m365sync mailbox enable`) and send again with a new idempotency key",
            mailbox.address,
            mailbox.health_detail.as_deref().unwrap_or("by an admin")
        ))
        .await;
    }
    if mailbox.user_id.is_none() {
        return refuse(format!(
            "mailbox {} is no longer linked to a CRM user; link it and send again with a new idempotency key",
            mailbox.address
        ))
        .await;
    }
    if row.attachment_bytes > 0 && row.graph_id.is_none() {
        let used = store
            .mail_upload_bytes_since(mailbox.id, now_ms() - UPLOAD_WINDOW_MS, id)
            .await?;
        if used + row.attachment_bytes > UPLOAD_BUDGET {
            tracing::info!(outbox = id, mailbox = %mailbox.address, used, "upload budget of 150 MB per 5 minutes spent; the email waits");
            store
                .mail_defer(id, &sender.holder, now_ms() + 60_000)
                .await?;
            return store.mail(id).await.map(Some);
        }
    }
    let tokens = match token_cache_for(store, &tenant, http.clone()).await {
        Ok(t) => t,
        Err(e) => {
            store
                .mail_failed(
                    id,
                    &sender.holder,
                    &format!("tenant {}: no credentials: {e}", tenant.name),
                    None,
                )
                .await?;
            return store.mail(id).await.map(Some);
        }
    };
    let client = GraphClient::new(
        http.clone(),
        tokens,
        ClientConfig {
            graph_url: tenant.graph_url.clone(),
            ..ClientConfig::default()
        },
    );
    let job = Job {
        store,
        http,
        sender,
        client: &client,
        row: &row,
        user: &mailbox.graph_id,
        address: &mailbox.address,
    };
    match job.deliver().await {
        Ok(graph_id) => {
            if !store
                .mail_sent(id, &sender.holder, graph_id.as_deref())
                .await?
            {
                tracing::warn!(outbox = id, "the send went through but another worker holds the row now; it will find the sent copy");
            }
            tracing::info!(outbox = id, mailbox = %mailbox.address, "email sent");
        }
        Err(TryError::ClaimLost) => {
            tracing::warn!(
                outbox = id,
                "another worker took the email over; this one stopped without sending"
            );
        }
        Err(TryError::Store(e)) => return Err(e),
        Err(TryError::Graph(e)) => {
            let transient = matches!(
                e,
                GraphError::Exhausted { .. } | GraphError::Malformed { .. }
            ) || matches!(&e, GraphError::Auth(a) if a.is_transient());
            let retry = (transient && row.attempts < MAX_ATTEMPTS)
                .then(|| now_ms() + 30_000 * (1i64 << row.attempts.clamp(0, 6)));
            let detail = match &e {
                GraphError::AccessDenied { .. } => format!(
                    "{e}; sending needs the application permission Mail.Send (and Mail.ReadWrite for the draft) for this mailbox"
                ),
                _ if retry.is_none() && transient => {
                    format!("{e}; gave up after {} tries", row.attempts)
                }
                _ => e.to_string(),
            };
            tracing::warn!(outbox = id, mailbox = %mailbox.address, error = %detail, retry = retry.is_some(), "email not sent");
            store
                .mail_failed(id, &sender.holder, &detail, retry)
                .await?;
        }
    }
    store.mail(id).await.map(Some)
}

/// Gives a row up for a reason no retry can fix; answers the row.
async fn give_up(
    store: &Store,
    holder: &str,
    id: i64,
    detail: String,
) -> Result<Option<OutboxMail>, StoreError> {
    store.mail_failed(id, holder, &detail, None).await?;
    store.mail(id).await.map(Some)
}

/// One try at one row.
struct Job<'a> {
    store: &'a Store,
    http: &'a reqwest::Client,
    sender: &'a Sender,
    client: &'a GraphClient,
    row: &'a OutboxMail,
    /// The mailbox's Graph id (or UPN), which the URLs address.
    user: &'a str,
    /// Its address: what the client's per-mailbox limit keys on.
    address: &'a str,
}

/// What the mailbox holds of a message: its Graph id and whether it is still a draft.
struct Found {
    id: String,
    draft: bool,
}

impl Job<'_> {
    fn renew(&self) -> impl std::future::Future<Output = Result<(), TryError>> + '_ {
        async move {
            if self
                .store
                .renew_mail_claim(self.row.id, &self.sender.holder, self.sender.ttl_ms())
                .await?
            {
                Ok(())
            } else {
                Err(TryError::ClaimLost)
            }
        }
    }

    /// The messages of the mailbox carrying the row's Message-ID.
    async fn find(&self) -> Result<Vec<Found>, GraphError> {
        let filter = format!(
            "internetMessageId eq '{}'",
            self.row.internet_message_id.replace('\'', "''")
        );
        let url = format!(
            "users/{}/messages?$filter={}&$select=id,isDraft&$top=50",
            self.user,
            percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC)
        );
        let page = self
            .client
            .get(self.address, &url, Some("IdType=\"ImmutableId\""))
            .await?;
        Ok(page["value"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|m| {
                        Some(Found {
                            id: m["id"].as_str()?.to_string(),
                            draft: m["isDraft"].as_bool().unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The try: answers the sent message's Graph id.
    async fn deliver(&self) -> Result<Option<String>, TryError> {
        let row = self.row;
        // A row tried before may have left a draft, or been sent with its commit lost.
        let mut draft = None;
        if row.attempts > 1 || row.graph_id.is_some() {
            let found = self.find().await?;
            if let Some(sent) = found.iter().find(|f| !f.draft) {
                tracing::info!(
                    outbox = row.id,
                    "the email was sent by an earlier try; not sending again"
                );
                return Ok(Some(sent.id.clone()));
            }
            let mut drafts = found.into_iter().map(|f| f.id);
            draft = drafts.next();
            // A create retried after a lost answer can leave a second draft with the same
            // Message-ID: only one is sent, the others are removed (best effort).
            for extra in drafts {
                let url = format!("users/{}/messages/{extra}", self.user);
                if let Err(e) = self
                    .client
                    .send(self.address, Method::DELETE, &url, None)
                    .await
                {
                    tracing::warn!(outbox = row.id, error = %e, "cannot remove a duplicate draft");
                }
            }
        }
        let draft_id = match draft {
            Some(id) => id,
            None => self.create_draft().await?,
        };
        if !self
            .store
            .set_mail_graph_id(row.id, &self.sender.holder, &draft_id)
            .await?
        {
            return Err(TryError::ClaimLost);
        }
        self.attach(&draft_id).await?;
        failpoint(FAILPOINT_BEFORE_SEND, row.id);
        // The fence: only a worker still holding the row sends it.
        self.renew().await?;
        let sent = self
            .client
            .send(
                self.address,
                Method::POST,
                &format!("users/{}/messages/{draft_id}/send", self.user),
                None,
            )
            .await;
        if let Err(e) = sent {
            // The answer may have been lost after the send went through: look before failing.
            match self.find().await {
                Ok(found) if found.iter().any(|f| !f.draft) => {}
                _ => return Err(e.into()),
            }
        }
        failpoint(FAILPOINT_AFTER_SEND, row.id);
        Ok(Some(draft_id))
    }

    async fn create_draft(&self) -> Result<String, TryError> {
        let row = self.row;
        let people = |list: &[String]| -> Vec<Value> {
            list.iter()
                .map(|a| json!({"emailAddress": {"address": a}}))
                .collect()
        };
        let body = json!({
            "subject": row.subject,
            "body": {"contentType": if row.body_type == "html" { "HTML" } else { "Text" }, "content": row.body},
            "toRecipients": people(&row.recipients.to),
            "ccRecipients": people(&row.recipients.cc),
            "bccRecipients": people(&row.recipients.bcc),
            "internetMessageId": row.internet_message_id,
        });
        let created = self
            .client
            .send(
                self.address,
                Method::POST,
                &format!("users/{}/messages", self.user),
                Some(&body),
            )
            .await?;
        created["id"].as_str().map(str::to_string).ok_or_else(|| {
            TryError::Graph(GraphError::Malformed {
                mailbox: self.address.to_string(),
                detail: "the created draft has no id".into(),
            })
        })
    }

    /// Adds the files the draft does not have yet (a draft left by an earlier try may have
    /// some): small ones in one request, larger ones through an upload session.
    async fn attach(&self, draft_id: &str) -> Result<(), TryError> {
        if self.row.attachments.is_empty() {
            return Ok(());
        }
        let present = self
            .client
            .get(
                self.address,
                &format!(
                    "users/{}/messages/{draft_id}/attachments?$select=name,size",
                    self.user
                ),
                None,
            )
            .await?;
        let mut have: Vec<String> = present["value"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|a| a["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let files = self.store.mail_attachments(self.row.id).await?;
        for f in files {
            if let Some(i) = have.iter().position(|n| *n == f.name) {
                have.remove(i);
                continue;
            }
            if f.content.len() <= INLINE_ATTACHMENT_MAX {
                self.client
                    .send(
                        self.address,
                        Method::POST,
                        &format!("users/{}/messages/{draft_id}/attachments", self.user),
                        Some(&json!({
                            "@odata.type": "#microsoft.graph.fileAttachment",
                            "name": f.name,
                            "contentType": f.content_type,
                            "contentBytes": STANDARD.encode(&f.content),
                        })),
                    )
                    .await?;
            } else {
                self.upload(draft_id, &f).await?;
            }
            self.renew().await?;
        }
        Ok(())
    }

    async fn upload(&self, draft_id: &str, f: &MailAttachment) -> Result<(), TryError> {
        let session = self
            .client
            .send(
                self.address,
                Method::POST,
                &format!(
                    "users/{}/messages/{draft_id}/attachments/createUploadSession",
                    self.user
                ),
                Some(&json!({"AttachmentItem": {
                    "attachmentType": "file",
                    "name": f.name,
                    "size": f.content.len(),
                    "contentType": f.content_type,
                }})),
            )
            .await?;
        let url = session["uploadUrl"].as_str().ok_or_else(|| {
            TryError::Graph(GraphError::Malformed {
                mailbox: self.address.to_string(),
                detail: "the upload session has no uploadUrl".into(),
            })
        })?;
        let total = f.content.len() as u64;
        let mut done = false;
        for (i, chunk) in f
            .content
            .chunks(m365sync_graph::upload::CHUNK_BYTES)
            .enumerate()
        {
            let first = (i * m365sync_graph::upload::CHUNK_BYTES) as u64;
            done = m365sync_graph::upload::put_range(
                self.http,
                self.address,
                url,
                first,
                chunk,
                total,
            )
            .await?;
            self.renew().await?;
        }
        if !done {
            return Err(TryError::Graph(GraphError::Malformed {
                mailbox: self.address.to_string(),
                detail: format!("the upload of '{}' ended without Graph's 201", f.name),
            }));
        }
        Ok(())
    }
}

/// A row as the CLI and the API show it: its state, and the email its sent copy became.
pub fn describe(m: &OutboxMail) -> Value {
    let mut v = serde_json::to_value(m).expect("rows serialise");
    if m.state == MailState::Sent && m.email_id.is_none() {
        v["note"] = "sent; the email appears once the mailbox's Sent Items sync".into();
    }
    v
}
