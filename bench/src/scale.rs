//! Scenario `scale`: many tenants in one service. 1,000 mailboxes in 20 tenants (each with its
//! own exclusion plugin version at tenant level, so 20 plugin sets are live), backfilled by one
//! `serve` child; then the service idles, and one incremental pass runs after a little new mail
//! reached every mailbox. The child's memory is read from /proc while it runs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::Kind;
use m365sync_store::plugins::{NewPlugin, PluginScope};
use m365sync_store::Store;

use super::child::{load_average, spawn_child};
use super::db::{declare, BenchDb, DbKind, Declare};
use super::host::SimHost;
use super::serve_child::{ChildServe, ServeReport};
use super::{BenchError, BenchOptions};

/// The scale scenario's size.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleOptions {
    /// Tenants of the generated world, each with its own exclusion plugin version.
    pub tenants: usize,
    /// Mailboxes per tenant.
    pub mailboxes: usize,
    /// Messages each mailbox starts with.
    pub messages: usize,
    /// New messages delivered to each mailbox before the incremental pass.
    pub new_per_mailbox: usize,
    /// The service's sync workers.
    pub workers: usize,
    /// Seconds the service idles between the backfill and the pass.
    pub idle_secs: u64,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            tenants: 20,
            mailboxes: 50,
            messages: 40,
            new_per_mailbox: 1,
            workers: 8,
            idle_secs: 10,
        }
    }
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// The size it ran with.
    pub options: ScaleOptions,
    /// The database the service ran on (`sqlite` or `postgres`).
    pub db: String,
    /// Mailboxes across all tenants.
    pub mailboxes: usize,
    /// From the service's start to every tenant's first run finished, seconds.
    pub backfill_seconds: f64,
    /// Resident memory of the service after the backfill, idle.
    pub idle_rss_mib: f64,
    /// Peak resident memory over the backfill.
    pub backfill_peak_rss_mib: f64,
    /// Messages delivered before the pass, across all mailboxes.
    pub new_messages: usize,
    /// From the runs being requested to the last tenant's run finishing.
    pub pass_seconds: f64,
    /// Resident memory of the service right after the pass, MiB.
    pub rss_after_pass_mib: f64,
    /// Peak resident memory over the whole life of the service.
    pub peak_rss_mib: f64,
    /// Email rows across all tenants after the pass.
    pub emails_stored: i64,
    /// The `serve` child's own report of its CPU and memory.
    pub service: ServeReport,
    /// The machine's 1-minute load average when the scenario ended.
    pub load_average: f64,
}

async fn finished_runs(store: &Store, tenants: &[i64]) -> Result<usize, BenchError> {
    let mut n = 0;
    for &t in tenants {
        n += store
            .runs(t, 10)
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .iter()
            .filter(|r| r.finished_ms.is_some())
            .count();
    }
    Ok(n)
}

/// Waits until every tenant has `want` finished runs.
async fn wait_runs(
    store: &Store,
    tenants: &[i64],
    want: usize,
    what: &str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    while finished_runs(store, tenants).await? < want * tenants.len() {
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "{what} did not finish within 30 minutes"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Runs the scenario against `host` (a world of `tenants` x `mailboxes`).
pub async fn run(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
) -> Result<ScaleResult, BenchError> {
    let o = opts.scale.clone();
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let kind = opts.dbs.first().copied().unwrap_or(DbKind::Sqlite);
    let sim_tenants = host.tenants().await?;
    let db = BenchDb::create(kind, "scale", work, &opts.postgres).await?;
    let store = db.open().await?;
    let mut ids = Vec::new();
    let mut upns = Vec::new();
    for (i, t) in sim_tenants.iter().enumerate() {
        let tenant = declare(
            &store,
            &host.base_url,
            t,
            &format!("t{i:02}"),
            &Declare {
                page_size: opts.page_size,
                cadence_minutes: 15,
                max_concurrency: 8,
            },
        )
        .await?;
        // The tenant's own plugin: the builtin exclusion with a tag section (a new digest).
        let mut wasm = builtin(Kind::Exclusion).wasm.to_vec();
        let name = b"m365sync-bench-tenant";
        wasm.extend_from_slice(&[0, (1 + name.len() + 1) as u8, name.len() as u8]);
        wasm.extend_from_slice(name);
        wasm.push(i as u8);
        let digest = m365sync_plugin::cache::digest(&wasm);
        store
            .install_plugin(
                PluginScope {
                    org_id: tenant.org_id,
                    tenant_id: Some(tenant.id),
                },
                &NewPlugin {
                    slot: "exclusion",
                    digest: &digest,
                    name: "exclusion-rules",
                    version: &format!("bench-t{i:02}"),
                    wasm: &wasm,
                },
            )
            .await
            .map_err(|e| setup(&e))?;
        ids.push(tenant.id);
        upns.extend(t.mailboxes.iter().map(|m| m.1.clone()));
    }
    let stop_file = work.join("scale.stop");
    let _ = std::fs::remove_file(&stop_file);
    let child = ChildServe {
        database_url: db.url.clone(),
        key_file: db.key_file.clone(),
        ca_cert: host.ca_cert.clone(),
        workers: o.workers,
        seconds: 3600.0,
        stop_file: Some(stop_file.clone()),
        notifications: false,
    };
    let mut service = spawn_child(&child.args(), "scale-serve", work)?;
    let stop = |service: &mut super::child::RunningChild| {
        let _ = std::fs::write(&stop_file, "");
        service.has_exited()
    };
    let started = Instant::now();
    if let Err(e) = wait_runs(&store, &ids, 1, "the backfill").await {
        stop(&mut service);
        return Err(e);
    }
    let backfill_seconds = started.elapsed().as_secs_f64();
    let (_, backfill_peak) = service.memory_mib();
    tokio::time::sleep(Duration::from_secs(o.idle_secs)).await;
    let (idle_rss, _) = service.memory_mib();
    // A little new mail everywhere, then every tenant's run is requested at once.
    let mut delivered = 0;
    for (n, upn) in upns.iter().enumerate() {
        for k in 0..o.new_per_mailbox {
            let body = serde_json::json!({
                "from": "client@acme-holdings.example",
                "from_name": "A Client",
                "to": [upn],
                "subject": format!("scale pass message {n}-{k}"),
                "body": "<p>New business.</p>",
            });
            host.control("POST", "deliver", Some(&body)).await?;
            delivered += 1;
        }
    }
    let pass_started = Instant::now();
    for &t in &ids {
        store.request_run(t).await.map_err(|e| setup(&e))?;
    }
    if let Err(e) = wait_runs(&store, &ids, 2, "the incremental pass").await {
        stop(&mut service);
        return Err(e);
    }
    let pass_seconds = pass_started.elapsed().as_secs_f64();
    let (rss_after, peak) = service.memory_mib();
    let mut emails = 0;
    for &t in &ids {
        emails += store.email_count(t).await.map_err(|e| setup(&e))?;
    }
    stop(&mut service);
    let report: ServeReport = service.finish().await?;
    store.close().await;
    db.remove().await;
    Ok(ScaleResult {
        db: kind.name().into(),
        mailboxes: upns.len(),
        backfill_seconds,
        idle_rss_mib: idle_rss,
        backfill_peak_rss_mib: backfill_peak,
        new_messages: delivered,
        pass_seconds,
        rss_after_pass_mib: rss_after,
        peak_rss_mib: peak,
        emails_stored: emails,
        service: report,
        load_average: load_average(),
        options: o,
    })
}
