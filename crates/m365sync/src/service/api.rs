//! The admin HTTP API: health and readiness (open, for load balancers), Prometheus metrics, tenants,
//! mailboxes with health, their change-notification subscriptions, runs, logs, "sync now" and
//! retries here; Graph's change notifications (open too, proved by their client state) in
//! [`super::notifications`]; contacts, matching, review
//! lists and tokens in [`super::api_crm`], calendars in [`super::api_calendar`], email sent
//! from the CRM in [`super::api_send`]; the console's pages and sign-in in [`super::console`]. All
//! but health, readiness and the console's pages need a bearer token (or the console's cookie),
//! and what a token reaches is decided in [`super::access`] (E12). JSON in, JSON out; errors are
//! `{"error": "..."}` with a fitting status. Every route is in [`super::routes`]'s table, from
//! which the router and the OpenAPI document ([`super::openapi`]) are built.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use m365sync_store::logs::LogFilter;
use m365sync_store::sync::RunFilter;
use m365sync_store::tenants::Tenant;
use m365sync_store::{now_ms, StoreError};

use super::access::{AccessError, Actor};
use super::extract::{Body, Caller, Q};
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
///
/// The router is axum's ([`app`]), but each connection is served by hyper's own HTTP/1
/// builder (through `TowerToHyperService`) rather than `axum::serve`, which exposes neither the
/// header read timeout nor a drain that waits for requests in flight.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, close: Arc<tokio::sync::Notify>) {
    let app = app(shared);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = close.notified() => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
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

/// The API as one service: the route table ([`super::routes`]) with its fallback, under the
/// layers every request goes through, outermost first: a span per request, the API's own
/// words for the answers axum and tower-http make (405, the timeout's 503), and
/// [`REQUEST_TIMEOUT`]. Each route also has its own body limit ([`body_limit`]).
pub(super) fn app(shared: Arc<Shared>) -> Router {
    super::routes::router()
        .fallback(no_such_endpoint)
        // Each layer wraps the ones before it: the span is outermost.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(api_words))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(record_answer)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .with_state(shared)
}

