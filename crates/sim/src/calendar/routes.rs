//! Graph's calendar endpoints: the default calendar, events (list, read, write) and views.

use chrono::Utc;
use serde_json::{json, Value};

use super::expand;
use super::model::Mode;
use super::render;
use super::view::{self, preferred_zone};
use super::writes;
use crate::graph::Ctx;
use crate::mail::{change_key, unsupported};
use crate::model::World;
use crate::request::{GraphResult, SimResponse};

/// Routes `/users/{u}/events...`, `/calendar...`, `/calendars...` and `/calendarView...`.
pub fn handle(ctx: &Ctx, world: &mut World, t: usize, u: usize, rest: &[String]) -> GraphResult {
    let segs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let calendar_id = calendar_id(world, t, u);
    // `/calendar/events`, `/calendars/{id}/calendarView`: the one calendar's own paths.
    let segs: &[&str] = match segs.as_slice() {
        ["calendar", tail @ ..] if !tail.is_empty() => tail,
        ["calendars", id, tail @ ..] if !tail.is_empty() && *id == calendar_id => tail,
        other => other,
    };
    let method = ctx.req.method.as_str();
    match (method, segs) {
        ("GET", ["calendar"]) => {
            ctx.require("Calendars.Read")?;
            let mut v = calendar_json(world, t, u);
            v["@odata.context"] = format!(
                "{}/$metadata#users('{}')/calendar/$entity",
                ctx.graph_base, world.tenants[t].users[u].id
            )
            .into();
            Ok(SimResponse::json(200, &v))
        }
        ("GET", ["calendars"]) => {
            ctx.require("Calendars.Read")?;
            Ok(SimResponse::json(
                200,
                &json!({
                    "@odata.context": format!("{}/$metadata#users('{}')/calendars", ctx.graph_base, world.tenants[t].users[u].id),
                    "value": [calendar_json(world, t, u)],
                }),
            ))
        }
        ("GET", ["calendars", id]) if *id == calendar_id => {
            ctx.require("Calendars.Read")?;
            Ok(SimResponse::json(200, &calendar_json(world, t, u)))
        }
        ("GET", ["calendarView"]) => {
            ctx.require("Calendars.Read")?;
            view::calendar_view(ctx, world, t, u, None)
        }
        ("GET", ["calendarView", "delta" | "delta()"]) => {
            ctx.require("Calendars.Read")?;
            view::delta(ctx, world, t, u)
        }
        ("GET", ["events"]) => {
            ctx.require("Calendars.Read")?;
            list_events(ctx, world, t, u)
        }
        ("POST", ["events"]) => {
            ctx.require("Calendars.ReadWrite")?;
            let body: Value = ctx.req.json()?;
            // A repeated transactionId answers like the first POST: the same event, 201.
            let (key, _) = writes::create(world, t, u, &body, Utc::now(), Mode::Live)?;
            let id = super::event_id::encode(key, None, world.salt);
            let mut resp = get_event(ctx, world, t, u, &id)?;
            resp.status = 201;
            Ok(resp)
        }
        ("GET", ["events", id]) => {
            ctx.require("Calendars.Read")?;
            get_event(ctx, world, t, u, id)
        }
        ("PATCH", ["events", id]) => {
            ctx.require("Calendars.ReadWrite")?;
            let body: Value = ctx.req.json()?;
            let id = writes::update(world, t, u, id, &body, Utc::now())?;
            get_event(ctx, world, t, u, &id)
        }
        ("DELETE", ["events", id]) => {
            ctx.require("Calendars.ReadWrite")?;
            writes::delete(world, t, u, id, Utc::now())?;
            Ok(SimResponse::empty(204))
        }
        ("GET", ["events", id, "instances"]) => {
            ctx.require("Calendars.Read")?;
            let (key, original) = writes::locate(world, t, u, id)?;
            if original.is_some() {
                return Err(writes::not_found());
            }
            view::calendar_view(ctx, world, t, u, Some(key))
        }
        _ => Err(unsupported(ctx)),
    }
}

/// The id of a mailbox's one (default) calendar.
fn calendar_id(world: &World, t: usize, u: usize) -> String {
    format!("AAMkAGCal{}", world.tenants[t].users[u].id.replace('-', ""))
}

fn calendar_json(world: &World, t: usize, u: usize) -> Value {
    let user = &world.tenants[t].users[u];
    json!({
        "id": calendar_id(world, t, u),
        "name": "Calendar",
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": true,
        "changeKey": change_key(u as u64, 0),
        "canShare": true,
        "canViewPrivateItems": true,
        "canEdit": true,
        "isRemovable": false,
        "isTallyingResponses": true,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "owner": {"name": user.display_name, "address": user.mail},
    })
}

/// `GET /users/{u}/events`: singles and series masters, never occurrences.
fn list_events(ctx: &Ctx, world: &World, t: usize, u: usize) -> GraphResult {
    view::refuse_unsupported(ctx, &["$filter", "$orderby", "$search", "$expand"])?;
    let zone = preferred_zone(ctx)?;
    let user = &world.tenants[t].users[u];
    let events = &user.calendar.events;
    let (top, skip) = view::paging(ctx, 10);
    let select = ctx.req.query("$select");
    let items: Vec<Value> = events
        .values()
        .skip(skip)
        .take(top)
        .map(|e| {
            Value::Object(render::select(
                render::full(e, None, &zone, world.salt),
                select,
            ))
        })
        .collect();
    let context = format!("{}/$metadata#users('{}')/events", ctx.graph_base, user.id);
    Ok(view::listing(ctx, context, items, skip, top, events.len()))
}

/// `GET /users/{u}/events/{id}`: a single, a series master, an occurrence or an exception.
fn get_event(ctx: &Ctx, world: &World, t: usize, u: usize, id: &str) -> GraphResult {
    let (key, original) = writes::locate(world, t, u, id)?;
    let zone = preferred_zone(ctx)?;
    let user = &world.tenants[t].users[u];
    let event = &user.calendar.events[&key];
    let inst = original.and_then(|o| expand::find(event, o));
    let mut m = render::select(
        render::full(event, inst.as_ref(), &zone, world.salt),
        ctx.req.query("$select"),
    );
    m.insert(
        "@odata.context".into(),
        format!(
            "{}/$metadata#users('{}')/events/$entity",
            ctx.graph_base, user.id
        )
        .into(),
    );
    Ok(SimResponse::json(200, &m))
}
