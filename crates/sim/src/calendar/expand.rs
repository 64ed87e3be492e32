//! Expanding stored events into the instances a calendar view shows.
//!
//! A single event is its own instance. A series master yields one occurrence per date of its
//! recurrence, minus deleted occurrences, with modified occurrences (exceptions) in their own
//! place and shape. Instances keep borrowing the stored details, so expanding a long series is
//! cheap.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use super::event_id;
use super::model::{Details, Event, When};

/// What kind of instance Graph reports (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SingleInstance,
    Occurrence,
    Exception,
}

impl Kind {
    /// The name Graph uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SingleInstance => "singleInstance",
            Kind::Occurrence => "occurrence",
            Kind::Exception => "exception",
        }
    }
}

/// One instance of an event in a view.
#[derive(Debug, Clone)]
pub struct Instance<'a> {
    pub event: &'a Event,
    pub kind: Kind,
    /// The original wall-clock start of an occurrence or exception.
    pub original: Option<NaiveDateTime>,
    pub when: When,
    /// The master's details, or the exception's own.
    pub details: &'a Details,
    pub version: u32,
    pub last_modified: DateTime<Utc>,
}

impl Instance<'_> {
    /// The id a client sees.
    pub fn id(&self, salt: u32) -> String {
        event_id::encode(self.event.key, self.original, salt)
    }

    /// The order instances of one event are sent in.
    pub fn order(&self) -> i64 {
        self.original.map_or(i64::MIN, |o| o.and_utc().timestamp())
    }
}

fn overlaps(when: &When, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let (start, end) = when.span();
    start < to && (end > from || (start == end && start >= from))
}

fn occurrence<'a>(event: &'a Event, original: NaiveDateTime) -> Instance<'a> {
    match event.exceptions.get(&original) {
        Some(x) => Instance {
            event,
            kind: Kind::Exception,
            original: Some(original),
            when: x.details.when.clone(),
            details: &x.details,
            version: x.version,
            last_modified: x.last_modified,
        },
        None => Instance {
            event,
            kind: Kind::Occurrence,
            original: Some(original),
            when: event.details.when.on_date(original.date()),
            details: &event.details,
            version: event.version,
            last_modified: event.last_modified,
        },
    }
}

/// Instances of `event` overlapping `[from, to)`, in original-start order.
pub fn instances(event: &Event, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Instance<'_>> {
    let Some(rec) = &event.recurrence else {
        return if overlaps(&event.details.when, from, to) {
            vec![single(event)]
        } else {
            Vec::new()
        };
    };
    let (first_start, first_end) = event.details.when.span();
    if first_start >= to && event.exceptions.is_empty() {
        return Vec::new();
    }
    // Dates far enough past `to` in any zone; exceptions moved further are checked below.
    let until = (to + Duration::days(2)).naive_utc().date();
    let length = first_end - first_start;
    let mut out = Vec::new();
    let mut seen_until = None;
    for date in rec.dates_until(until) {
        let original = event.details.when.on_date(date).local_start();
        seen_until = Some(original);
        if event.deleted.contains(&original) {
            continue;
        }
        if !event.exceptions.contains_key(&original) {
            // Skip the clone and the zone arithmetic for dates clearly before the window.
            if (original.and_utc() + length + Duration::days(2)) < from {
                continue;
            }
        }
        let inst = occurrence(event, original);
        if overlaps(&inst.when, from, to) {
            out.push(inst);
        }
    }
    for (original, _) in event
        .exceptions
        .iter()
        .filter(|(o, _)| seen_until.is_none_or(|s| **o > s))
    {
        let inst = occurrence(event, *original);
        if overlaps(&inst.when, from, to) {
            out.push(inst);
        }
    }
    out
}

/// A single event as its own instance.
pub fn single(event: &Event) -> Instance<'_> {
    Instance {
        event,
        kind: Kind::SingleInstance,
        original: None,
        when: event.details.when.clone(),
        details: &event.details,
        version: event.version,
        last_modified: event.last_modified,
    }
}

