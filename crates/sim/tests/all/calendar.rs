//! Calendars over HTTP: calendarView delta (paging, series, time zones, later rounds, tokens)
//! and event writes (idempotency, invitations, updates, cancellations, attendees' copies).

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{enc, ids, removed, small, TestSim};

const WINDOW: (&str, &str) = ("2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z");

fn delta_url(s: &TestSim, upn: &str, (start, end): (&str, &str)) -> String {
    format!(
        "{}/users/{}/calendarView/delta?startDateTime={start}&endDateTime={end}",
        s.graph,
        enc(upn)
    )
}

fn upn(s: &TestSim, index: usize) -> String {
    s.mailbox(index)["upn"].as_str().unwrap().to_string()
}

fn at(date_time: &str, zone: &str) -> Value {
    json!({"dateTime": date_time, "timeZone": zone})
}

fn attendee(address: &str, kind: &str) -> Value {
    json!({"type": kind, "emailAddress": {"address": address, "name": address}})
}

/// POSTs an event; returns (status, event).
async fn post(s: &TestSim, token: &str, upn: &str, event: Value) -> (u16, Value) {
    let url = format!("{}/users/{}/events", s.graph, enc(upn));
    s.send(Method::POST, &url, token, Some(event)).await
}

async fn patch(s: &TestSim, token: &str, upn: &str, id: &str, body: Value) -> Value {
    let url = format!("{}/users/{}/events/{}", s.graph, enc(upn), enc(id));
    let (status, v) = s.send(Method::PATCH, &url, token, Some(body)).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn delete(s: &TestSim, token: &str, upn: &str, id: &str) {
    let url = format!("{}/users/{}/events/{}", s.graph, enc(upn), enc(id));
    let (status, v) = s.send(Method::DELETE, &url, token, None).await;
    assert_eq!(status, 204, "{v}");
}

/// (kind, attendee) of every logged message about the event with this iCalUId.
async fn messages(s: &TestSim, ical_uid: &str) -> Vec<(String, String)> {
    let log = s.ctl(Method::GET, "invitations", json!({})).await;
    log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["ical_uid"] == ical_uid)
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["attendee"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn count(msgs: &[(String, String)], kind: &str) -> usize {
    msgs.iter().filter(|(k, _)| k == kind).count()
}

fn room(s: &TestSim) -> String {
    s.sim.world.lock().unwrap().tenants[0].rooms[0]
        .email_address
        .clone()
}

#[tokio::test]
async fn delta_pages_are_exactly_the_simulators_calendar_view() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::days(220))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    let end = (now + chrono::Duration::days(150))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    let url = delta_url(&s, &who, (&start, &end));
    let (items, delta_link, pages) = s.delta_round(&url, &token, "odata.maxpagesize=4").await;
    let expected = s
        .ctl(
            Method::GET,
            &format!("calendar-view?user={}&start={start}&end={end}", enc(&who)),
            json!({}),
        )
        .await;
    let expected: HashSet<String> = expected["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let got: Vec<String> = ids(&items);
    assert!(!expected.is_empty());
    assert_eq!(got.len(), expected.len(), "no instance twice");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), expected);
    assert!(pages >= expected.len().div_ceil(4));
    assert!(
        delta_link.starts_with(&s.base) && delta_link.contains("/calendarView/delta?$deltatoken=")
    );
    assert!(items
        .iter()
        .all(|i| i["@odata.type"] == "#microsoft.graph.event"));
    assert!(
        items.iter().all(|i| i["type"] != "seriesMaster"),
        "masters are not in a view"
    );
    assert!(
        items.iter().any(|i| i["type"] == "occurrence"),
        "generated series expand"
    );
    // The default page is 10.
    let (status, _, page) = s.get(&url, &token, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        page["value"].as_array().unwrap().len(),
        10.min(expected.len())
    );
}

