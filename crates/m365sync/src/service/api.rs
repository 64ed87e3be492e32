//! The admin HTTP API: health and readiness (open, for load balancers), Prometheus metrics, tenants,
//! mailboxes with health, their change-notification subscriptions, runs, logs, "sync now" and
//! retries here; Graph's change notifications (open too, proved by their client state) in
//! [`super::notifications`]; contacts, matching, review
//! lists and tokens in [`super::api_crm`], calendars in [`super::api_calendar`], email sent
//! from the CRM in [`super::api_send`]; the console's pages and sign-in in [`super::console`]. All
//! but health, readiness and the console's pages need a bearer token (or the console's cookie),
//! and what a token reaches is decided in [`super::access`] (E12). JSON in, JSON out; errors are
//! `{"error": "..."}` with a fitting status.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::Instrument as _;

use m365sync_store::logs::LogFilter;
use m365sync_store::{now_ms, Store, StoreError};

use super::access::{authenticate, AccessError, Actor};

use super::retry::{retry_run, retry_since};
use super::Shared;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the admin API: {source}; set admin_listen in m365sync.toml to a free address")]
pub struct ApiBindError {
    /// The address asked for (`admin_listen`).
    pub addr: SocketAddr,
    /// Why it could not be bound (in use, no permission).
    pub source: std::io::Error,
}

/// Binds the API's socket; returns the bound address (the port may have been 0).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ApiBindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ApiBindError { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ApiBindError { addr, source })?;
    Ok((listener, local))
}

/// How long a client may take to send a request's headers: a slow sender holding connections
/// open (slowloris) is cut off instead of tying up the listener.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one request may take to answer (a large contacts import is the slowest);
/// beyond it the client gets 503 and the work is dropped, not left running unseen.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the API waits, once told to close, for requests in flight to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API until `close` is notified: after the stop signal, once the workers have
/// drained (see [`super::Service::wait`]), so `/ready` answers 503 throughout the drain. On
/// close it stops accepting, lets the requests in flight finish (up to [`DRAIN_TIMEOUT`]) and
/// closes idle keep-alive connections.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, close: Arc<tokio::sync::Notify>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = close.notified() => break,
        };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |req| {
            let shared = Arc::clone(&shared);
            async move { Ok::<_, std::convert::Infallible>(handle_timed(&shared, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "admin API: requests still in flight after {}s were cut off at shutdown",
            DRAIN_TIMEOUT.as_secs()
        );
    }
}

/// [`handle`] inside a span per request (method, route, status, latency) and under
/// [`REQUEST_TIMEOUT`]. The route is the path's shape (`/api/tenants/{}/{}/mailboxes`): no
/// names, addresses or ids in the trace.
async fn handle_timed(shared: &Arc<Shared>, req: Request<Incoming>) -> Answer {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = route_shape(req.uri().path());
    let span = tracing::info_span!(
        "admin request",
        otel.kind = "server",
        "http.request.method" = %method,
        "http.route" = %route,
        "http.response.status_code" = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let answer = match tokio::time::timeout(REQUEST_TIMEOUT, handle(shared, req))
        .instrument(span.clone())
        .await
    {
        Ok(answer) => answer,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {}s and was stopped; nothing after that point was done (try a smaller batch)",
                REQUEST_TIMEOUT.as_secs()
            ),
        ),
    };
    span.record("http.response.status_code", answer.status().as_u16());
    span.record("latency_ms", started.elapsed().as_millis() as u64);
    let _in = span.enter();
    tracing::debug!(status = answer.status().as_u16(), "answered");
    answer
}

/// The words of the API's paths; any other segment is a value (org, tenant, address, id).
const ROUTE_WORDS: &[&str] = &[
    "api",
    "health",
    "ready",
    "metrics",
    "notifications",
    "lifecycle",
    "tenants",
    "mailboxes",
    "subscriptions",
    "runs",
    "retry",
    "sync",
    "logs",
    "leases",
    "orgs",
    "me",
    "review",
    "map",
    "contacts",
    "rules",
    "events",
    "match",
    "import",
    "warnings",
    "entities",
    "timeline",
    "users",
    "tokens",
    "settings",
    "verify",
    "failures",
    "sync-emails",
    "calendar",
    "mail",
    "shadow",
    "plugins",
    "session",
    "console",
    "logout",
    "attachments",
    "skipped",
    "enable",
    "disable",
];

