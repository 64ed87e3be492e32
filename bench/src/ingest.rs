//! Scenarios `ingest` and `floor`: one backfill of every mailbox through the default plugins,
//! and the same backfill of the same data with the plugin stages bypassed (every message kept
//! and mapped natively), each into a fresh database and each in its own child process, in the
//! same run so their ratio is worth reading on a noisy machine. With `--shadow`, a third
//! backfill runs the default plugins with a shadow exclusion plugin beside them (the builtin
//! tagged as another version: every record is compared, none disagrees), which prices a
//! shadow run (issue 18).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use m365sync::sync::run::{run_mailboxes_with, RunOptions};
use m365sync::sync::SyncEnv;
use m365sync_plugin::builtin::builtin;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_plugin::Kind;
use m365sync_store::plugins::{NewPlugin, PluginScope};

use super::child::{cpu_seconds, load_average, peak_rss_mib, run_child, written_bytes};
use super::db::{declare, BenchDb, DbKind, Declare, ORG};
use super::host::SimHost;
use super::BenchError;

/// Which backfill a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Through the tenant's plugins (the default exclusion and mapping).
    Ingest,
    /// The plugin stages bypassed: fetch, parse, convert and write only.
    Floor,
    /// As `Ingest`, with a shadow exclusion plugin beside the live one.
    Shadow,
}

impl Variant {
    /// The variant's name in reports, run labels and the child's `--variant`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Ingest => "ingest",
            Variant::Floor => "floor",
            Variant::Shadow => "shadow",
        }
    }
}

/// One measured backfill, as its child process reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestRun {
    /// Which backfill it was.
    pub variant: Variant,
    /// The database it wrote to (`sqlite` or `postgres`).
    pub db: String,
    /// Mailboxes backfilled.
    pub mailboxes: usize,
    /// Messages read from the simulator (every message of the folders the default settings
    /// sync: all but Junk Email, Deleted Items, Drafts, Outbox and the like).
    pub processed: u64,
    /// Email rows in the database afterwards.
    pub stored_emails: i64,
    /// Records the exclusion stage dropped.
    pub excluded: u64,
    /// Records a stage failed on (kept for retry).
    pub failed: u64,
    /// Delta pages read.
    pub pages: u64,
    /// Wall time of the backfill inside the child, seconds (process start-up not included).
    pub seconds: f64,
    /// `processed` over `seconds`.
    pub messages_per_second: f64,
    /// CPU seconds of the child (the sync alone: the simulator runs elsewhere).
    pub cpu_seconds: f64,
    /// The child's CPU seconds per 1,000 messages processed.
    pub cpu_seconds_per_1000: f64,
    /// The child's peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// KiB the child wrote per message processed (the store's log and checkpoints, mostly).
    #[serde(default)]
    pub written_kib_per_message: f64,
    /// Time inside the exclusion and mapping stages, summed over mailboxes.
    pub stage_seconds: f64,
    /// `stage_seconds` as a share of the child's CPU seconds, percent.
    pub stage_cpu_percent: f64,
    /// Attachment bytes stored (deduplicated), MiB.
    pub attachment_mib: f64,
    /// (seconds since start, messages processed) as each mailbox finished: the throughput
    /// curve of the chart.
    pub timeline: Vec<(f64, u64)>,
    /// The machine's 1-minute load average when the run ended.
    pub load_average: f64,
    /// Graph requests the simulator answered during the run (filled in by the harness).
    #[serde(default)]
    pub sim_requests: u64,
    /// CPU seconds of the harness's process during the run: the in-process simulator serving
    /// it (0 with `--sim URL`).
    #[serde(default)]
    pub sim_cpu_seconds: f64,
    /// Records the shadow compared (agreed, disagreed, failed), for the `shadow` variant.
    #[serde(default)]
    pub shadow_compared: [i64; 3],
}

