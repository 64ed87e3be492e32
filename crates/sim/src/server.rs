//! The simulator's HTTP(S) server: accepts connections, turns each request into a
//! [`SimRequest`], and routes it to identity, Graph or the control API.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::request::{GraphError, SimRequest, SimResponse};
use super::Sim;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Serve https with the local CA kept in this directory.
    pub tls_dir: Option<PathBuf>,
    /// Base of every link; default `{scheme}://localhost:{port}`.
    pub public_url: Option<String>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another --bind address or port")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error binding it.
        source: std::io::Error,
    },
    /// The local CA or the server certificate could not be set up.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
}

/// A running simulator. Dropping it does not stop it; call [`Running::stop`].
pub struct Running {
    /// The address actually bound (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The base of every link the simulator writes, such as `http://localhost:PORT`.
    pub base_url: String,
    /// The CA certificate clients must trust, when serving https.
    pub ca_cert: Option<PathBuf>,
    /// The simulator being served, for direct access from tests.
    pub sim: Arc<Sim>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Stops accepting connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Starts serving `sim` and returns once the socket is listening.
pub async fn serve(sim: Arc<Sim>, opts: ServeOptions) -> Result<Running, ServeError> {
    let listener = TcpListener::bind(opts.bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: opts.bind,
        source,
    })?;
    let tls = opts
        .tls_dir
        .as_deref()
        .map(super::tls::load_or_create)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://localhost:{}", addr.port()));
    sim.set_public_base(&base_url);
    let ca_cert = tls.as_ref().map(|t| t.ca_cert_path.clone());
    *sim.ca_cert
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = ca_cert.clone();
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    let (stop, mut stopped) = watch::channel(false);
    let server_sim = Arc::clone(&sim);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                _ = stopped.changed() => return,
            };
            let _ = stream.set_nodelay(true);
            let sim = Arc::clone(&server_sim);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(Arc::clone(&sim), req));
                let builder = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    Ok(Running {
        addr,
        base_url,
        ca_cert,
        sim,
        stop,
    })
}

/// The error hyper sees when a fault asks for the connection to be dropped.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by fault injection")
    }
}

impl std::error::Error for DropConnection {}

