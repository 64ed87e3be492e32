//! The scheduler: every tick, starts the runs that are due (per-tenant cadence, E3), the rounds
//! notifications asked for and not yet started, and closes the runs no mailbox owes work to
//! any more. Any number of processes may run it: the
//! conditional claim in the store lets exactly one start each run.

use std::sync::Arc;

use m365sync_store::{now_ms, StoreError};

use super::Shared;

/// The scheduler's loop, until the service stops.
pub async fn scheduler(shared: Arc<Shared>) {
    let stop = shared.stop.clone();
    while !stop.is_stopping() {
        if let Err(e) = tick(&shared).await {
            tracing::warn!(error = %e, "scheduler tick failed; trying again");
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.opts.poll) => {}
            _ = stop.stopped() => {}
        }
    }
}

async fn tick(shared: &Shared) -> Result<(), StoreError> {
    let store = &shared.env.store;
    let now = now_ms();
    for tenant_id in store.due_tenants(now).await? {
        let settings = store.settings(tenant_id).await?;
        let cadence_ms = settings.cadence_minutes * 60_000;
        if let Some(run_id) = store
            .start_scheduled_run(tenant_id, now, cadence_ms, "scheduled")
            .await?
        {
            shared.metrics.runs_started.inc();
            tracing::info!(tenant = tenant_id, run = run_id, "run started");
            shared.wake_workers();
            // Other processes' idle workers too (PostgreSQL).
            store.announce_work().await?;
        }
    }
    // The safety net for notifications whose mailbox was mid-round when they came: its
    // round has ended since, or the process that received them died before starting one.
    super::wake::start_notified_rounds(shared).await?;
    let closed = store.close_finished_runs().await?;
    if !closed.is_empty() {
        shared.metrics.runs_finished.inc_by(closed.len() as u64);
        for run_id in &closed {
            if let Ok(run) = store.run(*run_id).await {
                tracing::info!(
                    tenant = run.tenant_id,
                    run = run.id,
                    status = %run.status,
                    interruptions = run.interruptions,
                    emails_processed = run.emails.processed,
                    emails_kept = run.emails.kept,
                    emails_excluded = run.emails.excluded,
                    emails_failed = run.emails.failed,
                    events_processed = run.events.processed,
                    events_kept = run.events.kept,
                    events_excluded = run.events.excluded,
                    events_failed = run.events.failed,
                    errors = run.errors,
                    "run finished: {}: {}",
                    run.status_text(),
                    run.figures_text()
                );
            }
        }
        shared.contexts.forget_runs(&closed).await;
    }
    Ok(())
}