/// What the parent tells an ingest child.
#[derive(Debug, Clone)]
pub struct ChildIngest {
    /// The benchmark database the child opens.
    pub database_url: String,
    /// The key file that database's secrets are sealed with.
    pub key_file: std::path::PathBuf,
    /// The declared tenant's name, in org [`ORG`].
    pub tenant: String,
    /// The CA the simulator's https needs, when the system's roots do not cover it.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Which backfill to run.
    pub variant: Variant,
    /// The database's name in the report (`sqlite`, `postgres`).
    pub db: String,
    /// Mailboxes synced at once (0: the CLI's default).
    pub in_flight: usize,
}

impl ChildIngest {
    /// The child's command-line arguments (after `bench child`).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "ingest".into(),
            "--database-url".into(),
            self.database_url.clone(),
            "--key-file".into(),
            self.key_file.display().to_string(),
            "--tenant".into(),
            self.tenant.clone(),
            "--variant".into(),
            self.variant.name().into(),
            "--db".into(),
            self.db.clone(),
            "--in-flight".into(),
            self.in_flight.to_string(),
        ];
        if let Some(ca) = &self.ca_cert {
            a.push("--ca".into());
            a.push(ca.display().to_string());
        }
        a
    }
}

/// The child's side: backfills every mailbox of the declared tenant once and reports.
pub async fn child_ingest(c: &ChildIngest) -> Result<IngestRun, BenchError> {
    let store = super::db::open(&c.database_url, &c.key_file).await?;
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let tenant = store.tenant(ORG, &c.tenant).await.map_err(|e| setup(&e))?;
    let pem = c
        .ca_cert
        .as_ref()
        .map(std::fs::read)
        .transpose()
        .map_err(|e| setup(&e))?;
    let env = SyncEnv::new(
        store.clone(),
        PluginEngine::new(EngineConfig::default()).map_err(|e| setup(&e))?,
        m365sync_graph::http_client(pem.as_deref()).map_err(|e| setup(&e))?,
    );
    let mailboxes = store.mailboxes(tenant.id).await.map_err(|e| setup(&e))?;
    let count = mailboxes.len();
    let started = Instant::now();
    let timeline = Arc::new(Mutex::new(vec![(0.0, 0u64)]));
    let progress_timeline = Arc::clone(&timeline);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opts = RunOptions {
        bypass_plugins: c.variant == Variant::Floor,
        mailboxes_in_flight: c.in_flight,
        progress: Some(Box::new(
            move |_: usize, _: usize, _: &str, counts: &m365sync::sync::Counts| {
                let total = done.fetch_add(counts.processed, std::sync::atomic::Ordering::Relaxed)
                    + counts.processed;
                progress_timeline
                    .lock()
                    .expect("timeline lock")
                    .push((started.elapsed().as_secs_f64(), total));
            },
        )),
    };
    let cpu_before = cpu_seconds();
    let written_before = written_bytes();
    let report = run_mailboxes_with(&env, &tenant, mailboxes, "bench", &opts).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let written = written_bytes().saturating_sub(written_before);
    if !report.mailbox_errors.is_empty() {
        return Err(BenchError::Setup(format!(
            "mailboxes failed: {:?}",
            report.mailbox_errors
        )));
    }
    let stored_emails = store.email_count(tenant.id).await.map_err(|e| setup(&e))?;
    let shadow_compared = match store
        .shadow(
            PluginScope {
                org_id: tenant.org_id,
                tenant_id: None,
            },
            "exclusion",
        )
        .await
        .map_err(|e| setup(&e))?
    {
        Some(s) => [s.agreed, s.disagreed, s.failed],
        None => [0; 3],
    };
    let attachment_mib = store.blob_bytes().await.map_err(|e| setup(&e))? as f64 / 1048576.0;
    store.close().await;
    let stage_seconds = report.stage_micros as f64 / 1e6;
    let timeline = timeline.lock().expect("timeline lock").clone();
    Ok(IngestRun {
        variant: c.variant,
        db: c.db.clone(),
        mailboxes: count,
        processed: report.processed,
        stored_emails,
        excluded: report.excluded,
        failed: report.failed,
        pages: report.pages,
        seconds,
        messages_per_second: report.processed as f64 / seconds.max(1e-9),
        cpu_seconds: cpu,
        cpu_seconds_per_1000: cpu * 1000.0 / (report.processed.max(1) as f64),
        peak_rss_mib: peak_rss_mib(),
        written_kib_per_message: written as f64 / 1024.0 / (report.processed.max(1) as f64),
        stage_seconds,
        stage_cpu_percent: 100.0 * stage_seconds / cpu.max(1e-9),
        attachment_mib,
        timeline,
        load_average: load_average(),
        sim_requests: 0,
        sim_cpu_seconds: 0.0,
        shadow_compared,
    })
}

