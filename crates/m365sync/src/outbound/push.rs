//! CRM to Microsoft: a user's outbox rows become Graph writes in their primary mailbox (C2),
//! under the worker's lease on that mailbox.
//!
//! The rows of one event are folded into one write of its current state: a POST with a
//! `transactionId` (remembered before the POST, so a create whose answer was lost is adopted by
//! the next pull instead of made twice), a PATCH of just the changed fields, or a DELETE when
//! the delete was queued (deletes from the CRM were on at the delete, C3). Each event's rows
//! are first judged by [`super::status::classify`]: rows beyond the outbound range (or of a
//! user whose Sync Events is off) stay and are looked at again by every pass; rows that can
//! never go (past events, C4; imported, Inactive, the direction no longer pushes) are resolved
//! without a write, the reason kept on the event. The changeKey Graph answers is stored with
//! the event, so the pull recognises our own write when it comes back and nothing loops; a
//! create also gives the CRM record its External ID (C8), the id Microsoft answered.
//!
//! Attendees go to Microsoft only when the event's "send invitations" switch is on (C9):
//! Exchange emails every attendee it is given.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::sync::error::SyncError;
use crate::sync::stop::StopSignal;
use m365sync_graph::GraphError;
use m365sync_plugin::bindings::types::{CrmEvent, ShowTimeAs};
use m365sync_store::events::{CalendarSettings, OutboxRow, PushResult, StoredEvent};

use super::status::{classify, Verdict};
use m365sync_store::schedule::Lease;
use m365sync_store::{now_ms, Store};

use crate::sync::calendar::convert::{change_key, ms_of};

/// Everything one user's push needs.
pub struct PushJob<'a> {
    /// The database.
    pub store: &'a Store,
    /// The tenant's Graph client.
    pub client: &'a m365sync_graph::GraphClient,
    /// The CRM user whose outbox is drained.
    pub user_id: i64,
    /// The user's primary mailbox: its id, Graph id and address.
    pub mailbox_id: i64,
    /// The primary mailbox's Graph id (or UPN), which the event URLs address.
    pub mailbox_graph_id: &'a str,
    /// The primary mailbox's address: what the client's per-mailbox request limit keys on.
    pub mailbox_address: &'a str,
    /// The tenant's calendar settings: direction, outbound range, deletes from the CRM.
    pub settings: &'a CalendarSettings,
    /// The worker's lease on the mailbox, fenced when each push's result is stored.
    pub lease: Option<&'a Lease>,
    /// Stops the push between events.
    pub stop: &'a StopSignal,
}

/// What a push did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PushCounts {
    /// Events created in Microsoft (POST).
    pub created: u64,
    /// Events changed in Microsoft (PATCH of the changed fields).
    pub updated: u64,
    /// Events deleted from Microsoft (DELETE).
    pub deleted: u64,
    /// Rows resolved without a write (the reason kept on the event): past, imported,
    /// Inactive, the direction, deleted while deletes from the CRM were off, never in
    /// Microsoft, or nothing Microsoft keeps changed.
    pub skipped: u64,
    /// Events whose rows stay in the outbox for a later pass: beyond the outbound range.
    pub waiting: u64,
    /// Writes Graph refused for the event alone; kept and tried again.
    pub failed: u64,
}

impl std::ops::AddAssign for PushCounts {
    fn add_assign(&mut self, o: PushCounts) {
        self.created += o.created;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.skipped += o.skipped;
        self.waiting += o.waiting;
        self.failed += o.failed;
    }
}

/// The rows of one event folded: the newest row's id, the operations and the changed fields.
struct Folded {
    upto: i64,
    created: bool,
    /// A delete was queued: deletes from the CRM were on when the event was deleted.
    delete: bool,
    fields: Vec<String>,
}

fn fold(rows: Vec<OutboxRow>) -> BTreeMap<i64, Folded> {
    let mut by_event: BTreeMap<i64, Folded> = BTreeMap::new();
    for r in rows {
        let f = by_event.entry(r.event_id).or_insert(Folded {
            upto: r.id,
            created: false,
            delete: false,
            fields: Vec::new(),
        });
        f.upto = f.upto.max(r.id);
        f.created |= r.op == "create";
        f.delete |= r.op == "delete";
        for field in r.fields {
            if !f.fields.contains(&field) {
                f.fields.push(field);
            }
        }
    }
    by_event
}

