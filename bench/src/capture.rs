//! Scenario `capture`: how long after mail arrives it is stored. Messages are delivered one at
//! a time through the simulator's control API while a `serve` child runs, and each is followed
//! by the "sync now" a change notification (or an admin) gives the service: the tenant's next
//! run made due at once. Measured: from the delivery to the email's row being committed
//! (its `created_ms`), p50 and p99.
//!
//! Polling alone adds the wait for the next scheduled run: with the shortest cadence allowed
//! (15 minutes) that is uniform over 0-15 minutes, so p50 about 7.5 and p99 about 14.9 minutes
//! on top of the figure measured here; the report states it beside the measurement rather
//! than spending a quarter of an hour per sample.
//!
//! With `notifications` (issue 17) nothing asks for a run: the cadence is a week, the service's
//! receiver gets the simulator's change notifications on a loopback port, and messages are
//! delivered at a steady rate over the mailboxes without waiting for each; the Graph requests
//! the service sent per message are reported beside the latencies.
//!
//! "Matched": the sender is a CRM contact, so the service's matching job links each delivered
//! email to it; [`matched_at`] reads when that link was stored.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Row;

use super::child::{load_average, spawn_child};
use super::db::{declare, BenchDb, DbKind, Declare};
use super::host::SimHost;
use super::serve_child::{ChildServe, ServeReport};
use super::{BenchError, BenchOptions};

/// The capture scenario's size.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureOptions {
    /// Mailboxes of the generated tenant.
    pub mailboxes: usize,
    /// Messages each mailbox starts with, backfilled before the first sample.
    pub messages: usize,
    /// Messages delivered (one sample each).
    pub samples: usize,
    /// Change notifications drive the sync (issue 17): a weekly cadence, no "sync now"; the
    /// messages are delivered `per_minute`, round-robin over the mailboxes, without waiting
    /// for each to be stored.
    pub notifications: bool,
    /// With notifications: deliveries per minute.
    pub per_minute: usize,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            mailboxes: 20,
            messages: 200,
            samples: 30,
            notifications: false,
            per_minute: 1000,
        }
    }
}

/// One delivered message.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// The mailbox it was delivered to (user principal name).
    pub mailbox: String,
    /// From delivery to the email row's commit (its `created_ms`), ms.
    pub stored_ms: i64,
    /// From delivery to the link to the sender's contact; `None` if it never came.
    pub matched_ms: Option<i64>,
}

/// What the scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureResult {
    /// The size it ran with.
    pub options: CaptureOptions,
    /// Every delivered message, in delivery order.
    pub samples: Vec<Sample>,
    /// From delivery to stored, p50 over the samples, ms.
    pub stored_p50_ms: i64,
    /// From delivery to stored, p99, ms.
    pub stored_p99_ms: i64,
    /// From delivery to stored, the slowest sample, ms.
    pub stored_max_ms: i64,
    /// From delivery to the link to the sender's contact, p50 (samples that matched), ms.
    pub matched_p50_ms: i64,
    /// The same, p99, ms.
    pub matched_p99_ms: i64,
    /// Minutes polling at the shortest cadence (15 minutes) adds on top, p50: stated, not
    /// measured (the wait is uniform over the cadence).
    pub polling_wait_p50_min: f64,
    /// The same, p99.
    pub polling_wait_p99_min: f64,
    /// The `serve` child's own report of its CPU and memory.
    pub service: ServeReport,
    /// The machine's 1-minute load average when the scenario ended.
    pub load_average: f64,
    /// With notifications: Graph requests the service sent from the first delivery until the
    /// last message was stored, per message delivered (the delta rounds' requests).
    pub graph_requests_per_message: Option<f64>,
}