/// Sets the builtin exclusion plugin, tagged as another version, as the org's shadow.
async fn set_shadow(store: &m365sync_store::Store, tenant: &str) -> Result<(), BenchError> {
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let t = store.tenant(ORG, tenant).await.map_err(|e| setup(&e))?;
    let mut wasm = builtin(Kind::Exclusion).wasm.to_vec();
    let name = b"m365sync-bench-shadow";
    wasm.push(0);
    wasm.push((1 + name.len() + 1) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.push(1);
    let digest = m365sync_plugin::cache::digest(&wasm);
    store
        .start_shadow(
            PluginScope {
                org_id: t.org_id,
                tenant_id: None,
            },
            &NewPlugin {
                slot: "exclusion",
                digest: &digest,
                name: builtin(Kind::Exclusion).name,
                version: "bench-shadow",
                wasm: &wasm,
            },
            "bench: the builtin's own behaviour",
            "",
        )
        .await
        .map_err(|e| setup(&e))
}

/// The harness's side: for each database, a fresh store per variant, declared, then measured in
/// a child. Ingest and floor alternate so drift in the machine's load hits both alike.
pub async fn ingest_and_floor(
    host: &SimHost,
    dbs: &[DbKind],
    work: &Path,
    postgres_admin: &str,
    page_size: i64,
    shadow: bool,
) -> Result<Vec<IngestRun>, BenchError> {
    let tenants = host.tenants().await?;
    let tenant = &tenants[0];
    let mut runs = Vec::new();
    for &kind in dbs {
        let variants: &[Variant] = if shadow {
            &[Variant::Ingest, Variant::Shadow, Variant::Floor]
        } else {
            &[Variant::Ingest, Variant::Floor]
        };
        for &variant in variants {
            let label = format!("{}-{}", variant.name(), kind.name());
            tracing::info!(run = %label, "preparing");
            let db = BenchDb::create(kind, &label, work, postgres_admin).await?;
            let store = db.open().await?;
            declare(
                &store,
                &host.base_url,
                tenant,
                "ingest",
                &Declare {
                    page_size,
                    cadence_minutes: 15,
                    max_concurrency: 8,
                },
            )
            .await?;
            if variant == Variant::Shadow {
                set_shadow(&store, "ingest").await?;
            }
            store.close().await;
            let child = ChildIngest {
                database_url: db.url.clone(),
                key_file: db.key_file.clone(),
                tenant: "ingest".into(),
                ca_cert: host.ca_cert.clone(),
                variant,
                db: kind.name().into(),
                in_flight: 0,
            };
            let before = host.stats().await?.graph_requests;
            let sim_cpu = cpu_seconds();
            let result = run_child::<IngestRun>(&child.args(), &label, work).await;
            let sim_cpu = cpu_seconds() - sim_cpu;
            let after = host.stats().await?.graph_requests;
            db.remove().await;
            let mut run = result?;
            run.sim_requests = after - before;
            if host.in_process().is_some() {
                run.sim_cpu_seconds = sim_cpu;
            }
            tracing::info!(run = %label, msg_per_s = run.messages_per_second as u64, "measured");
            runs.push(run);
        }
    }
    Ok(runs)
}
