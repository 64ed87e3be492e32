//! Change notifications driving the sync (issue 17), with real `serve` processes against the
//! simulator: the receiver answers Graph's validation handshake; a message delivered is stored
//! within seconds although the cadence is a week; subscriptions are renewed before they lapse
//! (the simulator grants short lifetimes); each lifecycle event is answered; a forged
//! notification changes nothing; notifications turned off delete the subscriptions; on
//! PostgreSQL, a POST received by a process without workers is worked by another process.
//!
//! Every test but the two-process one runs on SQLite and PostgreSQL.
//!
//! Deadlines here are generous bounds on "it happened", never measurements: the latency
//! figures are the bench harness's (BENCHMARKS.md).

use std::time::Duration;

use m365sync_sim::generate::GenerateOptions;
use m365sync_store::tenants::{Tenant, TenantSettings};
use reqwest::Method;
use serde_json::{json, Value};

use crate::service::{wait_for, write_config, Scratch, Serve, TOKEN};
use crate::support::{TestDb, TestSim};
use crate::sync_email::declare_with;

/// A small simulator: two people with a few messages each.
async fn small_sim() -> TestSim {
    TestSim::start(GenerateOptions {
        users: 2,
        shared: 0,
        messages: 6,
        events: 2,
        ..GenerateOptions::default()
    })
    .await
}

/// The tenant declared with a weekly cadence: after the first run, only notifications (or a
/// week) sync it.
async fn declare_weekly(db: &TestDb, s: &TestSim) -> Tenant {
    let settings = TenantSettings {
        cadence_minutes: 10_080,
        internal_domains: vec!["contoso.example".into()],
        commencement_ms: Some(
            (chrono::Utc::now() - chrono::Duration::days(400)).timestamp_millis(),
        ),
        ..TenantSettings::default()
    };
    let (t, _) = declare_with(&db.store, s, &settings).await;
    db.store.activate_tenant(t.id).await.unwrap();
    t
}

