//! Calendar sync state: settings per org and tenant (C1, C3, C4), resource calendars (C6),
//! events with their addresses and series, the outbox of CRM changes owed to Microsoft (C5),
//! and the per-page commit of a calendar's delta.
//!
//! [`Store::commit_event_page`] is the calendar's "nothing lost, nothing twice": a page's events,
//! removals, series, rooms, failed records and the calendar's cursor in one transaction, under
//! the worker's lease. Every CRM edit writes its outbox row in the edit's own transaction.

use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};

use super::schedule::Lease;
use super::sync::{fence_lease, Cursor, Exclusion, FailedRecord};
use super::{now_ms, Store, StoreError};

/// The cursor "folder" of a mailbox's calendar in `sync_cursors`.
pub const CALENDAR_FOLDER: &str = "calendar";

/// Which way events flow (C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Microsoft to CRM (the default, C9).
    ToCrm,
    /// CRM to Microsoft.
    ToMicrosoft,
    TwoWay,
}

impl Direction {
    /// True when Microsoft's changes come into the CRM.
    pub fn pulls(self) -> bool {
        matches!(self, Direction::ToCrm | Direction::TwoWay)
    }

    /// True when CRM changes go to Microsoft (and can send invitations, C9).
    pub fn pushes(self) -> bool {
        matches!(self, Direction::ToMicrosoft | Direction::TwoWay)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToCrm => "to_crm",
            Direction::ToMicrosoft => "to_microsoft",
            Direction::TwoWay => "two_way",
        }
    }

    /// Reads `to_crm`, `to_microsoft` or `two_way` (dashes allowed).
    pub fn parse(s: &str) -> Result<Direction, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "to_crm" => Ok(Direction::ToCrm),
            "to_microsoft" => Ok(Direction::ToMicrosoft),
            "two_way" => Ok(Direction::TwoWay),
            other => Err(format!(
                "unknown calendar direction '{other}': use to_crm, to_microsoft or two_way"
            )),
        }
    }
}

/// A tenant's calendar settings (C1, C3, C4), as stored for the org or the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarSettings {
    pub direction: Direction,
    /// Events only attended by CRM users (C3).
    pub sync_internal_events: bool,
    /// An event deleted (or cancelled) in Microsoft is deleted in the CRM.
    pub delete_from_microsoft: bool,
    /// An event deleted in the CRM is deleted in Microsoft.
    pub delete_from_crm: bool,
    /// Private events sync without attendees; off: not at all.
    pub sync_private_events: bool,
    /// Applied by the matching job (not by the calendar sync): events related to no CRM record
    /// are kept only when set.
    pub sync_unmatched_events: bool,
    /// The oldest event pulled; `None`: six months before the tenant's first sync (C4).
    pub commencement_ms: Option<i64>,
    /// How far ahead Microsoft's events are pulled (C4, default 10).
    pub inbound_years: i64,
    /// How far ahead CRM events are pushed (C4, default 24).
    pub outbound_months: i64,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        CalendarSettings {
            direction: Direction::ToCrm,
            sync_internal_events: false,
            delete_from_microsoft: true,
            delete_from_crm: false,
            sync_private_events: true,
            sync_unmatched_events: false,
            commencement_ms: None,
            inbound_years: 10,
            outbound_months: 24,
        }
    }
}

impl CalendarSettings {
    /// Checks the ranges the schema enforces, with a message saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !(0..=50).contains(&self.inbound_years) {
            return Err(format!(
                "inbound range {} years: use 0 to 50",
                self.inbound_years
            ));
        }
        if !(0..=600).contains(&self.outbound_months) {
            return Err(format!(
                "outbound range {} months: use 0 to 600",
                self.outbound_months
            ));
        }
        Ok(())
    }
}

/// An address of an event: `organizer`, `required`, `optional` or `resource`; lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventAddress {
    pub role: String,
    pub address: String,
    pub name: String,
}

/// The fields of an event both sides write.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFields {
    pub subject: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `(start date, end date)` of an all-day event (end exclusive), `YYYY-MM-DD`.
    pub all_day: Option<(String, String)>,
    /// The CRM event record (C8), JSON.
    pub record: String,
    pub addresses: Vec<EventAddress>,
}

/// An event as a calendar delta page brings it.
#[derive(Debug, Clone)]
pub struct PulledEvent {
    pub graph_id: String,
    pub series_graph_id: Option<String>,
    /// Graph's type: singleInstance, occurrence, exception.
    pub kind: String,
    pub ical_uid: Option<String>,
    pub change_key: Option<String>,
    pub transaction_id: Option<String>,
    pub cancelled: bool,
    pub fields: EventFields,
    pub decided_by: String,
}

/// A series master: its pattern as text ("Recurring in M365").
#[derive(Debug, Clone)]
pub struct SeriesRecord {
    pub graph_id: String,
    pub subject: String,
    pub recurrence: String,
}

