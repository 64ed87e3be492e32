//! Per-folder message delta, as Exchange does it.
//!
//! A round is a chain of pages linked by `@odata.nextLink` and ended by `@odata.deltaLink`.
//! All round state lives in the sealed token inside each link, so the simulator stores nothing
//! per client: an initial round walks the folder's contents (in arrival order, up to the world
//! sequence at the round's start); a later round walks the folder's change log between the
//! sequence the previous deltaLink sealed and the sequence at this round's start. Query options
//! of the first request (`$select`, `$filter`, `$orderby`, `changeType`) are sealed in too, and
//! later requests replay the links as they are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::graph::Ctx;
use super::ids::unit_hash;
use super::mail::{parse_select, MessageView};
use super::model::{after, FolderChange, World};
use super::request::{GraphError, GraphResult, SimResponse};

/// How many log or folder entries one page may scan before it answers, even with nothing to
/// send: bounds the work of a page, and is why a page can be empty yet have a nextLink.
const SCAN_LIMIT_PER_ITEM: usize = 20;

/// At most this many messages in a round filtered by `receivedDateTime`.
const FILTERED_ROUND_CAP: u32 = 5000;

/// The state sealed in a delta link.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeltaState {
    /// Tenant id, user index, folder index: the token only works where it was issued.
    t: String,
    u: usize,
    f: usize,
    /// World epoch and mailbox sync generation at issue.
    ep: u64,
    g: u64,
    /// When the state was created (unix seconds); too old means 410.
    iat: i64,
    /// Sequence the round reads changes after; `None` for an initial round.
    base: Option<u64>,
    /// The round's end sequence; `None` in a deltaLink (the next round sets it).
    end: Option<u64>,
    /// The last arrival (initial) or change (later round) sequence sent.
    cur: u64,
    /// Messages sent so far in this round (for the `$filter` cap).
    n: u32,
    /// `$select` mask.
    sel: u64,
    /// `$filter=receivedDateTime ge|gt X`: (inclusive, unix seconds).
    flt: Option<(bool, i64)>,
    /// `changeType` mask: 1 created, 2 updated, 4 deleted.
    ct: u8,
    /// `$orderby=receivedDateTime desc` (initial rounds only).
    desc: bool,
    /// A message to send again at the start of the next page (Graph's replays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay: Option<u64>,
}

fn sync_state_not_found(ctx: &Ctx, location: &str) -> GraphError {
    GraphError::new(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found; it may have expired or been reset. resyncRequired",
    )
    .with_header("location", format!("{location}?$deltatoken="))
    .with_header("request-id", ctx.request_id.clone())
}

fn parse_filter(filter: &str) -> Result<(bool, i64), GraphError> {
    let parts: Vec<&str> = filter.split_whitespace().collect();
    let bad = || {
        GraphError::bad_request(format!(
            "The filter '{filter}' is not supported on delta: use receivedDateTime ge|gt <date>."
        ))
    };
    if parts.len() != 3 || !parts[0].eq_ignore_ascii_case("receivedDateTime") {
        return Err(bad());
    }
    let inclusive = match parts[1].to_ascii_lowercase().as_str() {
        "ge" => true,
        "gt" => false,
        _ => return Err(bad()),
    };
    let at = DateTime::parse_from_rfc3339(parts[2].trim_matches('\''))
        .map_err(|_| bad())?
        .with_timezone(&Utc);
    Ok((inclusive, at.timestamp()))
}

fn parse_change_type(v: Option<&str>) -> Result<u8, GraphError> {
    let Some(v) = v else { return Ok(7) };
    let mut mask = 0;
    for part in v.split(',').map(str::trim) {
        mask |= match part.to_ascii_lowercase().as_str() {
            "created" => 1,
            "updated" => 2,
            "deleted" => 4,
            _ => {
                return Err(GraphError::bad_request(format!(
                    "Invalid changeType '{part}': use created, updated or deleted."
                )))
            }
        };
    }
    Ok(mask)
}

