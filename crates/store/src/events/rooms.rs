//! A tenant's resource calendars (C6): the rooms the pull saw, by address.

use sqlx::Row;

use crate::{now_ms, Store, StoreError};

impl Store {
    /// Records the tenant's resource calendars (C6), ahead of its events.
    pub async fn upsert_rooms(
        &self,
        tenant_id: i64,
        rooms: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        super::page::write_rooms(&mut tx, self.backend(), tenant_id, rooms, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A tenant's resource calendars: (address, name), by address.
    pub async fn rooms(&self, tenant_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, name FROM resource_calendars WHERE tenant_id = $1 ORDER BY address",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("address")?, r.try_get("name")?)))
            .collect()
    }
}
