//! Keeping SQLite's write-ahead log short while the sync writes without pause.
//!
//! SQLite checkpoints the log by itself every so many pages (`wal_autocheckpoint`, 1,000 by
//! default; [`AUTOCHECKPOINT_PAGES`] here), but that checkpoint is passive: it copies what no reader still needs and never waits. The log only
//! starts over from its beginning when a checkpoint has copied *everything* and no reader is
//! inside it, and under a backfill another page commit has always appended frames by the time
//! a passive checkpoint ends. Measured with `bench ingest` (20 x 5,000 messages), the log grew
//! to 0.6-1.8 GB beside a 229 MB database: every frame went to fresh file pages (block allocation,
//! zeroed page cache), checkpoints re-read a log far larger than the cache, and the disk held
//! five times the store.
//!
//! So the heavy writers (the mail and calendar page commits and the matching job's batches)
//! count their commits here, and every [`RESTART_EVERY`]th one runs a `RESTART` checkpoint:
//! it waits (a quarter of a second at most) for readers on old frames, copies the rest and makes
//! the next writer start the log from its beginning. `journal_size_limit` then cuts the file back.
//! PostgreSQL has nothing to do here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{Backend, Store};

/// Commits between two `RESTART` checkpoints: about 10 MB of log at a page commit's usual
/// 100 messages, small enough to stay in the page cache, rare enough that the waits are noise.
pub const RESTART_EVERY: u64 = 32;

/// How long a restart waits for readers and the current writer, in ms.
pub const RESTART_WAIT_MS: u64 = 250;

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
    /// [`RESTART_EVERY`]th call checkpoints and restarts the log.
    ///
    /// A `RESTART` checkpoint holds the write lock while it waits for readers on old frames,
    /// so it waits at most [`RESTART_WAIT_MS`] (its own connection's `busy_timeout`, put back
    /// afterwards): a long reader (an export, a large console read) then costs the writers a
    /// quarter of a second, not the store's whole 10 s timeout, and the log restarts at a
    /// later turn. A checkpoint that cannot finish is not an error of the write that already
    /// committed, and loses nothing: the log stays longer until the next one. A connection
    /// whose timeout could not be put back is closed rather than returned to the pool.
    pub(crate) async fn after_heavy_commit(&self) {
        if self.backend() != Backend::Sqlite || !self.commits.due() {
            return;
        }
        let Ok(mut conn) = self.pool().acquire().await else {
            return;
        };
        let _ = sqlx::query(&format!("PRAGMA busy_timeout={RESTART_WAIT_MS}"))
            .execute(&mut *conn)
            .await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .fetch_all(&mut *conn)
            .await;
        if sqlx::query(&format!("PRAGMA busy_timeout={}", crate::BUSY_TIMEOUT_MS))
            .execute(&mut *conn)
            .await
            .is_err()
        {
            let _ = conn.close().await;
        }
    }
}
