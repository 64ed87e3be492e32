//! Calendar sync, CRM to Microsoft and two-way, against the simulator on SQLite and
//! PostgreSQL. The simulator's invitation log is the witness: past and imported events send
//! nothing, each intended change sends exactly one message per attendee concerned, our own
//! writes never come back as changes, and a conflict keeps Microsoft's version (C1).

use m365sync::outbound::edits::{add_event, remove_event, update_event, EventChange, NewEvent};
use m365sync::outbound::status::{external_id, push_state, PushState, DELETES_OFF};
use m365sync_store::events::Direction;
use serde_json::json;

use crate::calendar_support::{
    at, attendee, declare, invitations, ms_create, ms_update, people, settings, stored, sync, view,
    window,
};
use crate::support::{small, TestDb, TestSim};

const CLIENT: &str = "client@acme-holdings.example";
const OTHER: &str = "advisor@partner-firm.example";

fn future(days: i64, hour: u32) -> String {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    format!("{d}T{hour:02}:00:00Z")
}

fn new_event(subject: &str, days: i64, attendees: &[&str], invite: bool) -> NewEvent {
    NewEvent {
        subject: subject.into(),
        start: future(days, 9),
        end: future(days, 10),
        required: attendees.iter().map(|a| a.to_string()).collect(),
        send_invitations: invite,
        ..NewEvent::default()
    }
}

/// A simulator whose calendars start empty, and its first person's address.
async fn empty_calendars() -> (TestSim, String) {
    let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
        events: 0,
        ..small()
    })
    .await;
    let me = people(&s)[0].clone();
    (s, me)
}

fn count(log: &[(String, String, String)], kind: &str, subject: &str) -> usize {
    log.iter()
        .filter(|(k, _, s)| k == kind && s == subject)
        .count()
}

