//! Where a CRM event's change stands on its way to Microsoft, in one vocabulary for the push,
//! `m365sync events`, and the admin API (C2, C4, C5).
//!
//! An outbox row that cannot be sent yet stays, and says why: the user's Sync Events is off,
//! or the event is beyond the outbound range. Every push pass looks at waiting rows again, so
//! they go when the switch turns on or the event comes within range (by time passing or a
//! wider range). A row that can never be sent (the event became past, the direction stopped
//! pushing, it is Inactive, it was deleted while deletes from the CRM were off) is resolved
//! without a write and the reason kept on the event (`push_note`). [`classify`] is the one
//! decision all of them read.

use std::collections::HashMap;

use serde_json::Value;

use crate::sync::calendar::recurrence::readable;
use m365sync_store::events::{CalendarSettings, CalendarUser, OutboxRow, StoredEvent};
use m365sync_store::tenants::Tenant;
use m365sync_store::{now_ms, Store, StoreError};

/// Months as milliseconds, a month counted as 30.44 days.
pub fn months_ms(months: i64) -> i64 {
    months * 2_629_800_000
}

/// What the push does with an event's waiting rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write it to Microsoft now.
    Push,
    /// Keep the rows: they are sent once what the text names changes.
    Wait(String),
    /// Resolve the rows without a write; the text says why (kept on the event).
    Drop(String),
}

/// The decision for an event with outbox rows: `delete_queued` is whether one of them is a
/// delete (queued only when deletes from the CRM were on at the delete). The user's Sync
/// Events switch and primary mailbox are read here, so a row of a user who does not sync
/// events waits rather than goes.
pub fn classify(
    ev: &StoredEvent,
    settings: &CalendarSettings,
    user: &CalendarUser,
    delete_queued: bool,
    now: i64,
) -> Verdict {
    if !settings.direction.pushes() {
        return Verdict::Drop(format!(
            "the calendar direction is {}, which does not push to Microsoft",
            settings.direction.as_str()
        ));
    }
    if ev.imported {
        return Verdict::Drop("imported events are never pushed".into());
    }
    if ev.sync_status == "inactive" {
        return Verdict::Drop("the event is Inactive".into());
    }
    if ev.deleted {
        if !delete_queued {
            return Verdict::Drop(DELETES_OFF.into());
        }
        if ev.graph_id.is_none() {
            return Verdict::Drop(
                "it was deleted in the CRM before it reached Microsoft: nothing to delete".into(),
            );
        }
    }
    if ev.start_ms < now {
        return Verdict::Drop("past events never go to Microsoft".into());
    }
    if !user.sync_events {
        return Verdict::Wait(format!(
            "Sync Events is off for {} — turn it on to send",
            user.email
        ));
    }
    if user.primary_mailbox_id.is_none() {
        return Verdict::Wait(format!(
            "{} has no primary mailbox — link one to send",
            user.email
        ));
    }
    if !ev.deleted && ev.start_ms > now + months_ms(settings.outbound_months) {
        return Verdict::Wait(format!(
            "beyond the outbound range ({} months) — sent when it comes within range",
            settings.outbound_months
        ));
    }
    Verdict::Push
}

/// C3's answer to a CRM delete made while deletes from the CRM were off.
pub const DELETES_OFF: &str = "deletes from the CRM do not go to Microsoft in this tenant";

/// Where an event stands towards Microsoft.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "why", rename_all = "snake_case")]
pub enum PushState {
    /// Microsoft has the event's latest CRM change.
    Sent,
    /// A change waits and nothing holds it: the next push of the user's mailbox sends it
    /// (with what Graph answered to the last failed attempt, if one failed).
    Queued(Option<String>),
    /// A change waits for what the text names.
    Waiting(String),
    /// The latest change will not reach Microsoft, and why.
    NotSent(String),
    /// Nothing was ever owed: an event from Microsoft not changed in the CRM.
    Nothing,
}

impl PushState {
    /// The state's one word: `sent`, `queued`, `waiting`, `not_sent` or `nothing`.
    pub fn word(&self) -> &'static str {
        match self {
            PushState::Sent => "sent",
            PushState::Queued(_) => "queued",
            PushState::Waiting(_) => "waiting",
            PushState::NotSent(_) => "not_sent",
            PushState::Nothing => "nothing",
        }
    }

    /// True when the next push of the user's mailbox sends the change: what makes an edit ask
    /// for a run now.
    pub fn is_queued(&self) -> bool {
        matches!(self, PushState::Queued(_))
    }
}

