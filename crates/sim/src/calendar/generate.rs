//! Generated calendars: a deterministic, realistic mix for every kind of event the product's
//! calendar rules (C1-C9) must handle.
//!
//! The first events of each person cycle through the special kinds (series with an exception
//! and a deleted occurrence, private, all-day, Teams with a room, draft, cancelled, a meeting
//! with more than 50 attendees, ...), offset per person so even small calendars cover them
//! across a tenant; the rest are drawn at random. Events are built directly, without JSON, so
//! large worlds generate in seconds.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::json;

use super::model::{Attendee, AttendeeType, Details, Event, Exception, Location, Mode, When};
use super::recurrence::Recurrence;
use super::timezone::Zone;
use super::writes::{add, ical_uid, join_url, resolve_rooms};
use crate::ids::Rng;
use crate::model::{MailboxKind, Recipient, World};

/// The kinds of event a calendar is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    WeeklySeries,
    Private,
    AllDay,
    TeamsWithRoom,
    Draft,
    Cancelled,
    Seminar,
    DailySeries,
    MonthlySeries,
    Internal,
    Client,
    Personal,
}

/// Every kind, in the order a calendar's first events cycle through them.
const SPECIAL: [Kind; 12] = [
    Kind::WeeklySeries,
    Kind::Private,
    Kind::AllDay,
    Kind::TeamsWithRoom,
    Kind::Client,
    Kind::Draft,
    Kind::Cancelled,
    Kind::Seminar,
    Kind::Internal,
    Kind::DailySeries,
    Kind::MonthlySeries,
    Kind::Personal,
];

/// Kinds drawn after the special ones, with weights in percent.
const DRAWN: [(Kind, u64); 11] = [
    (Kind::Client, 36),
    (Kind::Internal, 20),
    (Kind::TeamsWithRoom, 14),
    (Kind::Personal, 6),
    (Kind::AllDay, 5),
    (Kind::Private, 5),
    (Kind::WeeklySeries, 4),
    (Kind::MonthlySeries, 3),
    (Kind::Cancelled, 3),
    (Kind::Draft, 2),
    (Kind::DailySeries, 2),
];

const ZONES: [&str; 5] = [
    "Pacific Standard Time",
    "Eastern Standard Time",
    "GMT Standard Time",
    "AUS Eastern Standard Time",
    "UTC",
];
const CLIENTS: [(&str, &str); 8] = [
    ("Dana Whitfield", "dana.whitfield@acme-holdings.example"),
    ("Marcus Oyelaran", "marcus@globex.example"),
    ("Priya Raman", "priya.raman@initech.example"),
    ("Tom Hadley", "tom.hadley@umbrella-trust.example"),
    ("Ines Carvalho", "ines.carvalho@mail.example"),
    ("Kenji Mori", "kenji.mori@hooli.example"),
    ("Sara Lindqvist", "sara@lindqvist-family.example"),
    ("Olu Adeyemi", "olu.adeyemi@globex.example"),
];
const SUBJECTS: [&str; 10] = [
    "Quarterly portfolio review",
    "Estate plan walkthrough",
    "Onboarding meeting",
    "Tax planning session",
    "Retirement income check-in",
    "Insurance review",
    "Trust documents signing",
    "Risk questionnaire follow-up",
    "Charitable giving strategy",
    "Annual fee discussion",
];

/// Fills user `u`'s calendar with `count` events organised by them (their internal attendees
/// get copies as well).
pub fn generate(
    world: &mut World,
    t: usize,
    u: usize,
    rng: &mut Rng,
    count: usize,
    now: DateTime<Utc>,
) {
    let me = {
        let user = &world.tenants[t].users[u];
        Recipient {
            name: user.display_name.clone(),
            address: user.mail.clone(),
        }
    };
    let colleagues: Vec<Recipient> = world.tenants[t]
        .users
        .iter()
        .enumerate()
        .filter(|(i, c)| *i != u && c.kind == MailboxKind::Person)
        .map(|(_, c)| Recipient {
            name: c.display_name.clone(),
            address: c.mail.clone(),
        })
        .collect();
    let zone_name = ZONES[rng.below(ZONES.len() as u64) as usize];
    let zone = Zone::parse(zone_name).expect("known zone");
    for i in 0..count {
        let kind = if i < SPECIAL.len() {
            SPECIAL[(i + u) % SPECIAL.len()]
        } else {
            let mut roll = rng.below(100);
            DRAWN
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(Kind::Client, |(k, _)| *k)
        };
        let event = build(world, t, rng, kind, &me, &colleagues, &zone, now);
        add(world, t, u, event, Mode::Building);
    }
}

