//! Creating, changing and deleting events, shared by Graph's POST/PATCH/DELETE, the control
//! API, scenarios and the generator, so every path logs invitations the same way.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::event_id;
use super::expand;
use super::input::{default_details, EventPatch};
use super::invite::{log, log_change, sync_copies, Message, Sent};
use super::model::{put, remove, AttendeeType, Details, Event, Exception, Mode};
use crate::ids::mix64;
use crate::model::{Recipient, Tenant, World};
use crate::request::GraphError;

/// The 404 Graph gives for an event id that names nothing in this mailbox.
pub fn not_found() -> GraphError {
    GraphError::not_found(
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// An iCalUId in Exchange's shape (a Global Object Id in hex).
pub fn ical_uid(key: u64, salt: u32) -> String {
    format!(
        "040000008200E00074C5B7101A82E00800000000{:016X}{:016X}",
        mix64(key ^ salt as u64),
        mix64(key)
    )
}

/// A Teams join URL for a meeting.
pub fn join_url(key: u64, tenant_id: &str) -> String {
    format!(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{}%40thread.v2/0?context=%7b%22Tid%22%3a%22{tenant_id}%22%7d",
        URL_SAFE_NO_PAD.encode(mix64(key).to_be_bytes())
    )
}

/// Makes rooms named by a location or a resource attendee look as Exchange shows them:
/// conference-room locations with the room's address as a directory id.
pub fn resolve_rooms(tenant: &Tenant, details: &mut Details) {
    for l in &mut details.locations {
        let room = tenant.rooms.iter().find(|r| {
            (!l.email.is_empty() && r.email_address.eq_ignore_ascii_case(&l.email))
                || r.display_name.eq_ignore_ascii_case(&l.display_name)
        });
        if let Some(r) = room {
            l.display_name = r.display_name.clone();
            l.location_type = "conferenceRoom";
            l.email = r.email_address.clone();
            l.unique_id = r.email_address.clone();
            l.unique_id_type = "directory";
        }
    }
    for a in &mut details.attendees {
        if let Some(r) = tenant
            .rooms
            .iter()
            .find(|r| r.email_address.eq_ignore_ascii_case(&a.who.address))
        {
            a.kind = AttendeeType::Resource;
            a.who.name = r.display_name.clone();
        }
    }
}

/// Creates an event in user `u`'s calendar from a Graph event body. Returns the key and
/// whether it is new: a `transactionId` seen before returns the earlier event untouched.
pub fn create(
    world: &mut World,
    t: usize,
    u: usize,
    body: &Value,
    now: DateTime<Utc>,
    mode: Mode,
) -> Result<(u64, bool), GraphError> {
    let patch = EventPatch::parse(body)?;
    if let Some(tx) = &patch.transaction_id {
        if let Some(&key) = world.tenants[t].users[u].calendar.transactions.get(tx) {
            return Ok((key, false));
        }
    }
    let when = patch.when(None)?;
    let mut details = default_details(when.clone());
    patch.apply(&mut details, when);
    resolve_rooms(&world.tenants[t], &mut details);
    let key = world.bump();
    if patch.online == Some(true) && details.join_url.is_none() {
        details.join_url = Some(join_url(key, &world.tenants[t].id));
    }
    let user = &world.tenants[t].users[u];
    let me = Recipient {
        name: user.display_name.clone(),
        address: user.mail.clone(),
    };
    let organizer = patch.organizer.clone().unwrap_or_else(|| me.clone());
    let is_organizer = organizer.address.eq_ignore_ascii_case(&me.address);
    let event = Event {
        key,
        ical_uid: ical_uid(key, world.salt),
        organizer,
        is_organizer,
        response: if is_organizer {
            "organizer"
        } else {
            "notResponded"
        },
        response_time: None,
        is_draft: patch.is_draft.unwrap_or(false),
        transaction_id: patch.transaction_id.clone(),
        details,
        recurrence: patch.recurrence.clone().flatten(),
        exceptions: Default::default(),
        deleted: Default::default(),
        created: now,
        last_modified: now,
        version: 0,
    };
    publish(world, t, u, event, None, mode);
    Ok((key, true))
}

/// Stores a new event (as the generator builds it) with its attendees' copies.
pub fn add(world: &mut World, t: usize, u: usize, event: Event, mode: Mode) {
    publish(world, t, u, event, None, mode);
}

/// Stores `event` and sends what its organizer's server would: invitations for a new meeting,
/// or what changed since `before`, and the attendees' copies.
fn publish(
    world: &mut World,
    t: usize,
    u: usize,
    event: Event,
    before: Option<&Event>,
    mode: Mode,
) {
    let sends = event.is_organizer && !event.is_draft;
    put(world, t, u, event.clone(), mode);
    if !sends {
        return;
    }
    if mode == Mode::Live {
        let id = event_id::encode(event.key, None, world.salt);
        let about = Sent {
            organizer: &event.organizer.address,
            subject: &event.details.subject,
            event_id: &id,
            ical_uid: &event.ical_uid,
            at: event.last_modified,
        };
        match before.filter(|b| !b.is_draft) {
            None if !event.details.is_cancelled => {
                let all: Vec<_> = event.details.attendees.iter().collect();
                log(world, &about, Message::Invitation, &all);
            }
            None => {}
            Some(b) => {
                let changed = b.details.subject != event.details.subject
                    || b.details.when != event.details.when
                    || b.details.locations != event.details.locations
                    || b.recurrence != event.recurrence;
                log_change(
                    world,
                    &about,
                    &b.details.attendees,
                    &event.details.attendees,
                    changed,
                );
            }
        }
    }
    let dropped = before.map_or(&[][..], |b| &b.details.attendees[..]);
    sync_copies(world, t, u, &event, dropped, false, mode);
}

/// Finds an event id in user `u`'s calendar: the stored event's key and, for an occurrence or
/// exception, its original start.
pub fn locate(
    world: &World,
    t: usize,
    u: usize,
    id: &str,
) -> Result<(u64, Option<chrono::NaiveDateTime>), GraphError> {
    let (key, original) = event_id::decode(id, world.salt).ok_or_else(not_found)?;
    let event = world.tenants[t].users[u]
        .calendar
        .events
        .get(&key)
        .ok_or_else(not_found)?;
    if let Some(o) = original {
        expand::find(event, o).ok_or_else(not_found)?;
    }
    Ok((key, original))
}

/// Applies a PATCH body to an event, a series master or one occurrence (which becomes an
/// exception). Returns the id of what was changed.
pub fn update(
    world: &mut World,
    t: usize,
    u: usize,
    id: &str,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<String, GraphError> {
    let (key, original) = locate(world, t, u, id)?;
    let patch = EventPatch::parse(body)?;
    let before = world.tenants[t].users[u].calendar.events[&key].clone();
    let mut event = before.clone();
    match original {
        Some(o) => {
            if patch.recurrence.is_some() {
                return Err(GraphError::bad_request(
                    "The recurrence of an occurrence can't be changed: change the series master.",
                ));
            }
            let inst = expand::find(&before, o).ok_or_else(not_found)?;
            let (old, version) = (inst.details.clone(), inst.version);
            let mut details = old.clone();
            details.when = inst.when.clone();
            let when = patch.when(Some(&details.when))?;
            patch.apply(&mut details, when);
            resolve_rooms(&world.tenants[t], &mut details);
            event.exceptions.insert(
                o,
                Exception {
                    details: details.clone(),
                    version: version + 1,
                    last_modified: now,
                },
            );
            event.version += 1;
            event.last_modified = now;
            put(world, t, u, event.clone(), Mode::Live);
            if event.is_organizer && !event.is_draft {
                let occurrence_id = event_id::encode(key, Some(o), world.salt);
                let about = Sent {
                    organizer: &event.organizer.address,
                    subject: &details.subject,
                    event_id: &occurrence_id,
                    ical_uid: &event.ical_uid,
                    at: now,
                };
                let changed = old.subject != details.subject
                    || inst.when != details.when
                    || old.locations != details.locations;
                log_change(world, &about, &old.attendees, &details.attendees, changed);
                sync_copies(world, t, u, &event, &[], false, Mode::Live);
            }
            Ok(event_id::encode(key, Some(o), world.salt))
        }
        None => {
            let when = patch.when(Some(&event.details.when))?;
            patch.apply(&mut event.details, when);
            resolve_rooms(&world.tenants[t], &mut event.details);
            if patch.online == Some(true) && event.details.join_url.is_none() {
                event.details.join_url = Some(join_url(key, &world.tenants[t].id));
            }
            if let Some(r) = &patch.recurrence {
                event.recurrence = r.clone();
            }
            if event.recurrence != before.recurrence
                || (event.recurrence.is_some() && event.details.when != before.details.when)
            {
                // As in Exchange, a new pattern or series time discards modified and deleted
                // occurrences.
                event.exceptions.clear();
                event.deleted.clear();
            }
            if let Some(d) = patch.is_draft {
                event.is_draft = d;
            }
            event.version += 1;
            event.last_modified = now;
            publish(world, t, u, event, Some(&before), Mode::Live);
            Ok(event_id::encode(key, None, world.salt))
        }
    }
}

/// Deletes an event, a whole series, or one occurrence. The organizer's delete cancels the
/// meeting for every attendee.
pub fn delete(
    world: &mut World,
    t: usize,
    u: usize,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(), GraphError> {
    let (key, original) = locate(world, t, u, id)?;
    let before = world.tenants[t].users[u].calendar.events[&key].clone();
    let sends = before.is_organizer && !before.is_draft && !before.details.is_cancelled;
    match original {
        Some(o) => {
            let inst = expand::find(&before, o).ok_or_else(not_found)?;
            let (subject, attendees) =
                (inst.details.subject.clone(), inst.details.attendees.clone());
            let mut event = before.clone();
            event.exceptions.remove(&o);
            event.deleted.insert(o);
            event.version += 1;
            event.last_modified = now;
            put(world, t, u, event.clone(), Mode::Live);
            if sends {
                let occurrence_id = event_id::encode(key, Some(o), world.salt);
                let about = Sent {
                    organizer: &event.organizer.address,
                    subject: &subject,
                    event_id: &occurrence_id,
                    ical_uid: &event.ical_uid,
                    at: now,
                };
                log(
                    world,
                    &about,
                    Message::Cancellation,
                    &attendees.iter().collect::<Vec<_>>(),
                );
                sync_copies(world, t, u, &event, &[], false, Mode::Live);
            }
        }
        None => {
            remove(world, t, u, key);
            if sends {
                let id = event_id::encode(key, None, world.salt);
                let about = Sent {
                    organizer: &before.organizer.address,
                    subject: &before.details.subject,
                    event_id: &id,
                    ical_uid: &before.ical_uid,
                    at: now,
                };
                log(
                    world,
                    &about,
                    Message::Cancellation,
                    &before.details.attendees.iter().collect::<Vec<_>>(),
                );
                let mut last = before.clone();
                last.last_modified = now;
                sync_copies(world, t, u, &last, &[], true, Mode::Live);
            }
        }
    }
    Ok(())
}