fn upns(s: &TestSim) -> Vec<String> {
    s.truth()["tenants"][0]["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["upn"].as_str().unwrap().to_string())
        .collect()
}

async fn stored_with_subject(db: &TestDb, subject: &str) -> i64 {
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM emails WHERE subject = $1")
        .bind(subject)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Waits until every mailbox has an active mail subscription and no mailbox owes work (the
/// first run and the look that follows each new subscription are done).
async fn settled(db: &TestDb, t: &Tenant, mailboxes: usize) {
    wait_for(90, "active subscriptions and no work owed", || async {
        let subs = db.store.tenant_subscriptions(t.id).await.unwrap();
        let active = subs
            .iter()
            .filter(|s| s.resource.as_str() == "mail" && s.status == "active")
            .count();
        active == mailboxes && db.store.pending_count().await.unwrap() == 0
    })
    .await;
}

async fn deliver(s: &TestSim, to: &str, subject: &str) {
    s.ctl(
        Method::POST,
        "deliver",
        json!({"from": "pat@client.example", "to": [to], "subject": subject}),
    )
    .await;
}

async fn sim_subscriptions(s: &TestSim) -> Vec<Value> {
    let resp = s
        .http
        .get(format!("{}/_sim/subscriptions", s.base))
        .send()
        .await
        .unwrap();
    resp.json::<Value>().await.unwrap()["value"]
        .as_array()
        .unwrap()
        .clone()
}

async fn metric(serve: &Serve, name: &str) -> f64 {
    let (_, text) = serve.api(Method::GET, "/metrics", Some(TOKEN)).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Starts one `serve` on `db` whose subscriptions point at its own listener.
fn serve_loopback(dir: &Scratch, db: &TestDb, extra: &[&str]) -> Serve {
    let cfg = write_config(&dir.0, db);
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--notification-url",
        "loopback",
    ];
    args.extend_from_slice(extra);
    Serve::start(&args, &dir.0.join("ready"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_answers_the_validation_handshake_with_the_token() {
    let db = TestDb::sqlite().await;
    let dir = Scratch::new("notify-handshake");
    let serve = serve_loopback(&dir, &db, &[]);
    let http = reqwest::Client::new();
    for path in ["/notifications", "/notifications/lifecycle"] {
        let token = "Validation: Testing client application reachability 42+x";
        let resp = http
            .post(format!("{}{path}", serve.admin))
            .query(&[("validationToken", token)])
            .header("content-type", "text/plain; charset=utf-8")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(resp.text().await.unwrap(), token, "{path}");
    }
    // Without a token and without JSON: refused, and counted.
    let resp = http
        .post(format!("{}/notifications", serve.admin))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        metric(&serve, "m365sync_notifications_rejected_total").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_message_is_stored_within_seconds_though_the_cadence_is_a_week() {
    for db in TestDb::both().await {
        let s = small_sim().await;
        let t = declare_weekly(&db, &s).await;
        let dir = Scratch::new(&format!("notify-deliver-{:?}", db.store.backend()));
        let serve = serve_loopback(&dir, &db, &[]);
        let upns = upns(&s);
        settled(&db, &t, upns.len()).await;
        // Events subscriptions for the people's primary mailboxes (Sync Events is on).
        let subs = db.store.tenant_subscriptions(t.id).await.unwrap();
        assert!(
            subs.iter().any(|s| s.resource.as_str() == "events"),
            "{subs:?}"
        );
        let before_runs = db.store.runs(t.id, 100).await.unwrap().len();
        // A burst for one mailbox: every message is stored.
        for i in 0..5 {
            deliver(&s, &upns[0], &format!("burst {i}")).await;
        }
        deliver(&s, &upns[1], "hello from a client").await;
        wait_for(60, "the delivered messages stored", || async {
            stored_with_subject(&db, "hello from a client").await == 1
                && stored_with_subject(&db, "burst 4").await == 1
        })
        .await;
        for i in 0..5 {
            assert_eq!(stored_with_subject(&db, &format!("burst {i}")).await, 1);
        }
        // Notification rounds did it: the weekly cadence started no run since.
        let runs = db.store.runs(t.id, 100).await.unwrap();
        let new: Vec<_> = runs.iter().take(runs.len() - before_runs).collect();
        assert!(!new.is_empty());
        assert!(
            new.iter().all(|r| r.trigger_kind == "notification"),
            "{new:?}"
        );
        // Visible: counted, and with each mailbox's subscription.
        assert!(metric(&serve, "m365sync_notifications_received_total").await >= 2.0);
        assert!(metric(&serve, "m365sync_notification_lag_seconds_count").await >= 1.0);
        let (status, body) = serve
            .api(
                Method::GET,
                &format!("/api/tenants/acme/main/mailboxes/{}/subscriptions", upns[1]),
                Some(TOKEN),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let listed: Value = serde_json::from_str(&body).unwrap();
        let mail = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["resource"] == "mail")
            .unwrap();
        assert!(mail["notifications"].as_i64().unwrap() >= 1, "{mail}");
        assert!(mail["last_notification_ms"].is_i64(), "{mail}");
        assert!(!body.contains("client_state"), "{body}");
        drop(serve);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_renewed_before_they_lapse() {
    for db in TestDb::both().await {
        let s = small_sim().await;
        let mut protocol = s.sim.protocol();
        protocol.subscription_max_secs = 12;
        s.sim.set_protocol(protocol);
        let t = declare_weekly(&db, &s).await;
        let dir = Scratch::new(&format!("notify-renew-{:?}", db.store.backend()));
        let serve = serve_loopback(&dir, &db, &[]);
        let upns = upns(&s);
        settled(&db, &t, upns.len()).await;
        let first = sim_subscriptions(&s).await;
        let first_expiry: chrono::DateTime<chrono::Utc> = first[0]["expirationDateTime"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Past the first expiry the simulator's subscriptions are still alive: renewed.
        wait_for(60, "the first expiry to pass", || async {
            chrono::Utc::now() > first_expiry + chrono::Duration::seconds(2)
        })
        .await;
        let now = sim_subscriptions(&s).await;
        assert_eq!(now.len(), first.len());
        for sub in &now {
            let expiry: chrono::DateTime<chrono::Utc> =
                sub["expirationDateTime"].as_str().unwrap().parse().unwrap();
            assert!(expiry > chrono::Utc::now(), "lapsed: {sub}");
        }
        let subs = db.store.tenant_subscriptions(t.id).await.unwrap();
        assert!(
            subs.iter()
                .all(|s| s.renewed_ms.unwrap() > s.created_ms && s.status == "active"),
            "{subs:?}"
        );
        // And the renewed subscriptions still deliver.
        deliver(&s, &upns[0], "after renewal").await;
        wait_for(60, "the message after renewal stored", || async {
            stored_with_subject(&db, "after renewal").await == 1
        })
        .await;
        drop(serve);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_lifecycle_event_is_answered_and_turning_notifications_off_deletes_them() {
    for db in TestDb::both().await {
        let s = small_sim().await;
        let t = declare_weekly(&db, &s).await;
        let dir = Scratch::new(&format!("notify-lifecycle-{:?}", db.store.backend()));
        let serve = serve_loopback(&dir, &db, &[]);
        let upns = upns(&s);
        settled(&db, &t, upns.len()).await;
        let mailbox = db
            .store
            .mailbox_by_address(t.id, &upns[0])
            .await
            .unwrap()
            .unwrap();
        let mail_sub = || async {
            db.store
                .mailbox_subscriptions(mailbox.id)
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.resource.as_str() == "mail")
                .unwrap()
        };
        let sub = mail_sub().await;
        let graph_id = sub.graph_id.clone().unwrap();
        let lifecycle = |id: String, event: &'static str| {
            let s = &s;
            async move {
                s.ctl(
                    Method::POST,
                    "subscriptions/lifecycle",
                    json!({"id": id, "event": event}),
                )
                .await;
            }
        };

        // reauthorizationRequired: reauthorized, recorded, nothing left to do.
        lifecycle(graph_id.clone(), "reauthorizationRequired").await;
        wait_for(30, "the reauthorization", || async {
            let s = mail_sub().await;
            s.last_lifecycle.as_deref() == Some("reauthorizationRequired")
                && s.pending_action.is_none()
                && s.renewed_ms > sub.renewed_ms
        })
        .await;

        // missed: a delta round of the mailbox.
        let notification_runs = || async {
            db.store
                .runs(t.id, 100)
                .await
                .unwrap()
                .iter()
                .filter(|r| r.trigger_kind == "notification" && r.finished_ms.is_some())
                .count()
        };
        let before = notification_runs().await;
        lifecycle(graph_id.clone(), "missed").await;
        wait_for(30, "a round after missed", || async {
            notification_runs().await > before
        })
        .await;
        assert_eq!(mail_sub().await.last_lifecycle.as_deref(), Some("missed"));

        // subscriptionRemoved: created again (a new Graph id), then notifications flow again.
        lifecycle(graph_id.clone(), "subscriptionRemoved").await;
        wait_for(30, "the subscription recreated", || async {
            let s = mail_sub().await;
            s.status == "active" && s.graph_id.as_deref().is_some_and(|g| g != graph_id)
        })
        .await;
        let recreated = mail_sub().await.graph_id.unwrap();
        assert!(sim_subscriptions(&s)
            .await
            .iter()
            .any(|s| s["id"] == recreated.as_str()));
        assert_eq!(mail_sub().await.lifecycle_events, 3);
        deliver(&s, &upns[0], "after recreation").await;
        wait_for(60, "the message after recreation stored", || async {
            stored_with_subject(&db, "after recreation").await == 1
        })
        .await;
        assert_eq!(
            metric(&serve, "m365sync_notification_lifecycle_events_total").await,
            3.0
        );

        // Notifications turned off: every subscription is deleted, at Graph and here.
        let mut settings = db.store.settings(t.id).await.unwrap();
        settings.notifications = false;
        db.store.set_settings(t.id, &settings).await.unwrap();
        wait_for(30, "the subscriptions deleted", || async {
            sim_subscriptions(&s).await.is_empty()
                && db
                    .store
                    .tenant_subscriptions(t.id)
                    .await
                    .unwrap()
                    .is_empty()
        })
        .await;
        drop(serve);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_notification_changes_nothing() {
    for db in TestDb::both().await {
        let s = small_sim().await;
        let t = declare_weekly(&db, &s).await;
        let dir = Scratch::new(&format!("notify-forged-{:?}", db.store.backend()));
        let serve = serve_loopback(&dir, &db, &[]);
        let upns = upns(&s);
        settled(&db, &t, upns.len()).await;
        // Creating the subscriptions asks each mailbox for one look round (`request_look`):
        // wait for those to be over, so a mark seen below can only be the forgeries'.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let marked = || {
            let pool = pool.clone();
            async move {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM mailboxes WHERE notified_ms IS NOT NULL OR woken_ms IS NOT NULL",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                n
            }
        };
        wait_for(60, "the subscriptions' look rounds to end", || async {
            marked().await == 0 && db.store.pending_count().await.unwrap() == 0
        })
        .await;
        let runs_before = db.store.runs(t.id, 100).await.unwrap().len();
        let subs_before = db.store.tenant_subscriptions(t.id).await.unwrap();
        let real = subs_before[0].graph_id.clone().unwrap();
        let http = reqwest::Client::new();
        // The right client state under another Microsoft tenant's id is refused too.
        let secret = db
            .store
            .subscription_by_graph_id(&real)
            .await
            .unwrap()
            .unwrap()
            .client_state;
        let other_tenant = "11111111-1111-1111-1111-111111111111";
        assert_ne!(s.tenant_id, other_tenant);
        for (subscription, client_state, tenant) in [
            (real.as_str(), "not-the-secret", s.tenant_id.as_str()),
            (real.as_str(), "", s.tenant_id.as_str()),
            (
                "00000000-0000-0000-0000-000000000000",
                "whatever",
                s.tenant_id.as_str(),
            ),
            (real.as_str(), secret.as_str(), other_tenant),
        ] {
            let body = json!({"value": [{
                "subscriptionId": subscription,
                "clientState": client_state,
                "changeType": "created",
                "resource": format!("Users/{}/Messages/forged", upns[0]),
                "tenantId": tenant,
                "resourceData": {"id": "forged"}
            }]});
            for path in ["/notifications", "/notifications/lifecycle"] {
                let resp = http
                    .post(format!("{}{path}", serve.admin))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202);
            }
        }
        assert_eq!(
            metric(&serve, "m365sync_notifications_rejected_total").await,
            8.0
        );
        assert_eq!(
            metric(&serve, "m365sync_notifications_received_total").await,
            0.0
        );
        // Nothing recorded, no mailbox marked, no round started.
        assert_eq!(
            db.store.tenant_subscriptions(t.id).await.unwrap(),
            subs_before
        );
        assert_eq!(marked().await, 0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(db.store.runs(t.id, 100).await.unwrap().len(), runs_before);
        // The log names no client state.
        assert!(!serve.log().contains("not-the-secret"));
        assert!(!serve.log().contains(&secret));
        drop(serve);
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_process_receiving_the_post_wakes_another_to_work() {
    let db = TestDb::postgres().await;
    let s = small_sim().await;
    let t = declare_weekly(&db, &s).await;
    let dir = Scratch::new("notify-two");
    let cfg = write_config(&dir.0, &db);
    // The receiver's address is fixed before it starts: both processes subscribe with it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://{listen}/notifications");
    // Long polls: only the wake explains work picked up within seconds.
    let receiver = Serve::start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--admin-listen",
            &listen,
            "--notification-url",
            &url,
            "--workers",
            "0",
            "--poll-secs",
            "60",
        ],
        &dir.0.join("ready-receiver"),
    );
    let worker = Serve::start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--notification-url",
            &url,
            "--workers",
            "2",
            "--poll-secs",
            "60",
        ],
        &dir.0.join("ready-worker"),
    );
    let upns = upns(&s);
    settled(&db, &t, upns.len()).await;
    deliver(&s, &upns[1], "received by one, stored by the other").await;
    wait_for(
        45,
        "the message stored by the process with workers",
        || async { stored_with_subject(&db, "received by one, stored by the other").await == 1 },
    )
    .await;
    assert!(metric(&receiver, "m365sync_notifications_received_total").await >= 1.0);
    assert_eq!(
        metric(&worker, "m365sync_notifications_received_total").await,
        0.0
    );
    assert!(worker.log().contains("mailbox claimed"), "{}", worker.log());
    assert!(!receiver.log().contains("mailbox claimed"));
    drop(receiver);
    drop(worker);
    db.drop_db().await;
}

/// A notification URL Graph cannot reach (nothing listens there, so the validation handshake
/// fails and Graph refuses the subscription): the mail is still synced by polling, the
/// subscriptions say `failing` with Graph's reason, and `mailbox list` says beside a healthy
/// mailbox that it is polled at the cadence, and why: healthy is not "captured in seconds".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_notification_url_leaves_the_mailbox_polled_and_says_so() {
    for db in TestDb::both().await {
        let s = small_sim().await;
        let t = declare_weekly(&db, &s).await;
        let dir = Scratch::new(&format!("notify-unreachable-{:?}", db.store.backend()));
        let cfg = write_config(&dir.0, &db);
        // Port 9 (discard) on loopback: nothing listens.
        let serve = Serve::start(
            &[
                "--config",
                cfg.to_str().unwrap(),
                "--notification-url",
                "http://127.0.0.1:9/notifications",
            ],
            &dir.0.join("ready"),
        );
        let upns = upns(&s);
        wait_for(
            90,
            "every mail subscription failing and the first run done",
            || async {
                let subs = db.store.tenant_subscriptions(t.id).await.unwrap();
                let failing = subs
                    .iter()
                    .filter(|s| s.resource.as_str() == "mail" && s.status == "failing")
                    .count();
                failing == upns.len()
                    && db.store.pending_count().await.unwrap() == 0
                    && !db.store.runs(t.id, 10).await.unwrap().is_empty()
            },
        )
        .await;
        let subs = db.store.tenant_subscriptions(t.id).await.unwrap();
        assert!(
            subs.iter()
                .all(|s| s.status != "failing" || s.detail.is_some()),
            "{subs:?}"
        );
        // The mail came in by the run all the same.
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let (emails,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM emails")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        assert!(emails > 0, "no email stored by the run");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
            .args(["--config", cfg.to_str().unwrap()])
            .args(["mailbox", "list", "--org", "acme", "--tenant", "main"])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{table}");
        for upn in &upns {
            let line = table
                .lines()
                .find(|l| l.starts_with(upn.as_str()))
                .unwrap_or_else(|| panic!("{upn} not listed:\n{table}"));
            assert!(line.contains("mail:failing"), "{line}");
            assert!(
                line.contains("mail notifications failing, polled at the cadence: ")
                    && line.contains("Subscription validation request failed"),
                "{line}"
            );
        }
        drop(serve);
        db.drop_db().await;
    }
}

/// The service's notification URL changes (it moved behind another address): at its next
/// start the subscriptions Graph holds for the old URL are deleted there and made again for
/// the new one, so Graph stops posting where nobody listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_notification_url_makes_the_subscriptions_again_for_the_new_one() {
    let db = TestDb::sqlite().await;
    let s = small_sim().await;
    let t = declare_weekly(&db, &s).await;
    let upns = upns(&s);
    let dir = Scratch::new("notify-url-change");
    let first = serve_loopback(&dir, &db, &[]);
    settled(&db, &t, upns.len()).await;
    let old_url = format!("{}/notifications", first.admin);
    let before = db.store.tenant_subscriptions(t.id).await.unwrap();
    assert!(before
        .iter()
        .all(|s| s.notification_url.as_deref() == Some(old_url.as_str())));
    drop(first);
    // The same database, another listener (a free port of its own): another URL.
    let second = serve_loopback(&dir, &db, &[]);
    let new_url = format!("{}/notifications", second.admin);
    assert_ne!(old_url, new_url);
    wait_for(
        90,
        "every subscription made again for the new URL",
        || async {
            let subs = db.store.tenant_subscriptions(t.id).await.unwrap();
            subs.len() == before.len()
                && subs.iter().all(|s| {
                    s.status == "active" && s.notification_url.as_deref() == Some(new_url.as_str())
                })
        },
    )
    .await;
    // Graph holds none for the old URL any more.
    let at_graph = sim_subscriptions(&s).await;
    assert!(
        at_graph
            .iter()
            .all(|g| g["notificationUrl"] == Value::String(new_url.clone())),
        "{at_graph:?}"
    );
    assert_eq!(at_graph.len(), before.len());
    drop(second);
    db.drop_db().await;
}
