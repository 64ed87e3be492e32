//! Scenario `swap`: the real service backfills a tenant while the exclusion plugin is installed
//! twice (`m365sync plugin install`, the operator's command, run as a process) and rolled back
//! once. Measured from the store afterwards: the time from each command's start to the first
//! record decided by the version it made active, records lost and records decided twice
//! (against the simulator's ground truth and the run's own count), and batch latency (the gap
//! between a mailbox's successive page commits) overall and in the seconds after each swap.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row;

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::Kind;
use m365sync_store::Store;

use super::child::{load_average, output_of, run_child};
use super::db::{declare, BenchDb, DbKind, Declare, ORG};
use super::host::SimHost;
use super::serve_child::{ChildServe, ServeReport};
use super::{BenchError, BenchOptions};

/// How the swap scenario loads the service.
#[derive(Debug, Clone, Serialize)]
pub struct SwapOptions {
    /// Mailboxes of the generated tenant.
    pub mailboxes: usize,
    /// Messages each mailbox starts with.
    pub messages: usize,
    /// Delta page size; a page is a batch, so it sets how many batch latencies there are.
    pub page_size: i64,
    /// Added to every Graph answer, so the backfill lasts long enough to swap during it.
    pub latency_ms: u64,
    /// Seconds between the swaps.
    pub every_secs: f64,
    /// The service's sync workers.
    pub workers: usize,
}

impl Default for SwapOptions {
    fn default() -> Self {
        SwapOptions {
            mailboxes: 20,
            messages: 2_000,
            page_size: 25,
            latency_ms: 40,
            every_secs: 3.0,
            workers: 8,
        }
    }
}

/// One swap: the command, and when its version first decided a record.
#[derive(Debug, Clone, Serialize)]
pub struct Swap {
    /// The command as an operator types it (`m365sync plugin install`, `... rollback`).
    pub command: String,
    /// sha256 of the version the command made active.
    pub digest: String,
    /// From the command's start to its end (the command checks the plugin's cases first).
    pub command_ms: i64,
    /// From the command's start to the first record decided by that version.
    pub to_first_record_ms: Option<i64>,
    /// Batch latency in the 3 seconds after the command's start, p50, ms (`None`: no batch
    /// committed then).
    pub batch_p50_ms_after: Option<i64>,
    /// The same, p99.
    pub batch_p99_ms_after: Option<i64>,
}

/// The scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SwapResult {
    /// The load it ran with.
    pub options: SwapOptions,
    /// The commands in the order they ran: two installs, then a rollback.
    pub swaps: Vec<Swap>,
    /// Messages in the synced folders (the simulator's ground truth).
    pub truth: u64,
    /// Distinct records decided: stored mailbox copies, exclusions and failed records.
    pub decided: u64,
    /// Records the runs counted as processed.
    pub processed: u64,
    /// `truth` less `decided`: records no version decided (0 is the goal).
    pub lost: i64,
    /// `processed` less `decided`: records decided more than once (0 is the goal).
    pub decided_twice: i64,
    /// Batches measured: page commits that followed an earlier one of the same mailbox.
    pub batches: usize,
    /// Batch latency over the whole backfill, p50, ms.
    pub batch_p50_ms: i64,
    /// The same, p99.
    pub batch_p99_ms: i64,
    /// From the service's start to the backfill's end, seconds.
    pub seconds: f64,
    /// The `serve` child's own report of its CPU and memory.
    pub service: ServeReport,
    /// The machine's 1-minute load average when the scenario ended.
    pub load_average: f64,
}

fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    Some(sorted[i])
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The builtin exclusion plugin with a custom section tagging it: the same policy, another
/// digest, i.e. a new version as the registry sees it.
fn variant(work: &Path, tag: u8) -> Result<PathBuf, BenchError> {
    let mut wasm = builtin(Kind::Exclusion).wasm.to_vec();
    let name = b"m365sync-bench-variant";
    wasm.push(0);
    wasm.push((1 + name.len() + 1) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.push(tag);
    let path = work.join(format!("exclusion-variant-{tag}.wasm"));
    std::fs::write(&path, wasm)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// Runs the scenario against `host`, whose world has `options.mailboxes` mailboxes.
pub async fn run(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
) -> Result<SwapResult, BenchError> {
    let o = opts.swap.clone();
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let tenants = host.tenants().await?;
    let db = BenchDb::create(DbKind::Sqlite, "swap", work, &opts.postgres).await?;
    let store = db.open().await?;
    let tenant = declare(
        &store,
        &host.base_url,
        &tenants[0],
        "swap",
        &Declare {
            page_size: o.page_size,
            cadence_minutes: 15,
            max_concurrency: 8,
        },
    )
    .await?;
    // The operator's configuration, for `m365sync plugin install/rollback`.
    let token_file = work.join("swap.token");
    std::fs::write(&token_file, "bench-admin-token-not-used-here\n").map_err(|e| setup(&e))?;
    let config = work.join("swap.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\nkey_file = {:?}\nadmin_token_file = {:?}\n",
            db.url,
            db.key_file.display().to_string(),
            token_file.display().to_string()
        ),
    )
    .map_err(|e| setup(&e))?;
    let cases_src = builtin(Kind::Exclusion).cases;
    let cases = if cases_src.contains('\n') {
        let p = work.join("exclusion-cases.toml");
        std::fs::write(&p, cases_src).map_err(|e| setup(&e))?;
        p
    } else {
        PathBuf::from(cases_src)
    };
    let v2 = variant(work, 2)?;
    let v3 = variant(work, 3)?;
    let digest = |p: &Path| -> Result<String, BenchError> {
        Ok(m365sync_plugin::cache::digest(
            &std::fs::read(p).map_err(|e| setup(&e))?,
        ))
    };
    let (d2, d3) = (digest(&v2)?, digest(&v3)?);
    host.control(
        "PUT",
        "faults",
        Some(&serde_json::json!({"latency_ms": o.latency_ms})),
    )
    .await?;
    let stop_file = work.join("swap.stop");
    let _ = std::fs::remove_file(&stop_file);
    let child = ChildServe {
        database_url: db.url.clone(),
        key_file: db.key_file.clone(),
        ca_cert: host.ca_cert.clone(),
        workers: o.workers,
        seconds: 600.0,
        stop_file: Some(stop_file.clone()),
        notifications: false,
    };
    let args = child.args();
    let work_dir = work.to_path_buf();
    let started = Instant::now();
    let service =
        tokio::spawn(async move { run_child::<ServeReport>(&args, "swap-serve", &work_dir).await });
    // Swaps start once records flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.email_count(tenant.id).await.map_err(|e| setup(&e))? == 0 {
        if Instant::now() > deadline || service.is_finished() {
            let _ = std::fs::write(&stop_file, "");
            return Err(BenchError::Setup(
                "the service stored nothing within a minute".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exe = std::env::current_exe().map_err(|e| setup(&e))?;
    let steps: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "plugin".into(),
                "install".into(),
                v2.display().to_string(),
                "--org".into(),
                ORG.into(),
                "--slot".into(),
                "exclusion".into(),
                "--cases".into(),
                cases.display().to_string(),
            ],
            d2.clone(),
        ),
        (
            vec![
                "plugin".into(),
                "install".into(),
                v3.display().to_string(),
                "--org".into(),
                ORG.into(),
                "--slot".into(),
                "exclusion".into(),
                "--cases".into(),
                cases.display().to_string(),
            ],
            d3.clone(),
        ),
        (
            vec![
                "plugin".into(),
                "rollback".into(),
                "--org".into(),
                ORG.into(),
                "--slot".into(),
                "exclusion".into(),
            ],
            d2.clone(),
        ),
    ];
    let mut issued = Vec::new();
    for (args, digest) in steps {
        tokio::time::sleep(Duration::from_secs_f64(o.every_secs)).await;
        let t0 = now_ms();
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--config").arg(&config).args(&args);
        let out = output_of(cmd).await.map_err(|e| setup(&e))?;
        let t1 = now_ms();
        if !out.status.success() {
            let _ = std::fs::write(&stop_file, "");
            return Err(BenchError::Setup(format!(
                "`m365sync {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        issued.push((format!("m365sync plugin {}", args[1]), digest, t0, t1));
    }
    // The run ends when no mailbox owes it work.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let runs = store.runs(tenant.id, 10).await.map_err(|e| setup(&e))?;
        if runs.iter().any(|r| r.finished_ms.is_some()) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::write(&stop_file, "");
    let report = service
        .await
        .map_err(|e| BenchError::Setup(format!("the service child's task: {e}")))??;
    host.control("PUT", "faults", Some(&serde_json::json!({})))
        .await?;
    let result = measure(&store, &db.url, tenant.id, host, &issued).await;
    store.close().await;
    db.remove().await;
    let (swaps, truth, decided, processed, batches) = result?;
    let mut all: Vec<i64> = batches.iter().map(|b| b.1).collect();
    all.sort_unstable();
    Ok(SwapResult {
        truth,
        decided,
        processed,
        lost: truth as i64 - decided as i64,
        decided_twice: processed as i64 - decided as i64,
        batches: all.len(),
        batch_p50_ms: percentile(&all, 0.5).unwrap_or(0),
        batch_p99_ms: percentile(&all, 0.99).unwrap_or(0),
        seconds,
        service: report,
        load_average: load_average(),
        swaps,
        options: o,
    })
}

type Measured = (Vec<Swap>, u64, u64, u64, Vec<(i64, i64)>);

/// Reads the decisions back: who decided what when, page commit times per mailbox.
async fn measure(
    store: &Store,
    url: &str,
    tenant_id: i64,
    host: &SimHost,
    issued: &[(String, String, i64, i64)],
) -> Result<Measured, BenchError> {
    let sql = |e: sqlx::Error| BenchError::Setup(format!("reading the swap's results: {e}"));
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.map_err(sql)?;
    let mailbox_ids = format!("SELECT id FROM mailboxes WHERE tenant_id = {tenant_id}");
    // (decided at, decided by) of every decision.
    let mut decisions: Vec<(i64, String)> = Vec::new();
    for q in [
        format!("SELECT e.updated_ms, e.decided_by FROM emails e WHERE e.tenant_id = {tenant_id}"),
        format!("SELECT at_ms, decided_by FROM exclusions WHERE mailbox_id IN ({mailbox_ids})"),
    ] {
        for r in sqlx::query(&q).fetch_all(&pool).await.map_err(sql)? {
            decisions.push((r.try_get(0).map_err(sql)?, r.try_get(1).map_err(sql)?));
        }
    }
    let count = |q: String| {
        let pool = pool.clone();
        async move {
            let r = sqlx::query(&q).fetch_one(&pool).await.map_err(sql)?;
            r.try_get::<i64, _>(0).map_err(sql)
        }
    };
    let copies = count(format!(
        "SELECT COUNT(*) FROM email_mailboxes WHERE mailbox_id IN ({mailbox_ids})"
    ))
    .await?;
    let excluded = count(format!(
        "SELECT COUNT(*) FROM exclusions WHERE mailbox_id IN ({mailbox_ids})"
    ))
    .await?;
    let failed = count(format!(
        "SELECT COUNT(*) FROM failed_records WHERE mailbox_id IN ({mailbox_ids})"
    ))
    .await?;
    // Page commits: all rows of a page carry the commit's one timestamp.
    let mut commits: Vec<(i64, i64)> = Vec::new();
    for r in sqlx::query(&format!(
        "SELECT DISTINCT mailbox_id, updated_ms FROM email_mailboxes WHERE mailbox_id IN ({mailbox_ids}) \
         UNION SELECT DISTINCT mailbox_id, at_ms FROM exclusions WHERE mailbox_id IN ({mailbox_ids}) \
         ORDER BY 1, 2"
    ))
    .fetch_all(&pool)
    .await
    .map_err(sql)?
    {
        commits.push((r.try_get(0).map_err(sql)?, r.try_get(1).map_err(sql)?));
    }
    pool.close().await;
    // (commit time, gap since the mailbox's previous commit).
    let mut batches = Vec::new();
    for w in commits.windows(2) {
        if w[0].0 == w[1].0 {
            batches.push((w[1].1, w[1].1 - w[0].1));
        }
    }
    let runs = store
        .runs(tenant_id, 10)
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let processed: i64 = runs.iter().map(|r| r.processed).sum();
    let truth_json = host.control("GET", "ground-truth", None).await?;
    let truth: u64 = truth_json["tenants"][0]["mailboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(crate::host::synced_by_default)
        .sum();
    let swaps = issued
        .iter()
        .map(|(command, digest, t0, t1)| {
            let first = decisions
                .iter()
                .filter(|(at, by)| {
                    *at >= *t0 && by.split(';').next().unwrap_or("").contains(digest.as_str())
                })
                .map(|(at, _)| *at)
                .min();
            let mut after: Vec<i64> = batches
                .iter()
                .filter(|(at, _)| *at >= *t0 && *at < *t0 + 3_000)
                .map(|b| b.1)
                .collect();
            after.sort_unstable();
            Swap {
                command: command.clone(),
                digest: digest.clone(),
                command_ms: t1 - t0,
                to_first_record_ms: first.map(|f| f - t0),
                batch_p50_ms_after: percentile(&after, 0.5),
                batch_p99_ms_after: percentile(&after, 0.99),
            }
        })
        .collect();
    Ok((
        swaps,
        truth,
        (copies + excluded + failed) as u64,
        processed as u64,
        batches,
    ))
}
