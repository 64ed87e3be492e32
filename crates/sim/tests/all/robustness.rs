//! A handler that panics answers 500 and leaves the simulator serving; a calendarView delta
//! round with nothing to report (the bug that once poisoned the world lock) answers 200.

use reqwest::Method;
use serde_json::json;

use crate::client::{enc, small, TestSim};

#[tokio::test]
async fn calendar_delta_round_with_no_changes_is_empty_not_a_panic() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let url = format!(
        "{}/users/{}/calendarView/delta?startDateTime=2026-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z",
        s.graph,
        enc(&upn)
    );
    let (_, link, _) = s.delta_round(&url, &token, "odata.maxpagesize=50").await;
    let event = json!({"user": upn, "event": {"subject": "Logged",
        "start": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-03-02T11:00:00", "timeZone": "UTC"}}});
    s.ctl(Method::POST, "events", event).await;
    let (items, link, _) = s.delta_round(&link, &token, "").await;
    assert_eq!(items.len(), 1, "{items:?}");
    // Nothing changes in the world between these rounds: not even a token request.
    let (items, link, _) = s.delta_round(&link, &token, "").await;
    assert!(items.is_empty(), "{items:?}");
    let (items, _, _) = s.delta_round(&link, &token, "").await;
    assert!(items.is_empty(), "{items:?}");
    // A window that ends before it starts is Graph's 400, never a panic.
    let bad = format!(
        "{}/users/{}/calendarView?startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-01-01T00:00:00Z",
        s.graph,
        enc(&upn)
    );
    let (status, _, body) = s.get(&bad, &token, "").await;
    assert_eq!(status, 400, "{body}");
    let ok = s.ctl(Method::GET, "health", json!({})).await;
    assert_eq!(ok["ok"], true);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_next_request_is_served() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let resp = s
        .http
        .post(format!("{}/_sim/panic", s.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InternalServerError", "{body}");
    // The world lock was held by the panicking handler: it must not stay poisoned.
    assert!(!s.sim.world.is_poisoned());
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let (status, _, page) = s
        .get(
            &format!(
                "{}/users/{}/mailFolders/inbox/messages?$top=1",
                s.graph,
                enc(&upn)
            ),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let delivered = s
        .ctl(
            Method::POST,
            "deliver",
            json!({"from": "x@ext.example", "to": [upn], "subject": "after the panic"}),
        )
        .await;
    assert_eq!(delivered["messages"].as_array().unwrap().len(), 1);
}