#[tokio::test]
async fn series_expands_with_its_exception_and_without_its_deleted_occurrence() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let (status, master) = post(
        &s,
        &token,
        &who,
        json!({
            "subject": "Weekly review",
            "start": at("2026-07-06T10:00:00", "W. Europe Standard Time"),
            "end": at("2026-07-06T10:30:00", "W. Europe Standard Time"),
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "startDate": "2026-07-06", "numberOfOccurrences": 6},
            },
        }),
    )
    .await;
    assert_eq!(status, 201, "{master}");
    assert_eq!(master["type"], "seriesMaster");
    let master_id = master["id"].as_str().unwrap().to_string();
    let instances_url = format!(
        "{}/users/{}/events/{}/instances?startDateTime={}&endDateTime={}",
        s.graph,
        enc(&who),
        enc(&master_id),
        WINDOW.0,
        WINDOW.1
    );
    let (status, _, listed) = s.get(&instances_url, &token, "").await;
    assert_eq!(status, 200, "{listed}");
    let instance_ids: Vec<String> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    // 6, 13, 20, 27 July fall in the window (UTC 08:00, summer time in Berlin).
    assert_eq!(instance_ids.len(), 4, "{listed}");
    assert_eq!(
        listed["value"][0]["start"]["dateTime"],
        "2026-07-06T08:00:00.0000000"
    );
    let changed = patch(
        &s,
        &token,
        &who,
        &instance_ids[1],
        json!({"subject": "Weekly review (special)"}),
    )
    .await;
    assert_eq!(changed["type"], "exception");
    assert_eq!(changed["id"], instance_ids[1]);
    delete(&s, &token, &who, &instance_ids[2]).await;

    let url = delta_url(&s, &who, WINDOW);
    let (items, delta_link, _) = s.delta_round(&url, &token, "odata.maxpagesize=3").await;
    let mine: Vec<&Value> = items
        .iter()
        .filter(|i| i["seriesMasterId"] == master_id)
        .collect();
    assert!(items.iter().all(|i| i["id"] != master_id.as_str()));
    let got: Vec<&str> = mine.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(got, [&instance_ids[0], &instance_ids[1], &instance_ids[3]]);
    let occurrence = mine[0].as_object().unwrap();
    let mut keys: Vec<&str> = occurrence.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "@odata.etag",
            "@odata.type",
            "end",
            "id",
            "seriesMasterId",
            "start",
            "type"
        ],
        "occurrences are minimal"
    );
    assert_eq!(mine[0]["type"], "occurrence");
    assert_eq!(mine[1]["type"], "exception");
    assert_eq!(mine[1]["subject"], "Weekly review (special)");

    // The master itself answers by id; deleting another occurrence shows in the next round.
    let (status, _, fetched) = s
        .get(
            &format!("{}/users/{}/events/{}", s.graph, enc(&who), enc(&master_id)),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["recurrence"]["pattern"]["type"], "weekly");
    delete(&s, &token, &who, &instance_ids[3]).await;
    let (items, _, _) = s.delta_round(&delta_link, &token, "").await;
    assert_eq!(removed(&items), [instance_ids[3].clone()]);
    assert_eq!(
        ids(&items),
        [instance_ids[0].clone(), instance_ids[1].clone()]
    );
}

#[tokio::test]
async fn window_is_sealed_into_the_tokens() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 2);
    let (_, delta_link, _) = s
        .delta_round(&delta_url(&s, &who, WINDOW), &token, "")
        .await;
    let (_, inside) = post(
        &s,
        &token,
        &who,
        json!({"subject": "inside", "start": at("2026-07-10T09:00:00", "UTC"), "end": at("2026-07-10T10:00:00", "UTC")}),
    )
    .await;
    let (_, outside) = post(
        &s,
        &token,
        &who,
        json!({"subject": "outside", "start": at("2026-09-10T09:00:00", "UTC"), "end": at("2026-09-10T10:00:00", "UTC")}),
    )
    .await;
    // A client that tacks another window onto the link still gets the sealed one.
    let wider =
        format!("{delta_link}&startDateTime=2026-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z");
    let (items, _, _) = s.delta_round(&wider, &token, "").await;
    assert_eq!(ids(&items), [inside["id"].as_str().unwrap().to_string()]);
    assert_ne!(inside["id"], outside["id"]);
}

