//! CRM-side event edits (C5): create, change and delete a user's CRM event, each stored with
//! its outbox row in one transaction when the tenant's direction pushes to Microsoft. A row of
//! a user whose Sync Events is off is queued all the same and waits (C2): it goes when the
//! switch turns on. A delete is queued only when deletes from the CRM are on at the delete
//! (C3), and the push honours that decision whatever the setting says by then. Imported events
//! are stored but never queued. Whatever is not queued says why ([`Outbound::NotSent`]).

use chrono::{NaiveDate, Utc};

use m365sync_plugin::bindings::types::{AttendeeStatus, CrmAttendee, CrmEvent, ShowTimeAs};
use m365sync_store::events::{EventAddress, Outbound, StoredEvent};
use m365sync_store::tenants::Tenant;
use m365sync_store::{Store, StoreError};

use super::status::DELETES_OFF;
use crate::sync::calendar::convert::{fields_with, ms_of, rfc3339};

/// Why a CRM edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrmEditError {
    /// The database failed (or the event does not exist).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The edit itself is wrong (a bad time, attendee or reminder, an unknown user, another
    /// tenant's event); the message says what to give instead.
    #[error("{0}")]
    Invalid(String),
}

/// A time given by an admin: RFC 3339 (`2027-03-14T09:00:00Z`, `...+01:00`) or, for all-day
/// events, a date (`2027-03-14`).
fn time_text(t: &str, all_day: bool, what: &str) -> Result<String, CrmEditError> {
    if all_day {
        let d = NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d").map_err(|_| {
            CrmEditError::Invalid(format!(
                "{what} '{t}': an all-day event takes a date, YYYY-MM-DD"
            ))
        })?;
        return Ok(rfc3339(d.and_time(chrono::NaiveTime::MIN).and_utc()));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| rfc3339(d.with_timezone(&Utc)))
        .map_err(|e| {
            CrmEditError::Invalid(format!(
                "{what} '{t}': {e}; use RFC 3339 such as 2027-03-14T09:00:00Z"
            ))
        })
}

/// An attendee as `address` or `Name <address>`.
fn attendee(text: &str, optional: bool) -> Result<CrmAttendee, CrmEditError> {
    let (name, address) = match text.split_once('<') {
        Some((n, a)) => (n.trim().to_string(), a.trim_end_matches('>').trim()),
        None => (String::new(), text.trim()),
    };
    if !address.contains('@') {
        return Err(CrmEditError::Invalid(format!(
            "attendee '{text}' has no email address; use ADDRESS or 'Name <ADDRESS>'"
        )));
    }
    let address = address.to_ascii_lowercase();
    Ok(CrmAttendee {
        name: if name.is_empty() {
            address.clone()
        } else {
            name
        },
        email: address,
        status: AttendeeStatus::New,
        optional,
    })
}

/// The farthest ahead of its event a reminder is pushed: four weeks, in minutes (the most the
/// simulator's Graph accepts for `reminderMinutesBeforeStart`).
const MAX_REMINDER_MINUTES: i64 = 40_320;

/// A "Show Time As" given as text: `busy`, `out_of_office` (or `oof`) or `free`.
pub fn show_time_as(text: &str) -> Result<ShowTimeAs, CrmEditError> {
    match text.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "busy" => Ok(ShowTimeAs::Busy),
        "out_of_office" | "oof" => Ok(ShowTimeAs::OutOfOffice),
        "free" => Ok(ShowTimeAs::Free),
        _ => Err(CrmEditError::Invalid(format!(
            "show_as '{text}': use busy, out_of_office or free"
        ))),
    }
}

