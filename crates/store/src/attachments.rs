//! Attachments (E5): bytes content-addressed in `blobs` (SHA-256, stored once however many
//! emails and mailboxes carry them), and one `attachments` row per attachment of an email,
//! either pointing at its blob or saying why it was skipped.
//!
//! The rows are written by [`Store::commit_page`](super::Store::commit_page), in the page's
//! transaction, through `write_attachments`: an attachment never appears without its bytes,
//! and a replayed page rewrites the same rows.
//!
//! A skip reason starts with a stable code (`over-cap:`, `reference:`, `unsupported:`,
//! `fetch-failed:`) followed by words for people. The code is what decides whether an email's
//! attachments are worth fetching again ([`Store::settled_attachments`]).

use std::collections::HashSet;

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// Graph id of the row that stands for an attachment list that could not be fetched.
pub const LIST_FAILED_ID: &str = "(list)";

/// The reason codes a skipped attachment's reason starts with.
pub mod reason {
    /// Larger than the tenant's `attachment_cap_bytes`; fetched again once the cap allows it.
    pub const OVER_CAP: &str = "over-cap";
    /// A reference attachment: a link to a file elsewhere, with no bytes of its own.
    pub const REFERENCE: &str = "reference";
    /// An attachment type m365sync does not know.
    pub const UNSUPPORTED: &str = "unsupported";
    /// Graph refused or failed; fetched again the next time the email is synced.
    pub const FETCH_FAILED: &str = "fetch-failed";
}

/// The code a skipped reason starts with (`over-cap: 6 MB is above ...` -> `over-cap`), or
/// `other`.
pub fn reason_code(reason: &str) -> &'static str {
    [
        reason::OVER_CAP,
        reason::REFERENCE,
        reason::UNSUPPORTED,
        reason::FETCH_FAILED,
    ]
    .into_iter()
    .find(|code| reason.starts_with(code))
    .unwrap_or("other")
}

/// A skipped attachment with the email it belongs to, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedAttachment {
    /// The email's id (the page cursor's first half).
    pub email_id: i64,
    /// The attachment's Graph id in the mailbox it was read from (the cursor's second half).
    pub graph_id: String,
    /// The file name.
    pub name: String,
    /// Its MIME type as Graph gave it.
    pub content_type: String,
    /// Its size in bytes as Graph gave it.
    pub size: i64,
    /// The reason's code: `over-cap`, `reference`, `unsupported`, `fetch-failed` ([`reason`]).
    pub code: String,
    /// Why it was not stored, in words (what to do included: raise the cap, follow the link).
    pub reason: String,
    /// The email's subject.
    pub subject: String,
    /// When the email was sent, epoch ms.
    pub sent_ms: i64,
    /// A mailbox holding the email (the first by address).
    pub mailbox: Option<String>,
}

/// Bytes to keep, named by their SHA-256 (lowercase hex).
#[derive(Debug, Clone)]
pub struct Blob {
    /// The SHA-256 of the bytes, lowercase hex: the blob's key.
    pub digest: String,
    /// The bytes.
    pub bytes: bytes::Bytes,
}

/// What became of one attachment.
#[derive(Debug, Clone)]
pub enum AttachmentOutcome {
    /// Stored: its bytes are in this blob.
    Stored(Blob),
    /// Not stored; the reason starts with one of the [`reason`] codes.
    Skipped(String),
}

/// One attachment of an email as the pipeline hands it to the store.
#[derive(Debug, Clone)]
pub struct AttachmentRecord {
    /// The attachment's Graph id (in the mailbox it was read from).
    pub graph_id: String,
    /// The file name.
    pub name: String,
    /// The MIME type Graph reports.
    pub content_type: String,
    /// The size Graph reports (for a file, a little more than its bytes; 0 for a link).
    pub size: i64,
    /// Stored or skipped, and why.
    pub outcome: AttachmentOutcome,
}

/// What one pass of the pipeline learned about an email's attachments.
#[derive(Debug, Clone, Default)]
pub enum AttachmentSet {
    /// Not fetched this time (the email has none, or they are already settled): the stored
    /// rows stay as they are.
    #[default]
    Untouched,
    /// The email's attachments as just listed, each stored or skipped.
    Listed(Vec<AttachmentRecord>),
    /// The list itself could not be fetched; recorded (as a row with graph id
    /// [`LIST_FAILED_ID`]) so the email does not look as if it had no attachments.
    ListFailed(String),
}

/// An attachment row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAttachment {
    /// The attachment's Graph id.
    pub graph_id: String,
    /// The file name.
    pub name: String,
    /// The MIME type.
    pub content_type: String,
    /// The size Graph reported.
    pub size: i64,
    /// The blob holding the bytes, when stored.
    pub digest: Option<String>,
    /// Why it was not stored, when skipped.
    pub skipped_reason: Option<String>,
}

