//! Calendar sync state: settings per org and tenant (C1, C3, C4), resource calendars (C6),
//! events with their addresses and series, the outbox of CRM changes owed to Microsoft (C5),
//! and the per-page commit of a calendar's delta.
//!
//! [`Store::commit_event_page`] is the calendar's "nothing lost, nothing twice": a page's events,
//! removals, series, rooms, failed records and the calendar's cursor in one transaction, under
//! the worker's lease. Every CRM edit writes its outbox row in the edit's own transaction.
//!
//! This file holds the calendar's vocabulary (the types below); the `Store` methods are in one
//! file per concern:
//! - [`settings`]: calendar settings per org and tenant, a user's calendar switches;
//! - [`rooms`]: resource calendars;
//! - [`edits`]: the CRM's edits (create, update, remove), each with its outbox row;
//! - [`outbox`]: the outbox the push reads, and what it records of Graph's answers;
//! - [`page`]: the commit of one calendar delta page;
//! - [`reads`]: events by id, by Graph id, a tenant's and a user's (a page at a time);
//! - [`status`]: events that leave the sync range go Inactive (C8);
//! - [`rows`]: the row codecs the others share.

pub mod edits;
pub mod outbox;
pub mod page;
pub mod reads;
pub mod rooms;
pub mod rows;
pub mod settings;
pub mod status;

pub(crate) use outbox::queue_outbox;
pub use reads::EventWindow;
pub(crate) use rows::{event_from_row, update_fields, write_addresses, EVENT_COLUMNS};

use serde::{Deserialize, Serialize};

use super::schedule::Lease;
use super::sync::{fence_lease, Cursor, Exclusion, FailedRecord};

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