/// `path` with every segment that is not one of [`ROUTE_WORDS`] replaced by `{}`.
fn route_shape(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(if ROUTE_WORDS.contains(&seg) {
            seg
        } else {
            "{}"
        });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) fn respond(status: StatusCode, body: Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts")
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    respond(status, json!({ "error": message.into() }))
}

pub(super) fn store_error(e: StoreError) -> Answer {
    match e {
        StoreError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        StoreError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        other => {
            tracing::error!(error = %other, "admin API: database error");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; see the service log",
            )
        }
    }
}

/// The answer to a refused request.
pub(super) fn access_error(e: AccessError) -> Answer {
    match e {
        AccessError::Unauthenticated => error(StatusCode::UNAUTHORIZED, e.to_string()),
        AccessError::Forbidden(m) => error(StatusCode::FORBIDDEN, m),
        AccessError::Store(s) => store_error(s),
    }
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_pairs(req.uri().query().unwrap_or(""))
}

/// `a=1&b=x+y%2B` decoded (`+` as a space, then percent escapes): a URL's query, or the body of
/// a form posted as `application/x-www-form-urlencoded` (the console's sign-in).
pub(super) fn form_pairs(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Answer {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    if req.method() == Method::GET && segs == ["health"] {
        return health(shared).await;
    }
    if req.method() == Method::GET && segs == ["ready"] {
        return ready(shared).await;
    }
    // Graph's change notifications carry no bearer token: their client state proves them.
    if req.method() == Method::POST && super::notifications::is_notification_path(&segs) {
        let q = query(&req);
        let lifecycle = segs.len() == 2;
        let body = match read_body_up_to(req, super::notifications::MAX_NOTIFICATION_BODY).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        return super::notifications::receive(shared, lifecycle, &q, body).await;
    }
    // The console's pages and sign-in; its cookie stands in for the bearer token (with the
    // CSRF checks of `console::credential`).
    if super::console::is_console_path(&segs) {
        return super::console::route(shared, req, &segs).await;
    }
    let bearer = match super::console::credential(&req) {
        Ok(token) => token,
        Err(refused) => return refused.answer(),
    };
    let store = &shared.env.store;
    let actor = match authenticate(store, &shared.opts.admin_token, bearer.as_deref()).await {
        Ok(a) => a,
        Err(e) => return access_error(e),
    };
    let q = query(&req);
    if super::api_send::is_mail_path(&segs) {
        let method = req.method().clone();
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match read_body_up_to(req, super::api_send::MAX_MAIL_BODY).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        return super::api_send::route(shared, &actor, &method, &segs, &q, key, body).await;
    }
    if matches!(segs.as_slice(), ["api", "orgs", ..] | ["api", "me", ..]) {
        let method = req.method().clone();
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(answer) => return answer,
        };
        return super::api_crm::route(shared, &actor, &method, &segs, &q, body).await;
    }
    if let Err(e) = allowed(store, &actor, req.method(), &segs).await {
        return access_error(e);
    }
    if let ["api", "tenants", org, tenant, rest @ ..] = segs.as_slice() {
        if matches!(
            rest,
            ["settings"]
                | ["mailboxes", _, "verify"]
                | ["failures", ..]
                | ["users", _, "sync-emails"]
        ) {
            let method = req.method().clone();
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(answer) => return answer,
            };
            return super::api_mail::route(shared, &method, org, tenant, rest, &q, &body).await;
        }
    }
    if let (
        &Method::POST,
        ["api", "tenants", org, t, "mailboxes", address, on @ ("enable" | "disable")],
    ) = (req.method(), segs.as_slice())
    {
        let on = *on == "enable";
        return super::api_setup::answer(
            super::api_setup::mailbox_switch(shared, org, t, address, on).await,
        );
    }
    if let (&Method::GET, ["api", "tenants", org, t, "attachments", "skipped"]) =
        (req.method(), segs.as_slice())
    {
        return super::api_setup::answer(super::api_attachments::skipped(shared, org, t, &q).await);
    }
    let result = match (req.method().clone(), segs.as_slice()) {
        (Method::GET, ["metrics"]) => return metrics(shared).await,
        (Method::GET, ["api", "tenants"]) => {
            let org = match actor.listing_org(q.get("org").map(String::as_str)) {
                Ok(org) => org,
                Err(e) => return access_error(e),
            };
            async {
                if let Some(org) = org {
                    // A named org that does not exist is an error, not an empty list.
                    store.org_id(org).await?;
                }
                store.tenants(org).await
            }
            .await
            .map(|t| json!(t))
        }
        (Method::GET, ["api", "tenants", org, tenant, "mailboxes"]) => {
            match store.tenant(org, tenant).await {
                Ok(t) => store.mailboxes(t.id).await.map(|m| json!(m)),
                Err(e) => Err(e),
            }
        }
        (Method::GET, ["api", "tenants", org, tenant, "subscriptions"]) => {
            match store.tenant(org, tenant).await {
                Ok(t) => store.tenant_subscriptions(t.id).await.map(|s| json!(s)),
                Err(e) => Err(e),
            }
        }
        (Method::GET, ["api", "tenants", org, tenant, "mailboxes", address, "subscriptions"]) => {
            match store.tenant(org, tenant).await {
                Ok(t) => match store.mailbox_by_address(t.id, address).await {
                    Ok(Some(m)) => store.mailbox_subscriptions(m.id).await.map(|s| json!(s)),
                    Ok(None) => Err(StoreError::NotFound(format!(
                        "no mailbox {address} in tenant {org}/{tenant}; GET /api/tenants/{org}/{tenant}/mailboxes lists them"
                    ))),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        }
        (Method::GET, ["api", "tenants", org, tenant, "runs"]) => {
            let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
            // `?before=ID`: the page after one whose last run was ID.
            let before = match q.get("before").filter(|b| !b.is_empty()).map(|b| b.parse()) {
                None => None,
                Some(Ok(id)) => Some(id),
                Some(Err(_)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "before must be a run id: the last id of the previous page",
                    )
                }
            };
            match store.tenant(org, tenant).await {
                Ok(t) => store.runs_before(t.id, before, limit).await.map(|r| json!(r)),
                Err(e) => Err(e),
            }
        }
        (Method::POST, ["api", "tenants", org, tenant, "sync"]) => {
            match store.tenant(org, tenant).await {
                // A run asked of a tenant the scheduler will not sync would be a promise
                // nobody keeps: say why, and what to do.
                Ok(t) if !t.enabled => {
                    return error(
                        StatusCode::CONFLICT,
                        format!(
                            "tenant {org}/{tenant} is disabled, so nothing would sync; enable it \
                             first (`m365sync tenant enable --org {org} --tenant {tenant}`)"
                        ),
                    )
                }
                Ok(t) if t.activated_ms.is_none() => {
                    return error(
                        StatusCode::CONFLICT,
                        format!(
                            "tenant {org}/{tenant} is not activated, so nothing would sync; \
                             activate it first (`m365sync activate --org {org} --tenant {tenant}`)"
                        ),
                    )
                }
                Ok(t) => store
                    .request_run(t.id)
                    .await
                    .map(|_| json!({ "requested": true, "tenant": t.name })),
                Err(e) => Err(e),
            }
        }
        (Method::GET, ["api", "runs", id]) => match id.parse::<i64>() {
            Ok(id) => store.run(id).await.map(|r| json!(r)),
            Err(_) => return error(StatusCode::BAD_REQUEST, format!("'{id}' is not a run id")),
        },
        (Method::POST, ["api", "runs", id, "retry"]) => match id.parse::<i64>() {
            Ok(id) => retry_run(store, id).await.map(|r| json!(r)),
            Err(_) => return error(StatusCode::BAD_REQUEST, format!("'{id}' is not a run id")),
        },
        (Method::POST, ["api", "retry"]) => {
            let days = q
                .get("since")
                .map(|s| s.trim_end_matches('d').parse::<i64>())
                .unwrap_or(Ok(30));
            match days {
                Ok(days) => retry_since(store, now_ms() - days * 86_400_000)
                    .await
                    .map(|r| json!(r)),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "since must be a number of days, like 30d",
                    )
                }
            }
        }
        (Method::GET, ["api", "logs"]) => match logs(shared, &actor, &q).await {
            Ok(v) => Ok(v),
            Err(e) => return access_error(e),
        },
        (Method::GET, ["api", "leases"]) => store.live_leases().await.map(|l| {
            json!(l
                .into_iter()
                .map(|(m, h)| json!({ "mailbox_id": m, "holder": h }))
                .collect::<Vec<_>>())
        }),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint: {} {}", req.method(), req.uri().path()),
            )
        }
    };
    match result {
        Ok(v) => respond(
            if req.method() == Method::POST {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            },
            v,
        ),
        Err(e) => store_error(e),
    }
}

