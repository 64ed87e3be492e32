//! Measured work runs in a child `m365sync bench child ...` process, so its CPU time and peak
//! resident memory are its own: not the simulator's, not the harness's, not an earlier
//! scenario's. The child prints one JSON report on stdout; its logs go to stderr, kept in the
//! work directory for when it fails.

use std::path::Path;
use std::process::Stdio;

use serde::de::DeserializeOwned;

use super::BenchError;

pub use crate::procfs::{cpu_seconds, peak_rss_mib, rss_mib, written_bytes};

/// The 1-minute load average, recorded beside every figure (these machines are shared).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Runs `m365sync bench child ARGS` (this same binary) and decodes its report. `label` names
/// the run in errors and in the log file kept in `work`.
pub async fn run_child<T: DeserializeOwned>(
    args: &[String],
    label: &str,
    work: &Path,
) -> Result<T, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Setup(format!("cannot find this executable: {e}")))?;
    let log = work.join(format!("{label}.log"));
    let log_file = std::fs::File::create(&log)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", log.display())))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("bench")
        .arg("child")
        .args(args)
        .env(
            "M365SYNC_LOG",
            std::env::var("M365SYNC_BENCH_LOG").unwrap_or("warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    let output = output_of(cmd)
        .await
        .map_err(|e| BenchError::Setup(format!("cannot start the {label} child: {e}")))?;
    if !output.status.success() {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: String = tail
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(BenchError::Child {
            label: label.to_string(),
            detail: format!(
                "{}; its log ({}) ends:\n{tail}",
                output.status,
                log.display()
            ),
        });
    }
    serde_json::from_slice(&output.stdout).map_err(|e| BenchError::Child {
        label: label.to_string(),
        detail: format!("its report is not valid JSON: {e}"),
    })
}

/// Runs a command to completion on a blocking thread (tokio's process support is not compiled
/// in) and returns its output.
pub async fn output_of(mut cmd: std::process::Command) -> std::io::Result<std::process::Output> {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .map_err(std::io::Error::other)?
}

/// A child started with [`spawn_child`], whose memory the harness reads while it runs.
pub struct RunningChild {
    child: std::process::Child,
    label: String,
    log: std::path::PathBuf,
}

/// Starts `m365sync bench child ARGS` and returns at once (for scenarios that watch the
/// child's memory from outside while it serves).
pub fn spawn_child(args: &[String], label: &str, work: &Path) -> Result<RunningChild, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Setup(format!("cannot find this executable: {e}")))?;
    let log = work.join(format!("{label}.log"));
    let log_file = std::fs::File::create(&log)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", log.display())))?;
    let child = std::process::Command::new(exe)
        .arg("bench")
        .arg("child")
        .args(args)
        .env(
            "M365SYNC_LOG",
            std::env::var("M365SYNC_BENCH_LOG").unwrap_or("warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(|e| BenchError::Setup(format!("cannot start the {label} child: {e}")))?;
    Ok(RunningChild {
        child,
        label: label.to_string(),
        log,
    })
}

impl RunningChild {
    /// (resident MiB now, peak resident MiB) of the child, from /proc.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(0.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// True once the child has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the child (which must be told to stop first) and decodes its report.
    pub async fn finish<T: DeserializeOwned>(self) -> Result<T, BenchError> {
        let RunningChild { child, label, log } = self;
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .map_err(|e| BenchError::Setup(format!("waiting for the {label} child: {e}")))?;
        if !output.status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(BenchError::Child {
                label,
                detail: format!(
                    "{}; its log ({}) ends:\n{}",
                    output.status,
                    log.display(),
                    tail.join("\n")
                ),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|e| BenchError::Child {
            label,
            detail: format!("its report is not valid JSON: {e}"),
        })
    }
}
