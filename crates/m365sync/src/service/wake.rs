//! The waker: turns the looks notifications asked for into rounds, and carries "a mailbox owes
//! work now" to idle workers: this process's through [`Shared::wake_workers`], every other
//! process's on the same PostgreSQL through `NOTIFY` (heard here with `LISTEN`).
//!
//! The database is the queue: a notification only marks its mailbox, whichever process
//! received it; the run the mark becomes is claimed by whichever worker, in whichever process,
//! is free, under the usual lease. A worker holding the mailbox's lease mid-round finishes its
//! round, and the mark becomes the next round when it ends. Lost wake-ups cost latency, never
//! work: the workers' poll and the scheduler's tick still find what the database says is owed.

use std::sync::Arc;
use std::time::Duration;

use m365sync_store::{now_ms, StoreError};

use super::Shared;

/// Starts the rounds notifications asked for; when any started, wakes the workers here and,
/// on PostgreSQL, in every other process.
pub async fn start_notified_rounds(shared: &Shared) -> Result<(), StoreError> {
    let store = &shared.env.store;
    let rounds = store.start_notified_rounds(now_ms()).await?;
    if rounds.is_empty() {
        return Ok(());
    }
    for r in &rounds {
        shared.metrics.notification_rounds.inc_by(r.mailboxes);
        tracing::info!(
            tenant = r.tenant_id,
            run = r.run_id,
            mailboxes = r.mailboxes,
            "notifications started a round"
        );
    }
    shared.wake_workers();
    store.announce_work().await
}

/// The waker's loop: on PostgreSQL, listens for other processes' announcements and wakes this
/// process's workers; on SQLite (one process) there is nothing to hear.
pub async fn waker(shared: Arc<Shared>) {
    let stop = shared.stop.clone();
    while !stop.is_stopping() {
        let mut listener = match shared.env.store.listen_for_work().await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other processes' work; workers poll meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = stop.stopped() => return,
                }
            }
        };
        loop {
            tokio::select! {
                r = listener.recv() => match r {
                    Ok(()) => shared.wake_workers(),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the connection listening for work; reconnecting");
                        break;
                    }
                },
                _ = stop.stopped() => return,
            }
        }
    }
}