/// `GET /users/{u}/mailFolders/{f}/messages/delta` (also `delta()`).
pub fn messages_delta(ctx: &Ctx, world: &mut World, t: usize, u: usize, f: usize) -> GraphResult {
    let user = &world.tenants[t].users[u];
    let location = format!(
        "{}/users/{}/mailFolders/{}/messages/delta",
        ctx.graph_base, user.id, user.folders[f].id
    );
    let skip = ctx.req.query("$skiptoken");
    let delta = ctx.req.query("$deltatoken");
    let now = Utc::now().timestamp();
    let token = skip.or(delta).filter(|tok| !tok.is_empty());
    let mut state = match token {
        None => {
            // A fresh round (also after 410's empty `$deltatoken`): read the query options.
            if let Some(ob) = ctx.req.query("$orderby") {
                if !ob.trim().eq_ignore_ascii_case("receivedDateTime desc") {
                    return Err(GraphError::bad_request(
                        "Only $orderby=receivedDateTime desc is supported on delta.",
                    ));
                }
            }
            if ctx.req.query("$search").is_some() {
                return Err(GraphError::bad_request(
                    "$search is not supported on delta.",
                ));
            }
            DeltaState {
                t: world.tenants[t].id.clone(),
                u,
                f,
                ep: world.epoch,
                g: user.sync_generation,
                iat: now,
                base: None,
                end: Some(world.seq),
                cur: 0,
                n: 0,
                sel: parse_select(ctx.req.query("$select"))?,
                flt: ctx.req.query("$filter").map(parse_filter).transpose()?,
                ct: parse_change_type(ctx.req.query("changeType"))?,
                desc: ctx.req.query("$orderby").is_some(),
                replay: None,
            }
        }
        Some(tok) => {
            let s: DeltaState = ctx
                .sim
                .sealer
                .open(tok)
                .ok_or_else(|| sync_state_not_found(ctx, &location))?;
            let lifetime = ctx.sim.protocol().sync_state_secs;
            if s.t != world.tenants[t].id
                || s.u != u
                || s.f != f
                || s.ep != world.epoch
                || s.g != user.sync_generation
                || s.iat + lifetime < now
            {
                return Err(sync_state_not_found(ctx, &location));
            }
            s
        }
    };
    if state.end.is_none() {
        // A deltaLink: this request starts a new round over the changes since its base.
        state.end = Some(world.seq);
        state.cur = state.base.unwrap_or(0);
        state.n = 0;
        state.iat = now;
    }
    let page_size = ctx
        .prefer
        .max_page_size
        .unwrap_or(ctx.sim.protocol().default_delta_page)
        .clamp(1, ctx.sim.protocol().max_page);
    let replay_rate = ctx.sim.faults().replay_rate;
    let (keys, removed, done) = collect_page(world, t, u, f, &mut state, page_size);

    let user = &world.tenants[t].users[u];
    let folder_id = &user.folders[f].id;
    let view = |key: u64| {
        world.messages.get(&key).map(|m| MessageView {
            message: m,
            folder_id,
            salt: world.salt,
            mask: state.sel,
            immutable_ids: ctx.prefer.immutable_ids,
            text_body: ctx.prefer.text_body,
            with_type: true,
        })
    };
    let mut items: Vec<DeltaItem> = Vec::with_capacity(keys.len() + removed.len() + 1);
    if let Some(again) = state.replay.take() {
        if world
            .messages
            .get(&again)
            .is_some_and(|m| m.folder == f && m.user == u && m.tenant == t)
        {
            items.extend(view(again).map(DeltaItem::Message));
        }
    }
    let mut next_replay = None;
    let replay_seed = state.end.unwrap_or(0) ^ ctx.sim.faults().seed;
    for key in keys {
        if let Some(v) = view(key) {
            items.push(DeltaItem::Message(v));
            if next_replay.is_none()
                && replay_rate > 0.0
                && unit_hash(key ^ replay_seed) < replay_rate
            {
                next_replay = Some(key);
            }
        }
    }
    for (_, imm, def) in &removed {
        items.push(DeltaItem::Removed(if ctx.prefer.immutable_ids {
            imm
        } else {
            def
        }));
    }
    ctx.sim
        .stats
        .delta_items_served
        .fetch_add(items.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let context = format!("{}/$metadata#Collection(message)", ctx.graph_base);
    let link = if done {
        let next = DeltaState {
            base: state.end,
            end: None,
            cur: 0,
            n: 0,
            desc: false,
            replay: None,
            iat: now,
            ..state
        };
        (
            "@odata.deltaLink",
            format!("{location}?$deltatoken={}", ctx.sim.sealer.seal(&next)),
        )
    } else {
        state.replay = next_replay;
        (
            "@odata.nextLink",
            format!("{location}?$skiptoken={}", ctx.sim.sealer.seal(&state)),
        )
    };
    let page = DeltaPage {
        context: &context,
        link,
        items: &items,
    };
    let body = serde_json::to_vec(&page).expect("page serialises");
    Ok(SimResponse::raw_json(200, body))
}

/// One entry of a delta page.
enum DeltaItem<'a> {
    Message(MessageView<'a>),
    /// `{"@odata.type":..,"id":..,"@removed":{"reason":"deleted"}}`
    Removed(&'a str),
}

impl Serialize for DeltaItem<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            DeltaItem::Message(v) => v.serialize(s),
            DeltaItem::Removed(id) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("@odata.type", "#microsoft.graph.message")?;
                m.serialize_entry("id", id)?;
                m.serialize_entry("@removed", &serde_json::json!({"reason": "deleted"}))?;
                m.end()
            }
        }
    }
}

