//! Email sent from the CRM (E15): the outbox rows the sender works through, and how a sent
//! copy that syncs back finds its row.
//!
//! A row is made once per idempotency key (a repeat with the same key finds the first row);
//! its `internet_message_id` is fixed at that moment, before any Graph call, so whatever
//! happens later the message can be looked for in the mailbox. A worker claims a row
//! (`queued`, or `sending` whose claim ran out) for a while, renews the claim while it works and
//! before the send, and records the end (`sent`, `failed` with the reason, or back to `queued`
//! for a later try) only while it still holds the claim (fencing, as leases fence page commits).

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::{now_ms, Store, StoreError};

/// Where an outbox email stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailState {
    /// Waiting for a worker (first try, or a later try after a passing failure).
    Queued,
    /// A worker holds it; the message may already be a draft in the mailbox, or sent.
    Sending,
    /// Graph accepted the send (the sent copy may not have synced back yet).
    Sent,
    /// Given up: `error` says why and what to do.
    Failed,
}

impl MailState {
    /// The word stored in `mail_outbox.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            MailState::Queued => "queued",
            MailState::Sending => "sending",
            MailState::Sent => "sent",
            MailState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> MailState {
        match s {
            "sending" => MailState::Sending,
            "sent" => MailState::Sent,
            "failed" => MailState::Failed,
            _ => MailState::Queued,
        }
    }
}

/// The recipients of an outbox email.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MailRecipients {
    /// To.
    pub to: Vec<String>,
    /// Cc.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Bcc.
    #[serde(default)]
    pub bcc: Vec<String>,
}

/// A file to send with an outbox email.
#[derive(Debug, Clone)]
pub struct MailAttachment {
    /// The file name the recipient sees.
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its bytes (empty once the row was sent: they are not kept).
    pub content: Vec<u8>,
}

/// An outbox email to create.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The org.
    pub org_id: i64,
    /// The tenant whose mailbox sends.
    pub tenant_id: i64,
    /// The mailbox that sends.
    pub mailbox_id: i64,
    /// The CRM user the mailbox is linked to.
    pub user_id: Option<i64>,
    /// The caller's idempotency key (or one made for the request).
    pub idempotency_key: String,
    /// The Message-ID the message will carry, `<...@...>`.
    pub internet_message_id: String,
    /// A digest of what was asked (sender, recipients, subject, body, files): a key reused
    /// for a different request is refused rather than answered with another email's row.
    pub request_digest: String,
    /// The subject.
    pub subject: String,
    /// The body.
    pub body: String,
    /// `text` or `html`.
    pub body_type: String,
    /// Who receives it.
    pub recipients: MailRecipients,
    /// The contact the email is about, linked to the email when its sent copy syncs back.
    pub regarding_contact_id: Option<i64>,
    /// The files.
    pub attachments: Vec<MailAttachment>,
    /// Who asked: `cli`, `admin`, `org-admin`, `user:alice@...`.
    pub requested_by: String,
}

/// An outbox email as stored.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMail {
    /// The row's id.
    pub id: i64,
    /// The org.
    pub org_id: i64,
    /// The tenant.
    pub tenant_id: i64,
    /// The sending mailbox's id.
    pub mailbox_id: i64,
    /// The sending mailbox's address.
    pub from: String,
    /// The CRM user the mailbox is linked to.
    pub user_id: Option<i64>,
    /// The idempotency key.
    pub idempotency_key: String,
    /// The Message-ID the message carries.
    pub internet_message_id: String,
    /// The subject.
    pub subject: String,
    /// Who receives it.
    pub recipients: MailRecipients,
    /// The contact it is about.
    pub regarding_contact_id: Option<i64>,
    /// The files' names and sizes.
    pub attachments: Vec<(String, i64)>,
    /// Bytes of all its files.
    pub attachment_bytes: i64,
    /// Where it stands.
    pub state: MailState,
    /// Tries so far.
    pub attempts: i64,
    /// Why the last try failed (or why it was given up).
    pub error: Option<String>,
    /// The message's Graph id in the sending mailbox, once known.
    pub graph_id: Option<String>,
    /// The synced email its sent copy became.
    pub email_id: Option<i64>,
    /// Who asked.
    pub requested_by: String,
    /// When it was asked, epoch ms.
    pub created_ms: i64,
    /// When Graph accepted the send, epoch ms.
    pub sent_ms: Option<i64>,
    /// Not tried again before this (a passing failure's back-off), epoch ms.
    pub not_before_ms: Option<i64>,
    /// The body (not listed).
    #[serde(skip)]
    pub body: String,
    /// `text` or `html`.
    #[serde(skip)]
    pub body_type: String,
    /// The request digest.
    #[serde(skip)]
    pub request_digest: String,
}