/// `Some(x)` for a field that is present, even as `null` (`Some(None)`): in a change, tells
/// "leave it" (absent) from "clear it" (`null`).
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A new CRM event, as an admin or the CRM gives it.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// The title; an event without one is refused.
    pub subject: String,
    /// The body text.
    pub description: String,
    /// RFC 3339 (`2027-03-14T09:00:00Z`), or a date (`2027-03-14`) for an all-day event.
    pub start: String,
    /// As `start`; it may not come before it.
    pub end: String,
    /// An all-day event: `start` and `end` are dates, the end exclusive.
    pub all_day: bool,
    /// Where it takes place, as free text.
    pub location: String,
    /// Required attendees, each `address` or `Name <address>`.
    pub required: Vec<String>,
    /// Optional attendees, in the same form.
    pub optional: Vec<String>,
    /// Marked private (Graph's `sensitivity`), so others see only busy time.
    pub private: bool,
    /// Imported events are never pushed (C5).
    pub imported: bool,
    /// Whether attendees go to Microsoft and so are emailed (C9).
    pub send_invitations: bool,
    /// The reminder's date and time (RFC 3339), as the CRM keeps it; Microsoft is sent the
    /// minutes before the start (C8). `None`: no reminder.
    pub reminder_at: Option<String>,
    /// "Show Time As" ([`show_time_as`]'s words); `None` is busy.
    pub show_as: Option<String>,
}

/// A change to a CRM event: only what is `Some` changes. The admin API's PATCH body is this
/// struct as JSON.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventChange {
    /// A new title.
    pub subject: Option<String>,
    /// A new body text.
    pub description: Option<String>,
    /// A new start, in [`NewEvent::start`]'s form for the event's all-day-ness.
    pub start: Option<String>,
    /// A new end, in the same form.
    pub end: Option<String>,
    /// A new location.
    pub location: Option<String>,
    /// The new required attendees, replacing the old ones (the optional ones stay).
    pub required: Option<Vec<String>>,
    /// The new optional attendees, replacing the old ones (the required ones stay).
    pub optional: Option<Vec<String>>,
    /// Mark private or not.
    pub private: Option<bool>,
    /// Turn sending invitations on or off (C9); turning it on pushes the attendees.
    pub send_invitations: Option<bool>,
    /// A new reminder date and time, or `null` to turn the reminder off. Moving the start
    /// without it keeps the reminder as long before the start as it was.
    #[serde(deserialize_with = "present")]
    pub reminder_at: Option<Option<String>>,
    /// A new "Show Time As" ([`show_time_as`]'s words).
    pub show_as: Option<String>,
}

impl EventChange {
    /// True when the change changes nothing (an empty PATCH is refused, not pushed).
    pub fn is_empty(&self) -> bool {
        self.subject.is_none()
            && self.description.is_none()
            && self.start.is_none()
            && self.end.is_none()
            && self.location.is_none()
            && self.required.is_none()
            && self.optional.is_none()
            && self.private.is_none()
            && self.send_invitations.is_none()
            && self.reminder_at.is_none()
            && self.show_as.is_none()
    }
}

fn check_span(crm: &CrmEvent) -> Result<(), CrmEditError> {
    let (s, e) = (
        ms_of(&crm.start).map_err(CrmEditError::Invalid)?,
        ms_of(&crm.end).map_err(CrmEditError::Invalid)?,
    );
    if e < s || (crm.all_day && e == s) {
        return Err(CrmEditError::Invalid(format!(
            "the event ends ({}) before it starts ({})",
            crm.end, crm.start
        )));
    }
    if let Some(r) = &crm.reminder_at {
        let lead = s - ms_of(r).map_err(CrmEditError::Invalid)?;
        if lead < 0 {
            return Err(CrmEditError::Invalid(format!(
                "the reminder ({r}) comes after the start ({}); a reminder is due before its event",
                crm.start
            )));
        }
        if lead > MAX_REMINDER_MINUTES * 60_000 {
            return Err(CrmEditError::Invalid(format!(
                "the reminder ({r}) is more than four weeks ({MAX_REMINDER_MINUTES} minutes) before the start ({}); choose a later one",
                crm.start
            )));
        }
    }
    Ok(())
}

