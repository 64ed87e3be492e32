//! Outlook throttling (concurrency and budget) and fault injection.

use reqwest::Method;
use serde_json::json;

use crate::client::{enc, small, TestSim};

#[tokio::test]
async fn more_than_four_concurrent_requests_per_mailbox_get_429() {
    let s = TestSim::start(small()).await;
    s.ctl(Method::PUT, "faults", json!({"latency_ms": 300}))
        .await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let url = format!("{}/users/{}/mailFolders/inbox", s.graph, enc(&upn));
    let calls = (0..6).map(|_| {
        let (http, url, token) = (s.http.clone(), url.clone(), token.clone());
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (
                r.status().as_u16(),
                retry,
                r.json::<serde_json::Value>().await.unwrap(),
            )
        })
    });
    let results: Vec<_> = futures_join(calls).await;
    let throttled: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(throttled.len(), 2, "{results:?}");
    assert!(throttled[0].1.is_some());
    assert_eq!(throttled[0].2["error"]["code"], "ApplicationThrottled");
    let stats = s.ctl(Method::GET, "stats", json!({})).await;
    assert_eq!(stats["throttled_concurrency"], 2);
    assert_eq!(stats["violations"], 2);
    // Another mailbox is not affected by this one's limit.
    let other = format!(
        "{}/users/{}/mailFolders/inbox",
        s.graph,
        enc(s.mailbox(2)["upn"].as_str().unwrap())
    );
    assert_eq!(s.get(&other, &token, "").await.0, 200);
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn spending_the_window_budget_gets_429_with_retry_after() {
    let s = TestSim::start(small()).await;
    s.ctl(
        Method::PUT,
        "throttle",
        json!({"window_secs": 60, "limit": 5, "concurrency": 4}),
    )
    .await;
    let token = s.token().await;
    let url = format!(
        "{}/users/{}/mailFolders/inbox",
        s.graph,
        enc(s.mailbox(1)["upn"].as_str().unwrap())
    );
    for _ in 0..5 {
        assert_eq!(s.get(&url, &token, "").await.0, 200);
    }
    let (status, headers, body) = s.get(&url, &token, "").await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(body["error"]["code"], "ApplicationThrottled");
    assert_eq!(
        s.ctl(Method::GET, "stats", json!({})).await["throttled_budget"],
        1
    );
}

#[tokio::test]
async fn injected_faults_follow_their_rates() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let url = format!(
        "{}/users/{}/mailFolders/inbox/messages?$top=1",
        s.graph,
        enc(s.mailbox(1)["upn"].as_str().unwrap())
    );
    s.ctl(Method::PUT, "faults", json!({"rate_503": 1.0})).await;
    let (status, headers, body) = s.get(&url, &token, "").await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    s.ctl(Method::PUT, "faults", json!({"rate_504": 1.0})).await;
    assert_eq!(s.get(&url, &token, "").await.0, 504);
    s.ctl(Method::PUT, "faults", json!({"rate_malformed": 1.0}))
        .await;
    let text = s
        .http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "the body is cut short"
    );
    s.ctl(Method::PUT, "faults", json!({"rate_reset": 1.0}))
        .await;
    assert!(
        s.http.get(&url).bearer_auth(&token).send().await.is_err(),
        "the connection is dropped"
    );
    s.ctl(Method::PUT, "faults", json!({"rate_429": 0.3, "seed": 9}))
        .await;
    let mut throttled = 0;
    for _ in 0..200 {
        if s.get(&url, &token, "").await.0 == 429 {
            throttled += 1;
        }
    }
    assert!(
        (30..=90).contains(&throttled),
        "about 30% of 200: {throttled}"
    );
    let stats = s.ctl(Method::GET, "stats", json!({})).await;
    assert_eq!(stats["injected_429"], throttled);
    assert_eq!(
        stats["violations"], 0,
        "injected 429s are not the client's violations"
    );
    let bad = s
        .http
        .put(format!("{}/_sim/faults", s.base))
        .json(&json!({"rate_503": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn batch_sub_requests_are_throttled_one_by_one() {
    let s = TestSim::start(small()).await;
    s.ctl(
        Method::PUT,
        "throttle",
        json!({"window_secs": 60, "limit": 3, "concurrency": 4}),
    )
    .await;
    let token = s.token().await;
    let upn = enc(s.mailbox(1)["upn"].as_str().unwrap());
    let requests: Vec<_> = (0..5).map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{upn}/mailFolders/inbox")})).collect();
    let (status, answer) = s
        .send(
            Method::POST,
            &format!("{}/$batch", s.graph),
            &token,
            Some(json!({"requests": requests})),
        )
        .await;
    assert_eq!(status, 200, "a 429 sits inside a 200");
    let statuses: Vec<u64> = answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    let throttled = answer["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == 429)
        .unwrap();
    assert!(throttled["headers"]["retry-after"].is_string());
}