#[tokio::test]
async fn outlook_timezone_shifts_timed_events_but_not_all_day_ones() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let (_, timed) = post(
        &s,
        &token,
        &who,
        json!({"subject": "timed", "start": at("2026-07-15T09:00:00", "UTC"), "end": at("2026-07-15T10:00:00", "UTC")}),
    )
    .await;
    let (status, all_day) = post(
        &s,
        &token,
        &who,
        json!({"subject": "holiday", "isAllDay": true,
               "start": at("2026-07-20T00:00:00", "Eastern Standard Time"),
               "end": at("2026-07-21T00:00:00", "Eastern Standard Time")}),
    )
    .await;
    assert_eq!(status, 201, "{all_day}");
    for (zone, timed_start) in [
        ("Pacific Standard Time", "2026-07-15T02:00:00.0000000"),
        ("Asia/Tokyo", "2026-07-15T18:00:00.0000000"),
        ("UTC", "2026-07-15T09:00:00.0000000"),
    ] {
        let prefer = format!("outlook.timezone=\"{zone}\"");
        let (items, _, _) = s
            .delta_round(&delta_url(&s, &who, WINDOW), &token, &prefer)
            .await;
        let find = |id: &Value| items.iter().find(|i| i["id"] == *id).unwrap().clone();
        let t = find(&timed["id"]);
        assert_eq!(
            t["start"],
            json!({"dateTime": timed_start, "timeZone": zone})
        );
        let a = find(&all_day["id"]);
        assert_eq!(a["isAllDay"], true);
        assert_eq!(
            a["start"],
            json!({"dateTime": "2026-07-20T00:00:00.0000000", "timeZone": zone})
        );
        assert_eq!(
            a["end"],
            json!({"dateTime": "2026-07-21T00:00:00.0000000", "timeZone": zone})
        );
        assert_eq!(a["originalStartTimeZone"], "Eastern Standard Time");
    }
    let (_, headers, _) = s
        .get(
            &delta_url(&s, &who, WINDOW),
            &token,
            "outlook.timezone=\"Pacific Standard Time\"",
        )
        .await;
    assert!(headers["preference-applied"]
        .to_str()
        .unwrap()
        .contains("Pacific Standard Time"));
}

#[tokio::test]
async fn next_round_sends_new_events_and_removes_deleted_ones() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let (_, victim) = post(
        &s,
        &token,
        &who,
        json!({"subject": "to go", "start": at("2026-07-08T09:00:00", "UTC"), "end": at("2026-07-08T09:30:00", "UTC")}),
    )
    .await;
    let url = delta_url(&s, &who, WINDOW);
    let (first, delta_link, _) = s.delta_round(&url, &token, "").await;
    assert!(ids(&first).contains(&victim["id"].as_str().unwrap().to_string()));
    let (_, fresh) = post(
        &s,
        &token,
        &who,
        json!({"subject": "new", "start": at("2026-07-09T09:00:00", "UTC"), "end": at("2026-07-09T09:30:00", "UTC")}),
    )
    .await;
    delete(&s, &token, &who, victim["id"].as_str().unwrap()).await;
    let (items, next_link, _) = s.delta_round(&delta_link, &token, "").await;
    assert_eq!(ids(&items), [fresh["id"].as_str().unwrap().to_string()]);
    assert_eq!(
        removed(&items),
        [victim["id"].as_str().unwrap().to_string()]
    );
    let gone = items.iter().find(|i| i.get("@removed").is_some()).unwrap();
    assert_eq!(gone["@removed"]["reason"], "deleted");
    // Moving an event out of the window removes it from the view too.
    patch(
        &s,
        &token,
        &who,
        fresh["id"].as_str().unwrap(),
        json!({"start": at("2026-09-09T09:00:00", "UTC"), "end": at("2026-09-09T09:30:00", "UTC")}),
    )
    .await;
    let (items, _, _) = s.delta_round(&next_link, &token, "").await;
    assert_eq!(removed(&items), [fresh["id"].as_str().unwrap().to_string()]);
    assert!(ids(&items).is_empty());
}

