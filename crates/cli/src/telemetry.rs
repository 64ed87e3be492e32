//! OpenTelemetry traces: off unless `otlp_endpoint` is set, then every `tracing` span the
//! process opens at INFO or above (a mailbox sync, a Graph request, a page commit, a plugin
//! call; see docs/architecture.md, "Observability") goes to that OTLP/HTTP collector,
//! protobuf-encoded, in batches, and what is still queued is sent when the command ends.
//!
//! The exporter sends through m365sync's own `reqwest` client (the system's roots plus
//! `extra_ca_file`, as for Graph), run on the command's tokio runtime: the SDK's batch
//! processor exports from a thread of its own with a blocking executor, so each export is
//! handed to the runtime and waited for there.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;

/// How long the last batch may take to reach the collector when the command ends.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// An OTLP exporter's HTTP client: m365sync's `reqwest` client, driven by the command's tokio
/// runtime whatever thread the SDK exports from.
#[derive(Debug)]
struct RuntimeHttp {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let http = self.http.clone();
        let task = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = http.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(answer.body(body)?)
        });
        task.await?
    }
}

/// The installed exporter: flushed and shut down by [`Telemetry::shutdown`].
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Sends what is still queued (at most [`FLUSH_TIMEOUT`]) and stops the exporter. Called
    /// from outside the runtime's tasks (it blocks), while the runtime still runs.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            eprintln!("warning: the last traces could not be sent to the OTLP endpoint: {e}");
        }
    }
}

/// The tracing layer that turns spans into OpenTelemetry spans for `endpoint`, and the handle
/// that flushes it at the end. `endpoint` is the collector's base URL (`http://host:4318`);
/// spans go to its `/v1/traces`.
pub fn layer(
    endpoint: &str,
    service_name: Option<&str>,
    extra_ca: Option<&[u8]>,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<(
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>,
    Telemetry,
)> {
    let base = endpoint.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        anyhow::bail!(
            "otlp_endpoint '{endpoint}' is not an http:// or https:// URL; set it to the OTLP/HTTP collector's base URL, e.g. http://127.0.0.1:4318, or unset it to send no traces"
        );
    }
    let http = m365sync_graph::http_client(extra_ca)
        .map_err(|e| anyhow::anyhow!("extra_ca_file cannot be used for the OTLP endpoint: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/traces"))
        .with_timeout(FLUSH_TIMEOUT)
        .with_http_client(RuntimeHttp { http, runtime })
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up the OTLP exporter for {base}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.unwrap_or("m365sync").to_string())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("m365sync");
    // Its own level, whatever M365SYNC_LOG says: quieter logs keep their traces.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        .boxed();
    Ok((layer, Telemetry { provider }))
}