/// A reminder's date and time as the CRM record keeps it (UTC, RFC 3339).
fn reminder_text(t: &str) -> Result<String, CrmEditError> {
    time_text(t, false, "reminder_at")
}

fn organizer(email: &str) -> Vec<EventAddress> {
    vec![EventAddress {
        role: "organizer".into(),
        address: email.to_ascii_lowercase(),
        name: String::new(),
    }]
}

/// Whether an edit is queued for Microsoft, decided now from the tenant's settings: the
/// direction must push, and a delete needs deletes from the CRM on (the setting at the delete
/// is what counts). The user's Sync Events switch does not decide it: a row of a user who does
/// not sync events waits for the switch.
async fn decide(
    store: &Store,
    tenant: &Tenant,
    delete: bool,
) -> Result<Outbound<'static>, StoreError> {
    let settings = store.calendar_settings(tenant.org_id, tenant.id).await?;
    Ok(if !settings.direction.pushes() {
        // to_crm is the one direction that does not push.
        Outbound::NotSent("the calendar direction is to_crm, which does not push to Microsoft")
    } else if delete && !settings.delete_from_crm {
        Outbound::NotSent(DELETES_OFF)
    } else {
        Outbound::Queue
    })
}

/// Creates a CRM event in `user_email`'s calendar; returns its id.
pub async fn add_event(
    store: &Store,
    tenant: &Tenant,
    user_email: &str,
    e: &NewEvent,
) -> Result<i64, CrmEditError> {
    let user_id = store
        .user_id(tenant.id, &user_email.to_ascii_lowercase())
        .await?
        .ok_or_else(|| {
            CrmEditError::Invalid(format!(
                "tenant {}: no CRM user '{user_email}'; `m365sync user list` shows them",
                tenant.name
            ))
        })?;
    if e.subject.trim().is_empty() {
        return Err(CrmEditError::Invalid("an event needs a subject".into()));
    }
    let mut attendees = Vec::new();
    for a in &e.required {
        attendees.push(attendee(a, false)?);
    }
    for a in &e.optional {
        attendees.push(attendee(a, true)?);
    }
    let crm = CrmEvent {
        external_id: String::new(),
        subject: e.subject.clone(),
        description: e.description.clone(),
        all_day: e.all_day,
        start: time_text(&e.start, e.all_day, "start")?,
        end: time_text(&e.end, e.all_day, "end")?,
        assigned_to: Some(user_email.to_ascii_lowercase()),
        attendees,
        location: e.location.clone(),
        resources: Vec::new(),
        recurring: None,
        private: e.private,
        reminder_set: e.reminder_at.is_some(),
        reminder_at: e.reminder_at.as_deref().map(reminder_text).transpose()?,
        show_time_as: match &e.show_as {
            Some(text) => show_time_as(text)?,
            None => ShowTimeAs::Busy,
        },
        status: AttendeeStatus::Accepted,
        teams_meeting: false,
        teams_url: None,
    };
    check_span(&crm)?;
    let fields = fields_with(&crm, organizer(user_email)).map_err(CrmEditError::Invalid)?;
    let user = store.calendar_user(user_id).await?;
    let outbound = decide(store, tenant, false).await?;
    Ok(store
        .create_crm_event(
            tenant.id,
            user_id,
            user.primary_mailbox_id,
            &fields,
            e.imported,
            e.send_invitations,
            outbound,
        )
        .await?)
}

