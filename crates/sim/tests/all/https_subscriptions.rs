//! https with the local CA, and change notifications (validation handshake, delivery,
//! lifecycle events, renewal limits).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{small, TestSim};

#[tokio::test]
async fn https_with_the_local_ca_is_trusted_and_kept_across_restarts() {
    let dir = std::env::temp_dir().join(format!("m365sync-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = TestSim::start_with(
        m365sync_sim::Origin::Generated(small()),
        Default::default(),
        Some(dir.clone()),
    )
    .await;
    assert!(s.base.starts_with("https://localhost:"));
    let token = s.token().await;
    let (status, _, _) = s.get(&format!("{}/users", s.graph), &token, "").await;
    assert_eq!(status, 200);
    // By IP address too: the certificate names 127.0.0.1.
    let by_ip = s.graph.replace("localhost", "127.0.0.1");
    assert_eq!(
        s.http
            .get(format!("{by_ip}/users"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Without trusting the CA, a client refuses the connection.
    assert!(reqwest::Client::new()
        .get(format!("{}/users", s.graph))
        .send()
        .await
        .is_err());
    // A restarted simulator reuses the CA, so a client set up once keeps working.
    let ca_before = std::fs::read(s.running.ca_cert.as_ref().unwrap()).unwrap();
    let again = TestSim::start_with(
        m365sync_sim::Origin::Generated(small()),
        Default::default(),
        Some(dir.clone()),
    )
    .await;
    assert_eq!(
        std::fs::read(again.running.ca_cert.as_ref().unwrap()).unwrap(),
        ca_before
    );
    assert_eq!(
        s.http
            .get(format!("{}/users", again.graph))
            .bearer_auth(again.token().await)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A notification endpoint that echoes validation tokens and records notifications.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

async fn receiver(echo_validation: bool) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let query = req.uri().query().unwrap_or("").to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if let Some(token) = query.strip_prefix("validationToken=") {
                            let token =
                                percent_encoding::percent_decode_str(&token.replace('+', " "))
                                    .decode_utf8_lossy()
                                    .into_owned();
                            let answer = if echo_validation {
                                token
                            } else {
                                "nope".to_string()
                            };
                            return Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                Full::new(Bytes::from(answer)),
                            ));
                        }
                        store
                            .lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                        Ok(hyper::Response::builder()
                            .status(202)
                            .body(Full::new(Bytes::new()))
                            .unwrap())
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Receiver {
        url: format!("http://127.0.0.1:{}/notify", addr.port()),
        received,
    }
}

async fn wait_for(received: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if received.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    received.lock().unwrap().clone()
}

#[tokio::test]
async fn subscriptions_validate_then_deliver_changes() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let r = receiver(true).await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let (status, sub) = s
        .send(Method::POST, &format!("{}/subscriptions", s.graph), &token, Some(json!({
            "changeType": "created,deleted", "notificationUrl": r.url, "lifecycleNotificationUrl": r.url,
            "resource": format!("/users/{upn}/mailFolders('inbox')/messages"), "expirationDateTime": expires, "clientState": "secret-state"
        })))
        .await;
    assert_eq!(status, 201, "{sub}");
    let delivered = s
        .ctl(
            Method::POST,
            "deliver",
            json!({"from": "c@acme.example", "to": [upn], "subject": "ping"}),
        )
        .await;
    let id = delivered["messages"][0]["id"].as_str().unwrap();
    let got = wait_for(&r.received, 1).await;
    let n = &got[0]["value"][0];
    assert_eq!(n["changeType"], "created");
    assert_eq!(n["clientState"], "secret-state");
    assert_eq!(n["subscriptionId"], sub["id"]);
    assert_eq!(n["resourceData"]["id"], id);
    // A message in another folder is not this subscription's business; a deletion in the inbox is.
    s.ctl(
        Method::POST,
        "messages/delete",
        json!({"user": upn, "id": id}),
    )
    .await;
    let got = wait_for(&r.received, 2).await;
    assert_eq!(got[1]["value"][0]["changeType"], "deleted");
    s.ctl(
        Method::POST,
        "subscriptions/lifecycle",
        json!({"id": sub["id"], "event": "reauthorizationRequired"}),
    )
    .await;
    let got = wait_for(&r.received, 3).await;
    assert_eq!(
        got[2]["value"][0]["lifecycleEvent"],
        "reauthorizationRequired"
    );
    // Renewal beyond 10,080 minutes is refused; within it works.
    let too_far = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
    let url = format!("{}/subscriptions/{}", s.graph, sub["id"].as_str().unwrap());
    assert_eq!(
        s.send(
            Method::PATCH,
            &url,
            &token,
            Some(json!({"expirationDateTime": too_far}))
        )
        .await
        .0,
        400
    );
    let ok = (chrono::Utc::now() + chrono::Duration::days(6)).to_rfc3339();
    assert_eq!(
        s.send(
            Method::PATCH,
            &url,
            &token,
            Some(json!({"expirationDateTime": ok}))
        )
        .await
        .0,
        200
    );
    assert_eq!(s.send(Method::DELETE, &url, &token, None).await.0, 204);
}

#[tokio::test]
async fn an_endpoint_that_fails_validation_gets_no_subscription() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let r = receiver(false).await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (status, body) = s
        .send(Method::POST, &format!("{}/subscriptions", s.graph), &token, Some(json!({
            "changeType": "created", "notificationUrl": r.url, "resource": format!("/users/{upn}/messages"), "expirationDateTime": expires
        })))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("validation"),
        "{body}"
    );
}

#[tokio::test]
async fn a_short_lifetime_is_granted_as_said_and_reauthorize_keeps_the_subscription() {
    let s = TestSim::start(small()).await;
    let mut protocol = s.sim.protocol();
    protocol.subscription_max_secs = 60;
    s.sim.set_protocol(protocol);
    let token = s.token().await;
    let upn = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let r = receiver(true).await;
    let asked = chrono::Utc::now() + chrono::Duration::days(2);
    let (status, sub) = s
        .send(Method::POST, &format!("{}/subscriptions", s.graph), &token, Some(json!({
            "changeType": "created", "notificationUrl": r.url, "resource": format!("/users/{upn}/messages"),
            "expirationDateTime": asked.to_rfc3339(), "clientState": "x"
        })))
        .await;
    assert_eq!(status, 201, "{sub}");
    // The answer carries the shorter expiry granted, which is what a client renews from.
    let granted: chrono::DateTime<chrono::Utc> =
        sub["expirationDateTime"].as_str().unwrap().parse().unwrap();
    assert!(granted < asked - chrono::Duration::days(1), "{sub}");
    let url = format!("{}/subscriptions/{}", s.graph, sub["id"].as_str().unwrap());
    let (status, renewed) = s
        .send(
            Method::PATCH,
            &url,
            &token,
            Some(json!({"expirationDateTime": asked.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 200);
    let renewed: chrono::DateTime<chrono::Utc> = renewed["expirationDateTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(renewed < asked - chrono::Duration::days(1));
    let (status, _) = s
        .send(Method::POST, &format!("{url}/reauthorize"), &token, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(s.send(Method::GET, &url, &token, None).await.0, 200);
    let (status, _) = s
        .send(
            Method::POST,
            &format!("{}/subscriptions/nope/reauthorize", s.graph),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 404);
}
