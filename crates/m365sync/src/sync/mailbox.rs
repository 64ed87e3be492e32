//! One mailbox's share of a run, under the worker's lease: its folder tree discovered and
//! every synced folder brought up to date (failed records retried first, E10; a folder read
//! whole is then verified against Graph), then its calendar and outbox; the result recorded as
//! the run's progress and the mailbox's health (E16). Used alike by the service's workers and
//! by one-off runs from the CLI.

use std::time::Duration;

use m365sync_store::failures::FailureFilter;
use m365sync_store::mailboxes::Mailbox;
use m365sync_store::schedule::{Lease, MailboxOutcome, RunProgress};
use m365sync_store::{now_ms, StoreError};

use super::error::SyncError;
use super::mail::verify::{verify_folder, FolderCheck};
use super::mail::{discover, sync_folder, DiscoverJob, FolderJob, SyncedFolder};
use super::stop::StopSignal;
use super::tenant::{SyncEnv, TenantContext};
use super::Counts;

/// Consecutive failures after which a mailbox stops trying within a run (transient errors) or
/// is disabled until an admin re-enables it (permanent ones: access denied, not found).
pub const FAILURES_BEFORE_GIVING_UP: i64 = 5;

/// The first wait after a transient failure; doubled per consecutive failure, up to an hour.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// How many failed records a run's log names one by one per mailbox (the rest are counted).
const FAILURES_NAMED: usize = 20;

/// What one mailbox's work came to.
#[derive(Debug)]
pub struct MailboxResult {
    /// The run totals of its folders and calendar.
    pub counts: Counts,
    /// Why the work stopped early, if it did.
    pub error: Option<SyncError>,
    /// Folders read whole in this run whose verify still found differences with Graph:
    /// the folder is read again at its next run, and this run is incomplete.
    pub gaps: Vec<FolderCheck>,
    /// The folders synced, with their paths.
    pub folders: Vec<SyncedFolder>,
}

/// A folder's job for `mailbox` in this run.
pub fn folder_job<'a>(
    env: &'a SyncEnv,
    ctx: &'a TenantContext,
    mailbox: &'a Mailbox,
    folder: &'a str,
    run_id: Option<i64>,
    lease: Option<&'a Lease>,
    stop: &'a StopSignal,
) -> FolderJob<'a> {
    FolderJob {
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
        run_id,
        lease,
        stop,
    }
}

/// The folders of `mailbox` to sync now: its tree brought up to date (retired folders are
/// logged when `run_id` is given).
pub async fn synced_folders(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: Option<i64>,
    lease: Option<&Lease>,
    stop: &StopSignal,
) -> Result<Vec<SyncedFolder>, SyncError> {
    let discovery = discover(&DiscoverJob {
        store: &env.store,
        client: &ctx.client,
        mailbox_id: mailbox.id,
        mailbox_graph_id: &mailbox.graph_id,
        mailbox_address: &mailbox.address,
        folders: &ctx.settings.folders,
        excluded: &ctx.settings.excluded_folders,
        page_size: ctx.settings.page_size.max(1) as usize,
        lease,
        stop,
    })
    .await?;
    if let (Some(run_id), false) = (run_id, discovery.retired.is_empty()) {
        env.store
            .log(
                run_id,
                ctx.tenant.id,
                Some(mailbox.id),
                "info",
                &format!(
                    "mailbox {}: {} folder(s) no longer synced (deleted, moved under an excluded folder, or excluded by a setting); their emails stay, unlinked from the mailbox: {}",
                    mailbox.address,
                    discovery.retired.len(),
                    discovery.retired.join(", ")
                ),
            )
            .await?;
    }
    Ok(discovery.synced)
}

/// Syncs `mailbox` for `run_id`: every synced folder (unless its user's Sync Emails is off),
/// then its calendar.
pub async fn sync_mailbox(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    lease: Option<&Lease>,
    stop: &StopSignal,
) -> MailboxResult {
    let mut result = MailboxResult {
        counts: Counts::default(),
        error: None,
        gaps: Vec::new(),
        folders: Vec::new(),
    };
    if let Err(error) = sync_mail(env, ctx, mailbox, run_id, lease, stop, &mut result).await {
        result.error = Some(error);
        return result;
    }
    // The calendar (C2): pulled and pushed under the same lease when this is the user's
    // primary mailbox and their Sync Events switch is on (otherwise nothing happens).
    match crate::sync::calendar::sync_calendar(env, ctx, mailbox, run_id, lease, stop).await {
        Ok(calendar) => result.counts += calendar.as_counts(),
        Err(error) => result.error = Some(error),
    }
    result
}