async fn handle(
    sim: Arc<Sim>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let req = SimRequest::new(parts.method, path_and_query, parts.headers, body);
    // A request-id of its own for every request, as Graph's and Entra's answers carry.
    let request_id =
        super::ids::Rng::new(ANSWER_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ 0xabc)
            .guid();
    let started = std::time::Instant::now();
    let resp = guarded(&sim, req.clone(), &request_id).await;
    // The path only: query strings carry delta tokens and authorization codes.
    tracing::debug!(
        method = %req.method,
        path = %parts.uri.path(),
        status = resp.status,
        micros = started.elapsed().as_micros() as u64,
        reset = resp.reset,
        "sim request"
    );
    if resp.reset {
        return Err(DropConnection);
    }
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(k, v);
    }
    let is_graph = req
        .segments
        .first()
        .is_some_and(|s| s == "v1.0" || s == "beta");
    let is_token = req.segments.get(1).is_some_and(|s| s == "oauth2")
        && req.segments.last().is_some_and(|s| s == "token");
    if (is_graph || is_token) && req.header("client-request-id").is_none() {
        super::stats::Stats::inc(&sim.stats.missing_client_request_id);
    }
    if is_graph {
        builder = builder
            .header("request-id", &request_id)
            .header("odata-version", "4.0");
        if let Some(c) = req.header("client-request-id") {
            builder = builder.header("client-request-id", c);
        }
    } else if is_token {
        // Entra names its answers `x-ms-request-id`, and echoes the caller's id when asked to.
        builder = builder.header("x-ms-request-id", &request_id);
        if let Some(c) = req.header("client-request-id") {
            if req.header("return-client-request-id") == Some("true") {
                builder = builder.header("client-request-id", c);
            }
        }
    }
    Ok(builder
        .body(Full::new(resp.body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}

/// Numbers the answers, so every one gets a `request-id` of its own.
static ANSWER_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A future whose panics come out as `Err` (the panic's payload) instead of unwinding into
/// the connection task: one request that trips a bug must not take the server down with it.
struct CatchUnwind<'a, T>(Pin<Box<dyn Future<Output = T> + Send + 'a>>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The text of a panic's payload.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// [`dispatch`], with a panic answered as Graph answers its own failures (500 with an error
/// body) and the world lock's poison cleared, so the next request is served as usual.
pub async fn guarded(sim: &Arc<Sim>, req: SimRequest, request_id: &str) -> SimResponse {
    let client_request_id = req.header("client-request-id").map(str::to_string);
    let path = req.segments.join("/");
    match CatchUnwind(Box::pin(dispatch(sim, req, request_id))).await {
        Ok(resp) => resp,
        Err(panic) => {
            let text = panic_text(panic.as_ref());
            tracing::error!(path = %path, panic = %text, "a simulator handler panicked; answered 500");
            sim.world.clear_poison();
            GraphError::new(
                500,
                "InternalServerError",
                format!("The simulator failed while handling this request: {text}"),
            )
            .into_response(request_id, client_request_id.as_deref())
        }
    }
}

/// Routes any request to identity, Graph or control.
pub async fn dispatch(sim: &Arc<Sim>, req: SimRequest, request_id: &str) -> SimResponse {
    let seg = |i: usize| req.segments.get(i).map(String::as_str);
    match (seg(0), seg(1), seg(2), seg(3)) {
        (Some("_sim"), ..) => super::control::handle(sim, &req).await,
        (Some("v1.0" | "beta"), ..) => graph(sim, req, request_id).await,
        (Some("upload"), Some("AttachmentSessions"), Some(id), None) => {
            super::drafts::upload(sim, &req, id)
        }
        (Some(tenant), Some("oauth2"), Some("v2.0"), Some("token"))
            if req.method == hyper::Method::POST =>
        {
            super::stats::Stats::inc(&sim.stats.token_requests);
            super::identity::token(sim, tenant, &req)
        }
        (Some(tenant), Some("oauth2"), Some("v2.0"), Some("authorize")) => {
            super::identity::authorize(sim, tenant, &req)
        }
        (Some(tenant), Some("v2.0"), Some(".well-known"), Some("openid-configuration")) => {
            super::identity::discovery(sim, tenant)
        }
        (Some(_), Some("discovery"), ..) => match seg(2) {
            Some("instance") => instance_discovery(sim),
            _ => super::identity::jwks(),
        },
        _ => SimResponse::json(
            404,
            &serde_json::json!({"error": "not_found", "error_description": "No such endpoint on the simulator."}),
        ),
    }
}

fn instance_discovery(sim: &Sim) -> SimResponse {
    let host = sim.public_base();
    let host = host.split("://").nth(1).unwrap_or("localhost");
    SimResponse::json(
        200,
        &serde_json::json!({
            "tenant_discovery_endpoint": format!("{}/common/v2.0/.well-known/openid-configuration", sim.public_base()),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }),
    )
}

async fn graph(sim: &Arc<Sim>, req: SimRequest, request_id: &str) -> SimResponse {
    let client_request_id = req.header("client-request-id").map(str::to_string);
    let fail = |e: GraphError| e.into_response(request_id, client_request_id.as_deref());
    let caller = match super::identity::authenticate(sim, &req) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if req.segments.get(1).is_some_and(|s| s == "$batch") && req.method == hyper::Method::POST {
        return super::batch::handle(sim, &caller, &req, request_id)
            .await
            .unwrap_or_else(fail);
    }
    if super::subscriptions::is_create(&req) {
        return super::subscriptions::create(sim, &caller, &req)
            .await
            .unwrap_or_else(fail);
    }
    super::graph::execute(sim, &caller, req, request_id.to_string()).await
}
