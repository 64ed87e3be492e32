//! The email sync benchmark (`m365sync sync bench`): a generated tenant served by the simulator
//! in this process, backfilled into a fresh SQLite file through the default plugins, or with
//! the plugin stages bypassed (the baseline that prices them). End to end: the simulator's own
//! work is inside the figure, as it is in the goal.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;

use m365sync::service::sandbox;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_sim::config::ProtocolConfig;
use m365sync_sim::generate::GenerateOptions;
use m365sync_sim::server::{serve, ServeOptions};
use m365sync_sim::{Origin, Sim};
use m365sync_store::{SecretKey, Store};

use m365sync::sync::run::{run_mailboxes_with, RunOptions};
use m365sync::sync::SyncEnv;

/// What to measure.
#[derive(Debug, Clone)]
pub struct SyncBenchOptions {
    /// Mailboxes of the generated tenant.
    pub mailboxes: usize,
    /// Messages each mailbox starts with.
    pub messages: usize,
    /// Bypass the plugin stages (every message kept and mapped natively): the baseline.
    pub bypass_plugins: bool,
    /// Delta page size (`Prefer: odata.maxpagesize`).
    pub page_size: i64,
    /// Share of messages with attachments (their bytes dominate when present).
    pub attachment_rate: f64,
}

/// One measured backfill.
#[derive(Debug, Clone, Serialize)]
pub struct SyncBenchReport {
    /// `default plugins` or `plugin stages bypassed`.
    pub variant: &'static str,
    /// Mailboxes backfilled.
    pub mailboxes: usize,
    /// Messages the simulator holds in the synced folders.
    pub processed: u64,
    /// Email rows in the database afterwards.
    pub stored_emails: i64,
    /// Records the exclusion stage dropped.
    pub excluded: u64,
    /// Wall time of the backfill, seconds (generating the tenant not included).
    pub seconds: f64,
    /// `processed` over `seconds`.
    pub messages_per_second: f64,
    /// The process's peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Attachment bytes stored (deduplicated), MiB.
    pub attachment_mib: f64,
    /// CPU seconds of the whole process (simulator, store, plugins), from /proc.
    pub cpu_seconds: f64,
    /// Messages the simulator holds in the folders the default settings sync (every folder
    /// but Junk Email, Deleted Items, Drafts, Outbox, Conversation History and Sync Issues):
    /// the ground truth `stored_emails` must equal.
    pub truth_messages: u64,
    /// Messages in the tenant's largest folder: above Graph's 5,000-message cap on a filtered
    /// delta round, the backfill must list the folder instead (issue 14's speed figure).
    pub largest_folder: u64,
    /// Graph requests the backfill made (token requests not included), from the simulator's
    /// own counter.
    pub graph_requests: u64,
    /// `graph_requests` per 1,000 messages processed: what Graph's paging costs, whatever the
    /// machine's speed.
    pub requests_per_1000: f64,
    /// Seconds inside the exclusion and mapping stages (plugins, or the native baseline).
    pub stage_seconds: f64,
    /// The stages' share of the process's CPU time, percent.
    pub stage_cpu_percent: f64,
}

