//! Graph event JSON to the plugin contract's `event`, and a mapped `crm-event` to what the
//! store keeps (times in UTC; an all-day event's dates kept as dates).
//!
//! The calendar is always read with `Prefer: outlook.timezone="UTC"`, so every timed
//! `dateTime` is UTC wall-clock time; an all-day event comes as midnight to midnight of its own
//! dates, which are read as dates and never moved by a zone.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

use m365sync_plugin::bindings::types::{
    Address, AddressRole, Attendee, AttendeeKind, Body, BodyType, CrmEvent, Event, Location,
    Response, Sensitivity, ShowAs,
};
use m365sync_store::events::{EventAddress, EventFields};

/// Why an item cannot be read; kept as a failed record with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {id}: {what}")]
pub struct ConvertError {
    /// The event's Graph id.
    pub id: String,
    /// What about it cannot be read (a time in another zone, an unreadable date).
    pub what: String,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Reads a Graph `dateTimeTimeZone` that is in UTC.
pub fn utc_of(v: &Value) -> Result<DateTime<Utc>, String> {
    let zone = v["timeZone"].as_str().unwrap_or("UTC");
    if !zone.eq_ignore_ascii_case("UTC") && !zone.eq_ignore_ascii_case("Etc/UTC") {
        return Err(format!(
            "time in zone '{zone}', but the calendar is read in UTC"
        ));
    }
    let text = v["dateTime"].as_str().unwrap_or_default();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map(|n| n.and_utc())
        .map_err(|e| format!("unreadable dateTime '{text}': {e}"))
}

/// The date part of a Graph `dateTimeTimeZone` (an all-day event's day).
pub fn date_of(v: &Value) -> Result<NaiveDate, String> {
    let text = v["dateTime"].as_str().unwrap_or_default();
    text.get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| format!("unreadable date '{text}'"))
}

/// RFC 3339 in UTC with a `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The changeKey of an item: its own, or the one in its `@odata.etag` (`W/"..."`).
pub fn change_key(item: &Value) -> Option<String> {
    item["changeKey"].as_str().map(str::to_string).or_else(|| {
        item["@odata.etag"]
            .as_str()
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
    })
}

fn response(v: &Value) -> Response {
    match v.as_str().unwrap_or_default() {
        "organizer" => Response::Organizer,
        "tentativelyAccepted" => Response::TentativelyAccepted,
        "accepted" => Response::Accepted,
        "declined" => Response::Declined,
        "notResponded" => Response::NotResponded,
        _ => Response::None,
    }
}

fn sensitivity(v: &Value) -> Sensitivity {
    match v.as_str().unwrap_or_default() {
        "private" => Sensitivity::Private,
        "personal" => Sensitivity::Personal,
        "confidential" => Sensitivity::Confidential,
        _ => Sensitivity::Normal,
    }
}

fn show_as(v: &Value) -> ShowAs {
    match v.as_str().unwrap_or_default() {
        "free" => ShowAs::Free,
        "tentative" => ShowAs::Tentative,
        "busy" => ShowAs::Busy,
        "oof" => ShowAs::Oof,
        "workingElsewhere" => ShowAs::WorkingElsewhere,
        _ => ShowAs::Unknown,
    }
}

fn lower(v: &Value) -> String {
    v.as_str().unwrap_or_default().trim().to_ascii_lowercase()
}

/// A Graph event's top-level fields, read in place: a single event or an exception is its
/// own JSON; an occurrence (Graph sends only its id, type and times) is its own fields over its
/// series master's details. Half a million occurrences would otherwise each deep-copy their
/// master's JSON.
#[derive(Debug, Clone, Copy)]
pub struct GraphEvent<'a> {
    own: &'a Value,
    master: Option<&'a Value>,
}

/// The fields an occurrence carries itself; every other one is its master's.
const OCCURRENCE_OWN: [&str; 6] = [
    "id",
    "start",
    "end",
    "seriesMasterId",
    "type",
    "@odata.etag",
];

static NULL: Value = Value::Null;

impl<'a> GraphEvent<'a> {
    /// A single event, an exception, or a series master: its own JSON.
    pub fn whole(e: &'a Value) -> Self {
        GraphEvent {
            own: e,
            master: None,
        }
    }

    /// An occurrence filled from its series master.
    pub fn occurrence(item: &'a Value, master: &'a Value) -> Self {
        GraphEvent {
            own: item,
            master: Some(master),
        }
    }

    /// A top-level field (`Null` when absent). An occurrence has no `recurrence` of its own.
    pub fn field(&self, key: &str) -> &'a Value {
        match self.master {
            None => &self.own[key],
            Some(_) if key == "recurrence" => &NULL,
            Some(m) if OCCURRENCE_OWN.contains(&key) => match self.own.get(key) {
                Some(v) => v,
                None => &m[key],
            },
            Some(m) => &m[key],
        }
    }
}

