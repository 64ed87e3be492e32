//! Calendar sync, Microsoft to CRM, against the simulator on SQLite and PostgreSQL: the stored
//! events equal the calendarView minus drafts, cancelled and excluded events; series link their
//! occurrences and exceptions; the product rules and each setting on and off; deletes under
//! both policies; time zones across a DST change; all-day events never shifted.

use std::collections::BTreeSet;

use chrono::Datelike;

use m365sync_store::events::Direction;
use serde_json::{json, Value};

use crate::calendar_support::{
    at, attendee, declare, ms, ms_create, ms_delete, ms_update, people, settings, stored, sync,
    view, window,
};
use crate::support::{small, TestDb, TestSim};

fn record(e: &m365sync_store::events::StoredEvent) -> Value {
    serde_json::from_str(&e.record).unwrap()
}

#[tokio::test]
async fn initial_pull_equals_the_calendar_view_with_series_rules_and_rooms() {
    for db in TestDb::both().await {
        let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
            events: 14,
            ..small()
        })
        .await;
        let cal = declare(&db, &s, &settings(|c| c.sync_internal_events = true)).await;
        // The window as the sync computes it (from today's midnight), taken with the sync.
        let (start, end) = window();
        let first = sync(&cal).await;
        assert!(first.synced > 0, "{first:?}");
        let mut saw = (false, false, false);
        for upn in people(&s) {
            let truth = view(&s, &upn, &start, &end).await;
            let expected: BTreeSet<String> = truth
                .iter()
                .filter(|e| e["isDraft"] != true && e["isCancelled"] != true)
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect();
            let events = stored(&db, &cal, &upn).await;
            let got: BTreeSet<String> = events.iter().filter_map(|e| e.graph_id.clone()).collect();
            let missing: Vec<_> = expected.difference(&got).collect();
            let extra: Vec<_> = got.difference(&expected).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{upn} on {}: missing {missing:?}, extra {extra:?}",
                db.url
            );
            assert_eq!(got.len(), events.len(), "no event twice");
            for e in &events {
                let t = truth
                    .iter()
                    .find(|t| t["id"] == e.graph_id.as_deref().unwrap())
                    .unwrap();
                let r = record(e);
                // C7: at most 50 attendees, the first 50 alphabetically.
                let mut all: Vec<String> = t["attendees"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|a| a["type"] != "resource")
                    .map(|a| {
                        a["emailAddress"]["address"]
                            .as_str()
                            .unwrap()
                            .to_ascii_lowercase()
                    })
                    .collect();
                all.sort();
                let kept: Vec<String> = r["attendees"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["email"].as_str().unwrap().to_string())
                    .collect();
                if t["sensitivity"] == "private" {
                    assert!(kept.is_empty(), "private events sync without attendees");
                } else {
                    all.truncate(50);
                    assert_eq!(kept, all);
                    saw.0 |= t["attendees"].as_array().unwrap().len() > 50;
                }
                // Series: linked to the master, "Recurring in M365" filled.
                if let Some(master) = t["seriesMasterId"].as_str() {
                    assert_eq!(e.series_graph_id.as_deref(), Some(master));
                    // "Recurring in M365" is readable text, never Graph's JSON (C8).
                    assert!(
                        r["recurring"].as_str().is_some_and(|x| !x.starts_with('{')
                            && (x.starts_with("Every") || x.starts_with("Monthly"))),
                        "{r}"
                    );
                    saw.1 |= t["type"] == "exception";
                } else {
                    assert!(e.series_graph_id.is_none());
                }
                // Times in UTC; all-day kept as dates.
                if t["isAllDay"] == true {
                    let day = &t["start"]["dateTime"].as_str().unwrap()[..10];
                    assert_eq!(e.start_date.as_deref(), Some(day));
                    assert_eq!(e.start_ms, ms(&format!("{day}T00:00:00Z")));
                    saw.2 = true;
                } else {
                    let st = t["start"]["dateTime"].as_str().unwrap();
                    assert_eq!(e.start_ms, ms(&format!("{}Z", &st[..19])));
                }
            }
        }
        assert!(
            saw.0 && saw.1 && saw.2,
            "a big meeting, an exception, an all-day event: {saw:?}"
        );
        // Rooms (C6) came ahead, from the room list and the locations.
        let rooms = db.store.rooms(cal.tenant.id).await.unwrap();
        let room = s.sim.world.lock().unwrap().tenants[0].rooms[0]
            .email_address
            .to_ascii_lowercase();
        assert!(rooms.iter().any(|(a, _)| *a == room), "{rooms:?}");
        // Every new event was queued for the matching job, with its addresses stored.
        let queued: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM match_queue WHERE kind = 'event'")
                .fetch_one(&sqlx::AnyPool::connect(&db.url).await.unwrap())
                .await
                .unwrap();
        assert_eq!(
            queued,
            db.store
                .events(cal.tenant.id, None, true)
                .await
                .unwrap()
                .len() as i64
        );
        // A second run changes nothing.
        let before = db
            .store
            .events(cal.tenant.id, None, true)
            .await
            .unwrap()
            .len();
        let again = sync(&cal).await;
        assert_eq!(again.synced, 0, "{again:?}");
        assert_eq!(
            db.store
                .events(cal.tenant.id, None, true)
                .await
                .unwrap()
                .len(),
            before
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn settings_private_internal_sync_events_and_direction_each_on_and_off() {
    for db in TestDb::both().await {
        let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
            events: 0,
            ..small()
        })
        .await;
        let users = people(&s);
        let (me, colleague) = (users[0].clone(), users[1].clone());
        let soon = (chrono::Utc::now() + chrono::Duration::days(3))
            .format("%Y-%m-%d")
            .to_string();
        let ev = |subject: &str, sensitivity: &str, who: &str| {
            json!({
                "subject": subject,
                "sensitivity": sensitivity,
                "start": at(&format!("{soon}T09:00:00"), "UTC"),
                "end": at(&format!("{soon}T10:00:00"), "UTC"),
                "attendees": [attendee(who)],
            })
        };
        ms_create(
            &s,
            &me,
            ev("Client review", "normal", "client@acme-holdings.example"),
        )
        .await;
        ms_create(
            &s,
            &me,
            ev(
                "Private client lunch",
                "private",
                "client@acme-holdings.example",
            ),
        )
        .await;
        ms_create(&s, &me, ev("Team stand-up", "normal", &colleague)).await;
        ms_create(&s, &me, json!({"subject": "Draft", "isDraft": true,
            "start": at(&format!("{soon}T11:00:00"), "UTC"), "end": at(&format!("{soon}T12:00:00"), "UTC")})).await;

        // Private off, internal off (the defaults for internal).
        let cal = declare(&db, &s, &settings(|c| c.sync_private_events = false)).await;
        sync(&cal).await;
        let subjects = |events: Vec<m365sync_store::events::StoredEvent>| -> BTreeSet<String> {
            events.into_iter().map(|e| e.subject).collect()
        };
        assert_eq!(
            subjects(stored(&db, &cal, &me).await),
            BTreeSet::from(["Client review".to_string()]),
            "private off and internal off: neither is synced, nor the draft"
        );
        // Both on: the next run brings them (the exclusions are not final).
        let on = settings(|c| c.sync_internal_events = true);
        db.store
            .set_calendar_settings(cal.tenant.org_id, Some(cal.tenant.id), &on)
            .await
            .unwrap();
        db.store
            .reset_cursor(cal.ids[&me], "calendar")
            .await
            .unwrap();
        sync(&cal).await;
        let got = stored(&db, &cal, &me).await;
        assert_eq!(
            subjects(got.clone()),
            BTreeSet::from([
                "Client review".into(),
                "Private client lunch".into(),
                "Team stand-up".into()
            ])
        );
        let private = got
            .iter()
            .find(|e| e.subject == "Private client lunch")
            .unwrap();
        assert_eq!(
            record(private)["attendees"],
            json!([]),
            "private: without attendees"
        );
        assert_eq!(record(private)["private"], true);
        let addrs = db.store.event_addresses(private.id).await.unwrap();
        assert!(addrs.iter().all(|a| a.role == "organizer"), "{addrs:?}");

        // Sync Events off: the user's calendar is left alone.
        let user = db
            .store
            .user_id(cal.tenant.id, &colleague)
            .await
            .unwrap()
            .unwrap();
        db.store.set_sync_events(user, false).await.unwrap();
        let before = stored(&db, &cal, &colleague).await.len();
        ms_create(
            &s,
            &colleague,
            ev("Colleague's own", "normal", "client@acme-holdings.example"),
        )
        .await;
        sync(&cal).await;
        assert_eq!(stored(&db, &cal, &colleague).await.len(), before);

        // CRM to Microsoft only: nothing is pulled.
        let push_only = settings(|c| c.direction = Direction::ToMicrosoft);
        db.store
            .set_calendar_settings(cal.tenant.org_id, Some(cal.tenant.id), &push_only)
            .await
            .unwrap();
        ms_create(
            &s,
            &me,
            ev("After the switch", "normal", "client@acme-holdings.example"),
        )
        .await;
        sync(&cal).await;
        assert!(!stored(&db, &cal, &me)
            .await
            .iter()
            .any(|e| e.subject == "After the switch"));
        db.drop_db().await;
    }
}