/// When the email with `internet_message_id` was linked to a contact by the service's matching
/// job (epoch ms), waiting up to 30 s for it; `None` if it never was.
pub async fn matched_at(pool: &sqlx::AnyPool, internet_message_id: &str) -> Option<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = sqlx::query(
            "SELECT MIN(a.at_ms) AS at FROM activity_matches a JOIN emails e ON a.kind = 'email' AND e.id = a.record_id
             WHERE e.internet_message_id = $1",
        )
        .bind(internet_message_id)
        .fetch_all(pool)
        .await
        .ok()?;
        if let Some(at) = rows
            .first()
            .and_then(|r| r.try_get::<Option<i64>, _>("at").ok().flatten())
        {
            return Some(at);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs the scenario against `host`.
pub async fn run(
    host: &SimHost,
    opts: &BenchOptions,
    work: &Path,
) -> Result<CaptureResult, BenchError> {
    let o = opts.capture.clone();
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let sql = |e: sqlx::Error| BenchError::Setup(format!("reading stored emails: {e}"));
    let tenants = host.tenants().await?;
    let kind = opts.dbs.first().copied().unwrap_or(DbKind::Sqlite);
    let db = BenchDb::create(kind, "capture", work, &opts.postgres).await?;
    let store = db.open().await?;
    let tenant = declare(
        &store,
        &host.base_url,
        &tenants[0],
        "capture",
        &Declare {
            page_size: opts.page_size,
            cadence_minutes: if o.notifications { 10_080 } else { 15 },
            max_concurrency: 8,
        },
    )
    .await?;
    // The sender is a client the CRM knows: captured mail is also matched.
    store
        .create_contact(
            tenant.org_id,
            &m365sync_store::crm::ContactInput {
                name: "A Client".into(),
                email: Some("client@acme-holdings.example".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| setup(&e))?;
    let stop_file = work.join("capture.stop");
    let _ = std::fs::remove_file(&stop_file);
    let child = ChildServe {
        database_url: db.url.clone(),
        key_file: db.key_file.clone(),
        ca_cert: host.ca_cert.clone(),
        workers: 8,
        seconds: 3600.0,
        stop_file: Some(stop_file.clone()),
        notifications: o.notifications,
    };
    let mut service = spawn_child(&child.args(), "capture-serve", work)?;
    let pool = sqlx::AnyPool::connect(&db.url).await.map_err(sql)?;
    let outcome = async {
        // The backfill first: captures are measured on a tenant that is up to date.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let runs = store.runs(tenant.id, 10).await.map_err(|e| setup(&e))?;
            if runs.iter().any(|r| r.finished_ms.is_some()) {
                break;
            }
            if Instant::now() > deadline || service.has_exited() {
                return Err(BenchError::Setup("the backfill did not finish".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if o.notifications {
            return notified(host, &store, &pool, &tenant, &tenants[0].mailboxes, &o, &mut service)
                .await;
        }
        let mut samples = Vec::new();
        for i in 0..o.samples {
            let (_, upn, _) = &tenants[0].mailboxes[i % tenants[0].mailboxes.len()];
            let imid = format!("<capture-{i}-{}@bench.example>", std::process::id());
            let body = serde_json::json!({
                "from": "client@acme-holdings.example",
                "from_name": "A Client",
                "to": [upn],
                "subject": format!("capture {i}"),
                "body": "<p>Are we still on for Thursday?</p>",
                "internet_message_id": imid,
            });
            let t0 = chrono::Utc::now().timestamp_millis();
            host.control("POST", "deliver", Some(&body)).await?;
            store.request_run(tenant.id).await.map_err(|e| setup(&e))?;
            let deadline = Instant::now() + Duration::from_secs(120);
            let stored = loop {
                let row = sqlx::query(
                    "SELECT created_ms FROM emails WHERE tenant_id = $1 AND internet_message_id = $2",
                )
                .bind(tenant.id)
                .bind(&imid)
                .fetch_all(&pool)
                .await
                .map_err(sql)?;
                if let Some(r) = row.first() {
                    break r.try_get::<i64, _>(0).map_err(sql)?;
                }
                if Instant::now() > deadline {
                    return Err(BenchError::Setup(format!(
                        "message {imid} was not stored within two minutes"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            samples.push(Sample {
                mailbox: upn.clone(),
                stored_ms: stored - t0,
                matched_ms: matched_at(&pool, &imid).await.map(|m| m - t0),
            });
        }
        Ok::<(Vec<Sample>, Option<f64>), BenchError>((samples, None))
    }
    .await;
    let _ = std::fs::write(&stop_file, "");
    let report: Result<ServeReport, BenchError> = service.finish().await;
    pool.close().await;
    store.close().await;
    db.remove().await;
    let (samples, graph_requests_per_message) = outcome?;
    let mut stored: Vec<i64> = samples.iter().map(|s| s.stored_ms).collect();
    stored.sort_unstable();
    let mut matched: Vec<i64> = samples.iter().filter_map(|s| s.matched_ms).collect();
    matched.sort_unstable();
    Ok(CaptureResult {
        stored_p50_ms: percentile(&stored, 0.5),
        stored_p99_ms: percentile(&stored, 0.99),
        stored_max_ms: stored.last().copied().unwrap_or(0),
        matched_p50_ms: percentile(&matched, 0.5),
        matched_p99_ms: percentile(&matched, 0.99),
        polling_wait_p50_min: 7.5,
        polling_wait_p99_min: 14.85,
        samples,
        service: report?,
        load_average: load_average(),
        graph_requests_per_message,
        options: o,
    })
}

/// The Graph requests the simulator has answered so far.
async fn graph_requests(host: &SimHost) -> Result<u64, BenchError> {
    let stats = host.control("GET", "stats", None).await?;
    Ok(stats["graph_requests"].as_u64().unwrap_or(0))
}

/// With notifications: waits for every mailbox's mail subscription and for the work the
/// backfill and the subscriptions' first looks owe, then delivers `samples` messages at
/// `per_minute` over the mailboxes (no "sync now": only the notifications wake the service)
/// and reads when each was stored.
async fn notified(
    host: &SimHost,
    store: &m365sync_store::Store,
    pool: &sqlx::AnyPool,
    tenant: &m365sync_store::tenants::Tenant,
    mailboxes: &[(String, String, String)],
    o: &CaptureOptions,
    service: &mut super::child::RunningChild,
) -> Result<(Vec<Sample>, Option<f64>), BenchError> {
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let sql = |e: sqlx::Error| BenchError::Setup(format!("reading stored emails: {e}"));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let subs = store
            .tenant_subscriptions(tenant.id)
            .await
            .map_err(|e| setup(&e))?;
        let active = subs
            .iter()
            .filter(|s| s.resource.as_str() == "mail" && s.status == "active")
            .count();
        let pending = store.pending_count().await.map_err(|e| setup(&e))?;
        if active >= mailboxes.len() && pending == 0 {
            break;
        }
        if Instant::now() > deadline || service.has_exited() {
            return Err(BenchError::Setup(format!(
                "the subscriptions were not all active ({active} of {}) with no work owed",
                mailboxes.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let requests_before = graph_requests(host).await?;
    let every = Duration::from_secs_f64(60.0 / o.per_minute.max(1) as f64);
    let started = Instant::now();
    let mut sent = Vec::new();
    for i in 0..o.samples {
        let (_, upn, _) = &mailboxes[i % mailboxes.len()];
        let imid = format!("<notified-{i}-{}@bench.example>", std::process::id());
        let body = serde_json::json!({
            "from": "client@acme-holdings.example",
            "from_name": "A Client",
            "to": [upn],
            "subject": format!("notified {i}"),
            "body": "<p>Are we still on for Thursday?</p>",
            "internet_message_id": imid,
        });
        let t0 = chrono::Utc::now().timestamp_millis();
        host.control("POST", "deliver", Some(&body)).await?;
        sent.push((upn.clone(), imid, t0));
        // Paced from the start, so slow deliveries do not stretch the minute.
        let next = every * (i as u32 + 1);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let mut stored_at = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored_at.len() < sent.len() {
        let rows = sqlx::query(
            "SELECT internet_message_id, created_ms FROM emails WHERE tenant_id = $1 AND internet_message_id LIKE '<notified-%'",
        )
        .bind(tenant.id)
        .fetch_all(pool)
        .await
        .map_err(sql)?;
        for r in rows {
            let imid: String = r.try_get(0).map_err(sql)?;
            let at: i64 = r.try_get(1).map_err(sql)?;
            stored_at.insert(imid, at);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "{} of {} notified messages were stored within five minutes",
                stored_at.len(),
                sent.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = graph_requests(host).await? - requests_before;
    let samples = sent
        .into_iter()
        .map(|(mailbox, imid, t0)| Sample {
            mailbox,
            stored_ms: stored_at[&imid] - t0,
            matched_ms: None,
        })
        .collect::<Vec<_>>();
    let per_message = requests as f64 / samples.len().max(1) as f64;
    Ok((samples, Some(per_message)))
}