/// The contract's event for a Graph event (a single, an exception, or an occurrence over its
/// master); `recurrence` is the series' pattern as readable text (C8's "Recurring in M365",
/// [`super::recurrence::describe`]), when it recurs.
pub fn event_from_graph(
    e: GraphEvent<'_>,
    mailbox: &str,
    user: Option<&str>,
    recurrence: Option<String>,
) -> Result<Event, ConvertError> {
    let id = s(e.field("id"));
    let fail = |what: String| ConvertError {
        id: id.clone(),
        what,
    };
    let all_day = e.field("isAllDay").as_bool().unwrap_or(false);
    let (start, end) = if all_day {
        let (a, b) = (
            date_of(e.field("start")).map_err(fail)?,
            date_of(e.field("end")).map_err(fail)?,
        );
        (
            rfc3339(a.and_time(chrono::NaiveTime::MIN).and_utc()),
            rfc3339(b.and_time(chrono::NaiveTime::MIN).and_utc()),
        )
    } else {
        (
            rfc3339(utc_of(e.field("start")).map_err(fail)?),
            rfc3339(utc_of(e.field("end")).map_err(fail)?),
        )
    };
    let organizer = e.field("organizer")["emailAddress"]["address"]
        .as_str()
        .filter(|a| a.contains('@'))
        .map(|a| Address {
            role: AddressRole::From,
            email: a.trim().to_ascii_lowercase(),
            name: s(&e.field("organizer")["emailAddress"]["name"]),
        });
    let attendees = e
        .field("attendees")
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| lower(&a["emailAddress"]["address"]).contains('@'))
        .map(|a| Attendee {
            email: lower(&a["emailAddress"]["address"]),
            name: s(&a["emailAddress"]["name"]),
            kind: match a["type"].as_str().unwrap_or_default() {
                "optional" => AttendeeKind::Optional,
                "resource" => AttendeeKind::Resource,
                _ => AttendeeKind::Required,
            },
            response: response(&a["status"]["response"]),
        })
        .collect();
    let locations = e
        .field("locations")
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| Location {
            display_name: s(&l["displayName"]),
            email: l["locationEmailAddress"]
                .as_str()
                .or(l["locationUri"].as_str())
                .filter(|a| a.contains('@'))
                .map(|a| a.trim().to_ascii_lowercase()),
            location_type: l["locationType"].as_str().unwrap_or("default").to_string(),
        })
        .collect();
    let html = e.field("body")["contentType"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let reminder_on = e.field("isReminderOn").as_bool().unwrap_or(true);
    Ok(Event {
        id: id.clone(),
        mailbox: mailbox.to_ascii_lowercase(),
        user: user.map(str::to_string),
        subject: s(e.field("subject")),
        body: Body {
            content_type: if html { BodyType::Html } else { BodyType::Text },
            content: s(&e.field("body")["content"]),
            truncated: false,
        },
        is_all_day: all_day,
        start,
        end,
        organizer,
        attendees,
        location: s(&e.field("location")["displayName"]),
        locations,
        recurrence: recurrence.or_else(|| super::recurrence::describe(e.field("recurrence"))),
        sensitivity: sensitivity(e.field("sensitivity")),
        reminder_minutes_before_start: e
            .field("reminderMinutesBeforeStart")
            .as_u64()
            .filter(|_| reminder_on)
            .map(|m| m as u32),
        show_as: show_as(e.field("showAs")),
        response_status: response(&e.field("responseStatus")["response"]),
        is_online_meeting: e.field("isOnlineMeeting").as_bool().unwrap_or(false),
        online_meeting_provider: e
            .field("onlineMeetingProvider")
            .as_str()
            .map(str::to_string),
        online_meeting_url: e.field("onlineMeeting")["joinUrl"]
            .as_str()
            .or(e.field("onlineMeetingUrl").as_str())
            .map(str::to_string),
        categories: e
            .field("categories")
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect(),
        is_cancelled: e.field("isCancelled").as_bool().unwrap_or(false),
        is_draft: e.field("isDraft").as_bool().unwrap_or(false),
    })
}