#[tokio::test]
async fn deletes_and_cancellations_from_microsoft_follow_the_delete_setting() {
    for delete in [true, false] {
        for db in TestDb::both().await {
            let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
                events: 0,
                ..small()
            })
            .await;
            let me = people(&s)[0].clone();
            let day = (chrono::Utc::now() + chrono::Duration::days(5))
                .format("%Y-%m-%d")
                .to_string();
            let single = ms_create(&s, &me, json!({"subject": "One-off",
                "start": at(&format!("{day}T09:00:00"), "UTC"), "end": at(&format!("{day}T10:00:00"), "UTC"),
                "attendees": [attendee("client@acme-holdings.example")]})).await;
            let series = ms_create(&s, &me, json!({"subject": "Weekly",
                "start": at(&format!("{day}T13:00:00"), "UTC"), "end": at(&format!("{day}T14:00:00"), "UTC"),
                "attendees": [attendee("client@acme-holdings.example")],
                "recurrence": {"pattern": {"type": "daily", "interval": 7},
                    "range": {"type": "numbered", "startDate": day, "numberOfOccurrences": 4}}})).await;
            let cal = declare(&db, &s, &settings(|c| c.delete_from_microsoft = delete)).await;
            sync(&cal).await;
            let events = stored(&db, &cal, &me).await;
            assert_eq!(events.len(), 5, "{events:?}");
            let occurrences: Vec<_> = events
                .iter()
                .filter(|e| e.series_graph_id.as_deref() == Some(&series))
                .collect();
            assert_eq!(occurrences.len(), 4);
            // An exception (moved an hour), a deleted occurrence, the single deleted.
            let first = occurrences[0].graph_id.clone().unwrap();
            let second = occurrences[1].graph_id.clone().unwrap();
            ms_update(&s, &me, &first, json!({"subject": "Weekly (moved)"})).await;
            ms_delete(&s, &me, &second).await;
            ms_delete(&s, &me, &single).await;
            let report = sync(&cal).await;
            let live = stored(&db, &cal, &me).await;
            let moved = live
                .iter()
                .find(|e| e.graph_id.as_deref() == Some(&first))
                .unwrap();
            assert_eq!(moved.subject, "Weekly (moved)");
            assert_eq!(moved.kind, "exception");
            assert_eq!(moved.series_graph_id.as_deref(), Some(series.as_str()));
            let all = db.store.events(cal.tenant.id, None, true).await.unwrap();
            for gone in [&second, &single] {
                let was = all
                    .iter()
                    .find(|e| e.graph_id.as_deref() == Some(gone.as_str()));
                if delete {
                    assert!(was.is_some_and(|e| e.deleted), "deleted in the CRM: {gone}");
                } else {
                    assert!(was.is_none(), "kept, unlinked");
                }
            }
            if delete {
                assert_eq!(live.len(), 3);
                assert_eq!(report.removed, 2, "{report:?}");
            } else {
                assert_eq!(live.len(), 5, "kept in the CRM");
                let inactive = live.iter().filter(|e| e.sync_status == "inactive").count();
                assert_eq!(inactive, 2);
            }
            db.drop_db().await;
        }
    }
}