/// Pushes every outbox row of the job's user.
pub async fn push_outbox(job: &PushJob<'_>) -> Result<PushCounts, SyncError> {
    let mut counts = PushCounts::default();
    let rows = job.store.outbox_for_user(job.user_id).await?;
    if rows.is_empty() {
        return Ok(counts);
    }
    let user = job.store.calendar_user(job.user_id).await?;
    for (event_id, folded) in fold(rows) {
        if job.stop.is_stopping() {
            return Err(SyncError::Stopped);
        }
        let ev = job.store.event(event_id).await?;
        match classify(&ev, job.settings, &user, folded.delete, now_ms()) {
            Verdict::Push => {}
            Verdict::Wait(_) => {
                counts.waiting += 1;
                continue;
            }
            Verdict::Drop(why) => {
                counts.skipped += 1;
                job.store.drop_outbox(event_id, folded.upto, &why).await?;
                continue;
            }
        }
        match push_one(job, &ev, &folded).await {
            Ok(Ok(method)) if method == Method::POST => counts.created += 1,
            Ok(Ok(method)) if method == Method::DELETE => counts.deleted += 1,
            Ok(Ok(_)) => counts.updated += 1,
            Ok(Err(why)) => {
                counts.skipped += 1;
                job.store.drop_outbox(event_id, folded.upto, why).await?;
            }
            Err(PushError::Event(e)) => {
                counts.failed += 1;
                job.store.outbox_failed(event_id, folded.upto, &e).await?;
            }
            Err(PushError::Sync(e)) => return Err(e),
        }
    }
    Ok(counts)
}

enum PushError {
    /// This event's write alone was refused (kept, tried again).
    Event(String),
    /// The mailbox or the service cannot go on.
    Sync(SyncError),
}

impl From<m365sync_store::StoreError> for PushError {
    fn from(e: m365sync_store::StoreError) -> Self {
        PushError::Sync(e.into())
    }
}

fn graph_failure(e: GraphError) -> PushError {
    match e {
        GraphError::Other { status, .. } if (400..500).contains(&status) => {
            PushError::Event(e.to_string())
        }
        other => PushError::Sync(other.into()),
    }
}

