//! Events as a calendar stores them: singles and series masters, each master carrying its
//! modified occurrences (exceptions) and deleted occurrences.
//!
//! Occurrences are never stored; they are computed from the master (see `expand`). Every change
//! is logged with the event's state before it, so a calendarView delta round can tell which
//! instances a change added, moved or removed inside any window, without per-client state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::recurrence::Recurrence;
use super::timezone::Zone;
use crate::model::{Change, Recipient, World};

/// Graph's `attendeeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttendeeType {
    Required,
    Optional,
    /// A room or other resource.
    Resource,
}

impl AttendeeType {
    /// The name Graph uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AttendeeType::Required => "required",
            AttendeeType::Optional => "optional",
            AttendeeType::Resource => "resource",
        }
    }
}

/// One attendee and the answer they gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub kind: AttendeeType,
    pub who: Recipient,
    /// Graph's `responseType`: none, organizer, tentativelyAccepted, accepted, declined,
    /// notResponded.
    #[serde(with = "crate::persist::static_str")]
    pub response: crate::persist::StaticStr,
    pub response_time: Option<DateTime<Utc>>,
}

/// A place: Graph's `location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub display_name: String,
    /// `default`, `conferenceRoom`, ...
    #[serde(with = "crate::persist::static_str")]
    pub location_type: crate::persist::StaticStr,
    /// A room's address (`locationEmailAddress`), empty for free text.
    pub email: String,
    pub unique_id: String,
    /// `unknown`, `directory`, `private`.
    #[serde(with = "crate::persist::static_str")]
    pub unique_id_type: crate::persist::StaticStr,
}

/// When an event happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    /// Wall-clock times in the zones the organizer gave.
    Timed {
        start: NaiveDateTime,
        #[serde(with = "crate::persist::zone")]
        start_zone: Zone,
        end: NaiveDateTime,
        #[serde(with = "crate::persist::zone")]
        end_zone: Zone,
    },
    /// Whole days, `end` exclusive. Kept as dates so no zone conversion can shift them.
    AllDay {
        start: NaiveDate,
        end: NaiveDate,
        #[serde(with = "crate::persist::zone")]
        zone: Zone,
    },
}

impl When {
    /// The instants the event spans. All-day events span midnight to midnight in their own zone.
    pub fn span(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            When::Timed {
                start,
                start_zone,
                end,
                end_zone,
            } => (start_zone.to_utc(*start), end_zone.to_utc(*end)),
            When::AllDay { start, end, zone } => (
                zone.to_utc(start.and_time(chrono::NaiveTime::MIN)),
                zone.to_utc(end.and_time(chrono::NaiveTime::MIN)),
            ),
        }
    }

    /// The wall-clock start that identifies an occurrence of a series.
    pub fn local_start(&self) -> NaiveDateTime {
        match self {
            When::Timed { start, .. } => *start,
            When::AllDay { start, .. } => start.and_time(chrono::NaiveTime::MIN),
        }
    }

    /// The same event moved to another date, keeping its wall-clock times and length.
    pub fn on_date(&self, date: NaiveDate) -> When {
        let shift = date - self.local_start().date();
        self.shifted(shift)
    }

    fn shifted(&self, by: Duration) -> When {
        match self.clone() {
            When::Timed {
                start,
                start_zone,
                end,
                end_zone,
            } => When::Timed {
                start: start + by,
                start_zone,
                end: end + by,
                end_zone,
            },
            When::AllDay { start, end, zone } => When::AllDay {
                start: start + by,
                end: end + by,
                zone,
            },
        }
    }

    /// True for all-day events.
    pub fn is_all_day(&self) -> bool {
        matches!(self, When::AllDay { .. })
    }
}

/// What an exception may change about an occurrence, and everything a single event has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub subject: String,
    pub body_html: String,
    pub attendees: Vec<Attendee>,
    /// The first is `location`; all are `locations`.
    pub locations: Vec<Location>,
    #[serde(with = "crate::persist::static_str")]
    pub sensitivity: crate::persist::StaticStr,
    #[serde(with = "crate::persist::static_str")]
    pub show_as: crate::persist::StaticStr,
    #[serde(with = "crate::persist::static_str")]
    pub importance: crate::persist::StaticStr,
    /// A Teams join URL when the event is an online meeting.
    pub join_url: Option<String>,
    pub reminder_minutes: u32,
    pub reminder_on: bool,
    pub categories: Vec<String>,
    pub is_cancelled: bool,
    pub when: When,
}

/// A modified occurrence: the fields it overrides, on top of the master's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    pub details: Details,
    pub version: u32,
    pub last_modified: DateTime<Utc>,
}

