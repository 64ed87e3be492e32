//! The Graph HTTP client: bearer tokens from the tenant's cache, at most a few requests in
//! flight per mailbox and per tenant (Outlook allows 4 per app and mailbox), `Retry-After`
//! honoured on 429 and 503, exponential backoff with jitter on other 5xx, network errors and
//! cut-short bodies, and a silent token renewal on 401 (a few per request).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use super::auth::TokenCache;
use super::pace::{Budget, MailboxPace};

/// 401 answers in a row (each after a token renewal) one request accepts before the 401 is its
/// error: a token revoked now and then is renewed, one refused however fresh is a real failure.
const MAX_CONSECUTIVE_RENEWALS: u32 = 3;
use super::error::{GraphError, RequestIds};

/// Limits and retry policy.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://graph.microsoft.com/v1.0` or the simulator's.
    pub graph_url: String,
    /// Requests in flight per mailbox (Outlook's limit is 4).
    pub per_mailbox: usize,
    /// Requests in flight for the whole tenant.
    pub per_tenant: usize,
    /// Attempts per request before giving up.
    pub max_attempts: u32,
    /// First backoff step; doubles each attempt, with jitter.
    pub base_backoff: Duration,
    /// The longest backoff step, however many attempts came before (a `Retry-After` from
    /// Graph is waited out as given).
    pub max_backoff: Duration,
    /// The request budget per mailbox the client spreads its requests over ([`pace`]); `None`
    /// sends as fast as the slots allow and relies on `Retry-After` alone.
    ///
    /// [`pace`]: crate::pace
    pub mailbox_budget: Option<Budget>,
    /// Told of every request's end, for the service's metrics; `None` tells nobody (the CLI's
    /// one-off commands, the benchmarks).
    pub observer: Option<Observer>,
}

/// Told of each HTTP request the client sends, when it ends: the service turns these into its
/// request-duration histogram and its responses-by-status counter. A trait rather than a
/// metrics type so this crate stays free of any metrics library.
pub trait RequestObserver: Send + Sync {
    /// One request ended. `route` is the URL's template (ids, addresses and tokens replaced:
    /// no personal data in a label); `status` is `None` when no whole answer came (network);
    /// `elapsed` runs from the send to the answer's last byte.
    fn request_ended(&self, route: &str, status: Option<u16>, elapsed: Duration);
}

/// A shared [`RequestObserver`], in a [`ClientConfig`].
#[derive(Clone)]
pub struct Observer(pub Arc<dyn RequestObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            graph_url: "https://graph.microsoft.com/v1.0".into(),
            per_mailbox: 4,
            per_tenant: 16,
            max_attempts: 8,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
            mailbox_budget: Some(Budget::OUTLOOK),
            observer: None,
        }
    }
}

/// What the client did, for logs, health and benchmarks.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// HTTP requests sent to Graph, retries included.
    pub requests: AtomicU64,
    /// Attempts after a request's first: after throttling, a server or network error, an
    /// unreadable body or an unreachable identity platform (token renewals are not retries).
    pub retries: AtomicU64,
    /// Answers 429 (Too Many Requests).
    pub throttled: AtomicU64,
    /// Answers 500, 502, 503 and 504.
    pub server_errors: AtomicU64,
    /// Requests that got no answer, or whose body was cut short.
    pub network_errors: AtomicU64,
    /// 401 answers after which the token was renewed.
    pub token_renewals: AtomicU64,
}

/// A copy of [`ClientStats`].
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ClientStatsSnapshot {
    /// HTTP requests sent ([`ClientStats::requests`]).
    pub requests: u64,
    /// Attempts after a request's first ([`ClientStats::retries`]).
    pub retries: u64,
    /// Answers 429 ([`ClientStats::throttled`]).
    pub throttled: u64,
    /// Answers 500, 502, 503 and 504 ([`ClientStats::server_errors`]).
    pub server_errors: u64,
    /// Requests without a whole answer ([`ClientStats::network_errors`]).
    pub network_errors: u64,
    /// Token renewals after a 401 ([`ClientStats::token_renewals`]).
    pub token_renewals: u64,
}

