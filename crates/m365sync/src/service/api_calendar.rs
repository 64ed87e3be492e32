//! The admin API's calendar side (issue 6, C1-C5, C9): calendar settings of an org or a tenant,
//! a user's Sync Events switch, and CRM events created, read, changed and deleted under
//! `/api/orgs/{org}/...` (the service admin or that org's admin), and a user's own events under
//! `/api/me/events` (a user token).
//!
//! Every edit goes through [`crate::outbound::edits`], the same code as `m365sync events`, so the
//! event and its outbox row are written in one transaction. When an edit left a row in the
//! outbox, the tenant's next run is made due now ([`m365sync_store::Store::request_run`]): the
//! service's scheduler starts it at its next tick and the user's mailbox sync pushes the change,
//! with no poller of its own. Events are found by id only within the path's tenant (and, for a
//! user, their own calendar); any other id answers 404 like a missing one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};

use bytes::Bytes;
use chrono::SecondsFormat;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::outbound::edits::{
    add_event, present, remove_event, update_event, CrmEditError, EventChange, NewEvent,
};
use crate::outbound::invitation_warning;
use crate::outbound::status::{external_id, push_state, push_states, record_view, PushState};
use m365sync_store::events::EventWindow;
use m365sync_store::events::{CalendarSettings, Direction, StoredEvent};
use m365sync_store::tenants::Tenant;
use m365sync_store::{Store, StoreError};

use super::access::{AccessError, Actor};
use super::api::Answer;
use super::api_crm::{answer, bad, id, instant, me_of, no_endpoint, ok, parse_json, Handled};
use super::extract::{Body, Caller, OrgScope, Q};
use super::Shared;

/// The most events one listing page holds.
const MAX_PAGE: i64 = 200;

/// The shape a settings body takes, for the usage hint of a refused one.
const SETTINGS_SHAPE: &str = "calendar settings: {\"direction\": \"to_crm\"|\"to_microsoft\"|\"two_way\", \"sync_internal_events\", \"delete_from_microsoft\", \"delete_from_crm\", \"sync_private_events\", \"sync_unmatched_events\": bool, \"commencement\": \"YYYY-MM-DD\" (or \"commencement_ms\"), \"inbound_years\", \"outbound_months\": number}; fields left out keep their value";

const EVENT_SHAPE: &str = "a new event: {\"subject\", \"start\", \"end\" (RFC 3339, or YYYY-MM-DD with \"all_day\": true), \"description\", \"location\", \"required\": [\"ADDRESS\" or \"Name <ADDRESS>\"], \"optional\": [...], \"private\", \"imported\", \"send_invitations\": bool, \"reminder_at\" (RFC 3339, before the start), \"show_as\": \"busy\"|\"out_of_office\"|\"free\"}";

const CHANGE_SHAPE: &str = "an event change: any of {\"subject\", \"description\", \"start\", \"end\", \"location\", \"required\", \"optional\", \"private\", \"send_invitations\", \"reminder_at\" (null: no reminder), \"show_as\"}; only the fields given change";

/// A settings change: what is given replaces the level's value; the rest is kept. The field
/// names are [`CalendarSettings`]'s, so what `GET` answers can be sent back as it is.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsRequest {
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    sync_internal_events: Option<bool>,
    #[serde(default)]
    delete_from_microsoft: Option<bool>,
    #[serde(default)]
    delete_from_crm: Option<bool>,
    #[serde(default)]
    sync_private_events: Option<bool>,
    #[serde(default)]
    sync_unmatched_events: Option<bool>,
    /// Epoch ms; `null` returns to the default (six months before the first sync).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    commencement_ms: Option<Option<i64>>,
    /// The same as a date, `YYYY-MM-DD` (UTC midnight) or RFC 3339.
    #[serde(default)]
    commencement: Option<String>,
    #[serde(default)]
    inbound_years: Option<i64>,
    #[serde(default)]
    outbound_months: Option<i64>,
}

