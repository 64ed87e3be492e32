//! CRM users and the mailboxes they are linked to (own and shared, E2, E14).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// A person's mailbox or a shared one; groups are never mailboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    /// A person's own mailbox.
    Person,
    /// A shared mailbox.
    Shared,
}

/// A mailbox to register.
#[derive(Debug, Clone)]
pub struct NewMailbox {
    /// The tenant the mailbox is in.
    pub tenant_id: i64,
    /// The Graph user object id.
    pub graph_id: String,
    /// The mailbox's address.
    pub address: String,
    /// The display name.
    pub display_name: String,
    /// A person's or a shared mailbox.
    pub kind: MailboxKind,
}

/// A stored mailbox with its health (E16).
#[derive(Debug, Clone, Serialize)]
pub struct Mailbox {
    /// m365sync's id of the mailbox.
    pub id: i64,
    /// The tenant the mailbox is in.
    pub tenant_id: i64,
    /// The CRM user it is linked to (its owner, or the nominated user of a shared one).
    pub user_id: Option<i64>,
    /// The Graph user object id.
    pub graph_id: String,
    /// The mailbox's address.
    pub address: String,
    /// The display name.
    pub display_name: String,
    /// A person's or a shared mailbox.
    pub kind: MailboxKind,
    /// False when disabled (by an admin, or by a permanent failure, E16).
    pub enabled: bool,
    /// The health word (`healthy` when nothing is wrong, E16).
    pub health: String,
    /// What is wrong and how to fix it, when not healthy.
    pub health_detail: Option<String>,
    /// Counted failures in a row (E16).
    pub consecutive_failures: i64,
    /// While set and in the future, the mailbox is resting after throttling or failures.
    pub backoff_until_ms: Option<i64>,
    /// When the mailbox was registered, epoch ms.
    pub added_ms: i64,
    /// When the mailbox last completed its share of a run (epoch ms).
    pub last_success_ms: Option<i64>,
    /// When its current streak of counted failures began (epoch ms); `None` when healthy.
    pub failing_since_ms: Option<i64>,
    /// The run this mailbox still owes its share of (set from the run's start until the share
    /// is done, across restarts); `None` when it owes no work.
    pub pending_run_id: Option<i64>,
    /// How far its mail folders' first rounds (the backfill) are, as [`Store::mailboxes`]
    /// reads it; `None` from the other reads, and before the folder tree was first discovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_backlog: Option<MailBacklog>,
}

/// A mailbox's mail still to backfill: its synced folders whose first round (from the first
/// URL, or again after Graph expired a cursor) has not finished. Graph's `totalItemCount` of
/// those folders is an upper bound of the messages left, not a count: it includes what is
/// already stored from a round half done, and mail older than an age limit the round filters
/// out. A folder through its first round has no backlog: later rounds bring only changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailBacklog {
    /// Folders in the synced set (not removed).
    pub folders: i64,
    /// Of them, those whose first round has not finished (or not begun).
    pub folders_pending: i64,
    /// Graph's item count of the pending folders at their last discovery: at most this many
    /// messages are left.
    pub messages_at_most: i64,
}

impl MailBacklog {
    /// The backlog in words (`backfilling 3 of 12 folders, at most 48000 messages left`), or
    /// `None` when every folder is through its first round.
    pub fn words(&self) -> Option<String> {
        (self.folders_pending > 0).then(|| {
            format!(
                "backfilling {} of {} folders, at most {} messages left",
                self.folders_pending, self.folders, self.messages_at_most
            )
        })
    }
}

