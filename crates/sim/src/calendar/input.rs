//! Reading Graph event JSON as clients send it (POST, PATCH, scenarios, the control API).
//!
//! A body becomes an [`EventPatch`]: every property it names, checked, nothing else. Creating
//! an event applies a patch to defaults; changing one applies it to the stored state; one
//! parser serves both so they can never disagree on what a property means.

use chrono::{NaiveDateTime, NaiveTime};
use serde_json::Value;

use super::model::{Attendee, AttendeeType, Details, Location, When};
use super::recurrence::Recurrence;
use super::timezone::{parse_date_time, Zone};
use crate::model::Recipient;
use crate::request::GraphError;

/// Why a body was refused: the property at fault, Graph's error code and a message.
#[derive(Debug, Clone)]
pub struct InputError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl InputError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            field: field.into(),
            code: "ErrorInvalidRequest",
            message: message.into(),
        }
    }
}

impl From<InputError> for GraphError {
    fn from(e: InputError) -> Self {
        GraphError::new(400, e.code, e.message)
    }
}

/// A wall-clock time and the zone it is in.
type Stamp = (NaiveDateTime, Zone);

/// The properties a body sets.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    pub subject: Option<String>,
    pub body_html: Option<String>,
    pub attendees: Option<Vec<Attendee>>,
    pub locations: Option<Vec<Location>>,
    pub sensitivity: Option<&'static str>,
    pub show_as: Option<&'static str>,
    pub importance: Option<&'static str>,
    pub online: Option<bool>,
    pub join_url: Option<String>,
    pub reminder_minutes: Option<u32>,
    pub reminder_on: Option<bool>,
    pub categories: Option<Vec<String>>,
    pub is_cancelled: Option<bool>,
    pub is_draft: Option<bool>,
    pub start: Option<Stamp>,
    pub end: Option<Stamp>,
    pub is_all_day: Option<bool>,
    /// `Some(None)` removes the recurrence.
    pub recurrence: Option<Option<Recurrence>>,
    pub transaction_id: Option<String>,
    pub organizer: Option<Recipient>,
}

fn one_of(
    field: &str,
    v: &Value,
    allowed: &[&'static str],
) -> Result<Option<&'static str>, InputError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(s))
            .map(|a| Some(*a))
            .ok_or_else(|| {
                InputError::new(
                    field,
                    format!(
                        "'{s}' is not a valid {field}: use one of {}",
                        allowed.join(", ")
                    ),
                )
            }),
        other => Err(InputError::new(
            field,
            format!("{field} must be a string, got {other}"),
        )),
    }
}

fn text(field: &str, v: &Value) -> Result<Option<String>, InputError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(InputError::new(
            field,
            format!("{field} must be a string, got {other}"),
        )),
    }
}

fn flag(field: &str, v: &Value) -> Result<Option<bool>, InputError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        other => Err(InputError::new(
            field,
            format!("{field} must be true or false, got {other}"),
        )),
    }
}

fn address(field: &str, v: &Value) -> Result<Recipient, InputError> {
    let e = &v["emailAddress"];
    let addr = e["address"].as_str().unwrap_or_default().trim();
    if !addr.contains('@') {
        return Err(InputError::new(
            field,
            format!("{field} needs emailAddress.address, got {v}"),
        ));
    }
    Ok(Recipient {
        name: e["name"].as_str().unwrap_or(addr).to_string(),
        address: addr.to_string(),
    })
}

fn stamp(field: &str, v: &Value) -> Result<Option<Stamp>, InputError> {
    if v.is_null() {
        return Ok(None);
    }
    let dt = v["dateTime"].as_str().unwrap_or_default();
    let local = parse_date_time(dt).ok_or_else(|| {
        InputError::new(
            format!("{field}.dateTime"),
            format!("'{dt}' is not a date-time such as 2026-12-09T20:30:00"),
        )
    })?;
    let name = v["timeZone"].as_str().unwrap_or("UTC");
    let zone = Zone::parse(name).ok_or_else(|| InputError {
        field: format!("{field}.timeZone"),
        code: "TimeZoneNotSupportedException",
        message: format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."),
    })?;
    Ok(Some((local, zone)))
}

