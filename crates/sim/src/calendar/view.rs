//! Calendar views: `calendarView`, its delta, and the instances of one series.
//!
//! A delta round keeps all its state in sealed tokens, like mail delta. The window is fixed by
//! the first request and sealed in. A first round walks the stored events in key order (keys
//! are the world sequence at creation, so events created after the round began are left to the
//! next round) and sends their instances inside the window. A later round walks the calendar's
//! change log since the previous round's end; for each changed event it compares the instances
//! the event had in the window before the round's first change (the log keeps that state)
//! with the ones it has now: everything it has now is sent, and what it no longer has is sent
//! as `@removed` — deleted events, deleted occurrences, and instances that left the window.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::expand::{instances, Instance};
use super::model::{Calendar, Event};
use super::render;
use super::timezone::{parse_date_time, Zone};
use crate::graph::Ctx;
use crate::model::{after, from_to, World};
use crate::request::{GraphError, GraphResult, SimResponse};

/// How many stored events or log entries one page may scan for every item it may send.
const SCAN_LIMIT_PER_ITEM: usize = 20;

/// Parses a window bound: ISO 8601 with an offset, or without one (then UTC).
fn bound(name: &str, value: Option<&str>) -> Result<DateTime<Utc>, GraphError> {
    let missing = || {
        GraphError::new(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let v = value.filter(|v| !v.trim().is_empty()).ok_or_else(missing)?;
    DateTime::parse_from_rfc3339(v.trim())
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| parse_date_time(v).map(|n| n.and_utc()))
        .ok_or_else(|| {
            GraphError::new(
                400,
                "ErrorInvalidParameter",
                format!("The value '{v}' of parameter '{name}' is invalid."),
            )
        })
}

/// The window `[start, end)` named by `startDateTime` and `endDateTime`.
pub fn window(
    start: Option<&str>,
    end: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), GraphError> {
    let from = bound("StartDateTime", start)?;
    let to = bound("EndDateTime", end)?;
    if to <= from {
        return Err(GraphError::new(
            400,
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
        ));
    }
    Ok((from, to))
}

/// The zone `Prefer: outlook.timezone` asks for (UTC by default).
pub fn preferred_zone(ctx: &Ctx) -> Result<Zone, GraphError> {
    match ctx.prefer.time_zone.as_deref() {
        None => Ok(Zone::utc()),
        Some(name) => Zone::parse(name).ok_or_else(|| {
            GraphError::new(
                400,
                "TimeZoneNotSupportedException",
                format!("A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."),
            )
        }),
    }
}

/// Every instance in the window, in start order.
pub fn all_instances(cal: &Calendar, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Instance<'_>> {
    let mut all: Vec<(DateTime<Utc>, Instance)> = cal
        .events
        .values()
        .flat_map(|e| instances(e, from, to))
        .map(|i| (i.when.span().0, i))
        .collect();
    all.sort_by_key(|(start, i)| (*start, i.event.key, i.order()));
    all.into_iter().map(|(_, i)| i).collect()
}

/// `$top` (clamped to the protocol's largest page) and `$skip` of a listing.
pub(super) fn paging(ctx: &Ctx, default_top: usize) -> (usize, usize) {
    let skip = ctx
        .req
        .query("$skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (page_size(ctx, default_top), skip)
}

fn page_size(ctx: &Ctx, default: usize) -> usize {
    let max = ctx.sim.protocol().max_page;
    ctx.req
        .query("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(default)
        .clamp(1, max)
}

/// A listing page: `value`, and a nextLink when more follow.
pub fn listing(
    ctx: &Ctx,
    context: String,
    items: Vec<Value>,
    skip: usize,
    top: usize,
    total: usize,
) -> SimResponse {
    let mut body = Map::new();
    body.insert("@odata.context".into(), context.into());
    if skip + top < total {
        body.insert(
            "@odata.nextLink".into(),
            ctx.same_url_with("$skip", &(skip + top).to_string()).into(),
        );
    }
    body.insert("value".into(), items.into());
    SimResponse::json(200, &body)
}

/// Refuses query options the simulator does not evaluate on a listing, rather than
/// answering as if they had been applied.
pub fn refuse_unsupported(ctx: &Ctx, options: &[&str]) -> Result<(), GraphError> {
    let sent: Vec<&str> = options
        .iter()
        .copied()
        .filter(|o| ctx.req.query(o).is_some())
        .collect();
    if sent.is_empty() {
        return Ok(());
    }
    Err(GraphError::bad_request(format!(
        "The following parameters are not supported here: '{}'.",
        sent.join(", ")
    )))
}

/// `GET /users/{u}/calendarView?startDateTime&endDateTime` ($top/$skip paging, $select).
pub fn calendar_view(
    ctx: &Ctx,
    world: &World,
    t: usize,
    u: usize,
    master: Option<u64>,
) -> GraphResult {
    refuse_unsupported(ctx, &["$filter", "$orderby", "$search", "$expand"])?;
    let (from, to) = window(ctx.req.query("startDateTime"), ctx.req.query("endDateTime"))?;
    let zone = preferred_zone(ctx)?;
    let user = &world.tenants[t].users[u];
    let all = match master {
        None => all_instances(&user.calendar, from, to),
        Some(key) => user
            .calendar
            .events
            .get(&key)
            .map(|e| instances(e, from, to))
            .unwrap_or_default(),
    };
    let (top, skip) = paging(ctx, 10);
    let select = ctx.req.query("$select");
    let items: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(top)
        .map(|i| {
            Value::Object(render::select(
                render::full(i.event, Some(i), &zone, world.salt),
                select,
            ))
        })
        .collect();
    let context = format!(
        "{}/$metadata#users('{}')/calendarView",
        ctx.graph_base, user.id
    );
    Ok(listing(ctx, context, items, skip, top, all.len()))
}

/// Instance ids calendarView would return (for the control API).
pub fn ids_in(
    world: &World,
    t: usize,
    u: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<String> {
    all_instances(&world.tenants[t].users[u].calendar, from, to)
        .iter()
        .map(|i| i.id(world.salt))
        .collect()
}

/// The state sealed in calendarView delta links.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ViewState {
    /// Tenant id and user index: the token only works where it was issued.
    t: String,
    u: usize,
    /// World epoch and mailbox sync generation at issue.
    ep: u64,
    g: u64,
    /// When the state was created (unix seconds); too old means 410.
    iat: i64,
    /// The window, unix seconds.
    from: i64,
    to: i64,
    /// Sequence a later round reads changes after; `None` for a first round.
    base: Option<u64>,
    /// The round's end sequence; `None` in a deltaLink (the next round sets it).
    end: Option<u64>,
    /// First round: the last event key sent from. Later round: the last log entry finished.
    ck: u64,
    /// First round: the order of the last instance of event `ck` sent. Later round: items of
    /// the entry after `ck` already sent.
    co: i64,
}

/// 410 with a `Location` to restart from: the sealed window when the token still opens (a
/// stale one), so following it starts a full round over the same window.
fn sync_state_not_found(ctx: &Ctx, location: &str, stale: Option<&ViewState>) -> GraphError {
    let window = stale
        .and_then(|s| {
            Some((
                DateTime::from_timestamp(s.from, 0)?,
                DateTime::from_timestamp(s.to, 0)?,
            ))
        })
        .map(|(from, to)| {
            format!(
                "startDateTime={}&endDateTime={}&",
                from.format("%Y-%m-%dT%H:%M:%SZ"),
                to.format("%Y-%m-%dT%H:%M:%SZ")
            )
        })
        .unwrap_or_default();
    GraphError::new(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found; it may have expired or been reset. resyncRequired",
    )
    .with_header("location", format!("{location}?{window}$deltatoken="))
    .with_header("request-id", ctx.request_id.clone())
}

/// `GET /users/{u}/calendarView/delta` (also `delta()`).
pub fn delta(ctx: &Ctx, world: &World, t: usize, u: usize) -> GraphResult {
    let user = &world.tenants[t].users[u];
    let location = format!("{}/users/{}/calendarView/delta", ctx.graph_base, user.id);
    let now = Utc::now().timestamp();
    let token = ctx
        .req
        .query("$skiptoken")
        .or(ctx.req.query("$deltatoken"))
        .filter(|tok| !tok.is_empty());
    let mut state = match token {
        None => {
            let refused: Vec<&str> = ["$select", "$filter", "$orderby", "$expand", "$search"]
                .into_iter()
                .filter(|o| ctx.req.query(o).is_some())
                .collect();
            if !refused.is_empty() {
                return Err(GraphError::bad_request(format!(
                    "The following parameters are not supported with change tracking over the 'CalendarView' resource: '{}'.",
                    refused.join(", ")
                )));
            }
            let (from, to) = window(ctx.req.query("startDateTime"), ctx.req.query("endDateTime"))?;
            ViewState {
                t: world.tenants[t].id.clone(),
                u,
                ep: world.epoch,
                g: user.sync_generation,
                iat: now,
                from: from.timestamp(),
                to: to.timestamp(),
                base: None,
                end: Some(world.seq),
                ck: 0,
                co: i64::MIN,
            }
        }
        Some(tok) => {
            let s: ViewState = ctx
                .sim
                .sealer
                .open(tok)
                .ok_or_else(|| sync_state_not_found(ctx, &location, None))?;
            if s.t != world.tenants[t].id
                || s.u != u
                || s.ep != world.epoch
                || s.g != user.sync_generation
                || s.iat + ctx.sim.protocol().sync_state_secs < now
            {
                return Err(sync_state_not_found(ctx, &location, Some(&s)));
            }
            s
        }
    };
    if state.end.is_none() {
        // A deltaLink: this request starts a round over the changes since its base.
        state.end = Some(world.seq);
        state.ck = state.base.unwrap_or(0);
        state.co = 0;
        state.iat = now;
    }
    let zone = preferred_zone(ctx)?;
    let size = ctx
        .prefer
        .max_page_size
        .unwrap_or(ctx.sim.protocol().default_delta_page)
        .clamp(1, ctx.sim.protocol().max_page);
    let span = (
        DateTime::from_timestamp(state.from, 0).unwrap_or_default(),
        DateTime::from_timestamp(state.to, 0).unwrap_or_default(),
    );
    let page = Page {
        cal: &user.calendar,
        span,
        zone: &zone,
        salt: world.salt,
        size,
    };
    let (items, done) = match state.base {
        None => page.first_round(&mut state),
        Some(base) => page.later_round(&mut state, base),
    };
    ctx.sim
        .stats
        .delta_items_served
        .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}/$metadata#Collection(event)", ctx.graph_base).into(),
    );
    if done {
        let next = ViewState {
            base: state.end,
            end: None,
            ck: 0,
            co: 0,
            iat: now,
            ..state
        };
        body.insert(
            "@odata.deltaLink".into(),
            format!("{location}?$deltatoken={}", ctx.sim.sealer.seal(&next)).into(),
        );
    } else {
        body.insert(
            "@odata.nextLink".into(),
            format!("{location}?$skiptoken={}", ctx.sim.sealer.seal(&state)).into(),
        );
    }
    body.insert("value".into(), items.into());
    Ok(SimResponse::json(200, &body))
}

/// What one delta page reads and how much it may send.
struct Page<'a> {
    cal: &'a Calendar,
    span: (DateTime<Utc>, DateTime<Utc>),
    zone: &'a Zone,
    salt: u32,
    size: usize,
}