/// A successful answer's raw bytes: what `$value` endpoints (attachment contents) return.
#[derive(Debug, Clone)]
pub struct RawBody {
    /// The body, whole (a body cut short in transit is asked for again).
    pub bytes: bytes::Bytes,
    /// The answer's `Content-Type`, when it had one.
    pub content_type: Option<String>,
}

/// One tenant's Graph client.
pub struct GraphClient {
    http: reqwest::Client,
    tokens: Arc<TokenCache>,
    cfg: ClientConfig,
    tenant_slots: Arc<Semaphore>,
    mailboxes: Mutex<HashMap<String, Arc<MailboxGate>>>,
    /// The counters, updated as requests go; [`GraphClient::stats()`] copies them.
    pub stats: ClientStats,
}

/// What every request for one mailbox passes: a slot among the few in flight, then its turn
/// in the mailbox's pacing.
struct MailboxGate {
    slots: Arc<Semaphore>,
    pace: MailboxPace,
}

/// Turns a 2xx answer's `Content-Type` and body into a result, or says why to ask again.
type Accept<T> = dyn Fn(Option<String>, bytes::Bytes) -> Result<T, String> + Send + Sync;

/// What one request sends: a GET, or a write with its JSON body.
struct Call<'a> {
    method: reqwest::Method,
    url: &'a str,
    body: Option<&'a Value>,
}

impl<'a> Call<'a> {
    fn get(url: &'a str) -> Call<'a> {
        Call {
            method: reqwest::Method::GET,
            url,
            body: None,
        }
    }
}

enum Attempt<T> {
    Done(T),
    /// The token was refused and has been renewed: try again at once. This spends none of the
    /// request's attempts, which are for Graph's own faults; a token revoked while the request
    /// waited out throttling must not turn a storm into an error.
    Renewed,
    Retry {
        after: Option<Duration>,
        status: u16,
        message: String,
        /// The attempt's ids (no `client-request-id` when no request was sent).
        ids: RequestIds,
    },
    Fail(GraphError),
}

impl std::ops::AddAssign<&ClientStatsSnapshot> for ClientStatsSnapshot {
    fn add_assign(&mut self, o: &ClientStatsSnapshot) {
        self.requests += o.requests;
        self.retries += o.retries;
        self.throttled += o.throttled;
        self.server_errors += o.server_errors;
        self.network_errors += o.network_errors;
        self.token_renewals += o.token_renewals;
    }
}

impl GraphClient {
    /// A client for one tenant.
    pub fn new(http: reqwest::Client, tokens: Arc<TokenCache>, cfg: ClientConfig) -> GraphClient {
        GraphClient {
            http,
            tokens,
            tenant_slots: Arc::new(Semaphore::new(cfg.per_tenant.max(1))),
            cfg,
            mailboxes: Mutex::new(HashMap::new()),
            stats: ClientStats::default(),
        }
    }

    /// The Graph base URL this client talks to.
    pub fn graph_url(&self) -> &str {
        &self.cfg.graph_url
    }

    /// The counters now.
    pub fn stats(&self) -> ClientStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        ClientStatsSnapshot {
            requests: g(&s.requests),
            retries: g(&s.retries),
            throttled: g(&s.throttled),
            server_errors: g(&s.server_errors),
            network_errors: g(&s.network_errors),
            token_renewals: g(&s.token_renewals),
        }
    }

