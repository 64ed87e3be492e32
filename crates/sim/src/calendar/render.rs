//! Event JSON as Graph writes it.
//!
//! Times are rendered in the zone the client prefers (`Prefer: outlook.timezone`, UTC by
//! default) and carry that zone's name. All-day events render as midnight to midnight on their
//! own dates whatever the zone, which is what keeps them from shifting by a day.

use serde_json::{json, Map, Value};

use super::expand::{Instance, Kind};
use super::model::{Attendee, Event, Location, When};
use super::timezone::{graph_date_time, Zone};
use crate::mail::{change_key, graph_time};
use crate::model::html_to_text;

/// The zero time Graph gives a response nobody has made.
const NO_TIME: &str = "0001-01-01T00:00:00Z";

/// `start` and `end` in `zone`.
pub fn times(when: &When, zone: &Zone) -> (Value, Value) {
    let stamp = |local| json!({"dateTime": graph_date_time(local), "timeZone": zone.name});
    match when {
        When::AllDay { start, end, .. } => (
            stamp(start.and_time(chrono::NaiveTime::MIN)),
            stamp(end.and_time(chrono::NaiveTime::MIN)),
        ),
        When::Timed { .. } => {
            let (s, e) = when.span();
            (stamp(zone.local(s)), stamp(zone.local(e)))
        }
    }
}

fn location_json(l: &Location) -> Value {
    let mut v = json!({
        "displayName": l.display_name,
        "locationType": l.location_type,
        "uniqueIdType": l.unique_id_type,
        "address": {},
        "coordinates": {},
    });
    if !l.unique_id.is_empty() {
        v["uniqueId"] = l.unique_id.clone().into();
    }
    if !l.email.is_empty() {
        v["locationEmailAddress"] = l.email.clone().into();
        v["locationUri"] = l.email.clone().into();
    }
    v
}

fn attendee_json(a: &Attendee) -> Value {
    json!({
        "type": a.kind.as_str(),
        "status": {
            "response": a.response,
            "time": a.response_time.as_ref().map_or(NO_TIME.to_string(), graph_time),
        },
        "emailAddress": {"name": a.who.name, "address": a.who.address},
    })
}

