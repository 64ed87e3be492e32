//! Shared calendar test harness: the simulator's tenant declared with calendar settings, the
//! simulator's calendarView as ground truth, the invitation log, and event writes on the
//! Microsoft side through the control API.

#![allow(dead_code)]

use std::collections::HashMap;

use m365sync::sync::run::{run_tenant, RunReport, SyncEnv};
use m365sync_store::events::{CalendarSettings, StoredEvent};
use m365sync_store::tenants::{Tenant, TenantSettings};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{enc, TestDb, TestSim};
use crate::sync_email::{declare_with, env};

/// A declared tenant with its environment.
pub struct Cal {
    pub tenant: Tenant,
    pub ids: HashMap<String, i64>,
    pub env: SyncEnv,
}

/// Declares the simulator's tenant (every mailbox, each its user's primary) with `calendar`
/// settings for the tenant, and the email sync reduced to the inbox.
pub async fn declare(db: &TestDb, s: &TestSim, calendar: &CalendarSettings) -> Cal {
    let settings = TenantSettings {
        internal_domains: vec!["contoso.example".into()],
        folders: vec!["inbox".into()],
        commencement_ms: Some(
            (chrono::Utc::now() - chrono::Duration::days(400)).timestamp_millis(),
        ),
        page_size: 7,
        ..TenantSettings::default()
    };
    let (tenant, ids) = declare_with(&db.store, s, &settings).await;
    db.store
        .set_calendar_settings(tenant.org_id, Some(tenant.id), calendar)
        .await
        .unwrap();
    Cal {
        tenant,
        ids,
        env: env(&db.store),
    }
}

/// Settings reaching back far enough for the generated history, the rest as given.
pub fn settings(f: impl FnOnce(&mut CalendarSettings)) -> CalendarSettings {
    let mut s = CalendarSettings {
        commencement_ms: Some(ms(&window().0)),
        ..CalendarSettings::default()
    };
    f(&mut s);
    s
}

/// One sync run, which must succeed for every mailbox.
pub async fn sync(cal: &Cal) -> RunReport {
    let report = run_tenant(&cal.env, &cal.tenant, None, "manual")
        .await
        .unwrap();
    assert!(
        report.mailbox_errors.is_empty(),
        "{:?}",
        report.mailbox_errors
    );
    report
}

/// The person mailboxes' addresses (shared ones have no calendar sync of their own).
pub fn people(s: &TestSim) -> Vec<String> {
    s.truth()["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] != "shared")
        .map(|m| m["upn"].as_str().unwrap().to_string())
        .collect()
}

/// The full calendarView of `upn` over [start, end) in UTC, as Graph gives it.
pub async fn view(s: &TestSim, upn: &str, start: &str, end: &str) -> Vec<Value> {
    let token = s.token().await;
    let mut url = format!(
        "{}/users/{}/calendarView?startDateTime={start}&endDateTime={end}&$top=50",
        s.graph,
        enc(upn)
    );
    let mut items = Vec::new();
    loop {
        let (status, _, page) = s.get(&url, &token, "outlook.timezone=\"UTC\"").await;
        assert_eq!(status, 200, "{page}");
        items.extend(page["value"].as_array().unwrap().iter().cloned());
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return items,
        }
    }
}

/// The window the tests' settings pull: 400 days back (midnight) to ten years and a day
/// ahead of today's midnight, as the sync computes it.
pub fn window() -> (String, String) {
    let now = chrono::Utc::now();
    (
        (now - chrono::Duration::days(400))
            .format("%Y-%m-%dT00:00:00Z")
            .to_string(),
        (now + chrono::Duration::days(3651))
            .format("%Y-%m-%dT00:00:00Z")
            .to_string(),
    )
}

/// The live (not deleted) events stored from a mailbox.
pub async fn stored(db: &TestDb, cal: &Cal, upn: &str) -> Vec<StoredEvent> {
    let mailbox = cal.ids[upn];
    db.store
        .events(cal.tenant.id, None, false)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.mailbox_id == Some(mailbox))
        .collect()
}

/// Creates an event in `upn`'s calendar on the Microsoft side; returns its id.
pub async fn ms_create(s: &TestSim, upn: &str, event: Value) -> String {
    let v = s
        .ctl(
            Method::POST,
            "events/create",
            json!({"user": upn, "event": event}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

pub async fn ms_update(s: &TestSim, upn: &str, id: &str, patch: Value) -> String {
    let v = s
        .ctl(
            Method::POST,
            "events/update",
            json!({"user": upn, "id": id, "patch": patch}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

pub async fn ms_delete(s: &TestSim, upn: &str, id: &str) {
    s.ctl(
        Method::POST,
        "events/delete",
        json!({"user": upn, "id": id}),
    )
    .await;
}

/// The invitation log: (kind, attendee, subject) of every message.
pub async fn invitations(s: &TestSim) -> Vec<(String, String, String)> {
    let log = s.ctl(Method::GET, "invitations", json!({})).await;
    log["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["attendee"].as_str().unwrap().to_string(),
                m["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A Graph time in a zone.
pub fn at(date_time: &str, zone: &str) -> Value {
    json!({"dateTime": date_time, "timeZone": zone})
}

pub fn attendee(address: &str) -> Value {
    json!({"type": "required", "emailAddress": {"address": address, "name": address}})
}

/// Epoch ms of an RFC 3339 time.
pub fn ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_millis()
}