async fn health(shared: &Shared) -> Answer {
    match shared.env.store.pending_count().await {
        Ok(pending) => respond(
            StatusCode::OK,
            json!({
                "status": "ok",
                "holder": shared.opts.holder,
                "stopping": shared.stop.is_stopping(),
                "pending_mailboxes": pending,
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health: database unavailable");
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "database unavailable" }),
            )
        }
    }
}

/// Readiness, for a load balancer or an orchestrator: 200 while this process takes work (its
/// database answers and it is not stopping), 503 with the reason otherwise. `/health` says the
/// process is alive; this says whether to send it work, and turns 503 the moment SIGTERM starts
/// the drain, while the pages in hand are still being committed.
async fn ready(shared: &Shared) -> Answer {
    let holder = &shared.opts.holder;
    if shared.stop.is_stopping() {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "draining", "holder": holder }),
        );
    }
    match shared.env.store.pending_count().await {
        Ok(_) => respond(
            StatusCode::OK,
            json!({ "status": "ready", "holder": holder }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "ready: database unavailable");
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "database unavailable", "holder": holder }),
            )
        }
    }
}

async fn metrics(shared: &Shared) -> Answer {
    let store = &shared.env.store;
    let gauges = async {
        Ok::<_, StoreError>(super::metrics::DatabaseGauges {
            health: store.health_counts().await?,
            pending: store.pending_count().await?,
            match_queue: store.match_queue_depth().await?,
            failing: store.failing_records_by_plugin().await?,
        })
    };
    let gauges = match gauges.await {
        Ok(g) => g,
        Err(e) => return store_error(e),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(Full::new(Bytes::from(shared.metrics.render(&gauges))))
        .expect("static response parts")
}

async fn logs(
    shared: &Shared,
    actor: &Actor,
    q: &HashMap<String, String>,
) -> Result<Value, AccessError> {
    let store = &shared.env.store;
    // An org admin reads its own org's lines; naming another org is answered as a missing one.
    let mut q = q.clone();
    if let Some(org) = actor.listing_org(q.get("org").map(String::as_str))? {
        q.insert("org".into(), org.to_string());
    }
    let q = &q;
    let mut filter = LogFilter {
        errors_only: q
            .get("errors_only")
            .is_some_and(|v| v == "1" || v == "true"),
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100),
        run_id: q.get("run").and_then(|r| r.parse().ok()),
        ..LogFilter::default()
    };
    match (q.get("org"), q.get("tenant")) {
        (Some(org), Some(tenant)) => filter.tenant_id = Some(store.tenant(org, tenant).await?.id),
        (Some(org), None) => filter.org_id = Some(store.org_id(org).await?),
        (None, Some(_)) => {
            return Err(StoreError::Invalid(
                "a tenant is named with its org: ?org=O&tenant=T".into(),
            )
            .into())
        }
        (None, None) => {}
    }
    Ok(json!(store.logs(&filter).await?))
}