#[tokio::test]
async fn post_with_a_transaction_id_twice_creates_one_event_and_invites_once() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let before = s.mailbox(1)["events"]["count"].as_u64().unwrap();
    let event = json!({
        "subject": "Onboarding",
        "transactionId": "crm-activity-42",
        "start": at("2026-07-21T14:00:00", "Pacific Standard Time"),
        "end": at("2026-07-21T15:00:00", "Pacific Standard Time"),
        "attendees": [attendee("client@globex.example", "required"), attendee(&room(&s), "resource")],
        "location": {"displayName": "the room", "locationEmailAddress": room(&s)},
        "isOnlineMeeting": true,
        "onlineMeetingProvider": "teamsForBusiness",
    });
    let (first_status, first) = post(&s, &token, &who, event.clone()).await;
    let (second_status, second) = post(&s, &token, &who, event).await;
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["transactionId"], "crm-activity-42");
    assert!(first["onlineMeeting"]["joinUrl"]
        .as_str()
        .unwrap()
        .starts_with("https://teams.microsoft.com/"));
    assert_eq!(first["location"]["locationType"], "conferenceRoom");
    assert_eq!(first["location"]["uniqueId"], room(&s).as_str());
    assert_eq!(first["attendees"][1]["type"], "resource");
    assert_eq!(
        s.mailbox(1)["events"]["count"].as_u64().unwrap(),
        before + 1
    );
    let msgs = messages(&s, first["iCalUId"].as_str().unwrap()).await;
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(count(&msgs, "invitation"), 2, "the room is invited too");
}

#[tokio::test]
async fn patch_sends_one_update_per_attendee_and_nothing_for_no_change() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let colleague = upn(&s, 2);
    let (_, event) = post(
        &s,
        &token,
        &who,
        json!({
            "subject": "Plan review",
            "start": at("2026-07-22T09:00:00", "UTC"),
            "end": at("2026-07-22T10:00:00", "UTC"),
            "attendees": [attendee("client@globex.example", "required"), attendee(&colleague, "optional"), attendee(&room(&s), "resource")],
        }),
    )
    .await;
    let id = event["id"].as_str().unwrap();
    let uid = event["iCalUId"].as_str().unwrap();
    assert_eq!(count(&messages(&s, uid).await, "invitation"), 3);
    patch(
        &s,
        &token,
        &who,
        id,
        json!({"start": at("2026-07-22T11:00:00", "UTC"), "end": at("2026-07-22T12:00:00", "UTC")}),
    )
    .await;
    let msgs = messages(&s, uid).await;
    assert_eq!((msgs.len(), count(&msgs, "update")), (6, 3), "{msgs:?}");
    patch(&s, &token, &who, id, json!({"body": {"contentType": "html", "content": "<p>notes</p>"}, "categories": ["Client"]})).await;
    assert_eq!(
        messages(&s, uid).await.len(),
        6,
        "no meaningful change, no message"
    );
    patch(
        &s,
        &token,
        &who,
        id,
        json!({"attendees": [attendee("client@globex.example", "required"), attendee("new@initech.example", "required")]}),
    )
    .await;
    let msgs = messages(&s, uid).await;
    assert_eq!(msgs.len(), 9, "{msgs:?}");
    assert!(msgs.contains(&("invitation".into(), "new@initech.example".into())));
    assert!(msgs.contains(&("cancellation".into(), colleague.clone())));
    assert_eq!(
        count(&msgs, "cancellation"),
        2,
        "the colleague and the room"
    );
}

/// The attendee's copy of the meeting with this iCalUId, found in their calendar view.
async fn copy_of(s: &TestSim, token: &str, attendee: &str, uid: &str) -> Value {
    let url = format!(
        "{}/users/{}/calendarView?startDateTime={}&endDateTime={}&$top=100",
        s.graph,
        enc(attendee),
        WINDOW.0,
        WINDOW.1
    );
    let (status, _, page) = s.get(&url, token, "").await;
    assert_eq!(status, 200, "{page}");
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["iCalUId"] == uid)
        .cloned()
        .expect("a copy")
}

