//! The calendar benchmark (`m365sync events bench`): a generated tenant served by the
//! simulator in this process (its throttling on), each user's primary calendar pulled into a
//! fresh SQLite file through the default plugins (occurrences expanded), then a batch of CRM
//! events pushed from the outbox. End to end: the simulator's own work is inside the figures.

use std::time::Instant;

use serde::Serialize;

use crate::plugin::engine::{EngineConfig, PluginEngine};
use crate::service::sandbox;
use crate::sim::config::ProtocolConfig;
use crate::sim::generate::GenerateOptions;
use crate::sim::server::{serve, ServeOptions};
use crate::sim::{Origin, Sim};
use crate::store::events::{CalendarSettings, Direction};
use crate::store::{SecretKey, Store};
use crate::sync::bench::{cpu_seconds, peak_rss_mib};
use crate::sync::run::{run_mailboxes_with, RunOptions};
use crate::sync::SyncEnv;

use super::crm::{add_event, NewEvent};

/// What to measure.
#[derive(Debug, Clone)]
pub struct CalendarBenchOptions {
    pub users: usize,
    /// Calendar items the simulator generates per user (series expand to more events).
    pub items: usize,
    /// CRM events created, then pushed, per user.
    pub pushes_per_user: usize,
    pub page_size: i64,
}

/// One measured pull and push.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarBenchReport {
    pub users: usize,
    /// Delta items read (occurrences expanded, removals included).
    pub pulled_items: u64,
    pub stored_events: i64,
    pub pull_seconds: f64,
    pub pull_events_per_second: f64,
    pub pull_cpu_seconds: f64,
    pub pushed: u64,
    pub push_seconds: f64,
    pub pushes_per_second: f64,
    /// 429s the simulator answered during the push.
    pub push_throttled: u64,
    /// The process's peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalendarBenchError {
    #[error("benchmark setup: {0}")]
    Setup(String),
    #[error(transparent)]
    Sync(#[from] crate::sync::pipeline::SyncError),
}

fn setup<E: std::fmt::Display>(e: E) -> CalendarBenchError {
    CalendarBenchError::Setup(e.to_string())
}

/// Generates the tenant, times the initial pull of every calendar, then the push.
pub async fn run(opts: &CalendarBenchOptions) -> Result<CalendarBenchReport, CalendarBenchError> {
    let sim = Sim::new(
        Origin::Generated(GenerateOptions {
            users: opts.users,
            shared: 0,
            messages: 0,
            events: opts.items,
            attachment_rate: 0.0,
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
    let dir = std::env::temp_dir().join(format!("m365sync-cal-bench-{}", std::process::id()));
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
    // No mail is generated: the email folders' rounds are empty requests.
    settings.page_size = opts.page_size;
    store
        .set_settings(tenant.id, &settings)
        .await
        .map_err(setup)?;
    store
        .set_calendar_settings(
            tenant.org_id,
            Some(tenant.id),
            &CalendarSettings {
                direction: Direction::TwoWay,
                sync_internal_events: true,
                commencement_ms: Some(0),
                ..CalendarSettings::default()
            },
        )
        .await
        .map_err(setup)?;
    let env = SyncEnv {
        store: store.clone(),
        engine: PluginEngine::new(EngineConfig::default()).map_err(setup)?,
        http: crate::graph::http_client(None).map_err(setup)?,
    };
    let mailboxes = store.mailboxes(tenant.id).await.map_err(setup)?;
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let pulled = run_mailboxes_with(
        &env,
        &tenant,
        mailboxes.clone(),
        "bench",
        &RunOptions::default(),
    )
    .await?;
    let pull_seconds = started.elapsed().as_secs_f64();
    let pull_cpu_seconds = cpu_seconds() - cpu_before;
    if !pulled.mailbox_errors.is_empty() {
        return Err(setup(format!(
            "mailboxes failed: {:?}",
            pulled.mailbox_errors
        )));
    }
    let stored_events = store.event_count(tenant.id).await.map_err(setup)?;
    // The push: future CRM events for every user, then one run drains the outbox.
    let soon = chrono::Utc::now() + chrono::Duration::days(2);
    let mut queued = 0u64;
    for m in &mailboxes {
        for i in 0..opts.pushes_per_user {
            let start = soon + chrono::Duration::hours(i as i64);
            add_event(
                &store,
                &tenant,
                &m.address,
                &NewEvent {
                    subject: format!("Bench {i}"),
                    start: super::convert::rfc3339(start),
                    end: super::convert::rfc3339(start + chrono::Duration::minutes(30)),
                    ..NewEvent::default()
                },
            )
            .await
            .map_err(setup)?;
            queued += 1;
        }
    }
    let throttled_before = throttled(&running.sim);
    let started = Instant::now();
    let pushed =
        run_mailboxes_with(&env, &tenant, mailboxes, "bench", &RunOptions::default()).await?;
    let push_seconds = started.elapsed().as_secs_f64();
    let push_throttled = throttled(&running.sim) - throttled_before;
    let left = store.outbox_len(tenant.id).await.map_err(setup)?;
    store.close().await;
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if !pushed.mailbox_errors.is_empty() || left != 0 {
        return Err(setup(format!(
            "push incomplete ({left} outbox rows left): {:?}",
            pushed.mailbox_errors
        )));
    }
    Ok(CalendarBenchReport {
        users: opts.users,
        pulled_items: pulled.processed,
        stored_events,
        pull_seconds,
        pull_events_per_second: pulled.processed as f64 / pull_seconds,
        pull_cpu_seconds,
        pushed: queued,
        push_seconds,
        pushes_per_second: queued as f64 / push_seconds,
        push_throttled,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// 429s the simulator has answered so far.
fn throttled(sim: &Sim) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    sim.stats.throttled_concurrency.load(Relaxed) + sim.stats.throttled_budget.load(Relaxed)
}
