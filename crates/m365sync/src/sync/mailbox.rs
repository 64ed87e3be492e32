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
use super::Counts;
use super::{SyncEnv, TenantContext};

/// Tries within one run after which the run stops waiting for a mailbox failing transiently
/// (the mailbox stays enabled; its next run tries again).
pub const TRIES_PER_RUN: i64 = 3;

/// Transient failures in a row (throttling that outlasts the retries, 5xx, network) after
/// which a mailbox is disabled, as Dynamics does: only when they also span
/// [`TRANSIENT_WINDOW`], so a short outage never disables anything (E16).
pub const TRANSIENT_FAILURES_BEFORE_DISABLING: i64 = 10;

/// The least time a streak of transient failures must span before it disables a mailbox
/// (Dynamics: 10 tries, 5 minutes apart).
pub const TRANSIENT_WINDOW: Duration = Duration::from_secs(45 * 60);

/// The first wait after a transient failure; doubled per consecutive failure, up to the cap.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

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
        observer: env.observer.as_ref(),
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

/// The span of one mailbox's sync in a run, for logs and traces: the tenant's name, the
/// mailbox's address and the run (never a secret, nor any message content). The service's
/// workers and `sync run` both open it around [`sync_mailbox`].
pub fn mailbox_span(tenant: &str, mailbox: &str, run_id: i64) -> tracing::Span {
    tracing::info_span!(
        "mailbox",
        otel.name = "mailbox sync",
        tenant = %tenant,
        mailbox = %mailbox,
        run = run_id
    )
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
    /// The lease holder's name: the process (and worker) that did the work.
    pub holder: &'a str,
    /// When it took the mailbox up, Unix milliseconds.
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
    // Records read, kept, excluded and failed were counted with their pages (issue 20); what
    // is left to add is the mailbox's own: pushes, refused pushes, gaps, a failure.
    let mut progress = RunProgress {
        errors: result.counts.push_failed as i64,
        pushed: result.counts.pushed as i64,
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
    let (outcome, settled, counted) = match &result.error {
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
            (Some(outcome), true, true)
        }
        Some(e) if interrupted(e) => {
            if matches!(e, SyncError::Stopped) {
                // A lease taken over is noted by the worker that takes it; a stop gives the
                // lease back, so it is noted here.
                store
                    .note_interruption(
                        run_id,
                        ctx.tenant.id,
                        mailbox.id,
                        &format!(
                            "mailbox {}: run {run_id} interrupted: {} is stopping; the pages it committed are counted, the rest stays owed to this run and the next worker resumes it from the last committed page",
                            mailbox.address, worker.holder
                        ),
                    )
                    .await?;
            }
            (None, one_attempt, false)
        }
        Some(e) => {
            // A manual run (the CLI's `sync run`, `retry`) never counts toward disabling.
            let counted = !one_attempt;
            let failures = mailbox.consecutive_failures + counted as i64;
            let streak_ms = mailbox
                .failing_since_ms
                .map_or(0, |since| now_ms().saturating_sub(since));
            let detail = e.to_string();
            let (outcome, settled) = if e.is_transient() {
                let wait = BACKOFF_BASE
                    .saturating_mul(1 << (failures - 1).clamp(0, 16) as u32)
                    .min(BACKOFF_MAX);
                let disable = counted
                    && failures >= TRANSIENT_FAILURES_BEFORE_DISABLING
                    && streak_ms >= TRANSIENT_WINDOW.as_millis() as i64;
                if disable {
                    (
                        MailboxOutcome::Failing {
                            detail: format!(
                                "{detail}; disabled after {failures} transient failures over {} minutes: check the tenant's Graph access and network, then `m365sync mailbox enable`",
                                streak_ms / 60_000
                            ),
                            disable: true,
                        },
                        true,
                    )
                } else {
                    let tries_this_run = failures.min(TRIES_PER_RUN);
                    (
                        MailboxOutcome::BackingOff {
                            detail: detail.clone(),
                            until_ms: now_ms() + wait.as_millis() as i64,
                        },
                        one_attempt || tries_this_run >= TRIES_PER_RUN,
                    )
                }
            } else if e.is_mailbox_permanent() {
                // Access denied (an application access policy, A3) or a mailbox that is gone:
                // trying again cannot help until an admin acts, so it is disabled at once
                // (not by a manual run, whose result an admin is looking at).
                (
                    MailboxOutcome::Failing {
                        detail: format!("{detail}; {}", permanent_fix(e, &mailbox.address)),
                        disable: counted,
                    },
                    true,
                )
            } else {
                (
                    MailboxOutcome::Failing {
                        detail,
                        disable: false,
                    },
                    true,
                )
            };
            let level = if settled { "error" } else { "warning" };
            let line = match &outcome {
                MailboxOutcome::BackingOff { .. } if !settled => format!(
                    "mailbox {}: {e}; will try again after a back-off",
                    mailbox.address
                ),
                MailboxOutcome::Failing { detail, .. } => {
                    format!("mailbox {}: {detail}", mailbox.address)
                }
                _ => format!("mailbox {}: {e}", mailbox.address),
            };
            store
                .log(run_id, ctx.tenant.id, Some(mailbox.id), level, &line)
                .await?;
            if settled {
                progress.errors += 1;
            }
            (Some(outcome), settled, counted)
        }
    };
    if let Some(o) = &outcome {
        log_health_change(env, ctx, mailbox, run_id, o).await?;
    }
    store
        .finish_mailbox_work(
            run_id,
            mailbox.id,
            progress,
            outcome.as_ref(),
            settled,
            counted,
        )
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

/// What an admin does about a mailbox's permanent failure.
fn permanent_fix(e: &SyncError, address: &str) -> String {
    match e {
        SyncError::Graph(m365sync_graph::GraphError::AccessDenied { .. }) => format!(
            "the app may not read {address}: add it to the Exchange application access policy (or grant the app Mail.ReadWrite), then `m365sync mailbox enable --address {address}`"
        ),
        _ => format!(
            "{address} is no longer in the tenant's directory: remove it (`m365sync mailbox disable`), or fix its address and `m365sync mailbox enable`"
        ),
    }
}

/// Logs a mailbox's change of health (healthy, degraded, backing off, failing, disabled) with
/// its cause, so every state change is visible in the run log (E16).
async fn log_health_change(
    env: &SyncEnv,
    ctx: &TenantContext,
    mailbox: &Mailbox,
    run_id: i64,
    outcome: &MailboxOutcome,
) -> Result<(), StoreError> {
    let (now, level) = match outcome {
        MailboxOutcome::Healthy => ("healthy", "info"),
        MailboxOutcome::Degraded { .. } => ("degraded", "warning"),
        MailboxOutcome::BackingOff { .. } => ("backing_off", "warning"),
        MailboxOutcome::Failing { disable: true, .. } => ("disabled", "error"),
        MailboxOutcome::Failing { .. } => ("failing", "error"),
    };
    if now == mailbox.health {
        return Ok(());
    }
    let why = match outcome {
        MailboxOutcome::Healthy => {
            if mailbox.consecutive_failures > 0 {
                format!(
                    "recovered after {} failure(s) in a row",
                    mailbox.consecutive_failures
                )
            } else {
                "synced".to_string()
            }
        }
        MailboxOutcome::Degraded { detail }
        | MailboxOutcome::BackingOff { detail, .. }
        | MailboxOutcome::Failing { detail, .. } => detail.clone(),
    };
    env.store
        .log(
            run_id,
            ctx.tenant.id,
            Some(mailbox.id),
            level,
            &format!(
                "mailbox {}: health {} -> {now}: {why}",
                mailbox.address, mailbox.health
            ),
        )
        .await
}