/// The span of one request: its method and the *template* of the route it matched
/// (`/api/tenants/{org}/{tenant}/mailboxes`, from axum's `MatchedPath`), never the path itself,
/// so no names, addresses or ids reach the trace; the status and latency are recorded when it
/// is answered.
fn request_span(req: &axum::extract::Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    tracing::info_span!(
        "admin request",
        otel.kind = "server",
        "http.request.method" = %req.method(),
        "http.route" = %route,
        "http.response.status_code" = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The route a span names for a path no route matched (answered 404).
const UNMATCHED: &str = "(no route)";

fn record_answer<B>(answer: &Response<B>, latency: Duration, span: &tracing::Span) {
    span.record("http.response.status_code", answer.status().as_u16());
    span.record("latency_ms", latency.as_millis() as u64);
    tracing::debug!(status = answer.status().as_u16(), "answered");
}

/// A path no route matches: 404 naming it.
async fn no_such_endpoint(method: Method, uri: axum::http::Uri) -> Answer {
    error(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

/// The answers made below the handlers in the API's words (`{"error": "..."}`): a known path
/// asked with a method it does not answer (axum's bare 405; the method router adds its `Allow` header),
/// and a request stopped by [`REQUEST_TIMEOUT`] (tower-http's bare 503).
async fn api_words(req: axum::extract::Request, next: axum::middleware::Next) -> AxumResponse {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let answer = next.run(req).await;
    let bare = !answer.headers().contains_key(CONTENT_TYPE);
    match answer.status() {
        // The `Allow` header is added by axum's method router around this layer, after it.
        StatusCode::METHOD_NOT_ALLOWED if bare => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{method} is not allowed on {path}; it answers {}",
                template
                    .as_deref()
                    .map(super::routes::methods_of)
                    .unwrap_or_default()
            ),
        )
        .into_response(),
        StatusCode::SERVICE_UNAVAILABLE if bare => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request took longer than {}s and was stopped; nothing after that point was done (try a smaller batch)",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
        _ => answer,
    }
}

/// A route's 413 in the API's words: tower-http's `RequestBodyLimitLayer` (see
/// [`super::routes`]) refuses a `Content-Length` over `max` before the handler runs, and a longer
/// streamed body fails its read in [`super::extract::Body`]; both answer plain text, turned
/// here into `{"error"}` with the limit. A handler's own JSON 413 (an email too large) is kept.
pub(super) fn too_large(answer: AxumResponse, max: usize) -> AxumResponse {
    let json = answer
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if answer.status() != StatusCode::PAYLOAD_TOO_LARGE || json {
        return answer;
    }
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is over {} MiB or was cut off; split the import",
            max >> 20
        ),
    )
    .into_response()
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

/// A store's answer as the API gives it: 202 for a POST (work asked for), 200 otherwise.
fn stored(method: Method, result: Result<Value, StoreError>) -> Answer {
    match result {
        Ok(v) => respond(
            if method == Method::POST {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            },
            v,
        ),
        Err(e) => store_error(e),
    }
}

/// The tenant listing and the logs: any admin (an org admin sees its own org); a user token
/// is refused for its role.
fn any_admin(actor: &Actor) -> Result<(), AccessError> {
    actor.require_admin_role()
}

/// The service admin only (metrics, leases, every org's retries).
fn service_admin(actor: &Actor) -> Result<(), AccessError> {
    actor.require_service_admin()
}

/// `GET /health`: alive, and how much waits (open).
pub(super) async fn get_health(State(shared): State<Arc<Shared>>) -> Answer {
    health(&shared).await
}

/// `GET /ready` (open).
pub(super) async fn get_ready(State(shared): State<Arc<Shared>>) -> Answer {
    ready(&shared).await
}

/// `GET /metrics` (the service admin).
pub(super) async fn get_metrics(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
) -> Answer {
    if let Err(e) = service_admin(&actor) {
        return access_error(e);
    }
    metrics(&shared).await
}

/// `GET /api/tenants[?org=O]`.
pub(super) async fn list_tenants(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    if let Err(e) = any_admin(&actor) {
        return access_error(e);
    }
    let store = &shared.env.store;
    let org = match actor.listing_org(q.get("org").map(String::as_str)) {
        Ok(org) => org,
        Err(e) => return access_error(e),
    };
    let result = async {
        if let Some(org) = org {
            // A named org that does not exist is an error, not an empty list.
            store.org_id(org).await?;
        }
        store.tenants(org).await
    }
    .await
    .map(|t| json!(t));
    stored(Method::GET, result)
}

/// The tenant of a `/api/tenants/{org}/{tenant}/...` path, once the caller's rights over its
/// org are checked (shared with [`super::api_mail`]).
pub(super) async fn tenant_of(
    shared: &Shared,
    actor: &Actor,
    org: &str,
    tenant: &str,
) -> Result<Tenant, Answer> {
    actor.require_org_admin(org).map_err(access_error)?;
    shared
        .env
        .store
        .tenant(org, tenant)
        .await
        .map_err(store_error)
}

/// `GET /api/tenants/{org}/{tenant}/mailboxes`: each with its health.
pub(super) async fn list_mailboxes(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    stored(
        Method::GET,
        shared.env.store.mailboxes(t.id).await.map(|m| json!(m)),
    )
}

/// `GET /api/tenants/{org}/{tenant}/subscriptions`.
pub(super) async fn tenant_subscriptions(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    stored(
        Method::GET,
        shared
            .env
            .store
            .tenant_subscriptions(t.id)
            .await
            .map(|s| json!(s)),
    )
}

/// `GET /api/tenants/{org}/{tenant}/mailboxes/{address}/subscriptions`.
pub(super) async fn mailbox_subscriptions(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant, address)): Path<(String, String, String)>,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let store = &shared.env.store;
    let result = match store.mailbox_by_address(t.id, &address).await {
        Ok(Some(m)) => store.mailbox_subscriptions(m.id).await.map(|s| json!(s)),
        Ok(None) => Err(StoreError::NotFound(format!(
            "no mailbox {address} in tenant {org}/{tenant}; GET /api/tenants/{org}/{tenant}/mailboxes lists them"
        ))),
        Err(e) => Err(e),
    };
    stored(Method::GET, result)
}

/// `GET /api/tenants/{org}/{tenant}/runs[?limit=&before=ID]`.
pub(super) async fn list_runs(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
    Q(q): Q,
) -> Answer {
    if let Err(e) = actor.require_org_admin(&org) {
        return access_error(e);
    }
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
    let since_ms = match since(&q) {
        Ok(s) => s,
        Err(e) => return access_error(e),
    };
    let filter = RunFilter {
        before,
        since_ms,
        errors_only: flag(&q, "errors_only"),
        limit,
    };
    let store = &shared.env.store;
    let result = match store.tenant(&org, &tenant).await {
        Ok(t) => store.runs_page(t.id, &filter).await.map(|r| json!(r)),
        Err(e) => Err(e),
    };
    stored(Method::GET, result)
}

/// `?since=`: an age back from now (`30m`, `24h`, `7d`), a date (`2026-11-01`) or epoch
/// milliseconds; the runs page and the logs filter by it.
fn since(q: &HashMap<String, String>) -> Result<Option<i64>, AccessError> {
    let Some(v) = q.get("since").map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let unit = match v.chars().last() {
        Some('m') => Some(60_000),
        Some('h') => Some(3_600_000),
        Some('d') => Some(86_400_000),
        _ => None,
    };
    if let Some(unit) = unit {
        if let Ok(n) = v[..v.len() - 1].parse::<i64>() {
            return Ok(Some(now_ms() - n.max(0) * unit));
        }
    }
    super::api_crm::instant(q, "since").map_err(|_| {
        StoreError::Invalid(format!(
            "since must be an age (30m, 24h, 7d), a date like 2026-11-01 or epoch milliseconds, not '{v}'"
        ))
        .into()
    })
}

/// A yes/no query parameter: `1` or `true`.
fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "1" || v == "true")
}