/// A delta page, written in Graph's order: context, the link, then the items.
struct DeltaPage<'a> {
    context: &'a str,
    link: (&'static str, String),
    items: &'a [DeltaItem<'a>],
}

impl Serialize for DeltaPage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("@odata.context", self.context)?;
        m.serialize_entry(self.link.0, &self.link.1)?;
        m.serialize_entry("value", self.items)?;
        m.end()
    }
}

/// Removed entries of a page: (key, immutable id, default id).
type RemovedItem = (u64, String, String);

/// Advances `state` by one page. Returns the messages to send, the removals, and whether the
/// round is complete.
fn collect_page(
    world: &World,
    t: usize,
    u: usize,
    f: usize,
    state: &mut DeltaState,
    page_size: usize,
) -> (Vec<u64>, Vec<RemovedItem>, bool) {
    let folder = &world.tenants[t].users[u].folders[f];
    let end = state.end.expect("a round in progress has an end");
    let mut keys = Vec::new();
    let mut removed = Vec::new();
    let scan_limit = page_size * SCAN_LIMIT_PER_ITEM;
    let flt = state.flt;
    let passes_filter = move |received: i64| match flt {
        None => true,
        Some((true, at)) => received >= at,
        Some((false, at)) => received > at,
    };
    let mut scanned = 0;
    match state.base {
        None => {
            // Initial round: the folder's contents as of `end`.
            let cap = if state.flt.is_some() {
                FILTERED_ROUND_CAP
            } else {
                u32::MAX
            };
            if state.ct & 1 == 0 {
                return (keys, removed, true);
            }
            let mut take = |arrival: u64, key: u64, state: &mut DeltaState| -> bool {
                state.cur = arrival;
                if let Some(m) = world.messages.get(&key) {
                    if passes_filter(m.content.received.timestamp()) {
                        keys.push(key);
                        state.n += 1;
                    }
                }
                keys.len() >= page_size || state.n >= cap
            };
            let mut exhausted = true;
            if state.desc {
                let upper = if state.cur == 0 { end + 1 } else { state.cur };
                for (&arrival, &key) in folder.items.range(..upper).rev() {
                    scanned += 1;
                    if take(arrival, key, state) || scanned >= scan_limit {
                        exhausted = false;
                        break;
                    }
                }
                if !exhausted && state.n < cap {
                    let remaining = folder.items.range(..state.cur).next().is_some();
                    return (keys, removed, !remaining);
                }
            } else {
                for (&arrival, &key) in folder.items.range(after(state.cur, end)) {
                    scanned += 1;
                    if take(arrival, key, state) || scanned >= scan_limit {
                        exhausted = false;
                        break;
                    }
                }
                if !exhausted && state.n < cap {
                    let remaining = folder.items.range(after(state.cur, end)).next().is_some();
                    return (keys, removed, !remaining);
                }
            }
            (keys, removed, true)
        }
        Some(base) => {
            let start = state.cur.max(base);
            for (&seq, change) in folder.log.range(after(start, end)) {
                scanned += 1;
                state.cur = seq;
                let (key, folded) = match change {
                    FolderChange::Upsert { key } | FolderChange::Removed { key, .. } => {
                        let last = folder.last_change.get(key).copied().unwrap_or(seq);
                        (*key, last > seq && last <= end)
                    }
                };
                if !folded {
                    match change {
                        FolderChange::Upsert { .. } => {
                            if let Some(m) = world.messages.get(&key) {
                                let created = m.arrival > base;
                                let wanted = if created { 1 } else { 2 };
                                if m.folder == f
                                    && state.ct & wanted != 0
                                    && passes_filter(m.content.received.timestamp())
                                {
                                    keys.push(key);
                                }
                            }
                        }
                        FolderChange::Removed {
                            immutable_id,
                            default_id,
                            received,
                            ..
                        } => {
                            if state.ct & 4 != 0 && passes_filter(received.timestamp()) {
                                removed.push((key, immutable_id.clone(), default_id.clone()));
                            }
                        }
                    }
                }
                if keys.len() + removed.len() >= page_size || scanned >= scan_limit {
                    let remaining = folder.log.range(after(seq, end)).next().is_some();
                    return (keys, removed, !remaining);
                }
            }
            (keys, removed, true)
        }
    }
}
