//! What an organizer's writes send: the invitation log and attendees' copies of a meeting.
//!
//! Every invitation, update or cancellation a real server would email lands in
//! `world.invitations`, one entry per attendee and message, so tests can count exactly what a
//! change sent. Attendees inside the tenant also get their own copy of the meeting (same
//! iCalUId, not the organizer, not yet answered) that follows the organizer's changes and is
//! marked cancelled when the organizer cancels: that is how a sync sees meetings from the
//! attendee's side.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::model::{put, Attendee, Event, Mode};
use super::Invitation;
use crate::mail::graph_time;
use crate::model::World;

/// The kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Invitation,
    Update,
    Cancellation,
}

impl Message {
    fn as_str(self) -> &'static str {
        match self {
            Message::Invitation => "invitation",
            Message::Update => "update",
            Message::Cancellation => "cancellation",
        }
    }
}

/// What one organizer write is about, for the log.
pub struct Sent<'a> {
    pub organizer: &'a str,
    pub subject: &'a str,
    pub event_id: &'a str,
    pub ical_uid: &'a str,
    pub at: DateTime<Utc>,
}

/// Logs one `kind` message to each of `attendees`.
pub fn log(world: &mut World, about: &Sent, kind: Message, attendees: &[&Attendee]) {
    for a in attendees {
        world.invitations.push(Invitation {
            kind: kind.as_str().to_string(),
            organizer: about.organizer.to_string(),
            attendee: a.who.address.clone(),
            subject: about.subject.to_string(),
            event_id: about.event_id.to_string(),
            ical_uid: about.ical_uid.to_string(),
            timestamp: graph_time(&about.at),
        });
    }
}

/// Logs what a change of attendees and content sends: invitations to added attendees,
/// cancellations to removed ones, updates to the rest when something they see changed.
pub fn log_change(
    world: &mut World,
    about: &Sent,
    before: &[Attendee],
    after: &[Attendee],
    content_changed: bool,
) {
    let has = |list: &[Attendee], a: &Attendee| {
        list.iter()
            .any(|b| b.who.address.eq_ignore_ascii_case(&a.who.address))
    };
    let added: Vec<&Attendee> = after.iter().filter(|a| !has(before, a)).collect();
    let removed: Vec<&Attendee> = before.iter().filter(|a| !has(after, a)).collect();
    let kept: Vec<&Attendee> = after.iter().filter(|a| has(before, a)).collect();
    log(world, about, Message::Invitation, &added);
    log(world, about, Message::Cancellation, &removed);
    if content_changed {
        log(world, about, Message::Update, &kept);
    }
}

/// Users of the tenant (other than the organizer) among `attendees`.
fn internal(world: &World, t: usize, organizer: usize, attendees: &[Attendee]) -> BTreeSet<usize> {
    attendees
        .iter()
        .filter_map(|a| world.tenants[t].user_by_key(&a.who.address))
        .filter(|&u| u != organizer)
        .collect()
}

/// Brings every internal attendee's copy of the organizer's event `key` up to date: creates
/// missing copies, changes stale ones, and cancels the copies of attendees in `dropped` who
/// are no longer invited. With `cancelled`, every copy is cancelled (the organizer deleted it).
pub fn sync_copies(
    world: &mut World,
    t: usize,
    organizer: usize,
    source: &Event,
    dropped: &[Attendee],
    cancelled: bool,
    mode: Mode,
) {
    let now = source.last_modified;
    let invited = internal(world, t, organizer, &source.details.attendees);
    for &u in &invited {
        let existing = world.tenants[t].users[u]
            .calendar
            .by_ical_uid(&source.ical_uid)
            .cloned();
        let mut copy = source.clone();
        copy.is_organizer = false;
        copy.is_draft = false;
        copy.transaction_id = None;
        match &existing {
            Some(old) => {
                copy.key = old.key;
                copy.response = old.response;
                copy.response_time = old.response_time;
                copy.created = old.created;
                copy.version = old.version;
                copy.last_modified = old.last_modified;
            }
            None => {
                copy.key = world.bump();
                copy.response = "notResponded";
                copy.response_time = None;
                copy.created = now;
                copy.version = 0;
            }
        }
        if cancelled {
            cancel(&mut copy);
        }
        if existing.as_ref() != Some(&copy) {
            if existing.is_some() {
                copy.version += 1;
                copy.last_modified = now;
            }
            put(world, t, u, copy, mode);
        }
    }
    for u in internal(world, t, organizer, dropped) {
        if invited.contains(&u) {
            continue;
        }
        let existing = world.tenants[t].users[u]
            .calendar
            .by_ical_uid(&source.ical_uid)
            .cloned();
        if let Some(mut copy) = existing.filter(|c| !c.details.is_cancelled) {
            cancel(&mut copy);
            copy.version += 1;
            copy.last_modified = now;
            put(world, t, u, copy, mode);
        }
    }
}

/// Marks an attendee's copy cancelled, as Exchange does when the cancellation arrives.
fn cancel(copy: &mut Event) {
    if !copy.details.is_cancelled {
        copy.details.is_cancelled = true;
        copy.details.subject = format!("Canceled: {}", copy.details.subject);
    }
}