/// The most a request body may hold (a contact import).
const MAX_BODY: usize = 32 << 20;

/// Reads a request's body, bounded.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Answer> {
    read_body_up_to(req, MAX_BODY).await
}

async fn read_body_up_to(req: Request<Incoming>, max: usize) -> Result<Bytes, Answer> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(req.into_body(), max);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over {} MiB or was cut off; split the import",
                max >> 20
            ),
        )),
    }
}

/// Whether the actor may call one of this file's endpoints (E12).
async fn allowed(
    store: &Store,
    actor: &Actor,
    method: &Method,
    segs: &[&str],
) -> Result<(), AccessError> {
    match (method, segs) {
        (_, ["api", "tenants"]) | (_, ["api", "logs"]) => match actor {
            Actor::User { .. } => actor.require_org_admin(""),
            _ => Ok(()),
        },
        (_, ["api", "tenants", org, ..]) => actor.require_org_admin(org),
        (_, ["api", "runs", id, ..]) => {
            let Ok(id) = id.parse::<i64>() else {
                return Ok(());
            };
            if matches!(actor, Actor::Admin) {
                return Ok(());
            }
            let run = store.run(id).await?;
            let tenant = store.tenant_by_id(run.tenant_id).await?;
            actor.require_org_admin_id(tenant.org_id, &format!("run {id}"))
        }
        _ => actor.require_service_admin(),
    }
}
