//! The commit of one calendar delta page: its events, removals, series, rooms, failed records
//! and the calendar's cursor in one transaction under the worker's lease.
//!
//! This is the calendar pull's hot path, so it is written like the email page commit: one read
//! of the page's known events, then a few multi-row statements for what is new (events, their
//! addresses, their matching-queue entries, series, rooms) instead of several statements per
//! event. On SQLite every statement is a round trip to the database thread while the write lock
//! is held, and other mailboxes' lease heartbeats wait for that lock. Updates, conflicts and
//! removals are rare after the first pull and stay one event at a time, where their rules
//! (C1, C3) are easiest to read.

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::{
    event_from_row, update_fields, EventPage, PageOutcome, PulledEvent, StoredEvent, EVENT_COLUMNS,
};
use crate::events::CALENDAR_FOLDER;
use crate::sync::{
    fence_lease, in_list, insert_addresses, marker, queue_for_matching, value_rows, write_cursor,
    write_exclusions_and_failures, AddressTable, ROWS_PER_STATEMENT,
};
use crate::{now_ms, Backend, Store, StoreError};

impl Store {
    /// Writes one calendar delta page and advances the calendar's cursor, atomically.
    pub async fn commit_event_page(&self, page: &EventPage) -> Result<PageOutcome, StoreError> {
        let now = now_ms();
        let backend = self.backend();
        let tx = self.pool().begin().await?;
        let mut tx = fence_lease(tx, page.mailbox_id, page.lease.as_ref(), now).await?;
        let mut out = PageOutcome::default();
        write_rooms(&mut tx, backend, page.tenant_id, &page.rooms, now).await?;
        write_series(&mut tx, backend, page, now).await?;
        let upserts = last_copies(&page.upserts);
        let known = known_events(&mut tx, backend, page.mailbox_id, &upserts).await?;
        let (new, seen): (Vec<&PulledEvent>, Vec<&PulledEvent>) = upserts
            .iter()
            .partition(|e| !known.contains_key(e.graph_id.as_str()));
        insert_pulled(&mut tx, backend, page, &new, now).await?;
        out.inserted += new.len() as u64;
        for e in seen {
            apply_change(&mut tx, &known[e.graph_id.as_str()], e, now, &mut out).await?;
        }
        for graph_id in &page.removals {
            apply_removal(&mut tx, page, graph_id, now, &mut out).await?;
        }
        let settled: Vec<&str> = upserts
            .iter()
            .map(|e| e.graph_id.as_str())
            .chain(page.removals.iter().map(String::as_str))
            .collect();
        forget_failures(&mut tx, backend, page.mailbox_id, &settled).await?;
        write_exclusions_and_failures(
            &mut tx,
            page.mailbox_id,
            CALENDAR_FOLDER,
            &page.exclusions,
            &page.failures,
            page.run_id,
            now,
        )
        .await?;
        if let Some(cursor) = &page.cursor {
            write_cursor(&mut tx, page.mailbox_id, CALENDAR_FOLDER, cursor, now).await?;
        }
        // What each plugin version decided, counted with the records (the Plugins page).
        let mut tally = crate::decisions::Tally::default();
        for e in &page.upserts {
            tally.stored(&e.decided_by);
        }
        for x in &page.exclusions {
            tally.dropped(&x.decided_by);
        }
        tally.write(&mut tx, page.tenant_id).await?;
        // The run's figures, committed with the page (issue 20): every upsert is a kept event,
        // conflicts and unchanged ones included (what the store holds of it is current).
        let figures = crate::sync::KindFigures {
            processed: (page.upserts.len() + page.exclusions.len() + page.failures.len()) as i64,
            kept: page.upserts.len() as i64,
            excluded: page.exclusions.len() as i64,
            failed: page.failures.len() as i64,
        };
        crate::sync::count_page(
            &mut tx,
            page.run_id,
            crate::sync::RecordKind::Event,
            figures,
            page.removals.len(),
        )
        .await?;
        tx.commit().await?;
        self.after_heavy_commit().await;
        Ok(out)
    }
}

/// The last copy of each Graph id in the page, in order of first appearance: Graph may replay
/// an item within a page, and no statement may insert one event twice.
fn last_copies(upserts: &[PulledEvent]) -> Vec<&PulledEvent> {
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<&PulledEvent> = Vec::new();
    for e in upserts {
        match at.get(e.graph_id.as_str()) {
            Some(&i) => order[i] = e,
            None => {
                at.insert(&e.graph_id, order.len());
                order.push(e);
            }
        }
    }
    order
}

