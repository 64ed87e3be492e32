//! Workers: each takes a mailbox that owes a run work, holds its lease while syncing it (a
//! heartbeat renews the lease between pages, each page's commit renews and checks it), records
//! the result, and gives the lease back. A worker stops between pages when the service stops.

use std::sync::Arc;

use tracing::Instrument;

use crate::sync::mailbox::{record_result, sync_mailbox, WorkerStamp};
use m365sync_store::now_ms;
use m365sync_store::schedule::{Lease, LeaseClaim, MailboxOutcome, PendingMailbox, RunProgress};

use super::Shared;

/// Candidates a worker looks at per poll.
const CANDIDATES: i64 = 16;

/// One worker's loop, until the service stops.
pub async fn worker(shared: Arc<Shared>, index: usize) {
    let stop = shared.stop.clone();
    // Each worker holds leases in its own name: a lease proves one worker, not one process.
    let holder = format!("{}/w{index}", shared.opts.holder);
    let mut wake = shared.work_wake.subscribe();
    while !stop.is_stopping() {
        // What is owed now is looked at below; a wake from here on ends the next wait at once.
        wake.mark_unchanged();
        let claimed = match claim_next(&shared, index, &holder).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(worker = index, error = %e, "cannot look for work");
                None
            }
        };
        match claimed {
            Some((p, claim)) => {
                shared.metrics.workers_busy.inc();
                let answered = work_on(&shared, &p, &holder, &claim).await;
                shared.metrics.workers_busy.dec();
                let _ = shared.env.store.release_lease(p.mailbox_id, &holder).await;
                after_round(&shared, p.mailbox_id, answered).await;
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(shared.opts.poll) => {}
                    _ = wake.changed() => {}
                    _ = stop.stopped() => {}
                }
            }
        }
    }
}

/// After a mailbox's round: the notification lag it answered (from the first notification
/// to the round's end), and the round the notifications that came during it ask for, started
/// now rather than at the scheduler's next tick. A round that did not finish (stopped,
/// failed) answered nothing: the mark stays, and the lag runs on to the round that does.
async fn after_round(shared: &Shared, mailbox_id: i64, answered: bool) {
    let woken = if answered {
        shared.env.store.take_woken(mailbox_id).await
    } else {
        Ok(None)
    };
    match woken {
        Ok(Some(since)) => shared.metrics.observe_notification_lag(now_ms() - since),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(mailbox = mailbox_id, error = %e, "cannot read the notification lag")
        }
    }
    if let Err(e) = super::wake::start_notified_rounds(shared).await {
        tracing::warn!(error = %e, "cannot start the rounds notifications asked for; the scheduler tries again");
    }
}

/// Claims the lease of a mailbox that owes work, if any is free. Workers start looking at
/// different candidates so they rarely race for the same one.
async fn claim_next(
    shared: &Shared,
    index: usize,
    holder: &str,
) -> Result<Option<(PendingMailbox, LeaseClaim)>, m365sync_store::StoreError> {
    let store = &shared.env.store;
    let pending = store.pending_mailboxes(now_ms(), None, CANDIDATES).await?;
    if pending.is_empty() {
        return Ok(None);
    }
    let start = index % pending.len();
    for p in pending[start..].iter().chain(&pending[..start]) {
        match store
            .claim_lease_noting(p.mailbox_id, holder, shared.lease_ttl_ms())
            .await?
        {
            LeaseClaim::Refused => {}
            claim => return Ok(Some((p.clone(), claim))),
        }
    }
    Ok(None)
}

async fn work_on(shared: &Shared, p: &PendingMailbox, holder: &str, claim: &LeaseClaim) -> bool {
    let env = &shared.env;
    let store = &env.store;
    let mailbox = match store.mailbox_by_id(p.mailbox_id).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(mailbox = p.mailbox_id, error = %e, "cannot read the mailbox");
            return false;
        }
    };
    let ctx = match shared.contexts.get(env, p.tenant_id, p.run_id).await {
        Ok(c) => c,
        Err(e) => {
            // The tenant cannot run at all (a plugin that does not load, a database error):
            // every mailbox of the run records it, and the run ends with errors.
            let line = format!("mailbox {}: {e}", mailbox.address);
            tracing::error!(tenant = p.tenant_id, run = p.run_id, "{line}");
            let _ = store
                .log(p.run_id, p.tenant_id, Some(mailbox.id), "error", &line)
                .await;
            let _ = store
                .finish_mailbox_work(
                    p.run_id,
                    mailbox.id,
                    RunProgress {
                        errors: 1,
                        ..RunProgress::default()
                    },
                    Some(&MailboxOutcome::Failing {
                        detail: e.to_string(),
                        disable: false,
                    }),
                    true,
                    // The tenant's failure, not the mailbox's: no step toward disabling it.
                    false,
                )
                .await;
            shared.metrics.mailbox_syncs_failed.inc();
            return false;
        }
    };
    if let Err(e) =
        crate::sync::run::note_resumption(&shared.env.store, p.run_id, &mailbox, holder, claim)
            .await
    {
        tracing::warn!(mailbox = %mailbox.address, error = %e, "cannot record the run's resumption");
    }
    let lease = Lease {
        holder: holder.to_string(),
        ttl_ms: shared.lease_ttl_ms(),
    };
    let started_ms = now_ms();
    tracing::info!(mailbox = %mailbox.address, run = p.run_id, holder, "mailbox claimed");
    let span = crate::sync::mailbox::mailbox_span(&ctx.tenant.name, &mailbox.address, p.run_id);
    // The heartbeat is a task of its own: it must never wait inside this task, because its
    // UPDATE can wait for the row lock that this task's open page transaction holds.
    let heartbeat = {
        let (store, lease) = (store.clone(), lease.clone());
        let every = shared.opts.lease_ttl / 3;
        let mailbox_id = mailbox.id;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Ok(false) = store
                    .renew_lease(mailbox_id, &lease.holder, lease.ttl_ms)
                    .await
                {
                    tracing::warn!(
                        mailbox = mailbox_id,
                        "lease lost; the next commit will be refused and another worker goes on"
                    );
                    return false;
                }
            }
        })
    };
    let result = sync_mailbox(env, &ctx, &mailbox, p.run_id, Some(&lease), &shared.stop)
        .instrument(span.clone())
        .await;
    let answered = result.error.is_none();
    heartbeat.abort();
    let _enter = span.enter();
    shared.metrics.add_counts(&result.counts);
    match &result.error {
        None => {
            shared.metrics.mailbox_syncs_ok.inc();
            tracing::info!(
                processed = result.counts.processed,
                synced = result.counts.synced,
                excluded = result.counts.excluded,
                "mailbox synced"
            );
        }
        Some(crate::sync::error::SyncError::Stopped) => {
            shared.metrics.mailbox_syncs_interrupted.inc();
        }
        Some(e) => {
            shared.metrics.mailbox_syncs_failed.inc();
            tracing::warn!(error = %e, "mailbox sync failed");
        }
    }
    drop(_enter);
    let stamp = WorkerStamp { holder, started_ms };
    if let Err(e) = record_result(env, &ctx, &mailbox, p.run_id, &result, false, &stamp)
        .instrument(span)
        .await
    {
        tracing::error!(error = %e, "cannot record the mailbox's result; it will be synced again");
    }
    answered
}