    fn mailbox(&self, mailbox: &str) -> Arc<MailboxGate> {
        let mut gates = self.mailboxes.lock().expect("mailboxes lock");
        gates
            .entry(mailbox.to_ascii_lowercase())
            .or_insert_with(|| {
                let burst = self.cfg.per_mailbox.max(1);
                Arc::new(MailboxGate {
                    slots: Arc::new(Semaphore::new(burst)),
                    pace: MailboxPace::new(self.cfg.mailbox_budget),
                })
            })
            .clone()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .cfg
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cfg.max_backoff);
        exp.mul_f64(rand::thread_rng().gen_range(0.5..1.0))
    }

    /// GETs a Graph URL (absolute, or a path below the Graph base) for `mailbox`, with retries.
    pub async fn get(
        &self,
        mailbox: &str,
        url: &str,
        prefer: Option<&str>,
    ) -> Result<Value, GraphError> {
        self.request(mailbox, &Call::get(url), prefer, &|_, body| {
            // A body cut short in transit does not parse: ask again.
            serde_json::from_slice(&body).map_err(|e| format!("unreadable body: {e}"))
        })
        .await
    }

    /// GETs a Graph URL and reads the answer into `T` (typed, so a page's items can stay raw
    /// JSON text instead of a tree of values); a body that does not read as `T` is retried as
    /// an unreadable one is.
    pub async fn get_as<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        mailbox: &str,
        url: &str,
        prefer: Option<&str>,
    ) -> Result<T, GraphError> {
        self.request(mailbox, &Call::get(url), prefer, &|_, body| {
            serde_json::from_slice(&body).map_err(|e| format!("unreadable body: {e}"))
        })
        .await
    }

    /// GETs raw bytes (an attachment's `$value`), with the same slots, retries and token
    /// renewal as [`GraphClient::get`]; a body cut short in transit is asked for again.
    pub async fn get_bytes(
        &self,
        mailbox: &str,
        url: &str,
        prefer: Option<&str>,
    ) -> Result<RawBody, GraphError> {
        self.request(mailbox, &Call::get(url), prefer, &|content_type, bytes| {
            Ok(RawBody {
                bytes,
                content_type,
            })
        })
        .await
    }

    /// Sends a write (POST, PATCH, DELETE) with a JSON body, with the same slots, retries and
    /// token renewal as [`GraphClient::get`]. Answers the JSON body, `Null` for an empty one
    /// (204). Only idempotent writes belong here: a POST must carry a `transactionId`, so a
    /// retry after a lost answer returns the first one's result instead of a second event.
    pub async fn send(
        &self,
        mailbox: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        let call = Call { method, url, body };
        self.request(mailbox, &call, None, &|_, body| {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(&body).map_err(|e| format!("unreadable body: {e}"))
        })
        .await
    }

    /// One request with retries; `accept` turns a 2xx answer (its `Content-Type` and body)
    /// into the result, or says why the body is unusable (then the request is retried).
    async fn request<T>(
        &self,
        mailbox: &str,
        call: &Call<'_>,
        prefer: Option<&str>,
        accept: &Accept<T>,
    ) -> Result<T, GraphError> {
        let url = call.url;
        let url = if url.starts_with("http://") || url.starts_with("https://") {
            url.to_string()
        } else {
            format!("{}/{}", self.cfg.graph_url, url.trim_start_matches('/'))
        };
        let mut renewals = 0u32;
        let mut last = (0u16, String::new(), RequestIds::default());
        let mut attempt = 0;
        while attempt < self.cfg.max_attempts {
            if attempt > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            match self
                .attempt(mailbox, call, &url, prefer, &mut renewals, accept)
                .await
            {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Renewed => {}
                Attempt::Retry {
                    after,
                    status,
                    message,
                    ids,
                } => {
                    last = (status, message, ids);
                    if let (Some(after), 429) = (after, status) {
                        // A 429 is about the app and mailbox (its budget or its requests in
                        // flight): hold back the mailbox's other requests too. A 503 is
                        // Graph's own trouble and waits only for itself.
                        self.mailbox(mailbox).pace.pause(after);
                    }
                    // Sleep with no slot held, so other work for the mailbox can go on.
                    tokio::time::sleep(after.unwrap_or_else(|| self.backoff(attempt))).await;
                    attempt += 1;
                }
            }
        }
        Err(GraphError::Exhausted {
            mailbox: mailbox.to_string(),
            status: last.0,
            attempts: self.cfg.max_attempts,
            message: last.1,
            ids: Box::new(last.2),
        })
    }

    async fn attempt<T>(
        &self,
        mailbox: &str,
        call: &Call<'_>,
        url: &str,
        prefer: Option<&str>,
        renewals: &mut u32,
        accept: &Accept<T>,
    ) -> Attempt<T> {
        // The mailbox's slot first, then its turn in the pacing (holding only that mailbox's
        // slot while it waits), then a slot of the tenant's, held only while the request runs.
        let gate = self.mailbox(mailbox);
        let _mailbox = gate
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        gate.pace.wait_turn(budget_cost(call)).await;
        let _tenant = self
            .tenant_slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        let token = match self.tokens.token().await {
            Ok(t) => t,
            Err(e) if e.is_transient() => {
                return Attempt::Retry {
                    after: None,
                    status: 0,
                    message: e.to_string(),
                    ids: RequestIds::default(),
                }
            }
            Err(e) => return Attempt::Fail(e.into()),
        };
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut ids = RequestIds {
            client_request_id: crate::new_client_request_id(),
            request_id: None,
        };
        // One span per HTTP request, named and tagged as OpenTelemetry's HTTP client
        // conventions say, with the route's template instead of its URL: the URL holds
        // mailbox addresses, item ids and delta tokens, none of which belongs in a trace.
        let template = route_template(url);
        let span = tracing::info_span!(
            "graph request",
            otel.name = %format_args!("{} {}", call.method, template),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            "http.request.method" = %call.method,
            "url.template" = %template,
            "http.response.status_code" = tracing::field::Empty,
            "request-id" = tracing::field::Empty,
            "client-request-id" = %ids.client_request_id,
        );
        let started = std::time::Instant::now();
        let mut status = None;
        let outcome = self
            .send_once(
                mailbox,
                call,
                url,
                prefer,
                renewals,
                accept,
                &token,
                &mut ids,
                &mut status,
            )
            .instrument(span.clone())
            .await;
        if let Some(observer) = &self.cfg.observer {
            observer
                .0
                .request_ended(&template, status, started.elapsed());
        }
        if let Some(r) = &ids.request_id {
            span.record("request-id", r.as_str());
        }
        match &outcome {
            Attempt::Done(_) | Attempt::Renewed => {}
            Attempt::Retry { .. } | Attempt::Fail(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        outcome
    }

    /// The HTTP part of one attempt, inside its span: `ids` gets the answer's `request-id`.
    #[allow(clippy::too_many_arguments)]
    async fn send_once<T>(
        &self,
        mailbox: &str,
        call: &Call<'_>,
        url: &str,
        prefer: Option<&str>,
        renewals: &mut u32,
        accept: &Accept<T>,
        token: &str,
        ids: &mut RequestIds,
        answered: &mut Option<u16>,
    ) -> Attempt<T> {
        let mut req = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token)
            .header("client-request-id", &ids.client_request_id)
            .header("return-client-request-id", "true");
        if let Some(body) = call.body {
            req = req.json(body);
        }
        if let Some(p) = prefer {
            req = req.header("Prefer", p);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.network_errors.fetch_add(1, Ordering::Relaxed);
                return Attempt::Retry {
                    after: None,
                    status: 0,
                    message: format!("network: {e}"),
                    ids: ids.clone(),
                };
            }
        };
        let status = resp.status().as_u16();
        tracing::Span::current().record("http.response.status_code", status);
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, content_type) = (header("location"), header("content-type"));
        ids.request_id = header("request-id");
        let body = match resp.bytes().await {
            Ok(b) => {
                *answered = Some(status);
                b
            }
            Err(e) => {
                self.stats.network_errors.fetch_add(1, Ordering::Relaxed);
                return Attempt::Retry {
                    after: None,
                    status,
                    message: format!("network: {e}"),
                    ids: ids.clone(),
                };
            }
        };
        if (200..300).contains(&status) {
            return match accept(content_type, body) {
                Ok(v) => Attempt::Done(v),
                Err(message) => Attempt::Retry {
                    after: None,
                    status,
                    message,
                    ids: ids.clone(),
                },
            };
        }
        if status != 401 {
            // Graph got past the token: whatever comes next, the renewals so far did their job.
            *renewals = 0;
        }
        let (code, message) = error_parts(&body);
        if ids.request_id.is_none() {
            // A proxy in the way may drop headers; the body's innerError still names it.
            ids.request_id = error_request_id(&body);
        }
        let mailbox = mailbox.to_string();
        let ids = Box::new(ids.clone());
        match status {
            // A token can expire (or be revoked) again while a request waits out throttling:
            // renew on each 401, up to a few in a row, before calling it an authentication failure.
            401 if *renewals < MAX_CONSECUTIVE_RENEWALS => {
                *renewals += 1;
                self.stats.token_renewals.fetch_add(1, Ordering::Relaxed);
                self.tokens.invalidate(token).await;
                Attempt::Renewed
            }
            429 | 503 => {
                self.stats
                    .throttled
                    .fetch_add((status == 429) as u64, Ordering::Relaxed);
                self.stats
                    .server_errors
                    .fetch_add((status == 503) as u64, Ordering::Relaxed);
                Attempt::Retry {
                    after: retry_after,
                    status,
                    message,
                    ids: *ids,
                }
            }
            500 | 502 | 504 => {
                self.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                Attempt::Retry {
                    after: retry_after,
                    status,
                    message,
                    ids: *ids,
                }
            }
            403 => Attempt::Fail(GraphError::AccessDenied {
                mailbox,
                code,
                message,
                ids,
            }),
            404 => Attempt::Fail(GraphError::NotFound {
                mailbox,
                code,
                message,
                ids,
            }),
            410 => Attempt::Fail(GraphError::SyncStateNotFound { mailbox, location }),
            _ => Attempt::Fail(GraphError::Other {
                mailbox,
                status,
                code,
                message,
                ids,
            }),
        }
    }
}

