//! Records the matching plugin failed on, as admins see them (issue 18): each with its tenant,
//! kind, subject and owner, the plugin version that failed it and the error. They are written
//! by the matching job's batches ([`Store::save_matches`]), kept out of the review list and
//! retried by every later job until the plugin matches them (or a new version does), so a
//! record never vanishes from sight while it fails.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// A record the matching plugin failed on.
#[derive(Debug, Clone, Serialize)]
pub struct MatchFailure {
    /// The tenant's name.
    pub tenant: String,
    /// `email` or `event`.
    pub kind: String,
    /// The record's id in the store.
    pub record_id: i64,
    /// The record's subject (empty when the record is gone since).
    pub subject: String,
    /// Whose record it is: the mailbox holding the email (the first, when several do) or the
    /// event's owner.
    pub owner: String,
    /// The stamp of the plugin version that failed it (`name version sha256:...`).
    pub plugin: String,
    /// The plugin's error, as it said it (a trap, a timeout, its `err`, a contact it was not
    /// shown).
    pub error: String,
    /// How many jobs have failed on it.
    pub attempts: i64,
    /// When it first failed (epoch ms).
    pub first_ms: i64,
    /// When it last failed (epoch ms).
    pub last_ms: i64,
}

impl Store {
    /// An org's matching failures (one tenant's with `tenant_id`), most recently failed first,
    /// at most `limit` (0: 200); with the total, since a page may show fewer than there are.
    pub async fn match_failure_list(
        &self,
        org_id: i64,
        tenant_id: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<MatchFailure>, i64), StoreError> {
        let limit = if limit > 0 { limit.min(10_000) } else { 200 };
        let rows = sqlx::query(
            "SELECT t.name AS tenant, f.kind, f.record_id, f.plugin, f.error, f.attempts, f.first_ms, f.at_ms,
                 COALESCE(e.subject, v.subject, '') AS subject,
                 COALESCE((SELECT MIN(m.address) FROM email_mailboxes em JOIN mailboxes m ON m.id = em.mailbox_id
                           WHERE f.kind = 'email' AND em.email_id = f.record_id),
                          (SELECT u.email FROM users u WHERE u.id = v.user_id), '') AS owner
             FROM match_failures f JOIN tenants t ON t.id = f.tenant_id
                 LEFT JOIN emails e ON f.kind = 'email' AND e.id = f.record_id
                 LEFT JOIN events v ON f.kind = 'event' AND v.id = f.record_id
             WHERE t.org_id = $1 AND ($2 = 0 OR f.tenant_id = $2)
             ORDER BY f.at_ms DESC, f.record_id LIMIT $3",
        )
        .bind(org_id)
        .bind(tenant_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let failures = rows
            .iter()
            .map(|r| {
                Ok(MatchFailure {
                    tenant: r.try_get("tenant")?,
                    kind: r.try_get("kind")?,
                    record_id: r.try_get("record_id")?,
                    subject: r.try_get("subject")?,
                    owner: r.try_get("owner")?,
                    plugin: r.try_get("plugin")?,
                    error: r.try_get("error")?,
                    attempts: r.try_get("attempts")?,
                    first_ms: r.try_get("first_ms")?,
                    last_ms: r.try_get("at_ms")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM match_failures f JOIN tenants t ON t.id = f.tenant_id
             WHERE t.org_id = $1 AND ($2 = 0 OR f.tenant_id = $2)",
        )
        .bind(org_id)
        .bind(tenant_id.unwrap_or(0))
        .fetch_one(self.pool())
        .await?
        .try_get("n")?;
        Ok((failures, total))
    }
}