/// Writes one event that [`classify`] lets go; `Ok(Err(why))` when there turns out to be
/// nothing to write, and why.
async fn push_one(
    job: &PushJob<'_>,
    ev: &StoredEvent,
    folded: &Folded,
) -> Result<Result<Method, &'static str>, PushError> {
    if ev.graph_id.is_some() && ev.mailbox_id.is_some_and(|m| m != job.mailbox_id) {
        // In another mailbox than the user's primary one now: not ours to write.
        return Ok(Err(
            "it is in another mailbox than its user's primary one, which the push writes to",
        ));
    }
    let lease = job.lease.map(|l| (l, job.mailbox_id));
    let crm: CrmEvent = serde_json::from_str(&ev.record)
        .map_err(|e| PushError::Event(format!("event {}: unreadable record: {e}", ev.id)))?;
    let base = format!("users/{}/events", enc(job.mailbox_graph_id));
    if ev.deleted {
        // `classify` let it through: a delete was queued (deletes from the CRM were on at the
        // delete) and Microsoft has the event.
        let Some(graph_id) = &ev.graph_id else {
            return Ok(Err("it never reached Microsoft"));
        };
        match job
            .client
            .send(
                job.mailbox_address,
                Method::DELETE,
                &format!("{base}/{}", enc(graph_id)),
                None,
            )
            .await
        {
            Ok(_) | Err(GraphError::NotFound { .. }) => {}
            Err(e) => return Err(graph_failure(e)),
        }
        job.store
            .finish_push(
                ev.id,
                folded.upto,
                &PushResult {
                    graph_id: None,
                    mailbox_id: None,
                    change_key: None,
                    transaction_id: None,
                    version: ev.crm_version,
                    record: None,
                },
                lease,
            )
            .await?;
        return Ok(Ok(Method::DELETE));
    }
    let (method, url, body, transaction_id) = match &ev.graph_id {
        None => {
            let tx = ev
                .transaction_id
                .clone()
                .unwrap_or_else(|| format!("m365sync-{}-{}", ev.tenant_id, ev.id));
            // Remembered before the POST: if its answer is lost, the pull adopts the event.
            job.store
                .set_transaction_id(ev.id, job.mailbox_id, &tx)
                .await?;
            let mut body = graph_body(&crm, None, ev.send_invitations);
            body.insert("transactionId".into(), tx.clone().into());
            (Method::POST, base.clone(), body, Some(tx))
        }
        Some(id) => {
            let fields =
                (!folded.created && !folded.fields.is_empty()).then_some(&folded.fields[..]);
            let body = graph_body(&crm, fields, ev.send_invitations);
            if body.is_empty() {
                return Ok(Err(
                    "nothing Microsoft keeps changed (attendees go only with \"send invitations\" on)",
                ));
            }
            (Method::PATCH, format!("{base}/{}", enc(id)), body, None)
        }
    };
    let answer = match job
        .client
        .send(
            job.mailbox_address,
            method.clone(),
            &url,
            Some(&Value::Object(body)),
        )
        .await
    {
        Ok(v) => v,
        Err(GraphError::NotFound { .. }) if method == Method::PATCH => {
            return Err(PushError::Event(format!(
                "event {}: it is no longer in {}'s calendar",
                ev.id, job.mailbox_address
            )))
        }
        Err(e) => return Err(graph_failure(e)),
    };
    let graph_id = answer["id"].as_str().map(str::to_string);
    // C8's External ID is the event's Graph id, as pulled events carry it: a create gives the
    // CRM record the id Microsoft answered.
    let record = match &graph_id {
        Some(id) if crm.external_id != *id => {
            let mut crm = crm.clone();
            crm.external_id = id.clone();
            serde_json::to_string(&crm).ok()
        }
        _ => None,
    };
    job.store
        .finish_push(
            ev.id,
            folded.upto,
            &PushResult {
                graph_id,
                mailbox_id: Some(job.mailbox_id),
                change_key: change_key(&answer),
                transaction_id,
                version: ev.crm_version,
                record,
            },
            lease,
        )
        .await?;
    Ok(Ok(method))
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A time as Graph takes it, in UTC: midnight of its date for all-day events.
fn stamp(t: &str, all_day: bool) -> Value {
    let text = if all_day {
        format!("{}T00:00:00", t.get(..10).unwrap_or_default())
    } else {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| {
                d.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
    };
    json!({"dateTime": text, "timeZone": "UTC"})
}

/// The Graph body of a CRM event: every field, or only `fields` (the CRM's changed ones).
/// Attendees only with `with_attendees` (the event's "send invitations" switch).
pub fn graph_body(
    crm: &CrmEvent,
    fields: Option<&[String]>,
    with_attendees: bool,
) -> Map<String, Value> {
    let wants = |f: &str| fields.is_none_or(|fs| fs.iter().any(|x| x == f));
    let mut body = Map::new();
    if wants("subject") {
        body.insert("subject".into(), crm.subject.clone().into());
    }
    if wants("description") {
        body.insert(
            "body".into(),
            json!({"contentType": "text", "content": crm.description}),
        );
    }
    if wants("start") || wants("end") || wants("all_day") {
        body.insert("isAllDay".into(), crm.all_day.into());
        body.insert("start".into(), stamp(&crm.start, crm.all_day));
        body.insert("end".into(), stamp(&crm.end, crm.all_day));
    }
    if wants("location") {
        body.insert("location".into(), json!({"displayName": crm.location}));
    }
    if wants("private") {
        body.insert(
            "sensitivity".into(),
            if crm.private { "private" } else { "normal" }.into(),
        );
    }
    if wants("show_time_as") {
        body.insert(
            "showAs".into(),
            match crm.show_time_as {
                ShowTimeAs::Busy => "busy",
                ShowTimeAs::OutOfOffice => "oof",
                ShowTimeAs::Free => "free",
            }
            .into(),
        );
    }
    if wants("reminder") {
        // The CRM keeps the reminder's date and time, Graph the minutes before the start (C8).
        let lead = crm.reminder_at.as_deref().and_then(|r| {
            let minutes = (ms_of(&crm.start).ok()? - ms_of(r).ok()?) / 60_000;
            Some(minutes.max(0))
        });
        body.insert("isReminderOn".into(), lead.is_some().into());
        if let Some(minutes) = lead {
            body.insert("reminderMinutesBeforeStart".into(), minutes.into());
        }
    }
    if wants("attendees") && with_attendees && !crm.private {
        body.insert(
            "attendees".into(),
            crm.attendees
                .iter()
                .map(|a| {
                    json!({
                        "type": if a.optional { "optional" } else { "required" },
                        "emailAddress": {"address": a.email, "name": a.name},
                    })
                })
                .collect::<Vec<_>>()
                .into(),
        );
    }
    body
}
