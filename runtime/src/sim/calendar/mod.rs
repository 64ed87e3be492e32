//! Calendars: events, recurring series, calendarView delta, event writes and the invitation log.

use serde::Serialize;

use super::graph::Ctx;
use super::model::World;
use super::request::{GraphError, GraphResult};

/// One mailbox's calendar.
#[derive(Debug, Default)]
pub struct Calendar {}

/// An invitation, update or cancellation a real server would have emailed.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub kind: String,
    pub organizer: String,
    pub attendee: String,
    pub subject: String,
    pub event_id: String,
}

/// Routes `/users/{u}/events...`, `/calendar...` and `/calendarView...`.
pub fn handle(
    ctx: &Ctx,
    _world: &mut World,
    _t: usize,
    _u: usize,
    _rest: &[String],
) -> GraphResult {
    Err(super::mail::unsupported(ctx))
}

/// Ids of the stored events (singles and series masters) of a calendar, for the ground truth.
pub fn event_ids(_cal: &Calendar) -> Vec<String> {
    Vec::new()
}

/// Fails: not built yet.
pub fn not_yet() -> GraphError {
    GraphError::new(501, "NotImplemented", "calendar")
}

/// Fills a person's calendar with `count` generated items (stub until calendars land).
pub fn generate_events(
    _world: &mut World,
    _t: usize,
    _u: usize,
    _rng: &mut super::ids::Rng,
    _count: usize,
    _now: chrono::DateTime<chrono::Utc>,
) {
}

/// Checks the `[[tenant.event]]` entries of a scenario; errors are (byte offset, field, message).
pub fn check_scenario_events(
    _tenant: &super::scenario::TenantSpec,
    _text: &str,
) -> Result<(), (usize, String, String)> {
    Ok(())
}

/// Adds a scenario's events to tenant `t`.
pub fn build_scenario_events(_world: &mut World, _t: usize, _spec: &super::scenario::TenantSpec) {}

/// Instance ids calendarView would return for a user over `[start, end)` (control API).
pub fn view_ids(
    _world: &World,
    _t: usize,
    _u: usize,
    _start: &str,
    _end: &str,
) -> Result<Vec<String>, String> {
    Err("calendars are not built yet".into())
}

/// Control API event operations: `create`, `update`, `delete`.
pub fn control(
    _world: &mut World,
    _op: &str,
    _body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    Err("calendars are not built yet".into())
}