#[tokio::test]
async fn internal_attendee_copy_follows_updates_and_the_organizers_cancellation() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let colleague = upn(&s, 2);
    let (_, event) = post(
        &s,
        &token,
        &who,
        json!({
            "subject": "Team sync",
            "start": at("2026-07-23T09:00:00", "UTC"),
            "end": at("2026-07-23T09:30:00", "UTC"),
            "attendees": [attendee(&colleague, "required"), attendee("client@globex.example", "required")],
        }),
    )
    .await;
    let uid = event["iCalUId"].as_str().unwrap().to_string();
    let c = copy_of(&s, &token, &colleague, &uid).await;
    assert_eq!(c["isOrganizer"], false);
    assert_eq!(c["responseStatus"]["response"], "notResponded");
    assert_eq!(c["organizer"]["emailAddress"]["address"], who.as_str());
    assert_ne!(c["id"], event["id"]);
    patch(
        &s,
        &token,
        &who,
        event["id"].as_str().unwrap(),
        json!({"subject": "Team sync (agenda)"}),
    )
    .await;
    assert_eq!(
        copy_of(&s, &token, &colleague, &uid).await["subject"],
        "Team sync (agenda)"
    );
    delete(&s, &token, &who, event["id"].as_str().unwrap()).await;
    let c = copy_of(&s, &token, &colleague, &uid).await;
    assert_eq!(c["isCancelled"], true);
    let msgs = messages(&s, &uid).await;
    assert_eq!(count(&msgs, "cancellation"), 2, "{msgs:?}");
    assert_eq!(count(&msgs, "update"), 2, "{msgs:?}");
    assert_eq!(count(&msgs, "invitation"), 2, "{msgs:?}");
}

#[tokio::test]
async fn control_api_writes_like_graph() {
    let s = TestSim::start(small()).await;
    let who = upn(&s, 1);
    let created = s
        .ctl(
            Method::POST,
            "events",
            json!({"user": who, "event": {"subject": "via control", "start": at("2026-07-24T09:00:00", "UTC"), "end": at("2026-07-24T10:00:00", "UTC"), "attendees": [attendee("x@globex.example", "required")]}}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    s.ctl(Method::POST, "events/update", json!({"user": who, "id": id, "patch": {"subject": "via control, moved", "start": at("2026-07-24T11:00:00", "UTC"), "end": at("2026-07-24T12:00:00", "UTC")}})).await;
    s.ctl(
        Method::POST,
        "events/delete",
        json!({"user": who, "id": id}),
    )
    .await;
    let log = s.ctl(Method::GET, "invitations", json!({})).await;
    let kinds: Vec<&str> = log["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["event_id"] == id)
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["invitation", "update", "cancellation"]);
}

#[tokio::test]
async fn delta_refuses_query_options_and_unknown_tokens() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let who = upn(&s, 1);
    let url = delta_url(&s, &who, WINDOW);
    let (status, _, body) = s
        .get(&format!("{url}&$filter=subject eq 'x'"), &token, "")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = s.get(&format!("{url}&$select=subject"), &token, "").await;
    assert_eq!(status, 400, "{body}");
    let no_window = format!("{}/users/{}/calendarView/delta()", s.graph, enc(&who));
    let (status, _, body) = s.get(&no_window, &token, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("ErrorInvalidParameter"))
    );
    let (_, delta_link, _) = s.delta_round(&url, &token, "").await;
    let tampered = delta_link.replace("$deltatoken=", "$deltatoken=x");
    let (status, headers, body) = s.get(&tampered, &token, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("SyncStateNotFound"))
    );
    assert!(headers["location"]
        .to_str()
        .unwrap()
        .contains("calendarView/delta"));
    s.ctl(Method::POST, "sync-state/expire", json!({"user": who}))
        .await;
    let (status, headers, _) = s.get(&delta_link, &token, "").await;
    assert_eq!(status, 410);
    // A stale token's Location restarts the same window.
    let restart = headers["location"].to_str().unwrap().to_string();
    assert!(
        restart.contains("startDateTime=2026-07-01T00:00:00Z"),
        "{restart}"
    );
    let (items, _, _) = s.delta_round(&restart, &token, "").await;
    assert_eq!(items.len(), s.delta_round(&url, &token, "").await.0.len());
    let other = upn(&s, 2);
    let foreign = delta_link.replace(
        &s.mailbox(1)["id"].as_str().unwrap().to_string(),
        s.mailbox(2)["id"].as_str().unwrap(),
    );
    let (status, _, _) = s.get(&foreign, &token, "").await;
    assert_eq!(status, 410, "a token of {who} does not work for {other}");
}