#[tokio::test]
async fn crm_events_are_pushed_once_never_past_or_imported_and_do_not_come_back() {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let cal = declare(
            &db,
            &s,
            &settings(|c| {
                c.direction = Direction::TwoWay;
                c.delete_from_crm = true;
            }),
        )
        .await;
        let t = &cal.tenant;
        let store = &db.store;
        let meeting = add_event(
            store,
            t,
            &me,
            &new_event("Annual review", 3, &[CLIENT, OTHER], true),
        )
        .await
        .unwrap();
        let quiet = add_event(
            store,
            t,
            &me,
            &new_event("No invitations", 4, &[CLIENT], false),
        )
        .await
        .unwrap();
        let past = add_event(store, t, &me, &new_event("Last week", -7, &[CLIENT], true))
            .await
            .unwrap();
        let imported = add_event(
            store,
            t,
            &me,
            &NewEvent {
                imported: true,
                ..new_event("Imported", 5, &[CLIENT], true)
            },
        )
        .await
        .unwrap();
        let far = add_event(store, t, &me, &new_event("Far ahead", 800, &[CLIENT], true))
            .await
            .unwrap();
        let all_day = add_event(
            store,
            t,
            &me,
            &NewEvent {
                all_day: true,
                start: future(6, 0)[..10].to_string(),
                end: future(7, 0)[..10].to_string(),
                ..new_event("Office closed", 6, &[], false)
            },
        )
        .await
        .unwrap();
        assert_eq!(
            store.outbox_len(t.id).await.unwrap(),
            5,
            "imported events are never queued"
        );

        let first = sync(&cal).await;
        assert!(first.failed == 0, "{first:?}");
        let log = invitations(&s).await;
        assert_eq!(count(&log, "invitation", "Annual review"), 2, "{log:?}");
        assert_eq!(
            log.len(),
            2,
            "nothing for past, imported, far or invitation-less events: {log:?}"
        );
        assert_eq!(
            store.outbox_len(t.id).await.unwrap(),
            1,
            "the event beyond the outbound range waits; the past one was resolved"
        );
        let ev = |id| async move { store.event(id).await.unwrap() };
        for id in [meeting, quiet, all_day] {
            let e = ev(id).await;
            assert!(e.graph_id.is_some() && e.sync_status == "active", "{e:?}");
            // C8: the External ID is the id Microsoft gave the pushed event.
            assert_eq!(external_id(&e), e.graph_id, "{e:?}");
            assert_eq!(push_state(store, &e).await.unwrap(), PushState::Sent);
        }
        for id in [past, imported, far] {
            let e = ev(id).await;
            assert!(e.graph_id.is_none() && e.sync_status == "never", "{e:?}");
            assert_eq!(external_id(&e), None);
        }
        assert_eq!(
            push_state(store, &ev(past).await)
                .await
                .unwrap()
                .to_string(),
            "not sent: past events never go to Microsoft"
        );
        assert_eq!(
            push_state(store, &ev(imported).await)
                .await
                .unwrap()
                .to_string(),
            "not sent: imported events are never pushed"
        );
        assert_eq!(
            push_state(store, &ev(far).await).await.unwrap().to_string(),
            "waiting: beyond the outbound range (24 months) — sent when it comes within range"
        );
        // In Microsoft: the meeting with its attendees, the quiet one without, the all-day one
        // on its own dates.
        let (start, end) = window();
        let truth = view(&s, &me, &start, &end).await;
        let find = |subject: &str| {
            truth
                .iter()
                .find(|e| e["subject"] == subject)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            find("Annual review")["attendees"].as_array().unwrap().len(),
            2
        );
        assert_eq!(find("No invitations")["attendees"], json!([]));
        let closed = find("Office closed");
        assert_eq!(closed["isAllDay"], true);
        assert_eq!(
            &closed["start"]["dateTime"].as_str().unwrap()[..10],
            &future(6, 0)[..10]
        );
        assert_eq!(truth.len(), 3);

        // Our writes come back through the delta: recognised, nothing changes, nothing loops.
        let versions: Vec<i64> = futures_versions(store, &[meeting, quiet, all_day]).await;
        let again = sync(&cal).await;
        assert_eq!(again.synced, 0, "{again:?}");
        assert_eq!(
            futures_versions(store, &[meeting, quiet, all_day]).await,
            versions
        );
        assert_eq!(
            stored(&db, &cal, &me).await.len(),
            6,
            "no event doubled by its echo"
        );
        assert_eq!(invitations(&s).await.len(), 2);

        // A subject change: one update per attendee. An added attendee: one invitation to them
        // alone. A removed one: one cancellation to them alone.
        update_event(
            store,
            t,
            meeting,
            &EventChange {
                subject: Some("Annual review (moved)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        let log = invitations(&s).await;
        assert_eq!(count(&log, "update", "Annual review (moved)"), 2, "{log:?}");
        assert_eq!(log.len(), 4);
        update_event(
            store,
            t,
            meeting,
            &EventChange {
                required: Some(vec![
                    CLIENT.into(),
                    OTHER.into(),
                    "cfo@acme-holdings.example".into(),
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        let log = invitations(&s).await;
        assert_eq!(log.len(), 5, "{log:?}");
        assert_eq!(log[4].0, "invitation");
        assert_eq!(log[4].1, "cfo@acme-holdings.example");
        update_event(
            store,
            t,
            meeting,
            &EventChange {
                required: Some(vec![CLIENT.into(), "cfo@acme-holdings.example".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        let log = invitations(&s).await;
        assert_eq!(log.len(), 6, "{log:?}");
        assert_eq!(
            (log[5].0.as_str(), log[5].1.as_str()),
            ("cancellation", OTHER)
        );
        // Past and imported events changed: still nothing sent.
        update_event(
            store,
            t,
            past,
            &EventChange {
                subject: Some("Last week (edited)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        update_event(
            store,
            t,
            imported,
            &EventChange {
                subject: Some("Imported (edited)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        assert_eq!(invitations(&s).await.len(), 6);

        // Deleted in the CRM with deletes to Microsoft on: one cancellation per attendee.
        remove_event(store, t, meeting).await.unwrap();
        sync(&cal).await;
        let log = invitations(&s).await;
        assert_eq!(
            count(&log, "cancellation", "Annual review (moved)"),
            2 + 1,
            "{log:?}"
        );
        assert_eq!(log.len(), 8);
        let truth = view(&s, &me, &start, &end).await;
        assert!(!truth
            .iter()
            .any(|e| e["subject"] == "Annual review (moved)"));
        assert!(store.event(meeting).await.unwrap().deleted);
        db.drop_db().await;
    }
}

async fn futures_versions(store: &m365sync_store::Store, ids: &[i64]) -> Vec<i64> {
    let mut out = Vec::new();
    for id in ids {
        let e = store.event(*id).await.unwrap();
        out.push(e.crm_version * 1000 + e.synced_version);
    }
    out
}

#[tokio::test]
async fn deletes_from_the_crm_follow_the_delete_setting() {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let cal = declare(&db, &s, &settings(|c| c.direction = Direction::TwoWay)).await;
        let (t, store) = (&cal.tenant, &db.store);
        let id = add_event(
            store,
            t,
            &me,
            &new_event("Kept in Outlook", 3, &[CLIENT], true),
        )
        .await
        .unwrap();
        sync(&cal).await;
        remove_event(store, t, id).await.unwrap();
        sync(&cal).await;
        let log = invitations(&s).await;
        assert_eq!(
            log.len(),
            1,
            "the invitation only, no cancellation: {log:?}"
        );
        let (start, end) = window();
        assert!(view(&s, &me, &start, &end)
            .await
            .iter()
            .any(|e| e["subject"] == "Kept in Outlook"));
        // Microsoft's later changes do not bring a CRM-deleted event back.
        let graph_id = store.event(id).await.unwrap().graph_id.unwrap();
        ms_update(&s, &me, &graph_id, json!({"subject": "Renamed in Outlook"})).await;
        sync(&cal).await;
        assert!(store.event(id).await.unwrap().deleted);
        assert!(stored(&db, &cal, &me).await.is_empty());
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_conflict_keeps_microsofts_version_and_sends_nothing_of_ours() {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let day = (chrono::Utc::now() + chrono::Duration::days(4))
            .format("%Y-%m-%d")
            .to_string();
        let graph_id = ms_create(&s, &me, json!({"subject": "Planning",
            "start": at(&format!("{day}T09:00:00"), "UTC"), "end": at(&format!("{day}T10:00:00"), "UTC"),
            "attendees": [attendee(CLIENT)]})).await;
        let cal = declare(&db, &s, &settings(|c| c.direction = Direction::TwoWay)).await;
        sync(&cal).await;
        let ev = db
            .store
            .event_by_graph_id(cal.ids[&me], &graph_id)
            .await
            .unwrap()
            .unwrap();
        // Changed on both sides between two syncs.
        update_event(
            &db.store,
            &cal.tenant,
            ev.id,
            &EventChange {
                subject: Some("Planning (CRM)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        ms_update(&s, &me, &graph_id, json!({"subject": "Planning (Outlook)"})).await;
        let sent_before = invitations(&s).await.len();
        sync(&cal).await;
        let after = db.store.event(ev.id).await.unwrap();
        assert_eq!(after.subject, "Planning (Outlook)", "Microsoft wins (C1)");
        assert_eq!(after.crm_version, after.synced_version);
        assert_eq!(
            db.store.outbox_len(cal.tenant.id).await.unwrap(),
            0,
            "the CRM change was dropped"
        );
        assert_eq!(
            invitations(&s).await.len(),
            sent_before,
            "nothing of ours was sent"
        );
        let (start, end) = window();
        let truth = view(&s, &me, &start, &end).await;
        assert_eq!(truth[0]["subject"], "Planning (Outlook)");
        // A CRM change with no Microsoft change is pushed as usual: one update.
        update_event(
            &db.store,
            &cal.tenant,
            ev.id,
            &EventChange {
                location: Some("Board room".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        assert_eq!(invitations(&s).await.len(), sent_before + 1);
        assert_eq!(
            view(&s, &me, &start, &end).await[0]["location"]["displayName"],
            "Board room"
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn microsoft_to_crm_only_queues_nothing_and_deactivation_stops_the_sync() {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let cal = declare(&db, &s, &settings(|_| {})).await;
        let (t, store) = (&cal.tenant, &db.store);
        add_event(store, t, &me, &new_event("CRM only", 3, &[CLIENT], true))
            .await
            .unwrap();
        assert_eq!(
            store.outbox_len(t.id).await.unwrap(),
            0,
            "the default direction never pushes (C9)"
        );
        let day = (chrono::Utc::now() - chrono::Duration::days(10))
            .format("%Y-%m-%d")
            .to_string();
        let old = ms_create(&s, &me, json!({"subject": "Old meeting",
            "start": at(&format!("{day}T09:00:00"), "UTC"), "end": at(&format!("{day}T10:00:00"), "UTC"),
            "attendees": [attendee(CLIENT)]})).await;
        let sent = invitations(&s).await.len();
        sync(&cal).await;
        assert_eq!(invitations(&s).await.len(), sent, "a pull sends nothing");
        let n = store
            .deactivate_events_before(t.id, chrono::Utc::now().timestamp_millis())
            .await
            .unwrap();
        assert_eq!(n, 1);
        let ev = store
            .event_by_graph_id(cal.ids[&me], &old)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.sync_status, "inactive");
        ms_update(&s, &me, &old, json!({"subject": "Old meeting (renamed)"})).await;
        sync(&cal).await;
        assert_eq!(
            store.event(ev.id).await.unwrap().subject,
            "Old meeting",
            "Inactive events are out of the sync"
        );
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_adopted_not_doubled() {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let cal = declare(&db, &s, &settings(|c| c.direction = Direction::TwoWay)).await;
        let (t, store) = (&cal.tenant, &db.store);
        let id = add_event(store, t, &me, &new_event("Lost answer", 3, &[CLIENT], true))
            .await
            .unwrap();
        // A push that reached Microsoft but whose answer never came back: the transactionId
        // was stored, the event created, nothing else recorded.
        let tx = format!("m365sync-{}-{id}", t.id);
        store
            .set_transaction_id(id, cal.ids[&me], &tx)
            .await
            .unwrap();
        let e = store.event(id).await.unwrap();
        let crm: m365sync_plugin::bindings::types::CrmEvent =
            serde_json::from_str(&e.record).unwrap();
        let mut body = m365sync::outbound::push::graph_body(&crm, None, true);
        body.insert("transactionId".into(), tx.clone().into());
        let created = ms_create(&s, &me, serde_json::Value::Object(body)).await;
        assert_eq!(invitations(&s).await.len(), 1);
        sync(&cal).await;
        let e = store.event(id).await.unwrap();
        assert_eq!(
            e.graph_id.as_deref(),
            Some(created.as_str()),
            "adopted by its transactionId"
        );
        assert_eq!(stored(&db, &cal, &me).await.len(), 1, "not doubled");
        let (start, end) = window();
        assert_eq!(
            view(&s, &me, &start, &end).await.len(),
            1,
            "one event in Microsoft"
        );
        assert_eq!(invitations(&s).await.len(), 1, "no second invitation");
        assert_eq!(store.outbox_len(t.id).await.unwrap(), 0);
        db.drop_db().await;
    }
}

/// C8's reminder is a date and time in the CRM and minutes before the start in Microsoft: a
/// pushed reminder arrives as minutes, a moved event keeps its lead, a cleared reminder turns
/// Microsoft's off; "Show Time As" is pushed too; a reminder after the start is refused.
#[tokio::test]
async fn reminders_and_show_as_reach_microsoft_as_minutes_and_follow_a_move() {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let cal = declare(&db, &s, &settings(|c| c.direction = Direction::TwoWay)).await;
        let (t, store) = (&cal.tenant, &db.store);
        let in_microsoft = || async {
            let (start, end) = window();
            let events = view(&s, &me, &start, &end).await;
            assert_eq!(events.len(), 1, "{events:?}");
            events[0].clone()
        };
        let reminded = NewEvent {
            reminder_at: Some(future(3, 8).replace("08:00:00", "08:30:00")),
            show_as: Some("free".into()),
            ..new_event("Planning", 3, &[], false)
        };
        let id = add_event(store, t, &me, &reminded).await.unwrap();
        sync(&cal).await;
        let e = in_microsoft().await;
        assert_eq!(
            (
                &e["isReminderOn"],
                &e["reminderMinutesBeforeStart"],
                &e["showAs"]
            ),
            (&json!(true), &json!(30), &json!("free")),
            "{e}"
        );

        // Moved an hour later: the reminder keeps its 30 minutes' lead, in both systems.
        update_event(
            store,
            t,
            id,
            &EventChange {
                start: Some(future(3, 10)),
                end: Some(future(3, 11)),
                ..EventChange::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        let e = in_microsoft().await;
        assert_eq!(e["reminderMinutesBeforeStart"], json!(30), "{e}");
        assert!(
            e["start"]["dateTime"]
                .as_str()
                .unwrap()
                .contains("T10:00:00"),
            "{e}"
        );
        let crm: m365sync_plugin::bindings::types::CrmEvent =
            serde_json::from_str(&store.event(id).await.unwrap().record).unwrap();
        assert_eq!(
            crm.reminder_at.as_deref(),
            Some(future(3, 9).replace("09:00:00", "09:30:00").as_str())
        );

        // Cleared, and busy again.
        update_event(
            store,
            t,
            id,
            &EventChange {
                reminder_at: Some(None),
                show_as: Some("busy".into()),
                ..EventChange::default()
            },
        )
        .await
        .unwrap();
        sync(&cal).await;
        let e = in_microsoft().await;
        assert_eq!(
            (&e["isReminderOn"], &e["showAs"]),
            (&json!(false), &json!("busy")),
            "{e}"
        );

        // A reminder after the start, or an unknown Show Time As, is refused and changes nothing.
        for change in [
            EventChange {
                reminder_at: Some(Some(future(3, 12))),
                ..EventChange::default()
            },
            EventChange {
                show_as: Some("tentative".into()),
                ..EventChange::default()
            },
        ] {
            let err = update_event(store, t, id, &change).await.unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("reminder") || text.contains("show_as"),
                "{text}"
            );
        }
        assert_eq!(store.outbox_len(t.id).await.unwrap(), 0);
        db.drop_db().await;
    }
}

/// The subjects in `upn`'s calendar over the tests' window.
async fn subjects(s: &TestSim, upn: &str) -> Vec<String> {
    let (start, end) = window();
    view(s, upn, &start, &end)
        .await
        .iter()
        .map(|e| e["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn waiting_changes_go_when_sync_events_turns_on_or_the_range_widens_and_deletes_keep_their_decision(
) {
    for db in TestDb::both().await {
        let (s, me) = empty_calendars().await;
        let pushing = |months: i64, deletes: bool| {
            settings(move |c| {
                c.direction = Direction::TwoWay;
                c.outbound_months = months;
                c.delete_from_crm = deletes;
            })
        };
        let cal = declare(&db, &s, &pushing(12, false)).await;
        let (t, store) = (&cal.tenant, &db.store);
        let user_id = store.user_id(t.id, &me).await.unwrap().unwrap();
        let state = |id: i64| async move {
            let e = store.event(id).await.unwrap();
            push_state(store, &e).await.unwrap().to_string()
        };
        let set = |c: m365sync_store::events::CalendarSettings| async move {
            store
                .set_calendar_settings(t.org_id, Some(t.id), &c)
                .await
                .unwrap()
        };

        // Made while the user's Sync Events is off: queued, waiting, and saying why.
        store.set_sync_events(user_id, false).await.unwrap();
        let parked = add_event(store, t, &me, &new_event("Parked", 3, &[], false))
            .await
            .unwrap();
        let moved = add_event(store, t, &me, &new_event("Moved away", 5, &[], false))
            .await
            .unwrap();
        let off = format!("waiting: Sync Events is off for {me} — turn it on to send");
        assert_eq!(state(parked).await, off);
        sync(&cal).await;
        assert!(subjects(&s, &me).await.is_empty());
        assert_eq!(state(parked).await, off, "still waiting after a sync");
        // Moved into the past while it waited: resolved, and it says so.
        update_event(
            store,
            t,
            moved,
            &EventChange {
                start: Some(future(-2, 9)),
                end: Some(future(-2, 10)),
                ..Default::default()
            },
        )
        .await
        .unwrap();

        // Turned on: the next sync sends it.
        store.set_sync_events(user_id, true).await.unwrap();
        assert_eq!(state(parked).await, "queued for Microsoft (next tick)");
        let far = add_event(store, t, &me, &new_event("Far ahead", 426, &[], false))
            .await
            .unwrap();
        let report = sync(&cal).await;
        assert_eq!(report.failed, 0, "{report:?}");
        assert_eq!(subjects(&s, &me).await, vec!["Parked".to_string()]);
        let sent = store.event(parked).await.unwrap();
        assert_eq!(state(parked).await, "sent");
        assert_eq!(external_id(&sent), sent.graph_id);
        assert_eq!(
            state(moved).await,
            "not sent: past events never go to Microsoft"
        );
        // 14 months out with a 12-month range: it waits, through syncs.
        let beyond =
            "waiting: beyond the outbound range (12 months) — sent when it comes within range";
        assert_eq!(state(far).await, beyond);
        sync(&cal).await;
        assert_eq!(state(far).await, beyond);
        assert_eq!(store.outbox_len(t.id).await.unwrap(), 1);
        // The range widened (as time passing would bring it in): it arrives.
        set(pushing(24, false)).await;
        sync(&cal).await;
        assert!(subjects(&s, &me).await.contains(&"Far ahead".to_string()));
        assert_eq!(state(far).await, "sent");
        assert_eq!(store.outbox_len(t.id).await.unwrap(), 0);

        // Deleted while deletes to Microsoft were off: not sent, even once they are on.
        remove_event(store, t, parked).await.unwrap();
        assert_eq!(state(parked).await, format!("not sent: {DELETES_OFF}"));
        set(pushing(24, true)).await;
        sync(&cal).await;
        assert!(
            subjects(&s, &me).await.contains(&"Parked".to_string()),
            "the delete was decided when it was made"
        );
        assert_eq!(state(parked).await, format!("not sent: {DELETES_OFF}"));

        // Deleted while they were on (and the user's Sync Events off): sent later, even after
        // they were turned off.
        store.set_sync_events(user_id, false).await.unwrap();
        remove_event(store, t, far).await.unwrap();
        assert_eq!(state(far).await, off);
        set(pushing(24, false)).await;
        store.set_sync_events(user_id, true).await.unwrap();
        assert_eq!(state(far).await, "queued for Microsoft (next tick)");
        sync(&cal).await;
        assert!(!subjects(&s, &me).await.contains(&"Far ahead".to_string()));
        assert_eq!(state(far).await, "sent");
        assert_eq!(store.outbox_len(t.id).await.unwrap(), 0);
        db.drop_db().await;
    }
}