impl std::fmt::Display for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushState::Sent => f.write_str("sent"),
            PushState::Queued(None) => f.write_str("queued for Microsoft (next tick)"),
            PushState::Queued(Some(e)) => write!(
                f,
                "queued for Microsoft (next tick; the last attempt was refused: {e})"
            ),
            PushState::Waiting(why) => write!(f, "waiting: {why}"),
            PushState::NotSent(why) => write!(f, "not sent: {why}"),
            PushState::Nothing => f.write_str("nothing to send"),
        }
    }
}

/// The state of `ev` from what is known without the store: its outbox rows (`rows`, the
/// event's own), the tenant's settings and its user's switches.
pub fn state_of(
    ev: &StoredEvent,
    rows: &[&OutboxRow],
    settings: &CalendarSettings,
    user: Option<&CalendarUser>,
    now: i64,
) -> PushState {
    if !rows.is_empty() {
        let Some(user) = user else {
            return PushState::NotSent("the event is in no CRM user's calendar".into());
        };
        let delete_queued = rows.iter().any(|r| r.op == "delete");
        return match classify(ev, settings, user, delete_queued, now) {
            Verdict::Push => PushState::Queued(
                rows.iter()
                    .rev()
                    .find(|r| r.attempts > 0)
                    .and_then(|r| r.last_error.clone()),
            ),
            Verdict::Wait(why) => PushState::Waiting(why),
            Verdict::Drop(why) => PushState::NotSent(why),
        };
    }
    if let Some(why) = &ev.push_note {
        return PushState::NotSent(why.clone());
    }
    if ev.crm_version == 0 {
        return PushState::Nothing;
    }
    if ev.graph_id.is_some() && ev.synced_version >= ev.crm_version {
        return PushState::Sent;
    }
    if ev.deleted && ev.graph_id.is_none() {
        return PushState::NotSent("it never reached Microsoft".into());
    }
    PushState::NotSent("no change of it is queued for Microsoft".into())
}

/// The state of one stored event, read from the store.
pub async fn push_state(store: &Store, ev: &StoredEvent) -> Result<PushState, StoreError> {
    let rows = store.outbox_for_event(ev.id).await?;
    let t = store.tenant_by_id(ev.tenant_id).await?;
    let settings = store.calendar_settings(t.org_id, t.id).await?;
    let user = match ev.user_id {
        Some(u) => Some(store.calendar_user(u).await?),
        None => None,
    };
    let rows: Vec<&OutboxRow> = rows.iter().collect();
    Ok(state_of(ev, &rows, &settings, user.as_ref(), now_ms()))
}

/// The states of a tenant's `events` (in their order), with one read of the tenant's outbox,
/// its settings and each user's switches, for listings.
pub async fn push_states(
    store: &Store,
    tenant: &Tenant,
    events: &[StoredEvent],
) -> Result<Vec<PushState>, StoreError> {
    let settings = store.calendar_settings(tenant.org_id, tenant.id).await?;
    let rows = store.outbox_for_tenant(tenant.id).await?;
    let mut by_event: HashMap<i64, Vec<&OutboxRow>> = HashMap::new();
    for r in &rows {
        by_event.entry(r.event_id).or_default().push(r);
    }
    let mut users: HashMap<i64, CalendarUser> = HashMap::new();
    let now = now_ms();
    let mut out = Vec::with_capacity(events.len());
    for ev in events {
        if let Some(u) = ev.user_id {
            if let std::collections::hash_map::Entry::Vacant(slot) = users.entry(u) {
                slot.insert(store.calendar_user(u).await?);
            }
        }
        let user = ev.user_id.and_then(|u| users.get(&u));
        let rows = by_event.get(&ev.id).map(Vec::as_slice).unwrap_or_default();
        out.push(state_of(ev, rows, &settings, user, now));
    }
    Ok(out)
}

/// The event's External ID (C8): its Graph id as the CRM record carries it, once Microsoft
/// has the event (a pulled event from the start, a CRM event after its create is pushed).
pub fn external_id(ev: &StoredEvent) -> Option<String> {
    serde_json::from_str::<Value>(&ev.record)
        .ok()
        .and_then(|r| r["external_id"].as_str().map(str::to_string))
        .filter(|id| !id.is_empty())
}

