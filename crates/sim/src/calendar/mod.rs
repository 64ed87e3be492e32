//! Calendars: events, recurring series, calendarView delta, event writes and the invitation log.
//!
//! Layout: [`model`] stores events and their change log; [`recurrence`] turns patterns into
//! dates and [`expand`] dates into instances; [`timezone`] reads Windows and IANA zone names;
//! [`input`] reads Graph event JSON and [`render`] writes it; [`view`] serves calendarView and
//! its delta; [`writes`] creates, changes and deletes events, with [`invite`] logging what
//! that sends and keeping attendees' copies; [`routes`] maps Graph paths; [`generate`] fills
//! generated calendars.

mod event_id;
mod expand;
mod generate;
mod input;
mod invite;
mod model;
mod recurrence;
mod render;
mod routes;
mod timezone;
mod view;
mod writes;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::graph::Ctx;
use super::model::World;
use super::request::GraphResult;
use model::Mode;

pub use model::Calendar;
pub use timezone::Zone;

/// An invitation, update or cancellation a real server would have emailed, one per attendee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invitation {
    /// `invitation`, `update` or `cancellation`.
    pub kind: String,
    /// The organizer's address.
    pub organizer: String,
    /// The address of the attendee it went to.
    pub attendee: String,
    /// The event's subject.
    pub subject: String,
    /// The event or occurrence the message is about.
    pub event_id: String,
    /// Shared by the organizer's event and every attendee's copy.
    pub ical_uid: String,
    /// When it was sent (RFC 3339, UTC).
    pub timestamp: String,
}

/// Routes `/users/{u}/events...`, `/calendar...` and `/calendarView...`.
pub fn handle(ctx: &Ctx, world: &mut World, t: usize, u: usize, rest: &[String]) -> GraphResult {
    routes::handle(ctx, world, t, u, rest)
}

/// Ids of the stored events (singles and series masters) of a calendar, for the ground truth.
pub fn event_ids(cal: &Calendar) -> Vec<String> {
    cal.events
        .keys()
        .map(|k| event_id::encode(*k, None, cal.salt))
        .collect()
}

/// Fills a person's calendar with `count` generated items, deterministically from `rng`.
pub fn generate_events(
    world: &mut World,
    t: usize,
    u: usize,
    rng: &mut super::ids::Rng,
    count: usize,
    now: chrono::DateTime<chrono::Utc>,
) {
    generate::generate(world, t, u, rng, count, now);
}

/// Byte offset of the `index`-th `[[tenant.event]]` of the tenant with `domain`, or 0.
fn entry_offset(text: &str, domain: &str, index: usize) -> usize {
    let Some(tenant_at) = text.find(&format!("\"{domain}\"")) else {
        return 0;
    };
    text[tenant_at..]
        .match_indices("[[tenant.event]]")
        .nth(index)
        .map_or(0, |(i, _)| tenant_at + i)
}

/// Checks the `[[tenant.event]]` entries of a scenario; errors are (byte offset, field, message).
pub fn check_scenario_events(
    tenant: &super::scenario::TenantSpec,
    text: &str,
) -> Result<(), (usize, String, String)> {
    for (i, entry) in tenant.events.iter().enumerate() {
        let at = || entry_offset(text, &tenant.domain, i);
        let body =
            serde_json::to_value(entry).map_err(|e| (at(), "event".to_string(), e.to_string()))?;
        let mailbox = body["mailbox"].as_str().unwrap_or_default();
        if !tenant
            .users
            .iter()
            .any(|u| u.upn.get_ref().eq_ignore_ascii_case(mailbox))
        {
            return Err((
                at(),
                "mailbox".into(),
                format!("no user '{mailbox}' in tenant {}", tenant.domain),
            ));
        }
        input::EventPatch::parse(&body)
            .and_then(|p| p.when(None).map(|_| ()))
            .map_err(|e| (at(), e.field, e.message))?;
    }
    Ok(())
}

/// Adds a scenario's events to tenant `t` (checked by [`check_scenario_events`] at load).
pub fn build_scenario_events(world: &mut World, t: usize, spec: &super::scenario::TenantSpec) {
    for entry in &spec.events {
        let body = serde_json::to_value(entry).expect("TOML values are JSON values");
        let u = body["mailbox"]
            .as_str()
            .and_then(|m| world.tenants[t].user_by_key(m))
            .expect("checked at load");
        writes::create(world, t, u, &body, Utc::now(), Mode::Building).expect("checked at load");
    }
}

/// Instance ids calendarView would return for a user over `[start, end)` (control API).
pub fn view_ids(
    world: &World,
    t: usize,
    u: usize,
    start: &str,
    end: &str,
) -> Result<Vec<String>, String> {
    let (from, to) = view::window(Some(start), Some(end)).map_err(|e| e.message)?;
    Ok(view::ids_in(world, t, u, from, to))
}

