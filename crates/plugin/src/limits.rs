//! What one plugin call may use, and the memory limiter that enforces it.
//!
//! A plugin is untrusted code that runs inside the sync pipeline. Each bound below exists so a
//! plugin (buggy or hostile) costs at most a known amount of time and memory, and so what the
//! host hands over and takes back is bounded too:
//!
//! | limit | default | enforced by |
//! |---|---|---|
//! | `call_timeout` | 1 s per batch call | epoch interruption (engine ticker) |
//! | `max_memory_bytes` | 64 MiB per instance | [`StoreLimiter`] (`memory.grow` fails) |
//! | `max_batch` | 1,000 records per call | larger batches are split by the host |
//! | `max_record_bytes` | 2 MiB per input record | the record fails without a call |
//! | `max_output_record_bytes` | 1 MiB per output | that record fails |
//! | `max_host_list` | 10,000 items per host-import list, in or out | trap / truncation |
//! | `max_log_bytes` | 64 KiB of log and stdout/stderr per call | further output is dropped |
//! | `isolation_budget` | 2 x `call_timeout` | re-running the records of a failed batch one by one |
//!
//! Per tenant, a host may pass its own [`Limits`] to each call; the engine-wide ceiling is
//! [`EngineConfig::max_memory_bytes`](super::engine::EngineConfig) (the pooling slot size).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Bounds of one plugin call (see the module docs for the defaults and why).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall time of one call into the plugin.
    #[serde(with = "millis")]
    pub call_timeout: Duration,
    /// Linear memory and table growth per instance.
    pub max_memory_bytes: usize,
    /// Records per call; larger batches are split.
    pub max_batch: usize,
    /// Estimated size of one input record (strings and lists).
    pub max_record_bytes: usize,
    /// Estimated size of one output record.
    pub max_output_record_bytes: usize,
    /// Items of a list a host import accepts or returns.
    pub max_host_list: usize,
    /// Log lines plus stdout/stderr kept per call.
    pub max_log_bytes: usize,
    /// Time spent re-running a failed batch's records one by one, to fail only the bad ones.
    #[serde(with = "millis")]
    pub isolation_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(1),
            max_memory_bytes: 64 << 20,
            max_batch: 1_000,
            max_record_bytes: 2 << 20,
            max_output_record_bytes: 1 << 20,
            max_host_list: 10_000,
            max_log_bytes: 64 << 10,
            isolation_budget: Duration::from_secs(2),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The per-Store memory limiter: refuses growth past `max_memory_bytes` and remembers that it
/// did, so a trap that follows is reported as the memory limit rather than a bare trap.
#[derive(Debug)]
pub struct StoreLimiter {
    /// The largest linear memory an instance may grow to, bytes ([`Limits::max_memory_bytes`]).
    pub max_memory_bytes: usize,
    /// The largest table an instance may grow to, elements (100,000 for every tenant).
    pub max_table_elements: usize,
    /// Set once a growth request was refused.
    pub hit: bool,
}

impl StoreLimiter {
    /// A limiter holding an instance to `limits`, with nothing refused yet.
    pub fn new(limits: &Limits) -> Self {
        StoreLimiter {
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: 100_000,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_memory_bytes;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max_table_elements;
        self.hit |= !ok;
        Ok(ok)
    }
}