pub use crate::procfs::{cpu_seconds, peak_rss_mib};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncBenchError {
    /// The simulator, the store, the tenant's declaration or the engine could not be set up,
    /// or a mailbox failed in the backfill.
    #[error("benchmark setup: {0}")]
    Setup(String),
    /// The backfill itself failed.
    #[error(transparent)]
    Sync(#[from] m365sync::sync::SyncError),
}

fn setup<E: std::fmt::Display>(e: E) -> SyncBenchError {
    SyncBenchError::Setup(e.to_string())
}

/// Generates the tenant, then times one backfill of every mailbox.
pub async fn backfill(opts: &SyncBenchOptions) -> Result<SyncBenchReport, SyncBenchError> {
    let sim = Sim::new(
        Origin::Generated(GenerateOptions {
            users: opts.mailboxes,
            shared: 0,
            messages: opts.messages,
            events: 0,
            attachment_rate: opts.attachment_rate,
            ..GenerateOptions::default()
        }),
        ProtocolConfig::default(),
    );
    let running = serve(
        sim,
        ServeOptions {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            tls_dir: None,
            public_url: None,
        },
    )
    .await
    .map_err(setup)?;
    let dir = std::env::temp_dir().join(format!("m365sync-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(setup)?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = Store::open(&url, SecretKey::generate())
        .await
        .map_err(setup)?;
    let tenant = sandbox::declare(&store, &running.sim)
        .await
        .map_err(setup)?;
    let mut settings = store.settings(tenant.id).await.map_err(setup)?;
    // Everything the simulator generated, however old.
    settings.commencement_ms = Some(0);
    settings.page_size = opts.page_size;
    store
        .set_settings(tenant.id, &settings)
        .await
        .map_err(setup)?;
    let env = SyncEnv::new(
        store.clone(),
        PluginEngine::new(EngineConfig::default()).map_err(setup)?,
        m365sync_graph::http_client(None).map_err(setup)?,
    );
    let mailboxes = store.mailboxes(tenant.id).await.map_err(setup)?;
    let run_opts = RunOptions {
        bypass_plugins: opts.bypass_plugins,
        ..RunOptions::default()
    };
    let (largest_folder, truth_messages) = {
        use m365sync_store::tenants::DEFAULT_EXCLUDED_FOLDERS as EXCLUDED;
        let world = running.sim.world();
        let mut largest = 0u64;
        let mut synced = 0u64;
        for user in world.tenants.iter().flat_map(|t| t.users.iter()) {
            for (i, f) in user.folders.iter().enumerate() {
                if f.deleted {
                    continue;
                }
                largest = largest.max(f.items.len() as u64);
                // Excluded when the folder or one of its ancestors is an excluded well-known one.
                let mut at = Some(i);
                let mut excluded = false;
                while let Some(j) = at {
                    let folder = &user.folders[j];
                    excluded |= folder
                        .well_known
                        .as_deref()
                        .is_some_and(|w| EXCLUDED.contains(&w));
                    at = folder.parent;
                }
                if !excluded {
                    synced += f.items.len() as u64;
                }
            }
        }
        (largest, synced)
    };
    let requests_before = running.sim.stats.graph_requests.load(Ordering::Relaxed);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let report = run_mailboxes_with(&env, &tenant, mailboxes, "bench", &run_opts).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let graph_requests = running.sim.stats.graph_requests.load(Ordering::Relaxed) - requests_before;
    let stage_seconds = report.stage_micros as f64 / 1e6;
    let stored_emails = store.email_count(tenant.id).await.map_err(setup)?;
    let attachment_mib = store.blob_bytes().await.map_err(setup)? as f64 / (1024.0 * 1024.0);
    store.close().await;
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if !report.mailbox_errors.is_empty() {
        return Err(SyncBenchError::Setup(format!(
            "mailboxes failed: {:?}",
            report.mailbox_errors
        )));
    }
    Ok(SyncBenchReport {
        variant: if opts.bypass_plugins {
            "plugin stages bypassed"
        } else {
            "default plugins"
        },
        mailboxes: opts.mailboxes,
        processed: report.processed,
        stored_emails,
        excluded: report.excluded,
        seconds,
        messages_per_second: report.processed as f64 / seconds,
        peak_rss_mib: peak_rss_mib(),
        attachment_mib,
        cpu_seconds: cpu,
        truth_messages,
        largest_folder,
        graph_requests,
        requests_per_1000: 1000.0 * graph_requests as f64 / (report.processed.max(1) as f64),
        stage_seconds,
        stage_cpu_percent: 100.0 * stage_seconds / cpu.max(f64::MIN_POSITIVE),
    })
}
