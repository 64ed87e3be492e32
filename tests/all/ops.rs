//! Running it for real: OpenTelemetry traces reaching a collector (an OTLP/HTTP receiver this
//! test starts on loopback), the ids of a failed Graph request in the stored run log, and
//! errors that say once what failed and what to do (a database that cannot be opened, an
//! expired client secret). The `m365sync` binary runs against the simulator, on SQLite and
//! PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{Duration, Utc};
use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use reqwest::Method;
use serde_json::json;

use m365sync_sim::generate::GenerateOptions;
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::tenants::TenantSettings;

use crate::admin_support::Admin;
use crate::support::{TestDb, TestSim};
use crate::sync_email::declare_with;

/// One person with a little mail: enough for a few pages and plugin calls.
fn one_person() -> GenerateOptions {
    GenerateOptions {
        users: 1,
        shared: 0,
        messages: 25,
        events: 0,
        ..GenerateOptions::default()
    }
}

fn settings() -> TenantSettings {
    TenantSettings {
        commencement_ms: Some((Utc::now() - Duration::days(400)).timestamp_millis()),
        page_size: 10,
        ..TenantSettings::default()
    }
}

/// An OTLP/HTTP collector on a free loopback port: keeps the body of every
/// `POST /v1/traces`, answers 200 with an empty export response.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let kept = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            let traces = req.method() == hyper::Method::POST
                                && req.uri().path() == "/v1/traces";
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            if traces {
                                kept.lock().unwrap().push(body);
                            }
                            hyper::Response::builder()
                                .status(if traces { 200 } else { 404 })
                                .header("content-type", "application/x-protobuf")
                                .body(http_body_util::Full::new(Bytes::new()))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), got)
}

/// A span's attributes as text (numbers written out).
fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

