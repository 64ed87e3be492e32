//! Reads of CRM events for the admin API: one user's events a page at a time, and whether an
//! edit left a change waiting in the outbox. Kept apart from [`super::events`], which holds the
//! sync's writes and the page commit.

use super::events::{event_from_row, StoredEvent, EVENT_COLUMNS};
use super::{Store, StoreError};

/// A page of one user's events: those starting in `[from_ms, to_ms)`, by start, after the
/// previous page's last `(start_ms, id)`.
#[derive(Debug, Clone, Copy)]
pub struct EventWindow {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

impl Store {
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

    /// True when a change of `event_id` waits in its user's outbox: the edit will reach
    /// Microsoft at the user's next mailbox sync, so the caller asks for that sync now.
    pub async fn outbox_holds(&self, user_id: i64, event_id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 AS queued FROM event_outbox WHERE user_id = $1 AND event_id = $2 LIMIT 1",
        )
        .bind(user_id)
        .bind(event_id)
        .fetch_optional(self.pool())
        .await?
        .is_some())
    }
}