/// `POST /api/tenants/{org}/{tenant}/sync`: the tenant's next run due now.
pub(super) async fn sync_now(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path((org, tenant)): Path<(String, String)>,
) -> Answer {
    let t = match tenant_of(&shared, &actor, &org, &tenant).await {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    // A run asked of a tenant the scheduler will not sync would be a promise nobody keeps:
    // say why, and what to do.
    if !t.enabled {
        return error(
            StatusCode::CONFLICT,
            format!(
                "tenant {org}/{tenant} is disabled, so nothing would sync; enable it \
                 first (`m365sync tenant enable --org {org} --tenant {tenant}`)"
            ),
        );
    }
    if t.activated_ms.is_none() {
        return error(
            StatusCode::CONFLICT,
            format!(
                "tenant {org}/{tenant} is not activated, so nothing would sync; \
                 activate it first (`m365sync activate --org {org} --tenant {tenant}`)"
            ),
        );
    }
    let result = shared
        .env
        .store
        .request_run(t.id)
        .await
        .map(|_| json!({ "requested": true, "tenant": t.name }));
    stored(Method::POST, result)
}

/// A run id from the path, once the caller may see that run: the service admin any, an org
/// admin its org's (another org's run answers as a missing one), a user none (403 before the
/// run is looked up, as on every admin route). A path id that is not a number is 400.
async fn run_of(shared: &Shared, actor: &Actor, id: &str) -> Result<i64, Answer> {
    actor.require_admin_role().map_err(access_error)?;
    let Ok(id) = id.parse::<i64>() else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("'{id}' is not a run id"),
        ));
    };
    if matches!(actor, Actor::Admin) {
        return Ok(id);
    }
    let store = &shared.env.store;
    let check = async {
        let run = store.run(id).await?;
        let tenant = store.tenant_by_id(run.tenant_id).await?;
        actor.require_org_admin_id(tenant.org_id, || m365sync_store::schedule::no_run(id))
    };
    check.await.map(|()| id).map_err(access_error)
}

/// `GET /api/runs/{id}`.
pub(super) async fn get_run(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Answer {
    match run_of(&shared, &actor, &id).await {
        Ok(id) => stored(
            Method::GET,
            shared.env.store.run(id).await.map(|r| json!(r)),
        ),
        Err(refused) => refused,
    }
}

/// `POST /api/runs/{id}/retry`: the run's failed mailboxes owe a run again.
pub(super) async fn retry_one_run(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Answer {
    match run_of(&shared, &actor, &id).await {
        Ok(id) => stored(
            Method::POST,
            retry_run(&shared.env.store, id).await.map(|r| json!(r)),
        ),
        Err(refused) => refused,
    }
}

/// `POST /api/retry[?since=30d]` (the service admin): every failed run of that many days.
pub(super) async fn retry_all(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    if let Err(e) = service_admin(&actor) {
        return access_error(e);
    }
    let days = q
        .get("since")
        .map(|s| s.trim_end_matches('d').parse::<i64>())
        .unwrap_or(Ok(30));
    match days {
        Ok(days) => stored(
            Method::POST,
            retry_since(&shared.env.store, now_ms() - days * 86_400_000)
                .await
                .map(|r| json!(r)),
        ),
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            "since must be a number of days, like 30d",
        ),
    }
}

/// `GET /api/logs[?org=&tenant=&run=&errors_only=&limit=]`.
pub(super) async fn get_logs(
    State(shared): State<Arc<Shared>>,
    Caller(actor): Caller,
    Q(q): Q,
) -> Answer {
    if let Err(e) = any_admin(&actor) {
        return access_error(e);
    }
    match logs(&shared, &actor, &q).await {
        Ok(v) => respond(StatusCode::OK, v),
        Err(e) => access_error(e),
    }
}

/// `GET /api/leases` (the service admin): which process holds which mailbox.
pub(super) async fn get_leases(State(shared): State<Arc<Shared>>, Caller(actor): Caller) -> Answer {
    if let Err(e) = service_admin(&actor) {
        return access_error(e);
    }
    let result = shared.env.store.live_leases().await.map(|l| {
        json!(l
            .into_iter()
            .map(|(m, h)| json!({ "mailbox_id": m, "holder": h }))
            .collect::<Vec<_>>())
    });
    stored(Method::GET, result)
}

/// `POST /notifications` and `POST /notifications/lifecycle`: Graph's change notifications,
/// open (they carry no bearer token: their client state proves them).
pub(super) async fn post_notification(
    State(shared): State<Arc<Shared>>,
    Q(q): Q,
    Body(body): Body,
) -> Answer {
    super::notifications::receive(&shared, false, &q, body).await
}

/// `POST /notifications/lifecycle`.
pub(super) async fn post_lifecycle(
    State(shared): State<Arc<Shared>>,
    Q(q): Q,
    Body(body): Body,
) -> Answer {
    super::notifications::receive(&shared, true, &q, body).await
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
        errors_only: flag(q, "errors_only"),
        since_ms: since(q)?,
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
pub(super) const MAX_BODY: usize = 32 << 20;
