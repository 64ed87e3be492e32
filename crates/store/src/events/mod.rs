//! Calendar sync state: settings per org and tenant (C1, C3, C4), resource calendars (C6),
//! events with their addresses and series, the outbox of CRM changes owed to Microsoft (C5),
//! and the per-page commit of a calendar's delta.
//!
//! [`crate::Store::commit_event_page`] is the calendar's "nothing lost, nothing twice": a page's events,
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
    /// Both ways: each side's changes reach the other.
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

    /// The stored word: `to_crm`, `to_microsoft` or `two_way`.
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
    /// Which way events flow (C1).
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
    /// The address's role: `organizer`, `required`, `optional` or `resource`.
    pub role: String,
    /// The address, lower-case.
    pub address: String,
    /// The display name Graph gave with it (may be empty).
    pub name: String,
}

/// The fields of an event both sides write.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFields {
    /// The event's subject.
    pub subject: String,
    /// Start, UTC epoch ms.
    pub start_ms: i64,
    /// End, UTC epoch ms.
    pub end_ms: i64,
    /// `(start date, end date)` of an all-day event (end exclusive), `YYYY-MM-DD`.
    pub all_day: Option<(String, String)>,
    /// The CRM event record (C8), JSON.
    pub record: String,
    /// The organizer, attendees and resources.
    pub addresses: Vec<EventAddress>,
}

/// An event as a calendar delta page brings it.
#[derive(Debug, Clone)]
pub struct PulledEvent {
    /// The event's Graph id (immutable).
    pub graph_id: String,
    /// The Graph id of the event's series master, for an occurrence or exception.
    pub series_graph_id: Option<String>,
    /// Graph's type: singleInstance, occurrence, exception.
    pub kind: String,
    /// The iCalendar UID Graph gives every copy of a meeting.
    pub ical_uid: Option<String>,
    /// Graph's version of the event.
    pub change_key: Option<String>,
    /// The `transactionId` our push set on it, if this is our own create coming back.
    pub transaction_id: Option<String>,
    /// True when the organizer cancelled the event.
    pub cancelled: bool,
    /// The fields both sides write.
    pub fields: EventFields,
    /// The stamps (`name version sha256:digest`) of the plugins that decided it (P5).
    pub decided_by: String,
}

/// A series master: its pattern as readable text ("Recurring in M365") and as Graph gave it.
#[derive(Debug, Clone)]
pub struct SeriesRecord {
    /// The master's Graph id.
    pub graph_id: String,
    /// The series' subject.
    pub subject: String,
    /// The pattern as readable English ("Every 2 weeks on Monday and Wednesday, until 30 June
    /// 2027"): what users see.
    pub recurrence: String,
    /// Graph's `recurrence` JSON, for code that needs the pattern itself.
    pub pattern: String,
}

/// Everything one calendar delta page changes.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// The tenant of the calendar.
    pub tenant_id: i64,
    /// The mailbox whose calendar this is.
    pub mailbox_id: i64,
    /// The CRM user the mailbox belongs to, if linked.
    pub user_id: Option<i64>,
    /// Events new or changed in this page.
    pub upserts: Vec<PulledEvent>,
    /// Graph ids reported `@removed` (or cancelled) in this page.
    pub removals: Vec<String>,
    /// C3: a removal deletes the CRM event (else the event is kept and made Inactive).
    pub delete_removed: bool,
    /// Series masters seen in this page.
    pub series: Vec<SeriesRecord>,
    /// (address, name) of resource calendars seen in the page's locations.
    pub rooms: Vec<(String, String)>,
    /// Records a plugin excluded, with the rule.
    pub exclusions: Vec<Exclusion>,
    /// Records a stage failed on.
    pub failures: Vec<FailedRecord>,
    /// The cursor that follows this page; `None` keeps the stored one.
    pub cursor: Option<Cursor>,
    /// The run this page belongs to, for its counts.
    pub run_id: Option<i64>,
    /// The worker's lease on the mailbox: the commit is refused if it was lost.
    pub lease: Option<Lease>,
}