const COLUMNS: &str = "o.id, o.org_id, o.tenant_id, o.mailbox_id, m.address AS from_address, o.user_id,
    o.idempotency_key, o.internet_message_id, o.request_digest, o.subject, o.body, o.body_type, o.recipients,
    o.regarding_contact_id, o.attachment_bytes, o.state, o.attempts, o.error, o.graph_id, o.email_id,
    o.requested_by, o.created_ms, o.sent_ms, o.not_before_ms";

fn row_to_mail(r: &sqlx::any::AnyRow) -> Result<OutboxMail, sqlx::Error> {
    let recipients: String = r.try_get("recipients")?;
    let state: String = r.try_get("state")?;
    Ok(OutboxMail {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        tenant_id: r.try_get("tenant_id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        from: r.try_get("from_address")?,
        user_id: r.try_get("user_id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        internet_message_id: r.try_get("internet_message_id")?,
        subject: r.try_get("subject")?,
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        regarding_contact_id: r.try_get("regarding_contact_id")?,
        attachments: Vec::new(),
        attachment_bytes: r.try_get("attachment_bytes")?,
        state: MailState::parse(&state),
        attempts: r.try_get("attempts")?,
        error: r.try_get("error")?,
        graph_id: r.try_get("graph_id")?,
        email_id: r.try_get("email_id")?,
        requested_by: r.try_get("requested_by")?,
        created_ms: r.try_get("created_ms")?,
        sent_ms: r.try_get("sent_ms")?,
        not_before_ms: r.try_get("not_before_ms")?,
        body: r.try_get("body")?,
        body_type: r.try_get("body_type")?,
        request_digest: r.try_get("request_digest")?,
    })
}

/// Which outbox emails a listing shows.
#[derive(Debug, Clone, Default)]
pub struct MailFilter {
    /// Only this tenant's.
    pub tenant_id: Option<i64>,
    /// Only this org's.
    pub org_id: Option<i64>,
    /// Only this CRM user's (their own and shared mailboxes).
    pub user_id: Option<i64>,
    /// Only rows in this state.
    pub state: Option<MailState>,
    /// The most rows, newest first.
    pub limit: i64,
}

impl Store {
    /// Checks that a contact an email is sent regarding belongs to the org (another org's
    /// contact answers NotFound, as a missing one does).
    pub async fn mail_contact_in_org(
        &self,
        org_id: i64,
        contact_id: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT id FROM contacts WHERE id = $1 AND org_id = $2")
            .bind(contact_id)
            .bind(org_id)
            .fetch_optional(self.pool())
            .await?
            .map(|_| ())
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "no contact {contact_id} in this org; `m365sync contact list` shows the ids"
                ))
            })
    }

    /// Creates the outbox email, or finds the one made earlier with the same idempotency key.
    /// Answers the row and whether it is new. A key reused for a different request (another
    /// digest) is refused: answering it with the first email would hide that nothing was sent
    /// for the second.
    pub async fn enqueue_mail(&self, m: &NewMail) -> Result<(OutboxMail, bool), StoreError> {
        if let Some(existing) = self.mail_by_key(m.tenant_id, &m.idempotency_key).await? {
            return same_request(existing, m).map(|e| (e, false));
        }
        let now = now_ms();
        let bytes: i64 = m.attachments.iter().map(|a| a.content.len() as i64).sum();
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO mail_outbox (org_id, tenant_id, mailbox_id, user_id, idempotency_key, internet_message_id,
                 request_digest, subject, body, body_type, recipients, regarding_contact_id, attachment_bytes, state,
                 requested_by, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'queued', $14, $15, $15)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(m.org_id)
        .bind(m.tenant_id)
        .bind(m.mailbox_id)
        .bind(m.user_id)
        .bind(&m.idempotency_key)
        .bind(&m.internet_message_id)
        .bind(&m.request_digest)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(&m.body_type)
        .bind(serde_json::to_string(&m.recipients).expect("strings serialise"))
        .bind(m.regarding_contact_id)
        .bind(bytes)
        .bind(&m.requested_by)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let Some(row) = inserted.first() else {
            // Another request with the same key won the race: answer its row.
            tx.rollback().await?;
            let existing = self
                .mail_by_key(m.tenant_id, &m.idempotency_key)
                .await?
                .ok_or_else(|| StoreError::NotFound("the outbox email vanished".into()))?;
            return same_request(existing, m).map(|e| (e, false));
        };
        let id: i64 = row.try_get("id")?;
        for (i, a) in m.attachments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO mail_outbox_attachments (outbox_id, position, name, content_type, size, content)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(i as i64)
            .bind(&a.name)
            .bind(&a.content_type)
            .bind(a.content.len() as i64)
            .bind(a.content.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((self.mail(id).await?, true))
    }

    async fn mail_by_key(
        &self,
        tenant_id: i64,
        key: &str,
    ) -> Result<Option<OutboxMail>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_outbox o JOIN mailboxes m ON m.id = o.mailbox_id
             WHERE o.tenant_id = $1 AND o.idempotency_key = $2"
        ))
        .bind(tenant_id)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(r) => Ok(Some(self.with_files(row_to_mail(&r)?).await?)),
            None => Ok(None),
        }
    }

    async fn with_files(&self, mut m: OutboxMail) -> Result<OutboxMail, StoreError> {
        let rows = sqlx::query(
            "SELECT name, size FROM mail_outbox_attachments WHERE outbox_id = $1 ORDER BY position",
        )
        .bind(m.id)
        .fetch_all(self.pool())
        .await?;
        m.attachments = rows
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("size")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(m)
    }

    /// One outbox email by id.
    pub async fn mail(&self, id: i64) -> Result<OutboxMail, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mail_outbox o JOIN mailboxes m ON m.id = o.mailbox_id WHERE o.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no outbox email {id}")))?;
        self.with_files(row_to_mail(&row)?).await
    }

    /// Outbox emails, newest first.
    pub async fn mails(&self, f: &MailFilter) -> Result<Vec<OutboxMail>, StoreError> {
        let mut conds = Vec::new();
        let mut ints = Vec::new();
        for (col, v) in [
            ("o.tenant_id", f.tenant_id),
            ("o.org_id", f.org_id),
            ("o.user_id", f.user_id),
        ] {
            if let Some(v) = v {
                ints.push(v);
                conds.push(format!("{col} = ${}", ints.len()));
            }
        }
        if let Some(state) = f.state {
            conds.push(format!("o.state = '{}'", state.as_str()));
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM mail_outbox o JOIN mailboxes m ON m.id = o.mailbox_id
             WHERE {} ORDER BY o.id DESC LIMIT {}",
            if conds.is_empty() {
                "1 = 1".to_string()
            } else {
                conds.join(" AND ")
            },
            if f.limit > 0 { f.limit.min(1000) } else { 100 }
        );
        let mut q = sqlx::query(&sql);
        for v in ints {
            q = q.bind(v);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.with_files(row_to_mail(r)?).await?);
        }
        Ok(out)
    }

    /// Outbox emails a worker could take now: queued and due, or sending under a claim that
    /// ran out (its worker died or stalled), oldest first.
    pub async fn claimable_mail(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT id FROM mail_outbox
             WHERE (state = 'queued' AND (not_before_ms IS NULL OR not_before_ms <= $1))
                OR (state = 'sending' AND claimed_until_ms < $1)
             ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Claims an outbox email for `holder` until `ttl_ms` from now, if it is queued and due
    /// (or `force`d: asked for by the sender at once) or sending under a claim that ran out.
    /// Counts the attempt. `None` when another worker has it or it is finished.
    pub async fn claim_mail(
        &self,
        id: i64,
        holder: &str,
        ttl_ms: i64,
        force: bool,
    ) -> Result<Option<OutboxMail>, StoreError> {
        let now = now_ms();
        let claimed = sqlx::query(
            "UPDATE mail_outbox SET state = 'sending', claimed_by = $1, claimed_until_ms = $2,
                 attempts = attempts + 1, started_ms = COALESCE(started_ms, $3), updated_ms = $3
             WHERE id = $4 AND ((state = 'queued' AND ($5 = 1 OR not_before_ms IS NULL OR not_before_ms <= $3))
                 OR (state = 'sending' AND claimed_until_ms < $3))",
        )
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .bind(id)
        .bind(force as i64)
        .execute(self.pool())
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        Ok(Some(self.mail(id).await?))
    }

    /// Extends `holder`'s claim; false when the claim was lost (another worker has the row),
    /// and then the holder must not call Graph for it again.
    pub async fn renew_mail_claim(
        &self,
        id: i64,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        Ok(sqlx::query(
            "UPDATE mail_outbox SET claimed_until_ms = $1 WHERE id = $2 AND state = 'sending' AND claimed_by = $3",
        )
        .bind(now + ttl_ms)
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// The files of an outbox email with their bytes, in order.
    pub async fn mail_attachments(&self, id: i64) -> Result<Vec<MailAttachment>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, content_type, content FROM mail_outbox_attachments WHERE outbox_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MailAttachment {
                    name: r.try_get("name")?,
                    content_type: r.try_get("content_type")?,
                    content: r
                        .try_get::<Option<Vec<u8>>, _>("content")?
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Remembers the draft's Graph id while the holder still has the row.
    pub async fn set_mail_graph_id(
        &self,
        id: i64,
        holder: &str,
        graph_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mail_outbox SET graph_id = $1, updated_ms = $2 WHERE id = $3 AND claimed_by = $4 AND state = 'sending'",
        )
        .bind(graph_id)
        .bind(now_ms())
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Records that Graph accepted the send (or that the message was found sent): the row is
    /// `sent` and its files' bytes are dropped. False when the holder had lost the row.
    pub async fn mail_sent(
        &self,
        id: i64,
        holder: &str,
        graph_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE mail_outbox SET state = 'sent', sent_ms = $1, updated_ms = $1, error = NULL,
                 graph_id = COALESCE($2, graph_id), claimed_by = NULL, claimed_until_ms = NULL
             WHERE id = $3 AND state = 'sending' AND claimed_by = $4",
        )
        .bind(now)
        .bind(graph_id)
        .bind(id)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE mail_outbox_attachments SET content = NULL WHERE outbox_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed try: given up (`failed`, with `error` saying why and what to do) or, for
    /// a passing failure, queued again no sooner than `retry_at_ms`. False when the holder had
    /// lost the row.
    pub async fn mail_failed(
        &self,
        id: i64,
        holder: &str,
        error: &str,
        retry_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let state = if retry_at_ms.is_some() {
            "queued"
        } else {
            "failed"
        };
        Ok(sqlx::query(
            "UPDATE mail_outbox SET state = $1, error = $2, not_before_ms = $3, updated_ms = $4,
                 claimed_by = NULL, claimed_until_ms = NULL
             WHERE id = $5 AND state = 'sending' AND claimed_by = $6",
        )
        .bind(state)
        .bind(error)
        .bind(retry_at_ms)
        .bind(now_ms())
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }

    /// Bytes of attachments a mailbox started uploading since `since_ms`: what Outlook's
    /// 150 MB per 5 minutes upload budget counts.
    pub async fn mail_upload_bytes_since(
        &self,
        mailbox_id: i64,
        since_ms: i64,
        except_id: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT CAST(COALESCE(SUM(attachment_bytes), 0) AS BIGINT) AS n FROM mail_outbox
             WHERE mailbox_id = $1 AND started_ms >= $2 AND id <> $3 AND state IN ('sending', 'sent')",
        )
        .bind(mailbox_id)
        .bind(since_ms)
        .bind(except_id)
        .fetch_one(self.pool())
        .await?
        .try_get("n")?)
    }

    /// Puts a claimed row back in the queue untried (the upload budget is spent for now):
    /// the attempt is not counted.
    pub async fn mail_defer(
        &self,
        id: i64,
        holder: &str,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE mail_outbox SET state = 'queued', not_before_ms = $1, attempts = attempts - 1,
                 claimed_by = NULL, claimed_until_ms = NULL, updated_ms = $2
             WHERE id = $3 AND state = 'sending' AND claimed_by = $4 AND graph_id IS NULL",
        )
        .bind(until_ms)
        .bind(now_ms())
        .bind(id)
        .bind(holder)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1)
    }
}

