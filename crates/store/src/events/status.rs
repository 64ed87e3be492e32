//! The sync status of events (C8): those that ended before the sync range go Inactive and
//! leave the scheduled sync.

use crate::{now_ms, Store, StoreError};

impl Store {
    /// Marks a tenant's synced events that ended before `before_ms` Inactive (C8's sync
    /// status): they leave the scheduled sync. Returns how many.
    pub async fn deactivate_events_before(
        &self,
        tenant_id: i64,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM event_outbox WHERE event_id IN (SELECT id FROM events WHERE tenant_id = $1 AND sync_status = 'active' AND end_ms < $2)",
        )
        .bind(tenant_id)
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE events SET sync_status = 'inactive', updated_ms = $1 WHERE tenant_id = $2 AND sync_status = 'active' AND end_ms < $3",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .bind(before_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