/// What a request costs of its mailbox's budget: one, or one per sub-request of a `$batch`
/// (Graph throttles each sub-request alone).
fn budget_cost(call: &Call<'_>) -> u32 {
    let batch = call.url.trim_end_matches('/').ends_with("$batch");
    match call
        .body
        .and_then(|b| b.get("requests"))
        .and_then(Value::as_array)
    {
        Some(requests) if batch => (requests.len() as u32).max(1),
        _ => 1,
    }
}

/// The words of Graph's URL paths that are not ids: a path's segments outside this list are
/// written `{id}` in a route template. Lower-cased.
const ROUTE_WORDS: &[&str] = &[
    "v1.0",
    "beta",
    "users",
    "me",
    "mailfolders",
    "childfolders",
    "messages",
    "delta",
    "delta()",
    "events",
    "calendarview",
    "calendar",
    "calendars",
    "calendargroups",
    "instances",
    "attachments",
    "$value",
    "$batch",
    "$count",
    "subscriptions",
    "organization",
    "sendmail",
    "move",
    "copy",
    "send",
    "reply",
    "replyall",
    "forward",
    "createreply",
    "accept",
    "decline",
    "tentativelyaccept",
    "cancel",
    "extensions",
    "mailboxsettings",
    "contacts",
    "inbox",
    "sentitems",
    "deleteditems",
    "drafts",
    "archive",
    "junkemail",
    "outbox",
    "msgfolderroot",
    "recoverableitemsdeletions",
    "serviceprincipals",
    "applications",
];

/// A request URL as an OpenTelemetry `url.template`: its path below the host, without the
/// query, with every segment that is not one of Graph's own words written `{id}` (mailbox
/// addresses, user, folder and message ids). `https://graph/v1.0/users/a@b/mailFolders/x/
/// messages/delta?$deltatoken=...` is `/v1.0/users/{id}/mailFolders/{id}/messages/delta`.
pub fn route_template(url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("", |i| &rest[i..]))
        .unwrap_or(url);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if ROUTE_WORDS.contains(&seg.to_ascii_lowercase().as_str()) {
            out.push_str(seg);
        } else {
            out.push_str("{id}");
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `error.innerError.request-id` of a Graph error body.
fn error_request_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["error"]["innerError"]["request-id"]
        .as_str()
        .map(str::to_string)
}

/// `error.code` and `error.message` of a Graph error body.
fn error_parts(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    (
        v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| std::str::from_utf8(body).unwrap_or(""))
            .chars()
            .take(300)
            .collect(),
    )
}