/// Writes an email's attachments inside the page's transaction.
///
/// A fresh list replaces the email's rows: the same message read from another mailbox (where
/// Graph gives its attachments other ids) or again after a restarted round becomes the same
/// rows, not more. One exception keeps what is known: an attachment that failed to fetch this
/// time keeps the bytes an earlier pass stored for it (same id, or same name and size).
pub(super) async fn write_attachments(
    conn: &mut sqlx::AnyConnection,
    email_id: i64,
    set: &AttachmentSet,
) -> Result<(), StoreError> {
    let list = match set {
        AttachmentSet::Untouched => return Ok(()),
        AttachmentSet::ListFailed(error) => {
            // Only where nothing better is known: earlier rows stay.
            let known: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM attachments WHERE email_id = $1")
                    .bind(email_id)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
            if known == 0 {
                insert_row(
                    conn,
                    email_id,
                    LIST_FAILED_ID,
                    "(attachment list)",
                    "",
                    0,
                    None,
                    Some(&format!(
                        "{}: listing the attachments: {error}",
                        reason::FETCH_FAILED
                    )),
                )
                .await?;
            }
            return Ok(());
        }
        AttachmentSet::Listed(list) => list,
    };
    let earlier: Vec<(String, String, i64, String)> = sqlx::query(
        "SELECT graph_id, name, size, digest FROM attachments WHERE email_id = $1 AND digest IS NOT NULL",
    )
    .bind(email_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok((
            r.try_get("graph_id")?,
            r.try_get("name")?,
            r.try_get("size")?,
            r.try_get("digest")?,
        ))
    })
    .collect::<Result<_, sqlx::Error>>()?;
    sqlx::query("DELETE FROM attachments WHERE email_id = $1")
        .bind(email_id)
        .execute(&mut *conn)
        .await?;
    for a in list {
        let (digest, skipped) = match &a.outcome {
            AttachmentOutcome::Stored(blob) => {
                sqlx::query("INSERT INTO blobs (digest, size, content) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING")
                    .bind(&blob.digest)
                    .bind(blob.bytes.len() as i64)
                    .bind(blob.bytes.as_ref())
                    .execute(&mut *conn)
                    .await?;
                (Some(blob.digest.as_str()), None)
            }
            AttachmentOutcome::Skipped(why) if is_code(why, reason::FETCH_FAILED) => {
                let kept = earlier.iter().find(|(id, name, size, _)| {
                    *id == a.graph_id || (*name == a.name && *size == a.size)
                });
                match kept {
                    Some((_, _, _, digest)) => (Some(digest.as_str()), None),
                    None => (None, Some(why.as_str())),
                }
            }
            AttachmentOutcome::Skipped(why) => (None, Some(why.as_str())),
        };
        insert_row(
            conn,
            email_id,
            &a.graph_id,
            &a.name,
            &a.content_type,
            a.size,
            digest,
            skipped,
        )
        .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn insert_row(
    conn: &mut sqlx::AnyConnection,
    email_id: i64,
    graph_id: &str,
    name: &str,
    content_type: &str,
    size: i64,
    digest: Option<&str>,
    skipped_reason: Option<&str>,
) -> Result<(), StoreError> {
    // Graph never lists one id twice; if it did, the last word wins rather than the page failing.
    sqlx::query(
        "INSERT INTO attachments (email_id, graph_id, name, content_type, size, digest, skipped_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (email_id, graph_id) DO UPDATE SET name = excluded.name, content_type = excluded.content_type,
             size = excluded.size, digest = excluded.digest, skipped_reason = excluded.skipped_reason",
    )
    .bind(email_id)
    .bind(graph_id)
    .bind(name)
    .bind(content_type)
    .bind(size)
    .bind(digest)
    .bind(skipped_reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True when a skip reason carries `code`.
pub fn is_code(reason: &str, code: &str) -> bool {
    reason
        .strip_prefix(code)
        .is_some_and(|rest| rest.starts_with(':'))
}

impl Store {
    /// The email a mailbox's message (by Graph id) was stored as, if it was.
    pub async fn email_id_of(
        &self,
        mailbox_id: i64,
        graph_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT email_id FROM email_mailboxes WHERE mailbox_id = $1 AND graph_id = $2",
        )
        .bind(mailbox_id)
        .bind(graph_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("email_id")?),
            None => None,
        })
    }

    /// An email's attachments, by name then Graph id.
    pub async fn attachments(&self, email_id: i64) -> Result<Vec<StoredAttachment>, StoreError> {
        let rows = sqlx::query(
            "SELECT graph_id, name, content_type, size, digest, skipped_reason FROM attachments
             WHERE email_id = $1 ORDER BY name, graph_id",
        )
        .bind(email_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredAttachment {
                    graph_id: r.try_get("graph_id")?,
                    name: r.try_get("name")?,
                    content_type: r.try_get("content_type")?,
                    size: r.try_get("size")?,
                    digest: r.try_get("digest")?,
                    skipped_reason: r.try_get("skipped_reason")?,
                })
            })
            .collect()
    }

    /// A page of a tenant's skipped attachments, the most recently stored email first (the console's
    /// "attachments skipped" page and `GET .../attachments/skipped`): those after `after`, the
    /// previous page's last (email id, attachment Graph id). The list-failed marker rows
    /// ([`LIST_FAILED_ID`]) are included: they say an email's whole list could not be read.
    pub async fn skipped_attachments(
        &self,
        tenant_id: i64,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<SkippedAttachment>, StoreError> {
        let (before_email, after_graph) = after.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "SELECT a.email_id, a.graph_id, a.name, a.content_type, a.size, a.skipped_reason,
                    e.subject, e.sent_ms,
                    (SELECT MIN(m.address) FROM email_mailboxes em JOIN mailboxes m ON m.id = em.mailbox_id
                     WHERE em.email_id = a.email_id) AS mailbox
             FROM attachments a JOIN emails e ON e.id = a.email_id
             WHERE a.skipped_reason IS NOT NULL AND e.tenant_id = $1
                 AND (a.email_id < $2 OR (a.email_id = $2 AND a.graph_id > $3))
             ORDER BY a.email_id DESC, a.graph_id LIMIT $4",
        )
        .bind(tenant_id)
        .bind(before_email)
        .bind(after_graph)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let reason: String = r.try_get("skipped_reason")?;
                Ok(SkippedAttachment {
                    email_id: r.try_get("email_id")?,
                    graph_id: r.try_get("graph_id")?,
                    name: r.try_get("name")?,
                    content_type: r.try_get("content_type")?,
                    size: r.try_get("size")?,
                    code: reason_code(&reason).to_string(),
                    reason,
                    subject: r.try_get("subject")?,
                    sent_ms: r.try_get("sent_ms")?,
                    mailbox: r.try_get("mailbox")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// How many of a tenant's attachments are skipped, by reason code (each of [`reason`]'s,
    /// zero included, then `other` for a reason without a known code).
    pub async fn skipped_attachment_counts(
        &self,
        tenant_id: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN a.skipped_reason LIKE 'over-cap%' THEN 1 ELSE 0 END), 0) AS BIGINT) AS over_cap,
                    CAST(COALESCE(SUM(CASE WHEN a.skipped_reason LIKE 'reference%' THEN 1 ELSE 0 END), 0) AS BIGINT) AS reference,
                    CAST(COALESCE(SUM(CASE WHEN a.skipped_reason LIKE 'unsupported%' THEN 1 ELSE 0 END), 0) AS BIGINT) AS unsupported,
                    CAST(COALESCE(SUM(CASE WHEN a.skipped_reason LIKE 'fetch-failed%' THEN 1 ELSE 0 END), 0) AS BIGINT) AS fetch_failed,
                    COUNT(*) AS total
             FROM attachments a JOIN emails e ON e.id = a.email_id
             WHERE a.skipped_reason IS NOT NULL AND e.tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?;
        let mut counts = Vec::new();
        let mut known = 0;
        for (code, column) in [
            (reason::OVER_CAP, "over_cap"),
            (reason::REFERENCE, "reference"),
            (reason::UNSUPPORTED, "unsupported"),
            (reason::FETCH_FAILED, "fetch_failed"),
        ] {
            let n: i64 = row.try_get(column)?;
            known += n;
            counts.push((code.to_string(), n));
        }
        let total: i64 = row.try_get("total")?;
        counts.push(("other".to_string(), total - known));
        Ok(counts)
    }

    /// The bytes stored under `digest`, if any.
    pub async fn blob(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT content FROM blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("content")?),
            None => None,
        })
    }

    /// How many distinct blobs are stored (each recurring attachment counts once).
    pub async fn blob_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM blobs")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }

    /// Bytes held in blobs (each distinct attachment once), for the benchmark and monitoring.
    pub async fn blob_bytes(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS n FROM blobs")
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// Of the emails with these correlation keys, those whose attachments need no new fetch:
    /// already listed, and nothing failed or was over a cap that now allows it. The pipeline
    /// asks before fetching, so the same message in ten mailboxes, or a message whose flags
    /// changed, is downloaded once.
    pub async fn settled_attachments(
        &self,
        tenant_id: i64,
        correlation_keys: &[String],
        cap_bytes: i64,
    ) -> Result<HashSet<String>, StoreError> {
        let mut settled = HashSet::new();
        // Well under every backend's limit on bound parameters.
        for chunk in correlation_keys.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT e.correlation_key FROM emails e
                 WHERE e.tenant_id = $1
                   AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.email_id = e.id
                       AND (a.skipped_reason LIKE '{}:%' OR (a.skipped_reason LIKE '{}:%' AND a.size <= $2)))
                   AND EXISTS (SELECT 1 FROM attachments a WHERE a.email_id = e.id)
                   AND e.correlation_key IN ({})",
                reason::FETCH_FAILED,
                reason::OVER_CAP,
                placeholders.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(tenant_id).bind(cap_bytes);
            for k in chunk {
                q = q.bind(k);
            }
            for r in q.fetch_all(self.pool()).await? {
                settled.insert(r.try_get("correlation_key")?);
            }
        }
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_matched_whole() {
        assert!(is_code("fetch-failed: 404", reason::FETCH_FAILED));
        assert!(is_code("over-cap: 6 MB", reason::OVER_CAP));
        assert!(!is_code("over-capped: x", reason::OVER_CAP));
        assert!(!is_code("reference", reason::REFERENCE));
    }
}