fn etag(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

fn instance_change_key(inst: &Instance) -> String {
    let salt = inst.original.map_or(0, |o| o.and_utc().timestamp() as u64);
    change_key(inst.event.key ^ salt.rotate_left(17), inst.version)
}

/// The full JSON of a stored event (a single or a series master) or of one instance.
pub fn full(event: &Event, inst: Option<&Instance>, zone: &Zone, salt: u32) -> Map<String, Value> {
    let (id, kind, details, when, ck, last_modified) = match inst {
        Some(i) => (
            i.id(salt),
            i.kind.as_str(),
            i.details,
            &i.when,
            instance_change_key(i),
            i.last_modified,
        ),
        None => (
            super::event_id::encode(event.key, None, salt),
            if event.recurrence.is_some() {
                "seriesMaster"
            } else {
                Kind::SingleInstance.as_str()
            },
            &event.details,
            &event.details.when,
            change_key(event.key, event.version),
            event.last_modified,
        ),
    };
    let (start, end) = times(when, zone);
    let (start_zone, end_zone) = match when {
        When::Timed {
            start_zone,
            end_zone,
            ..
        } => (start_zone.windows_name(), end_zone.windows_name()),
        When::AllDay { zone, .. } => (zone.windows_name(), zone.windows_name()),
    };
    let preview: String = html_to_text(&details.body_html)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect();
    let master_id = inst
        .filter(|i| i.original.is_some())
        .map(|_| super::event_id::encode(event.key, None, salt));
    let location = details
        .locations
        .first()
        .map(location_json)
        .unwrap_or_else(|| {
            json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}})
        });
    let web_link = format!(
        "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
        id.replace('=', "%3D")
    );
    let fields: [(&str, Value); 42] = [
        ("@odata.etag", json!(etag(&ck))),
        ("id", json!(id)),
        ("createdDateTime", json!(graph_time(&event.created))),
        ("lastModifiedDateTime", json!(graph_time(&last_modified))),
        ("changeKey", json!(ck)),
        ("categories", json!(details.categories)),
        ("transactionId", json!(event.transaction_id)),
        ("originalStartTimeZone", json!(start_zone)),
        ("originalEndTimeZone", json!(end_zone)),
        ("iCalUId", json!(event.ical_uid)),
        ("uid", json!(event.ical_uid)),
        (
            "reminderMinutesBeforeStart",
            json!(details.reminder_minutes),
        ),
        ("isReminderOn", json!(details.reminder_on)),
        ("hasAttachments", json!(false)),
        ("subject", json!(details.subject)),
        ("bodyPreview", json!(preview)),
        ("importance", json!(details.importance)),
        ("sensitivity", json!(details.sensitivity)),
        ("isAllDay", json!(when.is_all_day())),
        ("isCancelled", json!(details.is_cancelled)),
        ("isOrganizer", json!(event.is_organizer)),
        ("responseRequested", json!(true)),
        ("seriesMasterId", json!(master_id)),
        ("showAs", json!(details.show_as)),
        ("type", json!(kind)),
        ("webLink", json!(web_link)),
        ("onlineMeetingUrl", json!(null)),
        ("isOnlineMeeting", json!(details.join_url.is_some())),
        (
            "onlineMeetingProvider",
            json!(if details.join_url.is_some() {
                "teamsForBusiness"
            } else {
                "unknown"
            }),
        ),
        ("allowNewTimeProposals", json!(true)),
        ("isDraft", json!(event.is_draft)),
        ("hideAttendees", json!(false)),
        (
            "responseStatus",
            json!({
                "response": event.response,
                "time": event.response_time.as_ref().map_or(NO_TIME.to_string(), graph_time),
            }),
        ),
        (
            "body",
            json!({"contentType": "html", "content": details.body_html}),
        ),
        ("start", json!(start)),
        ("end", json!(end)),
        ("location", json!(location)),
        (
            "locations",
            json!(details
                .locations
                .iter()
                .map(location_json)
                .collect::<Vec<_>>()),
        ),
        (
            "recurrence",
            json!(if inst.is_none() {
                event.recurrence.as_ref().map(|r| r.to_json())
            } else {
                None
            }),
        ),
        (
            "attendees",
            json!(details
                .attendees
                .iter()
                .map(attendee_json)
                .collect::<Vec<_>>()),
        ),
        (
            "organizer",
            json!({"emailAddress": {"name": event.organizer.name, "address": event.organizer.address}}),
        ),
        (
            "onlineMeeting",
            json!(details.join_url.as_ref().map(|u| json!({"joinUrl": u}))),
        ),
    ];
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The short shape calendarView delta gives unmodified occurrences.
pub fn minimal(inst: &Instance, zone: &Zone, salt: u32) -> Map<String, Value> {
    let (start, end) = times(&inst.when, zone);
    let v = json!({
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": etag(&instance_change_key(inst)),
        "id": inst.id(salt),
        "seriesMasterId": super::event_id::encode(inst.event.key, None, salt),
        "type": Kind::Occurrence.as_str(),
        "start": start,
        "end": end,
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object literal"),
    }
}

/// A delta item for an instance: minimal for occurrences, full for singles and exceptions.
pub fn delta_item(inst: &Instance, zone: &Zone, salt: u32) -> Value {
    if inst.kind == Kind::Occurrence {
        return Value::Object(minimal(inst, zone, salt));
    }
    let mut m = Map::new();
    m.insert("@odata.type".into(), "#microsoft.graph.event".into());
    m.extend(full(inst.event, Some(inst), zone, salt));
    Value::Object(m)
}

/// Keeps only `$select`ed properties (and `id` and the etag, which Graph always sends).
pub fn select(mut m: Map<String, Value>, select: Option<&str>) -> Map<String, Value> {
    let Some(select) = select.filter(|s| !s.trim().is_empty()) else {
        return m;
    };
    let wanted: Vec<&str> = select.split(',').map(str::trim).collect();
    m.retain(|k, _| {
        k == "id" || k.starts_with('@') || wanted.iter().any(|w| w.eq_ignore_ascii_case(k))
    });
    m
}