/// What a page's commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageOutcome {
    /// New events written.
    pub inserted: u64,
    /// Known events whose fields changed.
    pub updated: u64,
    /// Items whose changeKey we already hold: our own writes coming back, or no change.
    pub unchanged: u64,
    /// Events changed on both sides since the last sync: Microsoft's version was kept (C1).
    pub conflicts: u64,
    /// Events deleted because Microsoft removed them.
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
    /// m365sync's id of the event.
    pub id: i64,
    /// The tenant the event belongs to.
    pub tenant_id: i64,
    /// The CRM user whose calendar holds it.
    pub user_id: Option<i64>,
    /// The mailbox whose calendar holds it.
    pub mailbox_id: Option<i64>,
    /// Its Graph id, once Microsoft has it.
    pub graph_id: Option<String>,
    /// The Graph id of its series master, for an occurrence or exception.
    pub series_graph_id: Option<String>,
    /// Graph's type: singleInstance, occurrence, exception (or the CRM's for its own events).
    pub kind: String,
    /// The subject.
    pub subject: String,
    /// Start, UTC epoch ms.
    pub start_ms: i64,
    /// End, UTC epoch ms.
    pub end_ms: i64,
    /// True for an all-day event (its dates are in `start_date`, `end_date`).
    pub all_day: bool,
    /// An all-day event's first date, `YYYY-MM-DD`.
    pub start_date: Option<String>,
    /// An all-day event's end date (exclusive), `YYYY-MM-DD`.
    pub end_date: Option<String>,
    /// The CRM event record (C8), JSON.
    pub record: String,
    /// Where it was made: `microsoft` (pulled) or `crm`.
    pub origin: String,
    /// True when it came in by a CRM import: it is never pushed.
    pub imported: bool,
    /// True when a push sends invitations to its attendees (C9).
    pub send_invitations: bool,
    /// C8's sync status: `never`, `active` or `inactive`.
    pub sync_status: String,
    /// Graph's version we last stored (ours coming back is recognised by it).
    pub change_key: Option<String>,
    /// The `transactionId` of our create, stored before the POST.
    pub transaction_id: Option<String>,
    /// How many CRM edits it has had.
    pub crm_version: i64,
    /// The CRM version Microsoft last agreed with; below `crm_version`, a push is owed.
    pub synced_version: i64,
    /// True when the organizer cancelled it.
    pub cancelled: bool,
    /// True when deleted (kept as a tombstone for the sync).
    pub deleted: bool,
    /// Why its last CRM change was resolved without reaching Microsoft (decided at the edit,
    /// such as a delete while deletes from the CRM were off, or by the push, such as an event
    /// that became past while it waited); `None` once a change is sent or while one waits.
    pub push_note: Option<String>,
}

/// Whether a CRM edit goes to Microsoft, decided when the edit is made (C5): queued (it may
/// still wait in the outbox, for the user's Sync Events or the outbound range), or not, with
/// why. A delete's decision captures the "deletes from the CRM" setting of that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound<'a> {
    /// An outbox row is written in the edit's transaction.
    Queue,
    /// No row: the reason is kept on the event (`push_note`) for `events list` and the API.
    NotSent(&'a str),
}

/// A CRM change owed to Microsoft.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    /// The outbox row's id (rows are pushed in id order).
    pub id: i64,
    /// The event the change is of.
    pub event_id: i64,
    /// `create`, `update` or `delete`.
    pub op: String,
    /// The fields an update changed, so a PATCH sends only those.
    pub fields: Vec<String>,
    /// How many pushes of it failed.
    pub attempts: i64,
    /// What Graph answered to the last failed push, if one failed.
    pub last_error: Option<String>,
}

/// What Graph answered to a push.
#[derive(Debug, Clone)]
pub struct PushResult {
    /// The event's id in Microsoft (set after a create).
    pub graph_id: Option<String>,
    /// The mailbox whose calendar now holds the event.
    pub mailbox_id: Option<i64>,
    /// Graph's version after the write.
    pub change_key: Option<String>,
    /// The `transactionId` the write carried.
    pub transaction_id: Option<String>,
    /// The CRM version the push carried.
    pub version: i64,
    /// The CRM record with what Microsoft gave it (its External ID after a create); `None`
    /// keeps the stored one.
    pub record: Option<String>,
}

/// A CRM user's calendar switches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarUser {
    /// The CRM user.
    pub user_id: i64,
    /// The user's own address.
    pub email: String,
    /// The user's "Sync Events" switch.
    pub sync_events: bool,
    /// The user's own mailbox, whose calendar is synced.
    pub primary_mailbox_id: Option<i64>,
}