/// A `sync run` with `otlp_endpoint` set sends a trace of the work: a span per mailbox sync
/// (tenant, mailbox), per Graph request (method, route template, status, both request ids),
/// per page commit (folder, records) and per plugin call (slot, plugin, version), the requests
/// and commits inside their mailbox's trace, and nothing secret: no client secret, token,
/// delta token or raw URL. A mailbox Graph does not know fails, and its stored log line names
/// the failed request's `request-id` and `client-request-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_run_sends_its_spans_over_otlp_and_logs_request_ids_with_a_failure() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let a = Admin::new(db).await;
        let (t, _) = declare_with(&a.store, &s, &settings()).await;
        let ghost = "nobody@contoso.example";
        a.store
            .upsert_mailbox(&NewMailbox {
                tenant_id: t.id,
                graph_id: ghost.into(),
                address: ghost.into(),
                display_name: ghost.into(),
                kind: MailboxKind::Person,
            })
            .await
            .unwrap();
        let upn = s.mailbox(0)["upn"].as_str().unwrap().to_string();
        let (endpoint, got) = otlp_receiver().await;
        let before = s.ctl(Method::GET, "stats", json!({})).await;
        let run = a
            .run_env(
                &["sync", "run", "--org", "acme", "--tenant", "main"],
                &[
                    ("M365SYNC_OTLP_ENDPOINT", &endpoint),
                    ("M365SYNC_OTLP_SERVICE_NAME", "m365sync-test"),
                ],
            )
            .await;
        assert_eq!(
            run.code,
            Some(3),
            "partly done: the ghost fails\n{}",
            run.all()
        );
        let after = s.ctl(Method::GET, "stats", json!({})).await;
        assert!(
            after["graph_requests"].as_u64() > before["graph_requests"].as_u64(),
            "{after}"
        );
        assert_eq!(
            after["missing_client_request_id"], before["missing_client_request_id"],
            "every Graph and token request carried a client-request-id"
        );

        let bodies = got.lock().unwrap().clone();
        assert!(
            !bodies.is_empty(),
            "no trace reached the collector\n{}",
            run.all()
        );
        for body in &bodies {
            let text = String::from_utf8_lossy(body);
            for secret in [
                s.secret.as_str(),
                "Bearer",
                "eyJ",
                "deltatoken",
                "skiptoken",
                "$filter",
                &a.db.key_base64,
            ] {
                assert!(!text.contains(secret), "{secret:?} in an exported span");
            }
        }
        let mut spans = Vec::new();
        for body in &bodies {
            let req = ExportTraceServiceRequest::decode(body.clone()).unwrap();
            for rs in req.resource_spans {
                let resource = rs.resource.as_ref().map(|r| {
                    r.attributes
                        .iter()
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.clone())
                });
                assert_eq!(
                    resource.flatten().and_then(|v| v.value),
                    Some(AnyValue::StringValue("m365sync-test".into()))
                );
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
        }
        let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();

        let mailbox_spans = named("mailbox sync");
        let synced = mailbox_spans
            .iter()
            .find(|s| attributes(s).get("mailbox") == Some(&upn))
            .unwrap_or_else(|| panic!("no mailbox sync span for {upn}: {mailbox_spans:?}"));
        assert_eq!(
            attributes(synced).get("tenant").map(String::as_str),
            Some("main")
        );

        let requests: Vec<&Span> = spans
            .iter()
            .filter(|s| attributes(s).contains_key("url.template"))
            .collect();
        assert!(
            requests.len() >= 3,
            "{} Graph request spans",
            requests.len()
        );
        for r in &requests {
            let at = attributes(r);
            let template = &at["url.template"];
            assert!(
                template.starts_with("/v1.0/")
                    && !template.contains('@')
                    && !template.contains('?'),
                "{template}"
            );
            assert_eq!(r.name, format!("{} {template}", at["http.request.method"]));
            assert!(is_uuid(&at["client-request-id"]), "{at:?}");
            assert!(at.contains_key("http.response.status_code"), "{at:?}");
            assert!(!at["request-id"].is_empty(), "{at:?}");
        }
        assert!(
            requests.iter().any(|r| attributes(r)["url.template"]
                == "/v1.0/users/{id}/mailFolders/{id}/messages/delta"
                && attributes(r)["http.response.status_code"] == "200"),
            "a delta page request: {:?}",
            requests
                .iter()
                .map(|r| attributes(r)["url.template"].clone())
                .collect::<Vec<_>>()
        );
        assert!(
            requests
                .iter()
                .any(|r| attributes(r)["http.response.status_code"] == "404"),
            "the ghost's request failed with 404"
        );
        assert!(
            requests.iter().any(|r| r.trace_id == synced.trace_id),
            "Graph requests belong to their mailbox's trace"
        );

        let commits = named("page commit");
        assert!(!commits.is_empty(), "no page commit span");
        assert!(commits.iter().all(|c| c.trace_id != Vec::<u8>::new()));
        let stored: i64 = commits
            .iter()
            .map(|c| attributes(c)["records"].parse::<i64>().unwrap())
            .sum();
        assert!(stored > 0, "the commits stored records");
        assert!(commits.iter().any(|c| c.trace_id == synced.trace_id));
        assert!(commits.iter().all(|c| attributes(c).contains_key("folder")));

        let calls = named("plugin call");
        assert!(!calls.is_empty(), "no plugin call span");
        let slots: Vec<String> = calls
            .iter()
            .map(|c| attributes(c)["slot"].clone())
            .collect();
        assert!(slots.iter().any(|s| s == "exclusion"), "{slots:?}");
        assert!(slots.iter().any(|s| s == "mapping"), "{slots:?}");
        for c in &calls {
            let at = attributes(c);
            assert!(
                !at["plugin"].is_empty() && !at["version"].is_empty(),
                "{at:?}"
            );
        }

        // The ghost's failure, as stored in the run log, names the request for a support case.
        let logs = a
            .run(&["logs", "--org", "acme", "--tenant", "main", "--errors-only"])
            .await;
        assert!(logs.ok, "{}", logs.all());
        let line = logs
            .stdout
            .lines()
            .find(|l| l.contains(ghost))
            .unwrap_or_else(|| panic!("no log line for the ghost: {}", logs.all()));
        assert!(
            line.contains("request-id ") && line.contains("client-request-id "),
            "{line}"
        );
        let cid = line
            .split("client-request-id ")
            .nth(1)
            .unwrap()
            .chars()
            .take(36)
            .collect::<String>();
        assert!(is_uuid(&cid), "{line}");
        assert!(
            requests
                .iter()
                .any(|r| attributes(r)["client-request-id"] == cid),
            "the logged client-request-id is a traced request's"
        );
        a.finish().await;
    }
}