/// A stored event: a single instance or a series master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// World sequence at creation: the payload of its id and its place in a first delta round.
    pub key: u64,
    pub ical_uid: String,
    pub organizer: Recipient,
    pub is_organizer: bool,
    /// This mailbox's own answer (`responseStatus`).
    #[serde(with = "crate::persist::static_str")]
    pub response: crate::persist::StaticStr,
    pub response_time: Option<DateTime<Utc>>,
    pub is_draft: bool,
    pub transaction_id: Option<String>,
    pub details: Details,
    pub recurrence: Option<Recurrence>,
    /// Original wall-clock start -> the modified occurrence.
    pub exceptions: BTreeMap<NaiveDateTime, Exception>,
    /// Original wall-clock starts of deleted occurrences.
    pub deleted: BTreeSet<NaiveDateTime>,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub version: u32,
}

/// One logged change: the event's state before it (`None` when it was created).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logged {
    pub key: u64,
    pub before: Option<Box<Event>>,
}

/// One mailbox's calendar.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Calendar {
    /// Singles and series masters by key.
    pub events: BTreeMap<u64, Event>,
    /// `transactionId` -> key, so a repeated POST returns the first event.
    pub transactions: HashMap<String, u64>,
    /// iCalUId -> key: finds an attendee's copy of a meeting.
    pub by_uid: HashMap<String, u64>,
    /// Change sequence -> change, for delta.
    pub log: BTreeMap<u64, Logged>,
    /// Key -> sequences of its changes, ascending (to fold a round's changes per event).
    pub changes: HashMap<u64, Vec<u64>>,
    /// The world's id salt, so the ground truth can name events from the calendar alone.
    pub salt: u32,
}

impl Calendar {
    /// The event whose iCalUId is `uid` (an attendee's copy of a meeting).
    pub fn by_ical_uid(&self, uid: &str) -> Option<&Event> {
        self.events.get(self.by_uid.get(uid)?)
    }

    /// The state of `key` just after sequence `base`, as the log remembers it: `Some(None)`
    /// when it did not exist then, `None` when nothing changed it since.
    pub fn state_after(&self, key: u64, base: u64) -> Option<Option<&Event>> {
        let seqs = self.changes.get(&key)?;
        let first = seqs[seqs.partition_point(|s| *s <= base)..].first()?;
        Some(self.log[first].before.as_deref())
    }

    /// The last change to `key` at or before `end`.
    pub fn last_change_until(&self, key: u64, end: u64) -> Option<u64> {
        let seqs = self.changes.get(&key)?;
        let i = seqs.partition_point(|s| *s <= end);
        (i > 0).then(|| seqs[i - 1])
    }
}

/// Whether a write happens in a live world or while building the initial one.
///
/// Building records nothing: no change log, no subscription notices, no invitations. No client
/// can hold a token yet, and nobody was there to be emailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Building,
}

/// Stores a new or changed event and records the change.
pub fn put(world: &mut World, t: usize, u: usize, event: Event, mode: Mode) {
    let key = event.key;
    let cal = &mut world.tenants[t].users[u].calendar;
    cal.salt = world.salt;
    cal.by_uid.insert(event.ical_uid.clone(), key);
    if let Some(tx) = &event.transaction_id {
        cal.transactions.insert(tx.clone(), key);
    }
    let before = cal.events.insert(key, event);
    if mode == Mode::Live {
        let kind = if before.is_some() {
            "updated"
        } else {
            "created"
        };
        record(world, t, u, key, before, kind);
    }
}

/// Removes an event and records the removal; returns it.
pub fn remove(world: &mut World, t: usize, u: usize, key: u64) -> Option<Event> {
    let gone = world.tenants[t].users[u].calendar.events.remove(&key)?;
    let cal = &mut world.tenants[t].users[u].calendar;
    if let Some(tx) = &gone.transaction_id {
        cal.transactions.remove(tx);
    }
    cal.by_uid.remove(&gone.ical_uid);
    record(world, t, u, key, Some(gone.clone()), "deleted");
    Some(gone)
}

fn record(
    world: &mut World,
    t: usize,
    u: usize,
    key: u64,
    before: Option<Event>,
    change_type: &'static str,
) {
    let seq = world.bump();
    let id = super::event_id::encode(key, None, world.salt);
    let cal = &mut world.tenants[t].users[u].calendar;
    cal.log.insert(
        seq,
        Logged {
            key,
            before: before.map(Box::new),
        },
    );
    cal.changes.entry(key).or_default().push(seq);
    world.pending_changes.push(Change {
        tenant: t,
        user: u,
        folder: None,
        change_type,
        id,
        is_event: true,
    });
}