/// The mail part of a mailbox's work.
async fn sync_mail(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    lease: Option<&Lease>,
    stop: &StopSignal,
    result: &mut MailboxResult,
) -> Result<(), SyncError> {
    if let Some(user) = mailbox.user_id {
        if !env.store.sync_emails(user).await? {
            return Ok(());
        }
    }
    result.folders = synced_folders(env, ctx, mailbox, Some(run_id), lease, stop).await?;
    for folder in &result.folders {
        let job = folder_job(env, ctx, mailbox, &folder.key, Some(run_id), lease, stop);
        let done = sync_folder(&job).await?;
        result.counts += done.counts;
        if done.backfilled {
            // A folder read whole is compared with Graph at once (issue 14): a difference the
            // next delta round does not explain is a gap, read again at the next run.
            let (check, counts) = verify_folder(&job, &folder.path, false).await?;
            result.counts += counts;
            if !check.complete() {
                result.gaps.push(check);
            }
        }
    }
    Ok(())
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
        log_failures(env, ctx, mailbox, run_id, result.counts.failed).await?;
    }
    if !result.gaps.is_empty() {
        for gap in &result.gaps {
            store
                .log(
                    run_id,
                    ctx.tenant.id,
                    Some(mailbox.id),
                    "error",
                    &format!(
                        "mailbox {}: folder {} differs from Graph after its backfill: {} message(s) in Graph not stored{}, {} stored but no longer in the folder{}; the folder is read again from the start at its next run (`m365sync retry {run_id}` makes that now)",
                        mailbox.address,
                        gap.path,
                        gap.missing,
                        named(&gap.missing_ids),
                        gap.extra,
                        named(&gap.extra_ids),
                    ),
                )
                .await?;
        }
        store.mark_run_incomplete(run_id).await?;
        progress.errors += result.gaps.len() as i64;
    }
    let (outcome, settled) = match &result.error {
        None => {
            let c = &result.counts;
            let held = store
                .failure_counts(ctx.tenant.id)
                .await?
                .get(&mailbox.id)
                .copied()
                .unwrap_or((0, 0));
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
            let outcome = match held {
                (0, 0) => MailboxOutcome::Healthy,
                (owed, parked) => MailboxOutcome::Degraded {
                    detail: format!(
                        "{owed} record(s) failed in a stage and are retried each run, {parked} parked after repeated failures; `m365sync failures list --mailbox {}` names them",
                        mailbox.address
                    ),
                },
            };
            (Some(outcome), true)
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

/// Names the ids of a verify's difference in a log line (a few; the count says how many).
fn named(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    if ids.is_empty() {
        return String::new();
    }
    let mut s = format!(" ({}", ids[..ids.len().min(SHOWN)].join(", "));
    if ids.len() > SHOWN {
        s.push_str(", ...");
    }
    s.push(')');
    s
}

/// Logs the records of `mailbox` that failed in this run, one error line each (the first
/// [`FAILURES_NAMED`]), naming the record, its folder, the stage, the plugin and the error:
/// they are the run's errors and `logs --errors-only` shows them.
async fn log_failures(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    failed: u64,
) -> Result<(), StoreError> {
    let store = &env.store;
    let records = store
        .failures(&FailureFilter {
            mailbox_id: Some(mailbox.id),
            run_id: Some(run_id),
            limit: FAILURES_NAMED as i64,
            ..FailureFilter::default()
        })
        .await?;
    for f in &records {
        let by = if f.plugin.is_empty() {
            String::new()
        } else {
            format!(" of plugin {}", f.plugin)
        };
        let fate = if f.parked {
            format!(
                "parked after {} attempts; `m365sync failures retry` tries it again",
                f.attempts
            )
        } else {
            format!(
                "attempt {} of {}; retried at the next run",
                f.attempts, ctx.settings.failure_attempts
            )
        };
        store
            .log(
                run_id,
                ctx.tenant.id,
                Some(mailbox.id),
                "error",
                &format!(
                    "mailbox {}, folder {}: record {} {:?} failed in the {} stage{by}: {} ({fate})",
                    mailbox.address, f.folder_path, f.graph_id, f.subject, f.stage, f.error
                ),
            )
            .await?;
    }
    if failed as usize > records.len() {
        store
            .log(
                run_id,
                ctx.tenant.id,
                Some(mailbox.id),
                "error",
                &format!(
                    "mailbox {}: {} more record(s) failed in this run; `m365sync failures list --mailbox {}` lists them all",
                    mailbox.address,
                    failed as usize - records.len(),
                    mailbox.address
                ),
            )
            .await?;
    }
    Ok(())
}