/// The stored events the page's items already have, by the item's Graph id: by Graph id, or,
/// for a create of ours whose answer was lost, by its transactionId (adopted, not duplicated).
async fn known_events(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    mailbox_id: i64,
    upserts: &[&PulledEvent],
) -> Result<HashMap<String, StoredEvent>, StoreError> {
    let mut known: HashMap<String, StoredEvent> = HashMap::new();
    for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE mailbox_id = {} AND graph_id IN ({})",
            marker(backend, 1),
            in_list(backend, 2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(mailbox_id);
        for e in chunk {
            q = q.bind(&e.graph_id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let event = event_from_row(&row)?;
            let graph_id = event.graph_id.clone().unwrap_or_default();
            known.insert(graph_id, event);
        }
    }
    let by_transaction: HashMap<&str, &str> = upserts
        .iter()
        .filter(|e| !known.contains_key(&e.graph_id))
        .filter_map(|e| {
            let t = e.transaction_id.as_deref().filter(|t| !t.is_empty())?;
            Some((t, e.graph_id.as_str()))
        })
        .collect();
    let transactions: Vec<&str> = by_transaction.keys().copied().collect();
    for chunk in transactions.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE mailbox_id = {} AND graph_id IS NULL AND transaction_id IN ({})",
            marker(backend, 1),
            in_list(backend, 2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(mailbox_id);
        for t in chunk {
            q = q.bind(*t);
        }
        for row in q.fetch_all(&mut **tx).await? {
            let event = event_from_row(&row)?;
            let transaction = event.transaction_id.clone().unwrap_or_default();
            if let Some(graph_id) = by_transaction.get(transaction.as_str()) {
                known.insert(graph_id.to_string(), event);
            }
        }
    }
    Ok(known)
}

/// Inserts the page's new events, their addresses and their matching-queue entries.
async fn insert_pulled(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    page: &EventPage,
    new: &[&PulledEvent],
    now: i64,
) -> Result<(), StoreError> {
    let mut ids: HashMap<String, i64> = HashMap::new();
    for chunk in new.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO events (tenant_id, user_id, mailbox_id, graph_id, series_graph_id, kind, ical_uid, subject, start_ms,
                 end_ms, all_day, start_date, end_date, record, origin, imported, send_invitations, sync_status, change_key,
                 transaction_id, crm_version, synced_version, cancelled, deleted, decided_by, created_ms, updated_ms)
             VALUES {}
             RETURNING id, graph_id",
            new_event_rows(backend, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            let f = &e.fields;
            let (start_date, end_date) = match &f.all_day {
                Some((s, e)) => (Some(s.as_str()), Some(e.as_str())),
                None => (None, None),
            };
            q = q
                .bind(page.tenant_id)
                .bind(page.user_id)
                .bind(page.mailbox_id)
                .bind(&e.graph_id)
                .bind(e.series_graph_id.as_deref())
                .bind(&e.kind)
                .bind(e.ical_uid.as_deref())
                .bind(&f.subject)
                .bind(f.start_ms)
                .bind(f.end_ms)
                .bind(f.all_day.is_some() as i64)
                .bind(start_date)
                .bind(end_date)
                .bind(&f.record)
                .bind(e.change_key.as_deref())
                .bind(e.transaction_id.as_deref())
                .bind(e.cancelled as i64)
                .bind(&e.decided_by)
                .bind(now)
                .bind(now);
        }
        for row in q.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get("graph_id")?, row.try_get("id")?);
        }
    }
    let mut queued: Vec<i64> = new.iter().map(|e| ids[&e.graph_id]).collect();
    queued.sort_unstable();
    // New events are owed a matching pass (E8), queued in the page's transaction.
    queue_for_matching(tx, backend, page.tenant_id, "event", &queued).await?;
    let mut addresses: Vec<(i64, &str, String, &str)> = Vec::new();
    for e in new {
        let id = ids[&e.graph_id];
        for a in &e.fields.addresses {
            addresses.push((id, &a.role, a.address.trim().to_ascii_lowercase(), &a.name));
        }
    }
    insert_addresses(tx, backend, AddressTable::EventAddresses, addresses).await
}