/// The occurrence of a series that originally started at `original`, if the series has one
/// there (deleted occurrences do not exist).
pub fn find(event: &Event, original: NaiveDateTime) -> Option<Instance<'_>> {
    let rec = event.recurrence.as_ref()?;
    if event.deleted.contains(&original) {
        return None;
    }
    if event.exceptions.contains_key(&original) {
        return Some(occurrence(event, original));
    }
    let on_pattern = rec.has_date(original.date())
        && event.details.when.on_date(original.date()).local_start() == original;
    on_pattern.then(|| occurrence(event, original))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::model::Exception;
    use crate::calendar::recurrence::Recurrence;
    use crate::calendar::timezone::Zone;
    use crate::model::Recipient;
    use chrono::NaiveDate;
    use serde_json::json;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        at(s).and_utc()
    }

    fn weekly_in_pacific() -> Event {
        let zone = Zone::parse("Pacific Standard Time").unwrap();
        let when = When::Timed {
            start: at("2026-03-02T09:00"),
            start_zone: zone.clone(),
            end: at("2026-03-02T09:30"),
            end_zone: zone,
        };
        Event {
            key: 1,
            ical_uid: "uid".into(),
            organizer: Recipient {
                name: "A".into(),
                address: "a@x".into(),
            },
            is_organizer: true,
            response: "organizer",
            response_time: None,
            is_draft: false,
            transaction_id: None,
            details: Details {
                subject: "Standup".into(),
                body_html: String::new(),
                attendees: vec![],
                locations: vec![],
                sensitivity: "normal",
                show_as: "busy",
                importance: "normal",
                join_url: None,
                reminder_minutes: 15,
                reminder_on: true,
                categories: vec![],
                is_cancelled: false,
                when,
            },
            recurrence: Some(
                Recurrence::parse(&json!({
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                    "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 4},
                }))
                .unwrap(),
            ),
            exceptions: Default::default(),
            deleted: Default::default(),
            created: utc("2026-01-01T00:00"),
            last_modified: utc("2026-01-01T00:00"),
            version: 0,
        }
    }

    #[test]
    fn series_keeps_wall_clock_across_dst_with_exception_and_deletion() {
        let mut e = weekly_in_pacific();
        e.deleted.insert(at("2026-03-16T09:00"));
        let mut moved = e.details.clone();
        moved.subject = "Standup (moved)".into();
        moved.when = e
            .details
            .when
            .on_date(NaiveDate::from_ymd_opt(2026, 3, 24).unwrap());
        e.exceptions.insert(
            at("2026-03-23T09:00"),
            Exception {
                details: moved,
                version: 1,
                last_modified: utc("2026-01-02T00:00"),
            },
        );
        let got = instances(&e, utc("2026-01-01T00:00"), utc("2027-01-01T00:00"));
        let seen: Vec<(Kind, String)> = got
            .iter()
            .map(|i| (i.kind, i.when.span().0.to_rfc3339()))
            .collect();
        assert_eq!(
            seen,
            [
                // PST until 8 March, PDT after: 09:00 local either way.
                (Kind::Occurrence, "2026-03-02T17:00:00+00:00".to_string()),
                (Kind::Occurrence, "2026-03-09T16:00:00+00:00".to_string()),
                (Kind::Exception, "2026-03-24T16:00:00+00:00".to_string()),
            ]
        );
        assert_eq!(got[2].details.subject, "Standup (moved)");
        assert!(find(&e, at("2026-03-09T09:00")).is_some());
        assert!(find(&e, at("2026-03-16T09:00")).is_none(), "deleted");
        assert!(
            find(&e, at("2026-03-10T09:00")).is_none(),
            "not on the pattern"
        );
        assert!(
            find(&e, at("2026-03-30T09:00")).is_none(),
            "past the fourth"
        );
    }

    #[test]
    fn window_cuts_the_series() {
        let e = weekly_in_pacific();
        let got = instances(&e, utc("2026-03-09T16:00"), utc("2026-03-16T16:00"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].original, Some(at("2026-03-09T09:00")));
        assert_ne!(got[0].id(1), single(&e).id(1));
    }
}