/// Changes a CRM event (one of this tenant's); the fields that changed are what a push sends.
pub async fn update_event(
    store: &Store,
    tenant: &Tenant,
    event_id: i64,
    c: &EventChange,
) -> Result<StoredEvent, CrmEditError> {
    let ev = tenant_event(store, tenant, event_id).await?;
    let mut crm: CrmEvent = serde_json::from_str(&ev.record)
        .map_err(|e| CrmEditError::Invalid(format!("event {event_id}: unreadable record: {e}")))?;
    let mut changed = Vec::new();
    let mut mark = |f: &str| changed.push(f.to_string());
    if let Some(s) = &c.subject {
        crm.subject = s.clone();
        mark("subject");
    }
    if let Some(d) = &c.description {
        crm.description = d.clone();
        mark("description");
    }
    if let Some(s) = &c.start {
        let moved = time_text(s, crm.all_day, "start")?;
        // A reminder stays as long before the start as it was, unless the change sets it.
        if let (Some(r), None) = (&crm.reminder_at, &c.reminder_at) {
            let shift = ms_of(&moved).map_err(CrmEditError::Invalid)?
                - ms_of(&crm.start).map_err(CrmEditError::Invalid)?;
            let at = ms_of(r).map_err(CrmEditError::Invalid)? + shift;
            crm.reminder_at = chrono::DateTime::from_timestamp_millis(at).map(rfc3339);
        }
        crm.start = moved;
        mark("start");
    }
    if let Some(e) = &c.end {
        crm.end = time_text(e, crm.all_day, "end")?;
        mark("end");
    }
    if let Some(l) = &c.location {
        crm.location = l.clone();
        mark("location");
    }
    if let Some(p) = c.private {
        crm.private = p;
        mark("private");
    }
    if let Some(r) = &c.reminder_at {
        crm.reminder_at = r.as_deref().map(reminder_text).transpose()?;
        crm.reminder_set = crm.reminder_at.is_some();
        mark("reminder");
    }
    if let Some(text) = &c.show_as {
        crm.show_time_as = show_time_as(text)?;
        mark("show_time_as");
    }
    if c.required.is_some() || c.optional.is_some() {
        let keep = |optional: bool| -> Vec<String> {
            crm.attendees
                .iter()
                .filter(|a| a.optional == optional)
                .map(|a| format!("{} <{}>", a.name, a.email))
                .collect()
        };
        let required = c.required.clone().unwrap_or_else(|| keep(false));
        let optional = c.optional.clone().unwrap_or_else(|| keep(true));
        let mut attendees = Vec::new();
        for a in &required {
            attendees.push(attendee(a, false)?);
        }
        for a in &optional {
            attendees.push(attendee(a, true)?);
        }
        crm.attendees = attendees;
        mark("attendees");
    }
    // Turning invitations on sends the attendees Microsoft does not have yet.
    if c.send_invitations == Some(true)
        && !ev.send_invitations
        && !changed.iter().any(|f| f == "attendees")
    {
        changed.push("attendees".into());
    }
    check_span(&crm)?;
    let organizer_address = crm.assigned_to.clone().unwrap_or_default();
    let mut fields =
        fields_with(&crm, organizer(&organizer_address)).map_err(CrmEditError::Invalid)?;
    if organizer_address.is_empty() {
        fields.addresses.retain(|a| a.role != "organizer");
    }
    let outbound = decide(store, tenant, false).await?;
    store
        .update_crm_event(event_id, &fields, &changed, c.send_invitations, outbound)
        .await?;
    Ok(store.event(event_id).await?)
}

/// Deletes a CRM event (one of this tenant's).
pub async fn remove_event(
    store: &Store,
    tenant: &Tenant,
    event_id: i64,
) -> Result<(), CrmEditError> {
    tenant_event(store, tenant, event_id).await?;
    let outbound = decide(store, tenant, true).await?;
    store.remove_crm_event(event_id, outbound).await?;
    Ok(())
}

async fn tenant_event(
    store: &Store,
    tenant: &Tenant,
    event_id: i64,
) -> Result<StoredEvent, CrmEditError> {
    let ev = store.event(event_id).await?;
    if ev.tenant_id != tenant.id {
        return Err(CrmEditError::Invalid(format!(
            "event {event_id} is not in tenant {}",
            tenant.name
        )));
    }
    Ok(ev)
}