/// `rows` value rows of a pulled event: 20 parameters each, the constant columns (origin,
/// imported, send_invitations, sync_status, versions, deleted) written as literals.
fn new_event_rows(backend: Backend, rows: usize) -> String {
    const PARAMS: usize = 20;
    (0..rows)
        .map(|r| {
            let m: Vec<String> = (1..=PARAMS)
                .map(|c| marker(backend, r * PARAMS + c))
                .collect();
            format!(
                "({}, 'microsoft', 0, 0, 'active', {}, {}, 0, 0, {}, 0, {}, {}, {})",
                m[..14].join(", "),
                m[14],
                m[15],
                m[16],
                m[17],
                m[18],
                m[19]
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An item the CRM already holds: left alone, or Microsoft's version written over it.
async fn apply_change(
    tx: &mut Transaction<'_, Any>,
    old: &StoredEvent,
    e: &PulledEvent,
    now: i64,
    out: &mut PageOutcome,
) -> Result<(), StoreError> {
    // Deleted in the CRM, or taken out of the sync: Microsoft's changes stay out.
    if old.deleted || old.sync_status == "inactive" {
        out.unchanged += 1;
        return Ok(());
    }
    // Our own write coming back, or nothing new: nothing to do, so nothing loops.
    if old.change_key.is_some()
        && old.change_key == e.change_key
        && old.graph_id.as_deref() == Some(&e.graph_id)
    {
        out.unchanged += 1;
        return Ok(());
    }
    // A create whose answer was lost comes back by its transactionId: it is ours, adopted,
    // not a conflict.
    let adopted = old.graph_id.is_none();
    if old.crm_version > old.synced_version && !adopted {
        // Changed on both sides since the last sync: Microsoft wins (C1), and the CRM change
        // not yet pushed is dropped.
        out.conflicts += 1;
        sqlx::query("DELETE FROM event_outbox WHERE event_id = $1")
            .bind(old.id)
            .execute(&mut **tx)
            .await?;
    }
    update_fields(tx, old.id, &e.fields, now).await?;
    sqlx::query(
        "UPDATE events SET graph_id = $1, series_graph_id = $2, kind = $3, change_key = $4, cancelled = $5,
             synced_version = crm_version, sync_status = 'active', decided_by = $6 WHERE id = $7",
    )
    .bind(&e.graph_id)
    .bind(e.series_graph_id.as_deref())
    .bind(&e.kind)
    .bind(e.change_key.as_deref())
    .bind(e.cancelled as i64)
    .bind(&e.decided_by)
    .bind(old.id)
    .execute(&mut **tx)
    .await?;
    out.updated += 1;
    Ok(())
}

/// An item reported `@removed` or cancelled: deleted or made Inactive by the C3 setting.
async fn apply_removal(
    tx: &mut Transaction<'_, Any>,
    page: &EventPage,
    graph_id: &str,
    now: i64,
    out: &mut PageOutcome,
) -> Result<(), StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE mailbox_id = $1 AND graph_id = $2"
    ))
    .bind(page.mailbox_id)
    .bind(graph_id)
    .fetch_all(&mut **tx)
    .await?;
    let Some(old) = rows.first().map(event_from_row).transpose()? else {
        return Ok(());
    };
    if old.deleted {
        return Ok(());
    }
    if page.delete_removed {
        sqlx::query(
            "UPDATE events SET deleted = 1, synced_version = crm_version, updated_ms = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(old.id)
        .execute(&mut **tx)
        .await?;
        out.deleted += 1;
    } else {
        // Kept in the CRM (C3) but no longer in Microsoft: out of the sync.
        sqlx::query(
            "UPDATE events SET graph_id = NULL, change_key = NULL, sync_status = 'inactive', synced_version = crm_version,
                 updated_ms = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(old.id)
        .execute(&mut **tx)
        .await?;
        out.detached += 1;
    }
    sqlx::query("DELETE FROM event_outbox WHERE event_id = $1")
        .bind(old.id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A record stored or removed now is no longer owed a retry; most calendars owe none, so one
/// count decides whether the deletes are needed.
async fn forget_failures(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    mailbox_id: i64,
    graph_ids: &[&str],
) -> Result<(), StoreError> {
    if graph_ids.is_empty() {
        return Ok(());
    }
    let owed: i64 = sqlx::query("SELECT COUNT(*) AS n FROM failed_records WHERE mailbox_id = $1")
        .bind(mailbox_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    if owed == 0 {
        return Ok(());
    }
    for chunk in graph_ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM failed_records WHERE mailbox_id = {} AND graph_id IN ({})",
            marker(backend, 1),
            in_list(backend, 2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(mailbox_id);
        for graph_id in chunk {
            q = q.bind(*graph_id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The page's series masters: their pattern is the "Recurring in M365" text (C2).
async fn write_series(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    page: &EventPage,
    now: i64,
) -> Result<(), StoreError> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, s) in page.series.iter().enumerate() {
        by_id.insert(&s.graph_id, i);
    }
    let mut last: Vec<usize> = by_id.into_values().collect();
    last.sort_unstable();
    for chunk in last.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO event_series (mailbox_id, graph_id, subject, recurrence, pattern, updated_ms) VALUES {}
             ON CONFLICT (mailbox_id, graph_id) DO UPDATE SET subject = excluded.subject, recurrence = excluded.recurrence,
                 pattern = excluded.pattern, updated_ms = excluded.updated_ms",
            value_rows(backend, chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql);
        for &i in chunk {
            let s = &page.series[i];
            q = q
                .bind(page.mailbox_id)
                .bind(&s.graph_id)
                .bind(&s.subject)
                .bind(&s.recurrence)
                .bind(&s.pattern)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records resource calendars (C6), ahead of the events that name them: by lower-cased
/// address, the last name seen winning.
pub(crate) async fn write_rooms(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    tenant_id: i64,
    rooms: &[(String, String)],
    now: i64,
) -> Result<(), StoreError> {
    let mut by_address: HashMap<String, &str> = HashMap::new();
    for (address, name) in rooms {
        by_address.insert(address.trim().to_ascii_lowercase(), name);
    }
    let mut rows: Vec<(String, &str)> = by_address.into_iter().collect();
    rows.sort();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO resource_calendars (tenant_id, address, name, updated_ms) VALUES {}
             ON CONFLICT (tenant_id, address) DO UPDATE SET name = excluded.name, updated_ms = excluded.updated_ms",
            value_rows(backend, chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (address, name) in chunk {
            q = q
                .bind(tenant_id)
                .bind(address.clone())
                .bind(*name)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
