//! The row codecs every part of the calendar shares: the columns an event is read with,
//! a row to a [`StoredEvent`], and the writes of an event's fields and addresses.

use sqlx::{Any, Row, Transaction};

use super::*;
use crate::StoreError;

pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, user_id, mailbox_id, graph_id, series_graph_id, kind, subject, start_ms, end_ms, all_day, start_date, end_date, record, origin, imported, send_invitations, sync_status, change_key, transaction_id, crm_version, synced_version, cancelled, deleted, push_note";

pub(crate) fn event_from_row(r: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
    let flag = |name: &str| -> Result<bool, StoreError> { Ok(r.try_get::<i64, _>(name)? != 0) };
    Ok(StoredEvent {
        id: r.try_get("id")?,
        tenant_id: r.try_get("tenant_id")?,
        user_id: r.try_get("user_id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        graph_id: r.try_get("graph_id")?,
        series_graph_id: r.try_get("series_graph_id")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        start_ms: r.try_get("start_ms")?,
        end_ms: r.try_get("end_ms")?,
        all_day: flag("all_day")?,
        start_date: r.try_get("start_date")?,
        end_date: r.try_get("end_date")?,
        record: r.try_get("record")?,
        origin: r.try_get("origin")?,
        imported: flag("imported")?,
        send_invitations: flag("send_invitations")?,
        sync_status: r.try_get("sync_status")?,
        change_key: r.try_get("change_key")?,
        transaction_id: r.try_get("transaction_id")?,
        crm_version: r.try_get("crm_version")?,
        synced_version: r.try_get("synced_version")?,
        cancelled: flag("cancelled")?,
        deleted: flag("deleted")?,
        push_note: r.try_get("push_note")?,
    })
}

pub(crate) async fn write_addresses(
    tx: &mut Transaction<'_, Any>,
    event_id: i64,
    addresses: &[EventAddress],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM event_addresses WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    for a in addresses {
        sqlx::query(
            "INSERT INTO event_addresses (event_id, role, address, name) VALUES ($1, $2, $3, $4)
             ON CONFLICT (event_id, role, address) DO NOTHING",
        )
        .bind(event_id)
        .bind(&a.role)
        .bind(a.address.trim().to_ascii_lowercase())
        .bind(&a.name)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(crate) async fn update_fields(
    tx: &mut Transaction<'_, Any>,
    event_id: i64,
    f: &EventFields,
    now: i64,
) -> Result<(), StoreError> {
    let (start_date, end_date) = match &f.all_day {
        Some((s, e)) => (Some(s.clone()), Some(e.clone())),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE events SET subject = $1, start_ms = $2, end_ms = $3, all_day = $4, start_date = $5, end_date = $6,
             record = $7, updated_ms = $8 WHERE id = $9",
    )
    .bind(&f.subject)
    .bind(f.start_ms)
    .bind(f.end_ms)
    .bind(f.all_day.is_some() as i64)
    .bind(start_date)
    .bind(end_date)
    .bind(&f.record)
    .bind(now)
    .bind(event_id)
    .execute(&mut **tx)
    .await?;
    write_addresses(tx, event_id, &f.addresses).await
}
