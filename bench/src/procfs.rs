//! This process's own figures from Linux's `/proc/self` (0 where there is no /proc): what every
//! scenario reports beside its rates, read one way.

/// The first number after the line starting with `key` in `/proc/self/FILE` (`status`'s
/// `VmHWM:`, `io`'s `wchar:`, ...).
fn self_figure(file: &str, key: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/self/{file}"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// User plus system CPU seconds of this process so far.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's peak resident memory (`VmHWM`), MiB.
pub fn peak_rss_mib() -> f64 {
    self_figure("status", "VmHWM:").unwrap_or(0.0) / 1024.0
}

/// This process's resident memory now (`VmRSS`), MiB.
pub fn rss_mib() -> f64 {
    self_figure("status", "VmRSS:").unwrap_or(0.0) / 1024.0
}

/// Bytes this process has handed to `write`-family calls so far (`wchar` of /proc/self/io).
/// For a store's child it is the database's own write volume: SQLite's log frames and
/// checkpoints, which a profile of the ingest showed as its largest kernel cost.
pub fn written_bytes() -> u64 {
    self_figure("io", "wchar:").unwrap_or(0.0) as u64
}
