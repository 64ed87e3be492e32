//! Scenario `peer`: `bench/peer/peer.py` (Microsoft's msgraph-sdk, delta paging at 100, one
//! SQLite transaction per page) against the same simulator in the same invocation as
//! m365sync's SQLite ingest, and the ratio of the two.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::child::load_average;
use super::host::SimHost;
use super::ingest::{IngestRun, Variant};
use super::{BenchError, BenchOptions};

/// What the Python script reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRun {
    /// Messages the script read from the simulator.
    pub processed: u64,
    /// Messages it wrote to its SQLite database.
    pub stored: u64,
    /// Delta pages it read.
    pub pages: u64,
    /// Wall time of its sync, seconds, as it measured it (without interpreter start-up).
    pub seconds: f64,
    /// Its user plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Its peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// (seconds since start, messages processed) as it went: its curve of the chart.
    pub timeline: Vec<(f64, u64)>,
    /// The Python version that ran it.
    pub python: String,
    /// `processed` over `seconds`, filled in by the harness.
    #[serde(default)]
    pub messages_per_second: f64,
    /// CPU seconds per 1,000 messages processed, filled in by the harness.
    #[serde(default)]
    pub cpu_seconds_per_1000: f64,
    /// The machine's 1-minute load average when the script ended, filled in by the harness.
    #[serde(default)]
    pub load_average: f64,
    /// Wall time of the whole process, interpreter start and imports included.
    #[serde(default)]
    pub process_seconds: f64,
}

/// The peer beside m365sync's SQLite runs of the same invocation.
#[derive(Debug, Clone, Serialize)]
pub struct PeerResult {
    /// The script's report, completed by the harness.
    pub peer: PeerRun,
    /// m365sync's SQLite ingest run of the same invocation, if there was one.
    pub ingest: Option<IngestRun>,
    /// m365sync's SQLite floor run of the same invocation, if there was one.
    pub floor: Option<IngestRun>,
    /// m365sync's messages per second through its plugins over the peer's.
    pub ratio_ingest: Option<f64>,
    /// m365sync's floor messages per second over the peer's.
    pub ratio_floor: Option<f64>,
}

/// Runs the peer over every mailbox of the simulator's first tenant.
pub async fn run(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
    runs: &[IngestRun],
) -> Result<PeerResult, BenchError> {
    if !opts.python.exists() {
        return Err(BenchError::Peer(format!(
            "{} does not exist: run `bash scripts/python-env.sh` (it builds .venv with \
             msgraph-sdk) or pass --python",
            opts.python.display()
        )));
    }
    if !opts.peer_script.exists() {
        return Err(BenchError::Peer(format!(
            "{} does not exist: run from the repository root or pass --peer-script",
            opts.peer_script.display()
        )));
    }
    let tenants = host.tenants().await?;
    let t = &tenants[0];
    let info = host.control("GET", "info", None).await?;
    let db = work.join("peer.db");
    let _ = std::fs::remove_file(&db);
    let host_name = reqwest::Url::parse(&host.base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let input = serde_json::json!({
        "authority": info["authority"],
        "graph_url": info["graph_url"],
        "host": host_name,
        "tenant_id": t.ms_tenant,
        "client_id": t.client_id,
        "secret": t.secret,
        "mailboxes": t.mailboxes.iter().map(|m| m.0.clone()).collect::<Vec<_>>(),
        "db": db.display().to_string(),
        "page_size": opts.page_size,
    });
    let input_file = work.join("peer-input.json");
    std::fs::write(&input_file, input.to_string())
        .map_err(|e| BenchError::Setup(format!("{}: {e}", input_file.display())))?;
    let log = work.join("peer.log");
    let log_file = std::fs::File::create(&log)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", log.display())))?;
    let mut cmd = std::process::Command::new(&opts.python);
    cmd.arg(&opts.peer_script)
        .arg(&input_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    if let Some(ca) = &host.ca_cert {
        cmd.env("SSL_CERT_FILE", ca).env("REQUESTS_CA_BUNDLE", ca);
    }
    tracing::info!("running the peer");
    let started = Instant::now();
    let output = super::child::output_of(cmd)
        .await
        .map_err(|e| BenchError::Peer(format!("cannot start {}: {e}", opts.python.display())))?;
    let process_seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&input_file);
    let _ = std::fs::remove_file(&db);
    if !output.status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(BenchError::Peer(format!(
            "{}; its log ends:\n{}",
            output.status,
            tail.join("\n")
        )));
    }
    let mut peer: PeerRun = serde_json::from_slice(&output.stdout)
        .map_err(|e| BenchError::Peer(format!("its report is not JSON: {e}")))?;
    peer.messages_per_second = peer.processed as f64 / peer.seconds.max(1e-9);
    peer.cpu_seconds_per_1000 = peer.cpu_seconds * 1000.0 / peer.processed.max(1) as f64;
    peer.load_average = load_average();
    peer.process_seconds = process_seconds;
    let find = |v: Variant| {
        runs.iter()
            .find(|r| r.variant == v && r.db == "sqlite")
            .cloned()
    };
    let ingest = find(Variant::Ingest);
    let floor = find(Variant::Floor);
    let ratio = |r: &Option<IngestRun>| {
        r.as_ref()
            .map(|r| r.messages_per_second / peer.messages_per_second.max(1e-9))
    };
    Ok(PeerResult {
        ratio_ingest: ratio(&ingest),
        ratio_floor: ratio(&floor),
        peer,
        ingest,
        floor,
    })
}