fn attendee(who: &Recipient, kind: AttendeeType, rng: &mut Rng, at: DateTime<Utc>) -> Attendee {
    let response = *rng.pick(&[
        "accepted",
        "accepted",
        "tentativelyAccepted",
        "declined",
        "none",
    ]);
    Attendee {
        kind,
        who: who.clone(),
        response,
        response_time: (response != "none").then_some(at),
    }
}

fn client(rng: &mut Rng) -> Recipient {
    let (name, address) = *rng.pick(&CLIENTS);
    Recipient {
        name: name.into(),
        address: address.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    world: &mut World,
    t: usize,
    rng: &mut Rng,
    kind: Kind,
    me: &Recipient,
    colleagues: &[Recipient],
    zone: &Zone,
    now: DateTime<Utc>,
) -> Event {
    let key = world.bump();
    let series = matches!(
        kind,
        Kind::WeeklySeries | Kind::DailySeries | Kind::MonthlySeries
    );
    // Singles spread over the last 200 days and the next 120; series start in the past.
    let day_offset = if series {
        -(30 + rng.below(150) as i64)
    } else {
        rng.below(320) as i64 - 200
    };
    let day = (now + Duration::days(day_offset)).date_naive();
    let start_time =
        NaiveTime::from_hms_opt(8 + rng.below(9) as u32, [0, 30][rng.below(2) as usize], 0)
            .expect("valid time");
    let minutes = [30, 60, 60, 90][rng.below(4) as usize];
    let start = day.and_time(start_time);
    let when = if kind == Kind::AllDay {
        When::AllDay {
            start: day,
            end: day + Duration::days(1 + rng.below(2) as i64),
            zone: zone.clone(),
        }
    } else {
        When::Timed {
            start,
            start_zone: zone.clone(),
            end: start + Duration::minutes(minutes),
            end_zone: zone.clone(),
        }
    };
    let created = (now + Duration::days(day_offset.min(0) - 3 - rng.below(20) as i64))
        .min(now - Duration::hours(1));
    let colleague = |rng: &mut Rng| (!colleagues.is_empty()).then(|| rng.pick(colleagues).clone());
    let mut attendees = Vec::new();
    let mut locations = Vec::new();
    let mut subject = format!("{} - {}", rng.pick(&SUBJECTS), client(rng).name);
    match kind {
        Kind::Client | Kind::Private | Kind::Cancelled | Kind::Draft | Kind::MonthlySeries => {
            for _ in 0..1 + rng.below(2) {
                attendees.push(attendee(&client(rng), AttendeeType::Required, rng, created));
            }
            if let Some(c) = colleague(rng).filter(|_| rng.chance(0.4)) {
                attendees.push(attendee(&c, AttendeeType::Optional, rng, created));
            }
            locations.push(Location {
                display_name: rng
                    .pick(&[
                        "Client's office",
                        "Café Nero, High St",
                        "Head office reception",
                    ])
                    .to_string(),
                location_type: "default",
                email: String::new(),
                unique_id: String::new(),
                unique_id_type: "private",
            });
        }
        Kind::Internal | Kind::WeeklySeries | Kind::DailySeries => {
            subject = rng
                .pick(&[
                    "Advisor team sync",
                    "Pipeline review",
                    "Compliance check-in",
                    "Daily standup",
                ])
                .to_string();
            for c in colleagues.iter().take(1 + rng.below(3) as usize) {
                attendees.push(attendee(c, AttendeeType::Required, rng, created));
            }
        }
        Kind::TeamsWithRoom => {
            attendees.push(attendee(&client(rng), AttendeeType::Required, rng, created));
            if let Some(c) = colleague(rng) {
                attendees.push(attendee(&c, AttendeeType::Required, rng, created));
            }
        }
        Kind::Seminar => {
            subject = "Client seminar: market outlook".into();
            for n in 0..55 {
                let c = CLIENTS[n % CLIENTS.len()];
                let guest = Recipient {
                    name: format!("Guest {n}"),
                    address: format!(
                        "guest{n}@{}",
                        c.1.split('@').nth(1).unwrap_or("example.org")
                    ),
                };
                attendees.push(attendee(&guest, AttendeeType::Optional, rng, created));
            }
            attendees.extend(
                colleagues
                    .iter()
                    .map(|c| attendee(c, AttendeeType::Required, rng, created)),
            );
        }
        Kind::AllDay => {
            subject = rng
                .pick(&["Annual leave", "Offsite planning day", "Conference"])
                .to_string()
        }
        Kind::Personal => {
            subject = rng
                .pick(&["Focus time", "Dentist", "School run"])
                .to_string()
        }
    }
    let rooms = &world.tenants[t].rooms;
    if matches!(kind, Kind::TeamsWithRoom | Kind::Seminar)
        || (kind == Kind::Client && rng.chance(0.3))
    {
        if let Some(room) = (!rooms.is_empty()).then(|| rng.pick(rooms).clone()) {
            attendees.push(Attendee {
                kind: AttendeeType::Resource,
                who: Recipient {
                    name: room.display_name.clone(),
                    address: room.email_address.clone(),
                },
                response: "accepted",
                response_time: Some(created),
            });
            locations = vec![Location {
                display_name: room.display_name.clone(),
                location_type: "conferenceRoom",
                email: room.email_address.clone(),
                unique_id: String::new(),
                unique_id_type: "unknown",
            }];
        }
    }
    let show_as = match kind {
        Kind::AllDay => *rng.pick(&["oof", "free", "workingElsewhere"]),
        Kind::Personal => *rng.pick(&["free", "oof", "busy"]),
        _ => *rng.pick(&["busy", "busy", "busy", "tentative", "unknown"]),
    };
    let mut details = Details {
        subject,
        body_html: format!(
            "<html><body><p>Agenda for {} with {}.</p><p>Please bring the latest statements.</p></body></html>",
            day.format("%d %B"),
            me.name
        ),
        attendees,
        locations,
        sensitivity: if kind == Kind::Private { "private" } else { "normal" },
        show_as,
        importance: if rng.chance(0.1) { "high" } else { "normal" },
        join_url: (kind == Kind::TeamsWithRoom || (kind == Kind::Internal && rng.chance(0.5)))
            .then(|| join_url(key, &world.tenants[t].id)),
        reminder_minutes: *rng.pick(&[0, 5, 15, 15, 30, 1440]),
        reminder_on: !rng.chance(0.1),
        categories: if rng.chance(0.15) {
            vec![rng.pick(&["Client", "Compliance", "Prospect"]).to_string()]
        } else {
            vec![]
        },
        is_cancelled: kind == Kind::Cancelled,
        when,
    };
    if kind == Kind::Cancelled {
        details.subject = format!("Canceled: {}", details.subject);
    }
    resolve_rooms(&world.tenants[t], &mut details);
    let recurrence = series.then(|| series_pattern(kind, day, zone, rng));
    let mut event = Event {
        key,
        ical_uid: ical_uid(key, world.salt),
        organizer: me.clone(),
        is_organizer: true,
        response: "organizer",
        response_time: None,
        is_draft: kind == Kind::Draft,
        transaction_id: None,
        details,
        recurrence,
        exceptions: Default::default(),
        deleted: Default::default(),
        created,
        last_modified: created,
        version: 0,
    };
    if kind == Kind::WeeklySeries {
        modify_series(&mut event, created);
    }
    event
}

fn series_pattern(kind: Kind, start: NaiveDate, zone: &Zone, rng: &mut Rng) -> Recurrence {
    let day = start.format("%A").to_string().to_ascii_lowercase();
    let range = if rng.chance(0.5) {
        json!({"type": "noEnd", "startDate": start.to_string(), "recurrenceTimeZone": zone.name})
    } else {
        json!({"type": "numbered", "startDate": start.to_string(), "numberOfOccurrences": 20 + rng.below(40), "recurrenceTimeZone": zone.name})
    };
    let pattern = match kind {
        Kind::DailySeries => json!({"type": "daily", "interval": 1}),
        Kind::MonthlySeries if rng.chance(0.5) => {
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": chrono::Datelike::day(&start)})
        }
        Kind::MonthlySeries => {
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": [day], "index": "last"})
        }
        _ => {
            json!({"type": "weekly", "interval": 1 + rng.below(2), "daysOfWeek": [day], "firstDayOfWeek": "sunday"})
        }
    };
    Recurrence::parse(&json!({"pattern": pattern, "range": range}))
        .expect("generated patterns are valid")
}

/// Moves the series' third occurrence an hour later under a new subject and deletes its fifth.
fn modify_series(event: &mut Event, at: DateTime<Utc>) {
    let Some(rec) = &event.recurrence else { return };
    let first = rec.start_date;
    let dates = rec.dates_until(first + Duration::days(120));
    let original = |d: &NaiveDate| event.details.when.on_date(*d).local_start();
    if let Some(third) = dates.get(2) {
        let mut details = event.details.clone();
        details.when = match event.details.when.on_date(*third) {
            When::Timed {
                start,
                start_zone,
                end,
                end_zone,
            } => When::Timed {
                start: start + Duration::hours(1),
                start_zone,
                end: end + Duration::hours(1),
                end_zone,
            },
            other => other,
        };
        details.subject = format!("{} (moved)", details.subject);
        event.exceptions.insert(
            original(third),
            Exception {
                details,
                version: 1,
                last_modified: at,
            },
        );
    }
    if let Some(fifth) = dates.get(4) {
        event.deleted.insert(original(fifth));
    }
}