fn removed(id: String) -> Value {
    json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}})
}

impl Page<'_> {
    /// A page of a first round. Returns the items and whether the round is complete.
    fn first_round(&self, state: &mut ViewState) -> (Vec<Value>, bool) {
        let end = state.end.expect("a round in progress has an end");
        let mut items = Vec::new();
        let mut scanned = 0;
        for (&key, event) in self.cal.events.range(from_to(state.ck.max(1), end)) {
            scanned += 1;
            for inst in instances(event, self.span.0, self.span.1) {
                if key == state.ck && inst.order() <= state.co {
                    continue;
                }
                items.push(render::delta_item(&inst, self.zone, self.salt));
                state.ck = key;
                state.co = inst.order();
                if items.len() >= self.size {
                    return (items, false);
                }
            }
            state.ck = key;
            state.co = i64::MAX;
            if scanned >= self.size * SCAN_LIMIT_PER_ITEM {
                let more = self.cal.events.range(after(key, end)).next().is_some();
                return (items, !more);
            }
        }
        (items, true)
    }

    /// The items one changed event contributes to a later round: its instances in the window
    /// now, then `@removed` for the ones it had at the round's base and has no more.
    fn changed(&self, key: u64, before: Option<&Event>) -> Vec<Value> {
        let (from, to) = self.span;
        let now: Vec<Instance> = self
            .cal
            .events
            .get(&key)
            .map(|e| instances(e, from, to))
            .unwrap_or_default();
        let now_ids: HashSet<String> = now.iter().map(|i| i.id(self.salt)).collect();
        let mut out: Vec<Value> = now
            .iter()
            .map(|i| render::delta_item(i, self.zone, self.salt))
            .collect();
        if let Some(b) = before {
            out.extend(
                instances(b, from, to)
                    .iter()
                    .map(|i| i.id(self.salt))
                    .filter(|id| !now_ids.contains(id))
                    .map(removed),
            );
        }
        out
    }

    /// A page of a later round.
    fn later_round(&self, state: &mut ViewState, base: u64) -> (Vec<Value>, bool) {
        let end = state.end.expect("a round in progress has an end");
        let mut items = Vec::new();
        let mut scanned = 0;
        let start = state.ck.max(base);
        for (&seq, entry) in self.cal.log.range(after(start, end)) {
            scanned += 1;
            // Several changes to one event in a round fold into its last one.
            if self.cal.last_change_until(entry.key, end) == Some(seq) {
                let before = self.cal.state_after(entry.key, base).flatten();
                let all = self.changed(entry.key, before);
                let already = state.co.max(0) as usize;
                for (i, item) in all.into_iter().enumerate().skip(already) {
                    items.push(item);
                    if items.len() >= self.size {
                        state.co = i as i64 + 1;
                        return (items, false);
                    }
                }
            }
            state.ck = seq;
            state.co = 0;
            if scanned >= self.size * SCAN_LIMIT_PER_ITEM {
                let more = self.cal.log.range(after(seq, end)).next().is_some();
                return (items, !more);
            }
        }
        (items, true)
    }
}
