//! The outbox: CRM changes owed to Microsoft (C5), read by the push, and what the push
//! records of Graph's answers.

use sqlx::{Any, Row, Transaction};

use super::*;
use crate::{now_ms, Store, StoreError};

pub(crate) async fn queue_outbox(
    tx: &mut Transaction<'_, Any>,
    event_id: i64,
    tenant_id: i64,
    user_id: i64,
    op: &str,
    fields: &[String],
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_outbox (event_id, tenant_id, user_id, op, fields, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event_id)
    .bind(tenant_id)
    .bind(user_id)
    .bind(op)
    .bind(serde_json::to_string(fields).expect("strings serialise"))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn outbox_row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, StoreError> {
    let fields: String = r.try_get("fields")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        op: r.try_get("op")?,
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
    })
}

impl Store {
    /// A user's CRM changes owed to Microsoft, oldest first.
    pub async fn outbox_for_user(&self, user_id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, op, fields, attempts, last_error FROM event_outbox WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// A tenant's CRM changes owed to Microsoft, oldest first: one read for a listing's push
    /// states.
    pub async fn outbox_for_tenant(&self, tenant_id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, op, fields, attempts, last_error FROM event_outbox WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// One event's CRM changes owed to Microsoft, oldest first: what its push state is read
    /// from.
    pub async fn outbox_for_event(&self, event_id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, op, fields, attempts, last_error FROM event_outbox WHERE event_id = $1 ORDER BY id",
        )
        .bind(event_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// How many outbox rows a tenant has.
    pub async fn outbox_len(&self, tenant_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM event_outbox WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// Records a push Graph accepted, and drops the event's outbox rows up to `upto`, in one
    /// transaction under the worker's lease on `lease_mailbox`.
    pub async fn finish_push(
        &self,
        event_id: i64,
        upto: i64,
        result: &PushResult,
        lease: Option<(&Lease, i64)>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = self.pool().begin().await?;
        let mut tx = match lease {
            Some((l, mailbox_id)) => fence_lease(tx, mailbox_id, Some(l), now).await?,
            None => tx,
        };
        sqlx::query(
            "UPDATE events SET graph_id = COALESCE($1, graph_id), mailbox_id = COALESCE($2, mailbox_id),
                 change_key = COALESCE($3, change_key), transaction_id = COALESCE($4, transaction_id),
                 synced_version = $5, sync_status = 'active', updated_ms = $6, record = COALESCE($7, record),
                 push_note = NULL WHERE id = $8",
        )
        .bind(result.graph_id.as_deref())
        .bind(result.mailbox_id)
        .bind(result.change_key.as_deref())
        .bind(result.transaction_id.as_deref())
        .bind(result.version)
        .bind(now)
        .bind(result.record.as_deref())
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM event_outbox WHERE event_id = $1 AND id <= $2")
            .bind(event_id)
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remembers the transactionId a create is about to be POSTed with, so a create whose
    /// answer was lost is recognised (and not created twice) when it comes back by delta.
    pub async fn set_transaction_id(
        &self,
        event_id: i64,
        mailbox_id: i64,
        transaction_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE events SET transaction_id = $1, mailbox_id = $2 WHERE id = $3")
            .bind(transaction_id)
            .bind(mailbox_id)
            .bind(event_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Resolves an event's outbox rows up to `upto` without a write, and records why on the
    /// event (`push_note`, what `events list` and the API show as "not sent: ..."): it became
    /// past, the direction no longer pushes, it was deleted while deletes from the CRM were
    /// off, it is Inactive, or nothing Microsoft keeps changed. One transaction.
    pub async fn drop_outbox(&self, event_id: i64, upto: i64, why: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM event_outbox WHERE event_id = $1 AND id <= $2")
            .bind(event_id)
            .bind(upto)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE events SET push_note = $1 WHERE id = $2")
            .bind(why)
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many outbox rows of a user's wait (any reason): what turning their Sync Events on
    /// will let the next push examine.
    pub async fn outbox_len_for_user(&self, user_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM event_outbox WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// Records a failed push attempt on an event's outbox rows; they are tried again.
    pub async fn outbox_failed(
        &self,
        event_id: i64,
        upto: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE event_outbox SET attempts = attempts + 1, last_error = $1 WHERE event_id = $2 AND id <= $3",
        )
        .bind(error)
        .bind(event_id)
        .bind(upto)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