/// Without `otlp_endpoint` nothing is sent, and a malformed one is refused with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_otlp_endpoint_is_refused_with_the_fix() {
    let a = Admin::new(TestDb::sqlite().await).await;
    let r = a
        .run_env(
            &["tenant", "list"],
            &[("M365SYNC_OTLP_ENDPOINT", "127.0.0.1:4318")],
        )
        .await;
    assert!(!r.ok);
    assert!(
        r.stderr.contains("otlp_endpoint '127.0.0.1:4318'")
            && r.stderr.contains("http://127.0.0.1:4318"),
        "{}",
        r.all()
    );
    a.finish().await;
}

/// A database that cannot be opened is one line: which database (no password), what failed,
/// what to do; SQLite's own message is not repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_opened_is_said_once_with_what_to_do() {
    let dir = std::env::temp_dir().join(format!("m365sync-dbopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = m365sync_store::SecretKey::generate().to_base64();
    let run = |url: String| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365sync"))
            .args(["tenant", "list"])
            .current_dir(&dir)
            .env("M365SYNC_DATABASE_URL", &url)
            .env("M365SYNC_SECRET_KEY", &key)
            .env("M365SYNC_LOG", "warn")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = dir.join("no-such-dir").join("m365sync.db");
    let err = run(format!("sqlite://{}", missing.display()));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot open database sqlite://{}",
            missing.display()
        )) && err.contains(&format!(
            "directory {} does not exist",
            dir.join("no-such-dir").display()
        )) && err.contains("create it")
            && err.contains("database_url"),
        "{err}"
    );
    let is_dir = run(format!("sqlite://{}", dir.display()));
    assert!(
        is_dir.contains("is a directory") && is_dir.contains("database_url"),
        "{is_dir}"
    );
    let pg = std::env::var("M365SYNC_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (server, _) = pg.rsplit_once('/').unwrap();
    let (scheme, rest) = server.split_once("://").unwrap();
    let user = rest.split('@').next().unwrap().split(':').next().unwrap();
    let host = rest.rsplit('@').next().unwrap();
    let url = format!(
        "{scheme}://{user}:hunter2pw@{host}/m365sync_no_such_db_{}",
        std::process::id()
    );
    let err = run(url);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("does not exist") && err.contains("createdb") && err.contains(":***@"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2pw"),
        "the password is never shown: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client secret past its end date is told apart from a wrong one, with the fix (a new
/// secret in Entra, then `m365sync tenant secret add`): in a sync run's output and stored log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_secret_is_not_called_wrong() {
    for db in TestDb::both().await {
        let s = TestSim::start(one_person()).await;
        let a = Admin::new(db).await;
        declare_with(&a.store, &s, &settings()).await;
        s.ctl(
            Method::POST,
            "secrets/expire",
            json!({"tenant": s.tenant_id, "client_id": s.client_id, "secret": s.secret}),
        )
        .await;
        let run = a
            .run(&["sync", "run", "--org", "acme", "--tenant", "main"])
            .await;
        assert!(!run.ok);
        let out = run.all();
        assert!(
            out.contains("tenant acme/main: the client secret has expired (AADSTS7000222)")
                && out.contains("create a new one in Entra")
                && out.contains("m365sync tenant secret add --org ORG --tenant TENANT"),
            "{out}"
        );
        assert!(!out.contains("wrong"), "{out}");
        assert!(!out.contains(&s.secret), "{out}");
        let logs = a
            .run(&["logs", "--org", "acme", "--tenant", "main", "--errors-only"])
            .await;
        assert!(!logs.stdout.contains("is wrong"), "{}", logs.all());
        a.finish().await;
    }
}