fn same_request(existing: OutboxMail, m: &NewMail) -> Result<OutboxMail, StoreError> {
    if existing.request_digest == m.request_digest {
        Ok(existing)
    } else {
        Err(StoreError::Invalid(format!(
            "idempotency key '{}' was already used for another email (outbox {}, '{}'); use a new key for a new email",
            m.idempotency_key, existing.id, existing.subject
        )))
    }
}

/// In a page's transaction: the new emails that are the sent copies of outbox emails (the same
/// Message-ID in the same tenant) become those rows' emails, and each row's "regarding" contact
/// is linked to its email as a manual match, which re-matching never removes. `emails` are
/// (email id, internetMessageId, sent ms).
pub(crate) async fn link_sent_copies(
    tx: &mut Transaction<'_, Any>,
    tenant_id: i64,
    emails: &[(i64, &str, i64)],
) -> Result<(), StoreError> {
    if emails.is_empty() {
        return Ok(());
    }
    // Rows still waiting for their copy are few (they are linked as their copies arrive), so
    // one indexed read per page serves every email of it.
    let waiting = sqlx::query(
        "SELECT id, internet_message_id, regarding_contact_id, requested_by FROM mail_outbox
         WHERE tenant_id = $1 AND email_id IS NULL AND state IN ('sending', 'sent')",
    )
    .bind(tenant_id)
    .fetch_all(&mut **tx)
    .await?;
    if waiting.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    for w in &waiting {
        let imid: String = w.try_get("internet_message_id")?;
        let Some((email_id, _, sent_ms)) = emails.iter().find(|(_, i, _)| *i == imid) else {
            continue;
        };
        let outbox_id: i64 = w.try_get("id")?;
        sqlx::query("UPDATE mail_outbox SET email_id = $1, updated_ms = $2 WHERE id = $3")
            .bind(email_id)
            .bind(now)
            .bind(outbox_id)
            .execute(&mut **tx)
            .await?;
        let Some(contact_id) = w.try_get::<Option<i64>, _>("regarding_contact_id")? else {
            continue;
        };
        let contact = sqlx::query("SELECT entity_id, email FROM contacts WHERE id = $1")
            .bind(contact_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(contact) = contact else {
            continue; // deleted since the send: nothing to link
        };
        let by: String = w.try_get("requested_by")?;
        sqlx::query(
            "INSERT INTO activity_matches (kind, record_id, tenant_id, contact_id, entity_id, address, field, source,
                 reason, decided_by, occurred_ms, at_ms)
             VALUES ('email', $1, $2, $3, $4, $5, 'manual', 'manual', $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(*email_id)
        .bind(tenant_id)
        .bind(contact_id)
        .bind(contact.try_get::<Option<i64>, _>("entity_id")?)
        .bind(contact.try_get::<Option<String>, _>("email")?.unwrap_or_default())
        .bind(format!("sent from the CRM regarding this contact (outbox {outbox_id})"))
        .bind(by)
        .bind(*sent_ms)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
