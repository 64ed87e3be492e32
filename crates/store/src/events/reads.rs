//! Reads of stored events: one by id or Graph id, a tenant's or a user's events, their
//! addresses, a series' recurrence, counts.

use sqlx::Row;

use super::*;
use crate::{Store, StoreError};

/// A page of one user's events: those starting in `[from_ms, to_ms)`, by start, after the
/// previous page's last `(start_ms, id)`.
#[derive(Debug, Clone, Copy)]
pub struct EventWindow {
    /// The earliest start, epoch ms (none: no bound).
    pub from_ms: Option<i64>,
    /// The start before which the page stops, epoch ms (none: no bound).
    pub to_ms: Option<i64>,
    /// The previous page's last `(start_ms, id)`.
    pub after: Option<(i64, i64)>,
    /// The most events to return (at least 1).
    pub limit: i64,
}

impl Store {
    /// One event by id.
    pub async fn event(&self, event_id: i64) -> Result<StoredEvent, StoreError> {
        let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
            .bind(event_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "no event {event_id}; `m365sync events list` shows them"
                ))
            })?;
        event_from_row(&row)
    }

    /// A mailbox's event by its Graph id.
    pub async fn event_by_graph_id(
        &self,
        mailbox_id: i64,
        graph_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE mailbox_id = $1 AND graph_id = $2"
        ))
        .bind(mailbox_id)
        .bind(graph_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// A tenant's events (of one user, when given), by start; deleted ones only on request.
    pub async fn events(
        &self,
        tenant_id: i64,
        user_id: Option<i64>,
        include_deleted: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND ($2 = 0 OR user_id = $2) AND ($3 = 1 OR (deleted = 0 AND unmatched = 0))
             ORDER BY start_ms, id"
        ))
        .bind(tenant_id)
        .bind(user_id.unwrap_or(0))
        .bind(include_deleted as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The addresses stored for an event.
    pub async fn event_addresses(&self, event_id: i64) -> Result<Vec<EventAddress>, StoreError> {
        let rows = sqlx::query(
            "SELECT role, address, name FROM event_addresses WHERE event_id = $1 ORDER BY role, address",
        )
        .bind(event_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventAddress {
                    role: r.try_get("role")?,
                    address: r.try_get("address")?,
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    /// The recurrence text of a mailbox's series master, if stored.
    pub async fn series_recurrence(
        &self,
        mailbox_id: i64,
        graph_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT recurrence FROM event_series WHERE mailbox_id = $1 AND graph_id = $2",
        )
        .bind(mailbox_id)
        .bind(graph_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get("recurrence")).transpose()?)
    }

    /// How many events a tenant holds that are not deleted.
    pub async fn event_count(&self, tenant_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM events WHERE tenant_id = $1 AND deleted = 0")
                .bind(tenant_id)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?,
        )
    }

    /// A user's live events in `w`, by start then id: not deleted, and not held back as
    /// unmatched (C3) unless the CRM made them. "Sync unmatched events" decides which of
    /// Microsoft's events enter the CRM; an event created in the CRM is the CRM's whatever the
    /// matching job found, and its creator must see it. The page is walked on the
    /// `(user_id, start_ms)` index.
    pub async fn user_events(
        &self,
        tenant_id: i64,
        user_id: i64,
        w: &EventWindow,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (after_ms, after_id) = w.after.unwrap_or((i64::MIN, 0));
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE user_id = $1 AND tenant_id = $2 AND deleted = 0 AND (unmatched = 0 OR origin = 'crm')
               AND start_ms >= $3 AND start_ms < $4
               AND (start_ms > $5 OR (start_ms = $5 AND id > $6))
             ORDER BY start_ms, id LIMIT $7"
        ))
        .bind(user_id)
        .bind(tenant_id)
        .bind(w.from_ms.unwrap_or(i64::MIN))
        .bind(w.to_ms.unwrap_or(i64::MAX))
        .bind(after_ms)
        .bind(after_id)
        .bind(w.limit.max(1))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}
