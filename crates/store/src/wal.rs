//! Keeping SQLite's write-ahead log short while the sync writes without pause.
//!
//! SQLite checkpoints the log by itself every 1,000 pages (`wal_autocheckpoint`), but that
//! checkpoint is passive: it copies what no reader still needs and never waits. The log only
//! starts over from its beginning when a checkpoint has copied *everything* and no reader is
//! inside it, and under a backfill another page commit has always appended frames by the time
//! a passive checkpoint ends. Measured with `bench ingest` (20 x 5,000 messages), the log grew
//! to 1.2 GB beside a 229 MB database: every frame went to fresh file pages (block allocation,
//! zeroed page cache), checkpoints re-read a log far larger than the cache, and the disk held
//! five times the store.
//!
//! So the heavy writers (the mail and calendar page commits and the matching job's batches)
//! count their commits here, and every [`RESTART_EVERY`]th one runs a `RESTART` checkpoint:
//! it waits (through `busy_timeout`) for readers on old frames, copies the rest and makes the
//! next writer start the log from its beginning. `journal_size_limit` then cuts the file back.
//! PostgreSQL has nothing to do here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Backend, Store};

/// Commits between two `RESTART` checkpoints: about 10 MB of log at a page commit's usual
/// 100 messages, small enough to stay in the page cache, rare enough that the waits are noise.
pub const RESTART_EVERY: u64 = 32;

/// Pages of log after which SQLite checkpoints by itself (`PRAGMA wal_autocheckpoint`; its
/// default is 1,000). The restarts above do the regular work: a checkpoint copies each page
/// once however often it changed since the last one, and a backfill changes the same index
/// pages over and over, so the longer interval copies fewer pages. This is the net for writers
/// that do not count their commits.
pub const AUTOCHECKPOINT_PAGES: u64 = 20_000;

/// The log file's size kept after a restart, in bytes (`PRAGMA journal_size_limit`).
pub const SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Commits counted since the store opened, shared by the store's clones.
#[derive(Debug, Default, Clone)]
pub(crate) struct CommitCounter(Arc<AtomicU64>);

impl CommitCounter {
    /// Counts one commit; true when this one is due to restart the log.
    fn due(&self) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed) % RESTART_EVERY == RESTART_EVERY - 1
    }
}

impl Store {
    /// Called by a heavy writer after its transaction committed: on SQLite, every
    /// [`RESTART_EVERY`]th call checkpoints and restarts the log. A checkpoint that cannot
    /// finish (a reader outlasting `busy_timeout`) is not an error of the write that already
    /// committed, and loses nothing: the log stays longer until the next one.
    pub(crate) async fn after_heavy_commit(&self) {
        if self.backend() != Backend::Sqlite || !self.commits.due() {
            return;
        }
        let _ = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .fetch_all(self.pool())
            .await;
    }
}