#[tokio::test]
async fn time_zones_and_dst_are_stored_in_utc_and_all_day_dates_never_shift() {
    for db in TestDb::both().await {
        let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
            events: 0,
            ..small()
        })
        .await;
        let me = people(&s)[0].clone();
        // US daylight time starts on 2027-03-14.
        let pst = "Pacific Standard Time";
        ms_create(&s, &me, json!({"subject": "Before DST", "start": at("2027-03-12T09:00:00", pst), "end": at("2027-03-12T10:00:00", pst)})).await;
        ms_create(&s, &me, json!({"subject": "After DST", "start": at("2027-03-15T09:00:00", pst), "end": at("2027-03-15T10:00:00", pst)})).await;
        ms_create(&s, &me, json!({"subject": "Across DST", "start": at("2027-03-05T09:00:00", pst), "end": at("2027-03-05T09:30:00", pst),
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["friday"]},
                "range": {"type": "numbered", "startDate": "2027-03-05", "numberOfOccurrences": 3, "recurrenceTimeZone": pst}}})).await;
        ms_create(&s, &me, json!({"subject": "Tokyo holiday", "isAllDay": true,
            "start": at("2027-01-01T00:00:00", "Tokyo Standard Time"), "end": at("2027-01-02T00:00:00", "Tokyo Standard Time")})).await;
        ms_create(&s, &me, json!({"subject": "Hawaii offsite", "isAllDay": true,
            "start": at("2027-01-04T00:00:00", "Hawaiian Standard Time"), "end": at("2027-01-06T00:00:00", "Hawaiian Standard Time")})).await;
        let cal = declare(&db, &s, &settings(|_| {})).await;
        sync(&cal).await;
        let events = stored(&db, &cal, &me).await;
        let start_of = |subject: &str| -> Vec<i64> {
            events
                .iter()
                .filter(|e| e.subject == subject)
                .map(|e| e.start_ms)
                .collect()
        };
        assert_eq!(start_of("Before DST"), vec![ms("2027-03-12T17:00:00Z")]);
        assert_eq!(start_of("After DST"), vec![ms("2027-03-15T16:00:00Z")]);
        assert_eq!(
            start_of("Across DST"),
            vec![
                ms("2027-03-05T17:00:00Z"),
                ms("2027-03-12T17:00:00Z"),
                ms("2027-03-19T16:00:00Z")
            ]
        );
        let day = |subject: &str| {
            let e = events.iter().find(|e| e.subject == subject).unwrap();
            (
                e.all_day,
                e.start_date.clone().unwrap(),
                e.end_date.clone().unwrap(),
                e.start_ms,
            )
        };
        assert_eq!(
            day("Tokyo holiday"),
            (
                true,
                "2027-01-01".into(),
                "2027-01-02".into(),
                ms("2027-01-01T00:00:00Z")
            )
        );
        assert_eq!(
            day("Hawaii offsite"),
            (
                true,
                "2027-01-04".into(),
                "2027-01-06".into(),
                ms("2027-01-04T00:00:00Z")
            )
        );
        let r = record(
            events
                .iter()
                .find(|e| e.subject == "Tokyo holiday")
                .unwrap(),
        );
        assert_eq!(
            (r["all_day"].clone(), r["start"].clone()),
            (json!(true), json!("2027-01-01T00:00:00Z")),
            "{r}"
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn recurring_in_m365_is_readable_text_and_the_pattern_is_kept() {
    for db in TestDb::both().await {
        let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
            events: 0,
            ..small()
        })
        .await;
        let me = people(&s)[0].clone();
        let today = chrono::Utc::now().date_naive();
        let monday =
            today + chrono::Duration::days(7 - today.weekday().num_days_from_monday() as i64);
        let until = monday + chrono::Duration::days(70);
        let series = ms_create(
            &s,
            &me,
            json!({
                "subject": "Fortnightly review",
                "start": at(&format!("{monday}T09:00:00"), "UTC"),
                "end": at(&format!("{monday}T10:00:00"), "UTC"),
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["wednesday", "monday"], "firstDayOfWeek": "sunday"},
                    "range": {"type": "endDate", "startDate": monday.to_string(), "endDate": until.to_string()},
                },
            }),
        )
        .await;
        let cal = declare(&db, &s, &settings(|_| {})).await;
        sync(&cal).await;
        let expected = format!(
            "Every 2 weeks on Monday and Wednesday, until {}",
            until.format("%-d %B %Y")
        );
        let events = stored(&db, &cal, &me).await;
        assert!(events.len() >= 6, "{} occurrences", events.len());
        for e in &events {
            assert_eq!(e.series_graph_id.as_deref(), Some(series.as_str()));
            assert_eq!(record(e)["recurring"], expected.as_str(), "{}", e.record);
        }
        // The series keeps the readable text and, apart, Graph's pattern.
        assert_eq!(
            db.store
                .series_recurrence(cal.ids[&me], &series)
                .await
                .unwrap()
                .as_deref(),
            Some(expected.as_str())
        );
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let pattern: String = sqlx::query_scalar("SELECT pattern FROM event_series")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        let pattern: Value = serde_json::from_str(&pattern).unwrap();
        assert_eq!(pattern["pattern"]["interval"], 2, "{pattern}");
        db.drop_db().await;
    }
}