/// True when every address of the event belongs to a CRM user or an internal domain and it has
/// at least one attendee besides its organizer: an "internal event" (C3). A meeting with nobody
/// else (an appointment) is not internal.
pub fn is_internal(e: &Event, users: &[String], internal_domains: &[String]) -> bool {
    let inside = |a: &str| {
        users.iter().any(|u| u.eq_ignore_ascii_case(a))
            || a.rsplit_once('@').is_some_and(|(_, d)| {
                internal_domains
                    .iter()
                    .any(|i| i.trim_start_matches('@').eq_ignore_ascii_case(d))
            })
    };
    let people: Vec<&Attendee> = e
        .attendees
        .iter()
        .filter(|a| a.kind != AttendeeKind::Resource)
        .filter(|a| e.organizer.as_ref().is_none_or(|o| o.email != a.email))
        .collect();
    !people.is_empty()
        && people.iter().all(|a| inside(&a.email))
        && e.organizer.as_ref().is_none_or(|o| inside(&o.email))
}

/// Epoch ms of an RFC 3339 time.
pub fn ms_of(t: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|e| format!("unreadable time '{t}': {e}"))
}

/// What the store keeps of a mapped event: UTC times, all-day dates, the CRM record and the
/// addresses for matching (organizer, the CRM attendees as mapped, resource calendars).
pub fn fields_of(e: &Event, crm: &CrmEvent) -> Result<EventFields, String> {
    let mut addresses = Vec::new();
    if let Some(o) = &e.organizer {
        addresses.push(EventAddress {
            role: "organizer".into(),
            address: o.email.clone(),
            name: o.name.clone(),
        });
    }
    fields_with(crm, addresses)
}

/// [`fields_of`] for a CRM event with its organizer's address (the user) given.
pub fn fields_with(
    crm: &CrmEvent,
    mut addresses: Vec<EventAddress>,
) -> Result<EventFields, String> {
    for a in &crm.attendees {
        addresses.push(EventAddress {
            role: if a.optional { "optional" } else { "required" }.into(),
            address: a.email.trim().to_ascii_lowercase(),
            name: a.name.clone(),
        });
    }
    for r in &crm.resources {
        addresses.push(EventAddress {
            role: "resource".into(),
            address: r.trim().to_ascii_lowercase(),
            name: String::new(),
        });
    }
    let (start_ms, end_ms) = (ms_of(&crm.start)?, ms_of(&crm.end)?);
    let all_day = crm.all_day.then(|| {
        (
            crm.start.get(..10).unwrap_or_default().to_string(),
            crm.end.get(..10).unwrap_or_default().to_string(),
        )
    });
    Ok(EventFields {
        subject: crm.subject.clone(),
        start_ms,
        end_ms,
        all_day,
        record: serde_json::to_string(crm).expect("CRM records serialise"),
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn all_day_events_keep_their_dates_whatever_the_time() {
        let e = json!({
            "id": "x", "isAllDay": true, "subject": "Holiday",
            "start": {"dateTime": "2027-03-14T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2027-03-15T00:00:00.0000000", "timeZone": "UTC"},
        });
        let ev = event_from_graph(GraphEvent::whole(&e), "a@b.example", None, None).unwrap();
        assert_eq!(ev.start, "2027-03-14T00:00:00Z");
        assert_eq!(ev.end, "2027-03-15T00:00:00Z");
    }

    #[test]
    fn timed_events_outside_utc_are_refused_with_the_zone() {
        let e = json!({
            "id": "x",
            "start": {"dateTime": "2027-03-14T09:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2027-03-14T10:00:00", "timeZone": "Pacific Standard Time"},
        });
        let err = event_from_graph(GraphEvent::whole(&e), "a@b.example", None, None).unwrap_err();
        assert!(err.to_string().contains("Pacific Standard Time"), "{err}");
    }

    #[test]
    fn an_occurrence_is_its_own_times_over_its_masters_details() {
        let master = json!({
            "id": "m", "type": "seriesMaster", "subject": "Standup",
            "start": {"dateTime": "2027-03-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2027-03-01T09:15:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily"}},
            "attendees": [{"emailAddress": {"address": "Bob@Contoso.example"}, "type": "required"}],
        });
        let item = json!({
            "id": "o1", "type": "occurrence", "seriesMasterId": "m",
            "start": {"dateTime": "2027-03-04T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2027-03-04T09:15:00", "timeZone": "UTC"},
        });
        let e = GraphEvent::occurrence(&item, &master);
        assert!(
            e.field("recurrence").is_null(),
            "an occurrence has no pattern of its own"
        );
        let ev = event_from_graph(e, "a@b.example", None, Some("daily".into())).unwrap();
        assert_eq!((ev.id.as_str(), ev.subject.as_str()), ("o1", "Standup"));
        assert_eq!(ev.start, "2027-03-04T09:00:00Z");
        assert_eq!(ev.attendees[0].email, "bob@contoso.example");
        assert_eq!(ev.recurrence.as_deref(), Some("daily"));
    }

    #[test]
    fn etags_give_change_keys() {
        assert_eq!(
            change_key(&json!({"@odata.etag": "W/\"abc\""})).as_deref(),
            Some("abc")
        );
    }
}