/// Control API event operations: `create`, `update`, `delete`, through the same code as
/// Graph's writes so invitations are logged the same way.
pub fn control(world: &mut World, op: &str, body: &Value) -> Result<Value, String> {
    let upn = body["user"].as_str().ok_or("user is required")?;
    let (t, u) = world
        .tenants
        .iter()
        .enumerate()
        .find_map(|(t, tenant)| tenant.user_by_key(upn).map(|u| (t, u)))
        .ok_or_else(|| format!("no user '{upn}'"))?;
    let id = || body["id"].as_str().ok_or("id is required");
    let now = Utc::now();
    match op {
        "create" => {
            let (key, _) = writes::create(world, t, u, &body["event"], now, Mode::Live)
                .map_err(|e| e.message)?;
            Ok(json!({"id": event_id::encode(key, None, world.salt)}))
        }
        "update" => {
            let id =
                writes::update(world, t, u, id()?, &body["patch"], now).map_err(|e| e.message)?;
            Ok(json!({"id": id}))
        }
        "delete" => {
            writes::delete(world, t, u, id()?, now).map_err(|e| e.message)?;
            Ok(json!({"ok": true}))
        }
        other => Err(format!(
            "unknown event operation '{other}': use create, update or delete"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::expand::Kind;
    use crate::generate::{generate, GenerateOptions};
    use crate::scenario::Scenario;

    #[test]
    fn generated_calendars_hold_every_kind_the_product_rules_need() {
        let world = generate(&GenerateOptions {
            users: 3,
            messages: 5,
            events: 12,
            now: Some(chrono::Utc::now()),
            ..Default::default()
        })
        .world;
        let events: Vec<_> = world.tenants[0]
            .users
            .iter()
            .flat_map(|u| u.calendar.events.values())
            .collect();
        let d = |e: &&super::model::Event| e.details.clone();
        assert!(events.iter().any(|e| d(e).sensitivity == "private"));
        assert!(events.iter().any(|e| d(e).when.is_all_day()));
        assert!(events.iter().any(|e| e.is_draft));
        assert!(events.iter().any(|e| d(e).is_cancelled));
        assert!(events.iter().any(|e| d(e).attendees.len() > 50));
        assert!(events.iter().any(|e| d(e).join_url.is_some()));
        assert!(events.iter().any(|e| d(e)
            .locations
            .iter()
            .any(|l| l.location_type == "conferenceRoom")));
        assert!(events.iter().any(|e| !e.is_organizer), "attendees' copies");
        let series = events
            .iter()
            .find(|e| !e.exceptions.is_empty() && !e.deleted.is_empty())
            .expect("a series with an exception and a deleted occurrence");
        let (from, to) = (series.created, series.created + chrono::Duration::days(400));
        let kinds: Vec<Kind> = super::expand::instances(series, from, to)
            .iter()
            .map(|i| i.kind)
            .collect();
        assert!(kinds.contains(&Kind::Exception) && kinds.contains(&Kind::Occurrence));
    }

    const SCENARIO: &str = r#"
[[tenant]]
name = "C"
domain = "c.example"
[[tenant.user]]
upn = "a@c.example"
name = "A"
[[tenant.event]]
mailbox = "a@c.example"
subject = "Kick-off"
start = { dateTime = "2026-05-04T09:00:00", timeZone = "Pacific Standard Time" }
end = { dateTime = "2026-05-04T10:00:00", timeZone = "Pacific Standard Time" }
[[tenant.event]]
mailbox = "a@c.example"
subject = "Broken"
start = { dateTime = "2026-05-04T09:00:00", timeZone = "Mars Standard Time" }
end = { dateTime = "2026-05-04T10:00:00", timeZone = "UTC" }
"#;

    #[test]
    fn scenario_events_are_checked_and_built() {
        let err = Scenario::parse(SCENARIO, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 13") && err.contains("start.timeZone"),
            "{err}"
        );
        let good = SCENARIO
            .split("[[tenant.event]]\nmailbox = \"a@c.example\"\nsubject = \"Broken\"")
            .next()
            .unwrap();
        let world = Scenario::parse(good, Path::new("s.toml")).unwrap().build();
        let cal = &world.tenants[0].users[0].calendar;
        assert_eq!(super::event_ids(cal).len(), 1);
        let e = cal.events.values().next().unwrap();
        assert_eq!(e.details.subject, "Kick-off");
        assert_eq!(
            e.details.when.span().0.to_rfc3339(),
            "2026-05-04T16:00:00+00:00"
        );
    }
}