/// A new event's body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventRequest {
    subject: String,
    start: String,
    end: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    all_day: bool,
    #[serde(default)]
    location: String,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    imported: bool,
    #[serde(default)]
    send_invitations: bool,
    #[serde(default)]
    reminder_at: Option<String>,
    #[serde(default)]
    show_as: Option<String>,
}

/// The Sync Events switch's body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SwitchRequest {
    on: bool,
}

/// An edit refused by the calendar code: bad input is the caller's (400, the message names
/// the field, user and tenant), the rest is the store's.
fn edit_error(e: CrmEditError) -> AccessError {
    match e {
        CrmEditError::Store(s) => AccessError::Store(s),
        CrmEditError::Invalid(m) => bad(m),
    }
}

/// `GET /api/orgs/{org}/calendar/settings`: the org's settings and where they come from.
pub(super) async fn org_settings(State(shared): State<Arc<Shared>>, scope: OrgScope) -> Answer {
    answer(async { ok(settings_answer(&shared.env.store, scope.org_id, None).await?) }.await)
}

/// `PUT /api/orgs/{org}/calendar/settings`: the fields given change.
pub(super) async fn put_org_settings(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let answer = put_settings(store, scope.org_id, None, &body).await?;
            release_waiting(store, &store.tenants(Some(&scope.org)).await?).await?;
            ok(answer)
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/tenants/{tenant}/calendar/settings`.
pub(super) async fn tenant_settings(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            ok(settings_answer(store, scope.org_id, Some(t.id)).await?)
        }
        .await,
    )
}

/// `PUT /api/orgs/{org}/tenants/{tenant}/calendar/settings`.
pub(super) async fn put_tenant_settings(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            let answer = put_settings(store, scope.org_id, Some(t.id), &body).await?;
            release_waiting(store, std::slice::from_ref(&t)).await?;
            ok(answer)
        }
        .await,
    )
}

/// `PUT /api/orgs/{org}/tenants/{tenant}/users/{user}/sync-events`: the Sync Events switch.
pub(super) async fn put_sync_events(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user)): Path<(String, String, String)>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            let user_id = known_user(store, &t, &user).await?;
            let r: SwitchRequest = parse_json(&body, "{\"on\": true|false}")?;
            store.set_sync_events(user_id, r.on).await?;
            // Changes that waited for the switch go at the service's next tick.
            let waiting = store.outbox_len_for_user(user_id).await?;
            if r.on && waiting > 0 {
                store.request_run(t.id).await?;
            }
            ok(json!({
                "user": user.to_ascii_lowercase(),
                "sync_events": r.on,
                "outbox": waiting,
            }))
        }
        .await,
    )
}

/// `GET /api/orgs/{org}/tenants/{tenant}/users/{user}/events[?from=&to=&limit=&after=]`.
pub(super) async fn user_events(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user)): Path<(String, String, String)>,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            let user_id = known_user(store, &t, &user).await?;
            ok(list(store, &t, user_id, &user.to_ascii_lowercase(), &q).await?)
        }
        .await,
    )
}

/// `POST /api/orgs/{org}/tenants/{tenant}/users/{user}/events`: 201 with the event.
pub(super) async fn create_user_event(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant, user)): Path<(String, String, String)>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            create(store, &t, &user, &body).await
        }
        .await,
    )
}

/// `GET`, `PATCH` or `DELETE /api/orgs/{org}/tenants/{tenant}/events/{event}`.
pub(super) async fn tenant_event(
    State(shared): State<Arc<Shared>>,
    method: Method,
    scope: OrgScope,
    Path((_, tenant, event)): Path<(String, String, String)>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let store = &shared.env.store;
            let t = store.tenant(&scope.org, &tenant).await?;
            let event = id(&event, "event")?;
            let ev = scoped_event(store, &t, event, None).await?;
            by_id(store, &t, ev, &method, &body).await
        }
        .await,
    )
}

/// `GET /api/me/events[?from=&to=&limit=&after=]`: the caller's own calendar.
pub(super) async fn my_events(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            let store = &shared.env.store;
            let t = my_tenant(store, &actor).await?;
            ok(list(store, &t, me.user_id, me.email, &q).await?)
        }
        .await,
    )
}

/// `POST /api/me/events`: an event in the caller's own calendar.
pub(super) async fn create_my_event(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            let store = &shared.env.store;
            let t = my_tenant(store, &actor).await?;
            create(store, &t, me.email, &body).await
        }
        .await,
    )
}

/// `GET`, `PATCH` or `DELETE /api/me/events/{event}`: only the caller's own.
pub(super) async fn my_event(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Caller(actor): Caller,
    Path(event): Path<String>,
    Body(body): Body,
) -> Answer {
    answer(
        async {
            let me = me_of(&actor)?;
            let store = &shared.env.store;
            let t = my_tenant(store, &actor).await?;
            let event = id(&event, "event")?;
            let ev = scoped_event(store, &t, event, Some(me.user_id)).await?;
            by_id(store, &t, ev, &method, &body).await
        }
        .await,
    )
}

/// A user token's tenant.
async fn my_tenant(store: &Store, actor: &Actor) -> Result<Tenant, AccessError> {
    match actor {
        Actor::User { tenant_id, .. } => Ok(store.tenant_by_id(*tenant_id).await?),
        _ => Err(no_endpoint()),
    }
}

/// `GET`, `PATCH` or `DELETE` of one event already found within the caller's scope.
async fn by_id(
    store: &Store,
    t: &Tenant,
    ev: StoredEvent,
    method: &Method,
    body: &Bytes,
) -> Handled {
    match *method {
        Method::GET | Method::HEAD => {
            let state = push_state(store, &ev).await?;
            ok(event_view(store, t, &ev, &state).await?)
        }
        Method::PATCH => {
            // Only what is given changes (and only that is pushed).
            let change: EventChange = parse_json(body, CHANGE_SHAPE)?;
            if change.is_empty() {
                return Err(bad(format!("nothing to change: give {CHANGE_SHAPE}")));
            }
            let updated = update_event(store, t, ev.id, &change)
                .await
                .map_err(edit_error)?;
            let state = push_soon(store, t, &updated).await?;
            ok(event_view(store, t, &updated, &state).await?)
        }
        Method::DELETE => {
            remove_event(store, t, ev.id).await.map_err(edit_error)?;
            let state = push_soon(store, t, &store.event(ev.id).await?).await?;
            ok(json!({
                "removed": ev.id,
                "queued": state.is_queued(),
                "push": push_view(&state),
            }))
        }
        _ => Err(no_endpoint()),
    }
}

/// A CRM user of the tenant by address, or 404 (as the review list answers).
async fn known_user(store: &Store, t: &Tenant, user: &str) -> Result<i64, AccessError> {
    Ok(store
        .user_id(t.id, &user.to_ascii_lowercase())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user {user} in tenant {}", t.name)))?)
}

/// An event of tenant `t` (of user `user_id`, when given) that is not deleted; any other id
/// answers exactly as a missing one, so other tenants' and users' ids cannot be probed.
async fn scoped_event(
    store: &Store,
    t: &Tenant,
    event: i64,
    user_id: Option<i64>,
) -> Result<StoredEvent, AccessError> {
    let missing = || {
        AccessError::Store(StoreError::NotFound(match user_id {
            Some(_) => format!("no event {event} in your calendar"),
            None => format!("no event {event} in tenant {}", t.name),
        }))
    };
    match store.event(event).await {
        Ok(ev)
            if ev.tenant_id == t.id
                && !ev.deleted
                && user_id.is_none_or(|u| ev.user_id == Some(u)) =>
        {
            Ok(ev)
        }
        Ok(_) | Err(StoreError::NotFound(_)) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

/// Creates an event in `user`'s calendar: 201 with the event, and whether it waits for
/// Microsoft.
async fn create(store: &Store, t: &Tenant, user: &str, body: &Bytes) -> Handled {
    let r: EventRequest = parse_json(body, EVENT_SHAPE)?;
    let new = NewEvent {
        subject: r.subject,
        description: r.description,
        start: r.start,
        end: r.end,
        all_day: r.all_day,
        location: r.location,
        required: r.required,
        optional: r.optional,
        private: r.private,
        imported: r.imported,
        send_invitations: r.send_invitations,
        reminder_at: r.reminder_at,
        show_as: r.show_as,
    };
    let event = add_event(store, t, user, &new).await.map_err(edit_error)?;
    let ev = store.event(event).await?;
    let state = push_soon(store, t, &ev).await?;
    Ok((
        StatusCode::CREATED,
        event_view(store, t, &ev, &state).await?,
    ))
}

/// Where the edit of `ev` stands towards Microsoft; when it is queued (nothing holds it),
/// makes the tenant's next run due now, so the service pushes it at its next scheduler tick
/// instead of at the tenant's cadence. A change that waits (Sync Events off, beyond the
/// outbound range) or will not be sent asks for no run.
async fn push_soon(store: &Store, t: &Tenant, ev: &StoredEvent) -> Result<PushState, StoreError> {
    let state = push_state(store, ev).await?;
    if state.is_queued() {
        store.request_run(t.id).await?;
    }
    Ok(state)
}

/// After a settings change that may let waiting rows go (a wider outbound range, a direction
/// that pushes), makes the runs of the tenants holding outbox rows due now.
async fn release_waiting(store: &Store, tenants: &[Tenant]) -> Result<(), StoreError> {
    for t in tenants {
        if store.outbox_len(t.id).await? > 0 {
            store.request_run(t.id).await?;
        }
    }
    Ok(())
}

/// A push state as the API answers it: the state's word and the sentence users read.
fn push_view(state: &PushState) -> Value {
    json!({ "state": state.word(), "message": state.to_string() })
}

/// A page of a user's events: `?from=&to=` (a date or epoch ms; events starting in
/// `[from, to)`), `limit` (50, at most 200) and `after` (the previous page's `next`).
async fn list(
    store: &Store,
    t: &Tenant,
    user_id: i64,
    email: &str,
    q: &HashMap<String, String>,
) -> Result<Value, AccessError> {
    let after = match q.get("after").filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(
            a.split_once(':')
                .and_then(|(ms, id)| Some((ms.parse().ok()?, id.parse().ok()?)))
                .ok_or_else(|| {
                    bad("after must be the `next` value of the previous page (MS:ID)")
                })?,
        ),
    };
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 50,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| bad(format!("limit must be a number from 1 to {MAX_PAGE}")))?
            .clamp(1, MAX_PAGE),
    };
    let window = EventWindow {
        from_ms: instant(q, "from")?,
        to_ms: instant(q, "to")?,
        after,
        limit,
    };
    let events = store.user_events(t.id, user_id, &window).await?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| format!("{}:{}", e.start_ms, e.id)))
        .flatten();
    // One read of the tenant's outbox and settings rather than one per event.
    let states = push_states(store, t, &events).await?;
    let items: Vec<Value> = events
        .iter()
        .zip(&states)
        .map(|(ev, state)| view(t, ev, Some(email), state))
        .collect();
    Ok(json!({ "items": items, "next": next }))
}

/// One event as the API shows it: where it stands in the sync, its times (dates for an all-day
/// event), and its CRM record (the C8 fields).
async fn event_view(
    store: &Store,
    t: &Tenant,
    ev: &StoredEvent,
    state: &PushState,
) -> Result<Value, StoreError> {
    let user = match ev.user_id {
        Some(u) => Some(store.calendar_user(u).await?.email),
        None => None,
    };
    Ok(view(t, ev, user.as_deref(), state))
}

/// `queued` is true only when the next push sends the change; `push` says where it stands
/// (sent, queued, waiting and for what, not sent and why); `external_id` is C8's External ID,
/// the event's Graph id once Microsoft has it.
fn view(t: &Tenant, ev: &StoredEvent, user: Option<&str>, state: &PushState) -> Value {
    let time = |ms: i64, date: &Option<String>| match date {
        Some(d) if ev.all_day => Value::from(d.clone()),
        _ => chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| Value::from(d.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .unwrap_or(Value::Null),
    };
    json!({
        "id": ev.id,
        "tenant": t.name,
        "user": user,
        "subject": ev.subject,
        "start": time(ev.start_ms, &ev.start_date),
        "end": time(ev.end_ms, &ev.end_date),
        "all_day": ev.all_day,
        "origin": ev.origin,
        "imported": ev.imported,
        "send_invitations": ev.send_invitations,
        "sync_status": ev.sync_status,
        "in_microsoft": ev.graph_id.is_some(),
        "external_id": external_id(ev),
        "queued": state.is_queued(),
        "push": push_view(state),
        "crm_version": ev.crm_version,
        "synced_version": ev.synced_version,
        "record": record_view(ev),
    })
}

/// The settings of one level as they apply there: its own, else what it inherits (a tenant its
/// org's, an org the defaults), and where they come from.
async fn level_settings(
    store: &Store,
    org_id: i64,
    tenant_id: Option<i64>,
) -> Result<(CalendarSettings, &'static str), StoreError> {
    if let Some(s) = store.calendar_settings_at(org_id, tenant_id).await? {
        return Ok((s, if tenant_id.is_some() { "tenant" } else { "org" }));
    }
    if tenant_id.is_some() {
        if let Some(s) = store.calendar_settings_at(org_id, None).await? {
            return Ok((s, "org"));
        }
    }
    Ok((CalendarSettings::default(), "default"))
}

async fn settings_answer(
    store: &Store,
    org_id: i64,
    tenant_id: Option<i64>,
) -> Result<Value, StoreError> {
    let (settings, from) = level_settings(store, org_id, tenant_id).await?;
    Ok(json!({ "settings": settings, "from": from }))
}

/// Changes one level's settings on top of what applies there now; answers them with C9's
/// warning when the direction writes to Microsoft.
async fn put_settings(
    store: &Store,
    org_id: i64,
    tenant_id: Option<i64>,
    body: &Bytes,
) -> Result<Value, AccessError> {
    let r: SettingsRequest = parse_json(body, SETTINGS_SHAPE)?;
    let (mut s, _) = level_settings(store, org_id, tenant_id).await?;
    if let Some(d) = &r.direction {
        s.direction = Direction::parse(d).map_err(bad)?;
    }
    s.sync_internal_events = r.sync_internal_events.unwrap_or(s.sync_internal_events);
    s.delete_from_microsoft = r.delete_from_microsoft.unwrap_or(s.delete_from_microsoft);
    s.delete_from_crm = r.delete_from_crm.unwrap_or(s.delete_from_crm);
    s.sync_private_events = r.sync_private_events.unwrap_or(s.sync_private_events);
    s.sync_unmatched_events = r.sync_unmatched_events.unwrap_or(s.sync_unmatched_events);
    match (r.commencement_ms, &r.commencement) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "give commencement (a date) or commencement_ms (epoch ms), not both",
            ))
        }
        (Some(ms), None) => s.commencement_ms = ms,
        (None, Some(date)) => s.commencement_ms = Some(date_ms(date, "commencement")?),
        (None, None) => {}
    }
    s.inbound_years = r.inbound_years.unwrap_or(s.inbound_years);
    s.outbound_months = r.outbound_months.unwrap_or(s.outbound_months);
    s.validate().map_err(bad)?;
    store.set_calendar_settings(org_id, tenant_id, &s).await?;
    let warnings: Vec<String> = invitation_warning(s.direction).into_iter().collect();
    Ok(json!({
        "settings": s,
        "from": if tenant_id.is_some() { "tenant" } else { "org" },
        "warnings": warnings,
    }))
}

/// `YYYY-MM-DD` (UTC midnight) or RFC 3339, as epoch ms.
fn date_ms(text: &str, field: &str) -> Result<i64, AccessError> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|d| d.timestamp_millis())
        .map_err(|_| bad(format!("{field} '{text}': use YYYY-MM-DD or RFC 3339")))
}
