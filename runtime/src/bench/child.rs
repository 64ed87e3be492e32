//! Measured work runs in a child `m365sync bench child ...` process, so its CPU time and peak
//! resident memory are its own: not the simulator's, not the harness's, not an earlier
//! scenario's. The child prints one JSON report on stdout; its logs go to stderr, kept in the
//! work directory for when it fails.

use std::path::Path;
use std::process::Stdio;

use serde::de::DeserializeOwned;

use super::BenchError;

/// User plus system CPU seconds of this process so far (0 where /proc is missing).
pub fn cpu_seconds() -> f64 {
    crate::sync::bench::cpu_seconds()
}

/// This process's peak resident memory (VmHWM) in MiB (0 where /proc is missing).
pub fn peak_rss_mib() -> f64 {
    crate::sync::bench::peak_rss_mib()
}

/// This process's resident memory now (VmRSS) in MiB (0 where /proc is missing).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

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