/// Everything one calendar delta page changes.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub tenant_id: i64,
    pub mailbox_id: i64,
    pub user_id: Option<i64>,
    pub upserts: Vec<PulledEvent>,
    /// Graph ids reported `@removed` (or cancelled) in this page.
    pub removals: Vec<String>,
    /// C3: a removal deletes the CRM event (else the event is kept and made Inactive).
    pub delete_removed: bool,
    pub series: Vec<SeriesRecord>,
    /// (address, name) of resource calendars seen in the page's locations.
    pub rooms: Vec<(String, String)>,
    pub exclusions: Vec<Exclusion>,
    pub failures: Vec<FailedRecord>,
    pub cursor: Option<Cursor>,
    pub run_id: Option<i64>,
    pub lease: Option<Lease>,
}

/// What a page's commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageOutcome {
    pub inserted: u64,
    pub updated: u64,
    /// Items whose changeKey we already hold: our own writes coming back, or no change.
    pub unchanged: u64,
    /// Events changed on both sides since the last sync: Microsoft's version was kept (C1).
    pub conflicts: u64,
    pub deleted: u64,
    /// Removed in Microsoft but kept (deletes from Microsoft off): made Inactive.
    pub detached: u64,
}

impl std::ops::AddAssign for PageOutcome {
    fn add_assign(&mut self, b: PageOutcome) {
        self.inserted += b.inserted;
        self.updated += b.updated;
        self.unchanged += b.unchanged;
        self.conflicts += b.conflicts;
        self.deleted += b.deleted;
        self.detached += b.detached;
    }
}

/// A stored event.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub tenant_id: i64,
    pub user_id: Option<i64>,
    pub mailbox_id: Option<i64>,
    pub graph_id: Option<String>,
    pub series_graph_id: Option<String>,
    pub kind: String,
    pub subject: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub all_day: bool,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub record: String,
    pub origin: String,
    pub imported: bool,
    pub send_invitations: bool,
    pub sync_status: String,
    pub change_key: Option<String>,
    pub transaction_id: Option<String>,
    pub crm_version: i64,
    pub synced_version: i64,
    pub cancelled: bool,
    pub deleted: bool,
}

/// A CRM change owed to Microsoft.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub event_id: i64,
    pub op: String,
    pub fields: Vec<String>,
    pub attempts: i64,
}

/// What Graph answered to a push.
#[derive(Debug, Clone)]
pub struct PushResult {
    /// The event's id in Microsoft (set after a create).
    pub graph_id: Option<String>,
    pub mailbox_id: Option<i64>,
    pub change_key: Option<String>,
    pub transaction_id: Option<String>,
    /// The CRM version the push carried.
    pub version: i64,
}

/// A CRM user's calendar switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarUser {
    pub user_id: i64,
    pub email: String,
    pub sync_events: bool,
    pub primary_mailbox_id: Option<i64>,
}

pub(super) const EVENT_COLUMNS: &str = "id, tenant_id, user_id, mailbox_id, graph_id, series_graph_id, kind, subject, start_ms, end_ms, all_day, start_date, end_date, record, origin, imported, send_invitations, sync_status, change_key, transaction_id, crm_version, synced_version, cancelled, deleted";

pub(super) fn event_from_row(r: &sqlx::any::AnyRow) -> Result<StoredEvent, StoreError> {
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
    })
}

fn settings_from_row(r: &sqlx::any::AnyRow) -> Result<CalendarSettings, StoreError> {
    let flag = |name: &str| -> Result<bool, StoreError> { Ok(r.try_get::<i64, _>(name)? != 0) };
    let direction: String = r.try_get("direction")?;
    Ok(CalendarSettings {
        direction: Direction::parse(&direction).map_err(StoreError::Invalid)?,
        sync_internal_events: flag("sync_internal_events")?,
        delete_from_microsoft: flag("delete_from_microsoft")?,
        delete_from_crm: flag("delete_from_crm")?,
        sync_private_events: flag("sync_private_events")?,
        sync_unmatched_events: flag("sync_unmatched_events")?,
        commencement_ms: r.try_get("commencement_ms")?,
        inbound_years: r.try_get("inbound_years")?,
        outbound_months: r.try_get("outbound_months")?,
    })
}

