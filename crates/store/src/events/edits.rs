//! The CRM's edits of events (C5): create, update and remove, each writing its outbox row
//! in the edit's own transaction.

use sqlx::{Any, Row, Transaction};

use super::*;
use crate::{now_ms, Store, StoreError};

fn inserted_id(rows: Vec<sqlx::any::AnyRow>) -> Result<i64, StoreError> {
    Ok(rows
        .into_iter()
        .next()
        .ok_or(sqlx::Error::RowNotFound)?
        .try_get("id")?)
}

/// Inserts a new event and queues it for the matching job, in `tx`.
#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    tenant_id: i64,
    user_id: Option<i64>,
    mailbox_id: Option<i64>,
    origin: &str,
    f: &EventFields,
    extra: &Insert<'_>,
    now: i64,
) -> Result<i64, StoreError> {
    let (start_date, end_date) = match &f.all_day {
        Some((s, e)) => (Some(s.clone()), Some(e.clone())),
        None => (None, None),
    };
    let id = inserted_id(
        sqlx::query(
            "INSERT INTO events (tenant_id, user_id, mailbox_id, graph_id, series_graph_id, kind, ical_uid, subject, start_ms, end_ms,
                 all_day, start_date, end_date, record, origin, imported, send_invitations, sync_status, change_key, transaction_id,
                 crm_version, synced_version, cancelled, deleted, decided_by, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21, $22, 0, $23, $24, $24)
             RETURNING id",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(mailbox_id)
        .bind(extra.graph_id)
        .bind(extra.series_graph_id)
        .bind(extra.kind)
        .bind(extra.ical_uid)
        .bind(&f.subject)
        .bind(f.start_ms)
        .bind(f.end_ms)
        .bind(f.all_day.is_some() as i64)
        .bind(start_date)
        .bind(end_date)
        .bind(&f.record)
        .bind(origin)
        .bind(extra.imported as i64)
        .bind(extra.send_invitations as i64)
        .bind(extra.sync_status)
        .bind(extra.change_key)
        .bind(extra.transaction_id)
        .bind(extra.version)
        .bind(extra.cancelled as i64)
        .bind(extra.decided_by)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?,
    )?;
    write_addresses(tx, id, &f.addresses).await?;
    sqlx::query(
        "INSERT INTO match_queue (tenant_id, kind, record_id) VALUES ($1, 'event', $2)
         ON CONFLICT (tenant_id, kind, record_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// An edit's decision for an existing event: imported events and events of no user are never
/// queued, whatever the settings.
fn outbound_of<'a>(old: &StoredEvent, outbound: Outbound<'a>) -> Outbound<'a> {
    if old.imported {
        Outbound::NotSent("imported events are never pushed")
    } else if old.user_id.is_none() {
        Outbound::NotSent("the event is in no CRM user's calendar")
    } else {
        outbound
    }
}

/// The columns of a new event beyond its fields.
struct Insert<'a> {
    graph_id: Option<&'a str>,
    series_graph_id: Option<&'a str>,
    kind: &'a str,
    ical_uid: Option<&'a str>,
    imported: bool,
    send_invitations: bool,
    sync_status: &'a str,
    change_key: Option<&'a str>,
    transaction_id: Option<&'a str>,
    version: i64,
    cancelled: bool,
    decided_by: &'a str,
}

/// Records the edit's decision on the event: a queued change clears an earlier "not sent"
/// note, a change that will not be sent says why.
async fn note(
    tx: &mut Transaction<'_, Any>,
    event_id: i64,
    outbound: Outbound<'_>,
) -> Result<(), StoreError> {
    let why = match outbound {
        Outbound::Queue => None,
        Outbound::NotSent(why) => Some(why),
    };
    sqlx::query("UPDATE events SET push_note = $1 WHERE id = $2")
        .bind(why)
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Creates a CRM event for a user (C5); with [`Outbound::Queue`], the push is queued in
    /// the same transaction (never for an imported event). Returns the event's id.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_crm_event(
        &self,
        tenant_id: i64,
        user_id: i64,
        mailbox_id: Option<i64>,
        fields: &EventFields,
        imported: bool,
        send_invitations: bool,
        outbound: Outbound<'_>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let id = insert_event(
            &mut tx,
            tenant_id,
            Some(user_id),
            mailbox_id,
            "crm",
            fields,
            &Insert {
                graph_id: None,
                series_graph_id: None,
                kind: "singleInstance",
                ical_uid: None,
                imported,
                send_invitations,
                sync_status: "never",
                change_key: None,
                transaction_id: None,
                version: 0,
                cancelled: false,
                decided_by: "crm",
            },
            now,
        )
        .await?;
        sqlx::query("UPDATE events SET crm_version = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let outbound = match (imported, outbound) {
            (true, _) => Outbound::NotSent("imported events are never pushed"),
            (false, o) => o,
        };
        if outbound == Outbound::Queue {
            queue_outbox(&mut tx, id, tenant_id, user_id, "create", &[], now).await?;
        }
        note(&mut tx, id, outbound).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Changes a CRM event: its fields, and which of them changed (`changed`, pushed as a
    /// PATCH of just those); with [`Outbound::Queue`], the push is queued in the same
    /// transaction.
    pub async fn update_crm_event(
        &self,
        event_id: i64,
        fields: &EventFields,
        changed: &[String],
        send_invitations: Option<bool>,
        outbound: Outbound<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let old = self.event(event_id).await?;
        if old.deleted {
            return Err(StoreError::Invalid(format!(
                "event {event_id} was deleted; it cannot be changed"
            )));
        }
        let mut tx = self.pool().begin().await?;
        update_fields(&mut tx, event_id, fields, now).await?;
        sqlx::query(
            "UPDATE events SET crm_version = crm_version + 1, send_invitations = $1 WHERE id = $2",
        )
        .bind(send_invitations.unwrap_or(old.send_invitations) as i64)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
        let outbound = outbound_of(&old, outbound);
        if let (Outbound::Queue, Some(user_id)) = (outbound, old.user_id) {
            queue_outbox(
                &mut tx,
                event_id,
                old.tenant_id,
                user_id,
                "update",
                changed,
                now,
            )
            .await?;
        }
        note(&mut tx, event_id, outbound).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a CRM event (kept as a tombstone so Microsoft's later news of it is ignored);
    /// with [`Outbound::Queue`], the delete in Microsoft is queued in the same transaction, and
    /// the push sends it whatever the settings say by then: the decision (deletes from the CRM
    /// on or off) is the one made at the delete.
    pub async fn remove_crm_event(
        &self,
        event_id: i64,
        outbound: Outbound<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let old = self.event(event_id).await?;
        if old.deleted {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE events SET deleted = 1, crm_version = crm_version + 1, updated_ms = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(event_id)
        .execute(&mut *tx)
        .await?;
        let outbound = outbound_of(&old, outbound);
        if let (Outbound::Queue, Some(user_id)) = (outbound, old.user_id) {
            queue_outbox(
                &mut tx,
                event_id,
                old.tenant_id,
                user_id,
                "delete",
                &[],
                now,
            )
            .await?;
        }
        note(&mut tx, event_id, outbound).await?;
        tx.commit().await?;
        Ok(())
    }
}
