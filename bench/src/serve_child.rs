//! A child process running the real service (`serve`'s scheduler, workers and plugin watcher,
//! without the admin API) on a benchmark database for a fixed time, reporting its own CPU and
//! memory: the load of the throttle scenario, and the host of later service scenarios.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use m365sync::service::{NotificationUrl, Service, ServiceOptions};
use m365sync::sync::stop::stop_pair;
use m365sync::sync::SyncEnv;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};

use super::child::{cpu_seconds, peak_rss_mib, rss_mib};
use super::BenchError;

/// What the parent tells a service child.
#[derive(Debug, Clone)]
pub struct ChildServe {
    /// The benchmark database the service opens.
    pub database_url: String,
    /// The key file that database's secrets are sealed with.
    pub key_file: std::path::PathBuf,
    /// The CA the simulator's https needs, when the system's roots do not cover it.
    pub ca_cert: Option<std::path::PathBuf>,
    /// The service's sync workers (at least one).
    pub workers: usize,
    /// The longest the service runs.
    pub seconds: f64,
    /// The service stops as soon as this file exists (the harness's "we are done").
    pub stop_file: Option<std::path::PathBuf>,
    /// Change notifications on: the service's receiver listens on a loopback port and its
    /// subscriptions point there (the simulator runs on the same host).
    pub notifications: bool,
}

impl ChildServe {
    /// The child's command-line arguments (after `bench child`).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "serve".into(),
            "--database-url".into(),
            self.database_url.clone(),
            "--key-file".into(),
            self.key_file.display().to_string(),
            "--workers".into(),
            self.workers.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
        ];
        if let Some(ca) = &self.ca_cert {
            a.push("--ca".into());
            a.push(ca.display().to_string());
        }
        if let Some(f) = &self.stop_file {
            a.push("--stop-file".into());
            a.push(f.display().to_string());
        }
        if self.notifications {
            a.push("--notifications".into());
        }
        a
    }
}

/// What a service child reports when its time is up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeReport {
    /// How long the service ran, seconds.
    pub seconds: f64,
    /// The child's CPU seconds from the service's start to its stop.
    pub cpu_seconds: f64,
    /// The child's peak resident memory over its whole life, MiB.
    pub peak_rss_mib: f64,
    /// The child's resident memory when its time was up, MiB.
    pub rss_mib: f64,
}

/// The child's side: runs the service for the given time, then stops it as SIGTERM would.
pub async fn child_serve(c: &ChildServe) -> Result<ServeReport, BenchError> {
    let store = super::db::open(&c.database_url, &c.key_file).await?;
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
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
    let mut opts = if c.notifications {
        // The admin listener carries the receiver; its token is never used by the harness.
        let token = format!(
            "bench-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let mut o = ServiceOptions::new(Some(([127, 0, 0, 1], 0).into()), token);
        o.notification_url = NotificationUrl::Loopback;
        o
    } else {
        ServiceOptions::new(None, String::new())
    };
    opts.workers = c.workers.max(1);
    opts.poll = Duration::from_millis(200);
    let (handle, stop) = stop_pair();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let service = Service::start(env, opts, stop)
        .await
        .map_err(|e| setup(&e))?;
    let until = started + Duration::from_secs_f64(c.seconds);
    while Instant::now() < until && !c.stop_file.as_ref().is_some_and(|f| f.exists()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss = rss_mib();
    handle.stop();
    service.wait().await;
    store.close().await;
    Ok(ServeReport {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: cpu_seconds() - cpu_before,
        peak_rss_mib: peak_rss_mib(),
        rss_mib: rss,
    })
}
