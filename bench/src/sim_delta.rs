//! The simulator's own benchmark: how fast it generates a tenant and serves delta rounds.
//!
//! The simulator must never be what limits later benchmarks, so this measures it alone: one
//! client over loopback pages every folder of one mailbox to its deltaLink.

use std::time::Instant;

use serde::Serialize;

use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::GenerateOptions;
use m365sync_sim::server::{serve, ServeOptions};
use m365sync_sim::{Origin, Sim};

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct DeltaBench {
    /// Messages the simulator generated for the one mailbox, all folders.
    pub messages_generated: usize,
    /// Time to generate them, seconds.
    pub generate_seconds: f64,
    /// The page size asked for (`Prefer: odata.maxpagesize`).
    pub page_size: usize,
    /// Whether the client parsed each page as JSON (else it only found the link and counted).
    pub client_parses_json: bool,
    /// Pages fetched, over every folder.
    pub pages: usize,
    /// Delta items the simulator served (its own count).
    pub items: usize,
    /// Response body bytes received.
    pub bytes: usize,
    /// Wall time of the paging, seconds (generation not included).
    pub seconds: f64,
    /// `items` over `seconds`.
    pub messages_per_second: f64,
    /// Body bytes over `seconds`, in MB (10^6 bytes) per second.
    pub megabytes_per_second: f64,
    /// Peak resident memory of the whole process (server and client), in MiB.
    pub peak_rss_mib: f64,
}

pub use crate::procfs::peak_rss_mib;

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The simulator could not be served.
    #[error(transparent)]
    Serve(#[from] m365sync_sim::server::ServeError),
    /// A request to the simulator failed.
    #[error("benchmark request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// An answer is not what the simulator promises: no access token, a page without
    /// `value`, or one that does not parse.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// Generates one mailbox with `messages` messages and serves every folder's delta round.
pub async fn delta_throughput(
    messages: usize,
    page_size: usize,
    parse: bool,
) -> Result<DeltaBench, BenchError> {
    let opts = GenerateOptions {
        users: 1,
        shared: 0,
        messages,
        events: 0,
        ..GenerateOptions::default()
    };
    let started = Instant::now();
    let sim = Sim::new(Origin::Generated(opts), ProtocolConfig::default());
    let generate_seconds = started.elapsed().as_secs_f64();
    let messages_generated = sim.world.lock().expect("world lock").messages.len();
    let running = serve(
        sim.clone(),
        ServeOptions {
            bind: "127.0.0.1:0".parse().expect("address"),
            tls_dir: None,
            public_url: None,
        },
    )
    .await?;
    let (tenant, client_id, secret, upn) = {
        let w = sim.world.lock().expect("world lock");
        let t = &w.tenants[0];
        (
            t.id.clone(),
            t.apps[0].client_id.clone(),
            t.apps[0].secrets[0].value.clone(),
            t.users[0].upn.clone(),
        )
    };
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", running.base_url))
        .form(&[
            ("client_id", client_id.as_str()),
            ("client_secret", &secret),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .ok_or_else(|| BenchError::Protocol("no access token".into()))?
        .to_string();
    let prefer = format!("odata.maxpagesize={page_size}, IdType=\"ImmutableId\"");
    let (mut pages, mut items, mut bytes) = (0, 0, 0);
    let started = Instant::now();
    for folder in [
        "inbox",
        "sentitems",
        "archive",
        "junkemail",
        "drafts",
        "deleteditems",
    ] {
        let mut url = format!(
            "{}/v1.0/users/{upn}/mailFolders/{folder}/messages/delta",
            running.base_url
        );
        loop {
            let body = http
                .get(&url)
                .bearer_auth(&token)
                .header("Prefer", &prefer)
                .send()
                .await?
                .bytes()
                .await?;
            bytes += body.len();
            pages += 1;
            let next = if parse {
                #[derive(serde::Deserialize)]
                struct Page {
                    // Parsed only to cost what a real client's parsing costs.
                    #[serde(rename = "value")]
                    _value: Vec<serde::de::IgnoredAny>,
                    #[serde(rename = "@odata.nextLink")]
                    next: Option<String>,
                }
                let page: Page = serde_json::from_slice(&body)
                    .map_err(|e| BenchError::Protocol(e.to_string()))?;
                page.next
            } else {
                scan_page(&body)?
            };
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    items += sim
        .stats
        .delta_items_served
        .load(std::sync::atomic::Ordering::Relaxed) as usize;
    running.stop();
    Ok(DeltaBench {
        messages_generated,
        generate_seconds,
        page_size,
        client_parses_json: parse,
        pages,
        items,
        bytes,
        seconds,
        messages_per_second: items as f64 / seconds,
        megabytes_per_second: bytes as f64 / seconds / 1e6,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Finds the nextLink without parsing the page: the simulator writes the link before `value`.
/// (Items are counted by the simulator itself.)
fn scan_page(body: &[u8]) -> Result<Option<String>, BenchError> {
    let text = std::str::from_utf8(body).map_err(|e| BenchError::Protocol(e.to_string()))?;
    let head = &text[..text
        .find("\"value\"")
        .ok_or_else(|| BenchError::Protocol("no value".into()))?];
    let next = head.find("\"@odata.nextLink\":\"").map(|i| {
        let rest = &head[i + 19..];
        rest[..rest.find('"').unwrap_or(rest.len())].to_string()
    });
    Ok(next)
}