async fn write_addresses(
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

pub(super) async fn update_fields(
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

async fn queue_outbox(
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

impl Store {
    /// The calendar settings that apply to a tenant: its own, else its org's, else the
    /// defaults of C3 and C4.
    pub async fn calendar_settings(
        &self,
        org_id: i64,
        tenant_id: i64,
    ) -> Result<CalendarSettings, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM calendar_settings WHERE org_id = $1 AND tenant_scope IN (0, $2) ORDER BY tenant_scope DESC",
        )
        .bind(org_id)
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        match rows.first() {
            Some(r) => settings_from_row(r),
            None => Ok(CalendarSettings::default()),
        }
    }

    /// The settings stored at one level (`tenant_id` `None`: the org's), if any.
    pub async fn calendar_settings_at(
        &self,
        org_id: i64,
        tenant_id: Option<i64>,
    ) -> Result<Option<CalendarSettings>, StoreError> {
        let row =
            sqlx::query("SELECT * FROM calendar_settings WHERE org_id = $1 AND tenant_scope = $2")
                .bind(org_id)
                .bind(tenant_id.unwrap_or(0))
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(settings_from_row).transpose()
    }

    /// Stores the calendar settings of an org (`tenant_id` `None`) or of one tenant.
    pub async fn set_calendar_settings(
        &self,
        org_id: i64,
        tenant_id: Option<i64>,
        s: &CalendarSettings,
    ) -> Result<(), StoreError> {
        s.validate().map_err(StoreError::Invalid)?;
        sqlx::query(
            "INSERT INTO calendar_settings (org_id, tenant_scope, direction, sync_internal_events, delete_from_microsoft, delete_from_crm,
                 sync_private_events, sync_unmatched_events, commencement_ms, inbound_years, outbound_months)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (org_id, tenant_scope) DO UPDATE SET direction = excluded.direction,
                 sync_internal_events = excluded.sync_internal_events, delete_from_microsoft = excluded.delete_from_microsoft,
                 delete_from_crm = excluded.delete_from_crm, sync_private_events = excluded.sync_private_events,
                 sync_unmatched_events = excluded.sync_unmatched_events, commencement_ms = excluded.commencement_ms,
                 inbound_years = excluded.inbound_years, outbound_months = excluded.outbound_months",
        )
        .bind(org_id)
        .bind(tenant_id.unwrap_or(0))
        .bind(s.direction.as_str())
        .bind(s.sync_internal_events as i64)
        .bind(s.delete_from_microsoft as i64)
        .bind(s.delete_from_crm as i64)
        .bind(s.sync_private_events as i64)
        .bind(s.sync_unmatched_events as i64)
        .bind(s.commencement_ms)
        .bind(s.inbound_years)
        .bind(s.outbound_months)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The CRM user a mailbox belongs to, with their calendar switches (C2).
    pub async fn calendar_user(&self, user_id: i64) -> Result<CalendarUser, StoreError> {
        let r = sqlx::query(
            "SELECT id, email, sync_events, primary_mailbox_id FROM users WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no CRM user {user_id}")))?;
        Ok(CalendarUser {
            user_id: r.try_get("id")?,
            email: r.try_get("email")?,
            sync_events: r.try_get::<i64, _>("sync_events")? != 0,
            primary_mailbox_id: r.try_get("primary_mailbox_id")?,
        })
    }

    /// Turns a user's Sync Events switch on or off (C2).
    pub async fn set_sync_events(&self, user_id: i64, on: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET sync_events = $1 WHERE id = $2")
            .bind(on as i64)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records the tenant's resource calendars (C6), ahead of its events.
    pub async fn upsert_rooms(
        &self,
        tenant_id: i64,
        rooms: &[(String, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        super::event_page::write_rooms(&mut tx, self.backend(), tenant_id, rooms, now_ms()).await?;
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

    /// Creates a CRM event for a user (C5); with `outbox`, the push is queued in the same
    /// transaction. Returns the event's id.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_crm_event(
        &self,
        tenant_id: i64,
        user_id: i64,
        mailbox_id: Option<i64>,
        fields: &EventFields,
        imported: bool,
        send_invitations: bool,
        outbox: bool,
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
        if outbox && !imported {
            queue_outbox(&mut tx, id, tenant_id, user_id, "create", &[], now).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Changes a CRM event: its fields, and which of them changed (`changed`, pushed as a
    /// PATCH of just those); with `outbox`, the push is queued in the same transaction.
    pub async fn update_crm_event(
        &self,
        event_id: i64,
        fields: &EventFields,
        changed: &[String],
        send_invitations: Option<bool>,
        outbox: bool,
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
        if outbox && !old.imported {
            if let Some(user_id) = old.user_id {
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
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a CRM event (kept as a tombstone so Microsoft's later news of it is ignored);
    /// with `outbox`, the delete in Microsoft is queued in the same transaction.
    pub async fn remove_crm_event(&self, event_id: i64, outbox: bool) -> Result<(), StoreError> {
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
        if outbox && !old.imported {
            if let Some(user_id) = old.user_id {
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
        }
        tx.commit().await?;
        Ok(())
    }

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

    /// A user's CRM changes owed to Microsoft, oldest first.
    pub async fn outbox_for_user(&self, user_id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event_id, op, fields, attempts FROM event_outbox WHERE user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let fields: String = r.try_get("fields")?;
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    op: r.try_get("op")?,
                    fields: serde_json::from_str(&fields).unwrap_or_default(),
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
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
                 synced_version = $5, sync_status = 'active', updated_ms = $6 WHERE id = $7",
        )
        .bind(result.graph_id.as_deref())
        .bind(result.mailbox_id)
        .bind(result.change_key.as_deref())
        .bind(result.transaction_id.as_deref())
        .bind(result.version)
        .bind(now)
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

    /// Drops an event's outbox rows up to `upto` without pushing (past, out of range,
    /// imported, or the direction no longer pushes).
    pub async fn drop_outbox(&self, event_id: i64, upto: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM event_outbox WHERE event_id = $1 AND id <= $2")
            .bind(event_id)
            .bind(upto)
            .execute(self.pool())
            .await?;
        Ok(())
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
}