fn location(v: &Value) -> Location {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let kinds = [
        "default",
        "conferenceRoom",
        "homeAddress",
        "businessAddress",
        "geoCoordinates",
        "streetAddress",
        "hotel",
        "restaurant",
        "localBusiness",
        "postalAddress",
    ];
    Location {
        display_name: s("displayName"),
        location_type: kinds
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&s("locationType")))
            .copied()
            .unwrap_or("default"),
        email: s("locationEmailAddress"),
        unique_id: s("uniqueId"),
        unique_id_type: ["unknown", "locationStore", "directory", "private", "bing"]
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&s("uniqueIdType")))
            .copied()
            .unwrap_or("unknown"),
    }
}

const RESPONSES: [&str; 6] = [
    "none",
    "organizer",
    "tentativelyAccepted",
    "accepted",
    "declined",
    "notResponded",
];

fn attendee(v: &Value) -> Result<Attendee, InputError> {
    let kind = match one_of(
        "attendees.type",
        &v["type"],
        &["required", "optional", "resource"],
    )? {
        Some("optional") => AttendeeType::Optional,
        Some("resource") => AttendeeType::Resource,
        _ => AttendeeType::Required,
    };
    let status = &v["status"];
    Ok(Attendee {
        kind,
        who: address("attendees.emailAddress", v)?,
        response: one_of("attendees.status.response", &status["response"], &RESPONSES)?
            .unwrap_or("none"),
        response_time: status["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .filter(|t| t.timestamp() > 0),
    })
}

impl EventPatch {
    /// Reads a body. Properties Graph computes (ids, times of change) are ignored, as Graph does.
    pub fn parse(v: &Value) -> Result<EventPatch, InputError> {
        if !v.is_object() {
            return Err(InputError::new("event", "the body must be a JSON object"));
        }
        let mut p = EventPatch {
            subject: text("subject", &v["subject"])?,
            sensitivity: one_of(
                "sensitivity",
                &v["sensitivity"],
                &["normal", "personal", "private", "confidential"],
            )?,
            show_as: one_of(
                "showAs",
                &v["showAs"],
                &[
                    "free",
                    "tentative",
                    "busy",
                    "oof",
                    "workingElsewhere",
                    "unknown",
                ],
            )?,
            importance: one_of("importance", &v["importance"], &["low", "normal", "high"])?,
            online: flag("isOnlineMeeting", &v["isOnlineMeeting"])?,
            join_url: v["onlineMeeting"]["joinUrl"].as_str().map(str::to_string),
            reminder_on: flag("isReminderOn", &v["isReminderOn"])?,
            is_cancelled: flag("isCancelled", &v["isCancelled"])?,
            is_draft: flag("isDraft", &v["isDraft"])?,
            is_all_day: flag("isAllDay", &v["isAllDay"])?,
            start: stamp("start", &v["start"])?,
            end: stamp("end", &v["end"])?,
            transaction_id: text("transactionId", &v["transactionId"])?,
            ..EventPatch::default()
        };
        if let Some(b) = v.get("body").filter(|b| !b.is_null()) {
            let content = b["content"].as_str().unwrap_or_default();
            let is_text = b["contentType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("text"));
            p.body_html = Some(if is_text {
                format!("<html><body>{}</body></html>", escape(content))
            } else {
                content.to_string()
            });
        }
        if let Some(n) = v.get("reminderMinutesBeforeStart").filter(|n| !n.is_null()) {
            p.reminder_minutes = Some(n.as_u64().filter(|n| *n <= 40_320).ok_or_else(|| {
                InputError::new(
                    "reminderMinutesBeforeStart",
                    format!("reminderMinutesBeforeStart must be minutes, got {n}"),
                )
            })? as u32);
        }
        if let Some(provider) = v["onlineMeetingProvider"].as_str() {
            if provider.eq_ignore_ascii_case("teamsForBusiness") && p.online.is_none() {
                p.online = Some(true);
            }
        }
        if let Some(list) = v.get("attendees").filter(|a| !a.is_null()) {
            let items = list
                .as_array()
                .ok_or_else(|| InputError::new("attendees", "attendees must be a list"))?;
            p.attendees = Some(items.iter().map(attendee).collect::<Result<_, _>>()?);
        }
        if let Some(list) = v.get("categories").filter(|a| !a.is_null()) {
            let items = list
                .as_array()
                .ok_or_else(|| InputError::new("categories", "categories must be a list"))?;
            p.categories = Some(
                items
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect(),
            );
        }
        if let Some(list) = v.get("locations").filter(|a| !a.is_null()) {
            let items = list
                .as_array()
                .ok_or_else(|| InputError::new("locations", "locations must be a list"))?;
            p.locations = Some(items.iter().map(location).collect());
        } else if let Some(l) = v.get("location").filter(|l| !l.is_null()) {
            let l = location(l);
            p.locations = Some(if l.display_name.is_empty() && l.email.is_empty() {
                Vec::new()
            } else {
                vec![l]
            });
        }
        if let Some(r) = v.get("recurrence") {
            p.recurrence = Some(match r {
                Value::Null => None,
                r => Some(
                    Recurrence::parse(r)
                        .map_err(|(field, message)| InputError::new(field, message))?,
                ),
            });
        }
        if let Some(o) = v.get("organizer").filter(|o| !o.is_null()) {
            p.organizer = Some(address("organizer", o)?);
        }
        Ok(p)
    }

    /// The event's times after this patch: its start, end and isAllDay over `current`.
    pub fn when(&self, current: Option<&When>) -> Result<When, InputError> {
        let current_start = current.map(|w| match w {
            When::Timed {
                start, start_zone, ..
            } => (*start, start_zone.clone()),
            When::AllDay { start, zone, .. } => (start.and_time(NaiveTime::MIN), zone.clone()),
        });
        let current_end = current.map(|w| match w {
            When::Timed { end, end_zone, .. } => (*end, end_zone.clone()),
            When::AllDay { end, zone, .. } => (end.and_time(NaiveTime::MIN), zone.clone()),
        });
        let start = self.start.clone().or(current_start).ok_or_else(|| {
            InputError::new(
                "start",
                "An event needs a start: {\"dateTime\":..,\"timeZone\":..}",
            )
        })?;
        let end = self.end.clone().or(current_end).ok_or_else(|| {
            InputError::new(
                "end",
                "An event needs an end: {\"dateTime\":..,\"timeZone\":..}",
            )
        })?;
        let all_day = self
            .is_all_day
            .unwrap_or_else(|| current.is_some_and(When::is_all_day));
        if all_day {
            if start.0.time() != NaiveTime::MIN || end.0.time() != NaiveTime::MIN {
                return Err(InputError::new(
                    "start",
                    "Your request can't be completed. If isAllDay is set to true, the start and end must be at midnight.",
                ));
            }
            if end.0.date() <= start.0.date() {
                return Err(InputError::new(
                    "end",
                    "An all-day event must end at least one day after it starts.",
                ));
            }
            return Ok(When::AllDay {
                start: start.0.date(),
                end: end.0.date(),
                zone: start.1,
            });
        }
        let when = When::Timed {
            start: start.0,
            start_zone: start.1,
            end: end.0,
            end_zone: end.1,
        };
        let (s, e) = when.span();
        if e < s {
            return Err(InputError::new(
                "end",
                "The end of an event can't be before its start.",
            ));
        }
        Ok(when)
    }

    /// Applies the patch to `details`, with the times already worked out by [`Self::when`].
    pub fn apply(&self, details: &mut Details, when: When) {
        let p = self.clone();
        if let Some(s) = p.subject {
            details.subject = s;
        }
        if let Some(b) = p.body_html {
            details.body_html = b;
        }
        if let Some(a) = p.attendees {
            details.attendees = a;
        }
        if let Some(l) = p.locations {
            details.locations = l;
        }
        details.sensitivity = p.sensitivity.unwrap_or(details.sensitivity);
        details.show_as = p.show_as.unwrap_or(details.show_as);
        details.importance = p.importance.unwrap_or(details.importance);
        details.reminder_minutes = p.reminder_minutes.unwrap_or(details.reminder_minutes);
        details.reminder_on = p.reminder_on.unwrap_or(details.reminder_on);
        if let Some(c) = p.categories {
            details.categories = c;
        }
        details.is_cancelled = p.is_cancelled.unwrap_or(details.is_cancelled);
        match (p.online, p.join_url) {
            (Some(false), _) => details.join_url = None,
            (_, Some(url)) => details.join_url = Some(url),
            _ => {}
        }
        details.when = when;
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Defaults Graph gives an event created with nothing but times.
pub fn default_details(when: When) -> Details {
    Details {
        subject: String::new(),
        body_html: String::new(),
        attendees: Vec::new(),
        locations: Vec::new(),
        sensitivity: "normal",
        show_as: "busy",
        importance: "normal",
        join_url: None,
        reminder_minutes: 15,
        reminder_on: true,
        categories: Vec::new(),
        is_cancelled: false,
        when,
    }
}
