//! One mailbox's share of a run: each folder's failed records retried (E10), then its delta
//! round, under the worker's lease; the result recorded as the run's progress and the mailbox's
//! health (E16). Used alike by the service's workers and by one-off runs from the CLI.

use std::time::Duration;

use m365sync_store::mailboxes::Mailbox;
use m365sync_store::schedule::{Lease, MailboxOutcome, RunProgress};
use m365sync_store::{now_ms, StoreError};

use super::error::SyncError;
use super::mail::{sync_folder, FolderJob};
use super::stop::StopSignal;
use super::tenant::{SyncEnv, TenantContext};
use super::Counts;

/// Consecutive failures after which a mailbox stops trying within a run (transient errors) or
/// is disabled until an admin re-enables it (permanent ones: access denied, not found).
pub const FAILURES_BEFORE_GIVING_UP: i64 = 5;

/// The first wait after a transient failure; doubled per consecutive failure, up to an hour.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// What one mailbox's work came to.
#[derive(Debug)]
pub struct MailboxResult {
    pub counts: Counts,
    /// Why the work stopped early, if it did.
    pub error: Option<SyncError>,
}

/// Syncs every configured folder of `mailbox` for `run_id`.
pub async fn sync_mailbox(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    lease: Option<&Lease>,
    stop: &StopSignal,
) -> MailboxResult {
    let mut counts = Counts::default();
    for folder in &ctx.settings.folders {
        let job = FolderJob {
            store: &env.store,
            client: &ctx.client,
            stages: &ctx.stages,
            org_id: ctx.tenant.org_id,
            tenant_id: ctx.tenant.id,
            mailbox_id: mailbox.id,
            mailbox_graph_id: &mailbox.graph_id,
            mailbox_address: &mailbox.address,
            user: ctx.mailbox_user(mailbox),
            folder,
            page_size: ctx.settings.page_size as usize,
            attachment_cap: ctx.settings.attachment_cap_bytes,
            since: Some(ctx.since),
            run_id: Some(run_id),
            lease,
            stop,
        };
        match sync_folder(&job).await {
            Ok(c) => counts += c,
            Err(error) => {
                return MailboxResult {
                    counts,
                    error: Some(error),
                }
            }
        }
    }
    // The calendar (C2): pulled and pushed under the same lease when this is the user's
    // primary mailbox and their Sync Events switch is on (otherwise nothing happens).
    match crate::sync::calendar::sync_calendar(env, ctx, mailbox, run_id, lease, stop).await {
        Ok(calendar) => counts += calendar.as_counts(),
        Err(error) => {
            return MailboxResult {
                counts,
                error: Some(error),
            }
        }
    }
    MailboxResult {
        counts,
        error: None,
    }
}

/// Who did a mailbox's work and since when, for the run log (operators can see which process
/// synced what, and that no two ever synced one mailbox at once).
pub struct WorkerStamp<'a> {
    pub holder: &'a str,
    pub started_ms: i64,
}

/// True when the work was interrupted rather than failed: the service is stopping, or another
/// worker took the mailbox over. Such work stays owed and nothing about health changes.
fn interrupted(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::Stopped | SyncError::Store(StoreError::LeaseLost { .. })
    )
}

/// Records a mailbox's result: the run's totals, the run log, the mailbox's health, and
/// whether it still owes the run work. `one_attempt` (one-off runs) settles a transient
/// failure at once instead of backing off within the run. Returns the mailbox's new health.
pub async fn record_result(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    result: &MailboxResult,
    one_attempt: bool,
    worker: &WorkerStamp<'_>,
) -> Result<Option<MailboxOutcome>, StoreError> {
    let store = &env.store;
    let mut progress = RunProgress {
        processed: result.counts.processed as i64,
        synced: result.counts.synced as i64,
        errors: result.counts.failed as i64,
    };
    if result.counts.failed > 0 {
        store
            .log(
                run_id,
                ctx.tenant.id,
                Some(mailbox.id),
                "warning",
                &format!(
                    "mailbox {}: {} record(s) failed in a plugin stage; kept and retried on the next run",
                    mailbox.address, result.counts.failed
                ),
            )
            .await?;
    }
    let (outcome, settled) = match &result.error {
        None => {
            let c = &result.counts;
            store
                .log(
                    run_id,
                    ctx.tenant.id,
                    Some(mailbox.id),
                    "info",
                    &format!(
                        "mailbox {}: {} processed, {} synced, {} excluded, {} removed; synced by {} from {} to {} ms",
                        mailbox.address,
                        c.processed,
                        c.synced,
                        c.excluded,
                        c.removed,
                        worker.holder,
                        worker.started_ms,
                        now_ms()
                    ),
                )
                .await?;
            (Some(MailboxOutcome::Healthy), true)
        }
        Some(e) if interrupted(e) => (None, one_attempt),
        Some(e) => {
            let failures = mailbox.consecutive_failures + 1;
            let detail = e.to_string();
            let (outcome, settled) = if e.is_transient() {
                let wait = BACKOFF_BASE
                    .saturating_mul(1 << (failures - 1).clamp(0, 16) as u32)
                    .min(BACKOFF_MAX);
                (
                    MailboxOutcome::BackingOff {
                        detail: detail.clone(),
                        until_ms: now_ms() + wait.as_millis() as i64,
                    },
                    one_attempt || failures >= FAILURES_BEFORE_GIVING_UP,
                )
            } else {
                let disable = e.is_mailbox_permanent() && failures >= FAILURES_BEFORE_GIVING_UP;
                (MailboxOutcome::Failing { detail, disable }, true)
            };
            let level = if settled { "error" } else { "warning" };
            let mut line = format!("mailbox {}: {e}", mailbox.address);
            match &outcome {
                MailboxOutcome::BackingOff { .. } if !settled => {
                    line.push_str("; will try again after a back-off")
                }
                MailboxOutcome::Failing { disable: true, .. } => line.push_str(&format!(
                    "; disabled after {failures} failures in a row: fix the cause, then `m365sync mailbox enable`"
                )),
                _ => {}
            }
            store
                .log(run_id, ctx.tenant.id, Some(mailbox.id), level, &line)
                .await?;
            if settled {
                progress.errors += 1;
            }
            (Some(outcome), settled)
        }
    };
    store
        .finish_mailbox_work(run_id, mailbox.id, progress, outcome.as_ref(), settled)
        .await?;
    Ok(outcome)
}