/// The CRM record (C8) as users see it: "Recurring in M365" as readable text even for events
/// pulled before the text existed (their record holds Graph's JSON).
pub fn record_view(ev: &StoredEvent) -> Value {
    let mut record = serde_json::from_str::<Value>(&ev.record).unwrap_or(Value::Null);
    if let Some(text) = record["recurring"].as_str().map(readable) {
        record["recurring"] = text.into();
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use m365sync_store::events::Direction;

    fn event(start_ms: i64) -> StoredEvent {
        StoredEvent {
            id: 1,
            tenant_id: 1,
            user_id: Some(1),
            mailbox_id: None,
            graph_id: None,
            series_graph_id: None,
            kind: "singleInstance".into(),
            subject: "s".into(),
            start_ms,
            end_ms: start_ms + 3_600_000,
            all_day: false,
            start_date: None,
            end_date: None,
            record: "{}".into(),
            origin: "crm".into(),
            imported: false,
            send_invitations: false,
            sync_status: "never".into(),
            change_key: None,
            transaction_id: None,
            crm_version: 1,
            synced_version: 0,
            cancelled: false,
            deleted: false,
            push_note: None,
        }
    }

    fn user(sync_events: bool) -> CalendarUser {
        CalendarUser {
            user_id: 1,
            email: "ann@contoso.example".into(),
            sync_events,
            primary_mailbox_id: Some(7),
        }
    }

    fn pushing(months: i64) -> CalendarSettings {
        CalendarSettings {
            direction: Direction::TwoWay,
            outbound_months: months,
            ..CalendarSettings::default()
        }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn rows_wait_for_the_switch_and_the_range_and_say_why() {
        let now = 1_800_000_000_000;
        let soon = event(now + 3 * DAY);
        assert_eq!(
            classify(&soon, &pushing(12), &user(true), false, now),
            Verdict::Push
        );
        assert_eq!(
            classify(&soon, &pushing(12), &user(false), false, now),
            Verdict::Wait("Sync Events is off for ann@contoso.example — turn it on to send".into())
        );
        let far = event(now + 14 * 31 * DAY);
        assert_eq!(
            classify(&far, &pushing(12), &user(true), false, now),
            Verdict::Wait(
                "beyond the outbound range (12 months) — sent when it comes within range".into()
            )
        );
        assert_eq!(
            classify(&far, &pushing(24), &user(true), false, now),
            Verdict::Push
        );
        assert!(matches!(
            classify(&event(now - DAY), &pushing(12), &user(false), false, now),
            Verdict::Drop(w) if w.contains("past")
        ));
    }

    #[test]
    fn a_delete_honours_the_decision_made_at_the_delete() {
        let now = 1_800_000_000_000;
        let mut gone = event(now + DAY);
        gone.deleted = true;
        gone.graph_id = Some("AAMk1".into());
        let on = CalendarSettings {
            delete_from_crm: true,
            ..pushing(24)
        };
        assert_eq!(
            classify(&gone, &on, &user(true), false, now),
            Verdict::Drop(DELETES_OFF.into()),
            "no delete row: deletes were off at the delete, whatever the setting says now"
        );
        assert_eq!(
            classify(&gone, &pushing(24), &user(true), true, now),
            Verdict::Push,
            "a delete row: deletes were on at the delete"
        );
    }

    #[test]
    fn states_read_as_the_cli_prints_them() {
        let now = 1_800_000_000_000;
        let ev = event(now + DAY);
        let row = OutboxRow {
            id: 1,
            event_id: 1,
            op: "create".into(),
            fields: vec![],
            attempts: 0,
            last_error: None,
        };
        let s = state_of(&ev, &[&row], &pushing(24), Some(&user(true)), now);
        assert_eq!(s.to_string(), "queued for Microsoft (next tick)");
        let s = state_of(&ev, &[&row], &pushing(24), Some(&user(false)), now);
        assert_eq!(
            s.to_string(),
            "waiting: Sync Events is off for ann@contoso.example — turn it on to send"
        );
        let mut gone = ev.clone();
        gone.deleted = true;
        gone.push_note = Some(DELETES_OFF.into());
        assert_eq!(
            state_of(&gone, &[], &pushing(24), Some(&user(true)), now).to_string(),
            "not sent: deletes from the CRM do not go to Microsoft in this tenant"
        );
        let mut sent = ev.clone();
        sent.graph_id = Some("AAMk1".into());
        sent.synced_version = 1;
        assert_eq!(
            state_of(&sent, &[], &pushing(24), Some(&user(true)), now),
            PushState::Sent
        );
    }
}