fn mailbox_from(r: &sqlx::any::AnyRow) -> Result<Mailbox, sqlx::Error> {
    Ok(Mailbox {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        user_id: r.try_get("user_id")?,
        graph_id: r.try_get("graph_id")?,
        address: r.try_get("address")?,
        display_name: r.try_get("display_name")?,
        kind: if r.try_get::<String, _>("kind")? == "shared" {
            MailboxKind::Shared
        } else {
            MailboxKind::Person
        },
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        health: r.try_get("health")?,
        health_detail: r.try_get("health_detail")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        backoff_until_ms: r.try_get("backoff_until_ms")?,
        added_ms: r.try_get("added_ms")?,
        last_success_ms: r.try_get("last_success_ms")?,
        failing_since_ms: r.try_get("failing_since_ms")?,
        pending_run_id: r.try_get("pending_run_id")?,
        mail_backlog: None,
    })
}

impl Store {
    /// Creates or updates a CRM user of a tenant; returns its id.
    pub async fn upsert_user(
        &self,
        tenant_id: i64,
        email: &str,
        display_name: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, email) DO UPDATE SET display_name = excluded.display_name RETURNING id",
        )
        .bind(tenant_id)
        .bind(email.trim().to_ascii_lowercase())
        .bind(display_name)
        .fetch_all(self.pool())
        .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
        .try_get("id")?)
    }

    /// Registers a mailbox (idempotent on the tenant and address); returns its id.
    pub async fn upsert_mailbox(&self, m: &NewMailbox) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO mailboxes (tenant_id, graph_id, address, display_name, kind, added_ms) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, address) DO UPDATE SET graph_id = excluded.graph_id, display_name = excluded.display_name, kind = excluded.kind
             RETURNING id",
        )
        .bind(m.tenant_id)
        .bind(&m.graph_id)
        .bind(m.address.trim().to_ascii_lowercase())
        .bind(&m.display_name)
        .bind(match m.kind {
            MailboxKind::Person => "person",
            MailboxKind::Shared => "shared",
        })
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
        .try_get("id")?)
    }

    /// Links a mailbox to the user who owns it (or, for a shared mailbox, its nominated user).
    /// Both must be in the same tenant (T1).
    pub async fn link_mailbox(&self, mailbox_id: i64, user_id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE mailboxes SET user_id = $1 WHERE id = $2 AND tenant_id = (SELECT tenant_id FROM users WHERE id = $1)")
            .bind(user_id)
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!(
                "mailbox {mailbox_id} and user {user_id} are not in the same tenant"
            )));
        }
        sqlx::query(
            "UPDATE users SET primary_mailbox_id = $1 WHERE id = $2 AND primary_mailbox_id IS NULL",
        )
        .bind(mailbox_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One mailbox by id.
    pub async fn mailbox_by_id(&self, mailbox_id: i64) -> Result<Mailbox, StoreError> {
        let row = sqlx::query("SELECT * FROM mailboxes WHERE id = $1")
            .bind(mailbox_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no mailbox with id {mailbox_id}")))?;
        Ok(mailbox_from(&row)?)
    }

    /// A tenant's mailboxes, by address.
    pub async fn mailboxes(&self, tenant_id: i64) -> Result<Vec<Mailbox>, StoreError> {
        let rows = sqlx::query("SELECT * FROM mailboxes WHERE tenant_id = $1 ORDER BY address")
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await?;
        let mut mailboxes: Vec<Mailbox> =
            rows.iter().map(mailbox_from).collect::<Result<_, _>>()?;
        // A folder's first round is pending while it has no cursor, or one of a round begun
        // from the first URL that has not reached its deltaLink.
        let backlog = sqlx::query(
            "SELECT f.mailbox_id,
                    COUNT(*) AS folders,
                    CAST(SUM(CASE WHEN c.mailbox_id IS NULL OR (c.full_round <> 0 AND c.complete = 0) THEN 1 ELSE 0 END) AS BIGINT) AS pending,
                    CAST(SUM(CASE WHEN c.mailbox_id IS NULL OR (c.full_round <> 0 AND c.complete = 0) THEN f.total_items ELSE 0 END) AS BIGINT) AS items
             FROM mail_folders f
                 JOIN mailboxes m ON m.id = f.mailbox_id
                 LEFT JOIN sync_cursors c ON c.mailbox_id = f.mailbox_id AND c.folder = f.folder_key
             WHERE m.tenant_id = $1 AND f.synced <> 0 AND f.removed = 0
             GROUP BY f.mailbox_id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        let mut by_mailbox = std::collections::HashMap::new();
        for r in &backlog {
            by_mailbox.insert(
                r.try_get::<i64, _>("mailbox_id")?,
                MailBacklog {
                    folders: r.try_get("folders")?,
                    folders_pending: r.try_get("pending")?,
                    messages_at_most: r.try_get("items")?,
                },
            );
        }
        for m in &mut mailboxes {
            m.mail_backlog = by_mailbox.remove(&m.id);
        }
        Ok(mailboxes)
    }

    /// Records a mailbox's health after a run: `healthy`, `backing_off`, `failing` or `disabled`.
    pub async fn set_mailbox_health(
        &self,
        mailbox_id: i64,
        health: &str,
        detail: Option<&str>,
        consecutive_failures: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET health = $1, health_detail = $2, consecutive_failures = $3 WHERE id = $4")
            .bind(health)
            .bind(detail)
            .bind(consecutive_failures)
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl Store {
    /// A tenant's CRM users: (id, email).
    pub async fn users(&self, tenant_id: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, email FROM users WHERE tenant_id = $1 ORDER BY email")
            .bind(tenant_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("email")?)))
            .collect::<Result<_, _>>()?)
    }

    /// A tenant's user by email (case-insensitive): its id.
    pub async fn user_id(&self, tenant_id: i64, email: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query("SELECT id FROM users WHERE tenant_id = $1 AND email = $2")
                .bind(tenant_id)
                .bind(email.trim().to_ascii_lowercase())
                .fetch_optional(self.pool())
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?,
        )
    }

    /// A tenant's mailbox by address (case-insensitive).
    pub async fn mailbox_by_address(
        &self,
        tenant_id: i64,
        address: &str,
    ) -> Result<Option<Mailbox>, StoreError> {
        Ok(
            sqlx::query("SELECT * FROM mailboxes WHERE tenant_id = $1 AND address = $2")
                .bind(tenant_id)
                .bind(address.trim().to_ascii_lowercase())
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(mailbox_from)
                .transpose()?,
        )
    }

    /// Enables or disables one mailbox's sync; enabling also clears its failure state, so an
    /// admin who fixed the cause gets a fresh start.
    pub async fn set_mailbox_enabled(
        &self,
        mailbox_id: i64,
        enabled: bool,
    ) -> Result<(), StoreError> {
        let sql = if enabled {
            "UPDATE mailboxes SET enabled = 1, health = 'healthy', health_detail = NULL, consecutive_failures = 0, failing_since_ms = NULL, backoff_until_ms = NULL WHERE id = $1"
        } else {
            "UPDATE mailboxes SET enabled = 0 WHERE id = $1"
        };
        sqlx::query(sql)
            .bind(mailbox_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A user's Sync Emails switch (C2): off, none of the user's mailboxes has its mail
    /// synced (its calendar follows the Sync Events switch alone).
    pub async fn sync_emails(&self, user_id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT sync_emails FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no user {user_id}")))?;
        Ok(r.try_get::<i64, _>("sync_emails")? != 0)
    }

    /// Turns a user's Sync Emails switch on or off (C2). Mail already stored stays; turned
    /// back on, each folder goes on from its cursor.
    pub async fn set_sync_emails(&self, user_id: i64, on: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET sync_emails = $1 WHERE id = $2")
            .bind(on as i64)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a run incomplete for one more mailbox that did not complete its share (a gap
    /// `verify` found after a backfill).
    pub async fn mark_run_incomplete(&self, run_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET incomplete = incomplete + 1 WHERE id = $1")
            .bind(run_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
