//! One-off runs from the command line (`m365sync sync run`, `m365sync retry`): a run is
//! recorded, the chosen mailboxes are marked as owing it work, and this process works through
//! them once each under leases, exactly as a service worker would, so a one-off run and a
//! running service never sync the same mailbox at once.

use std::sync::Arc;
use tracing::Instrument as _;

use serde::Serialize;
use tokio::task::JoinSet;

use m365sync_store::mailboxes::Mailbox;
use m365sync_store::schedule::{Lease, LeaseClaim};
use m365sync_store::tenants::Tenant;
use m365sync_store::Store;

pub use super::env::SyncEnv;
use super::mail::sync_folder;
use super::mail::verify::{verify_folder, FolderCheck};
use super::mailbox::{folder_job, record_result, sync_mailbox, WorkerStamp};
use super::stop::StopSignal;
use super::tenant::TenantContext;
use super::{Counts, SyncError};

/// Mailboxes a one-off run syncs at once.
const CLI_CONCURRENCY: usize = 4;
/// A one-off run's lease: renewed with every page, so only a stalled page lets it run out.
const CLI_LEASE_TTL_MS: i64 = 120_000;

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The run's id in the run log, by which `m365sync retry` and the logs name it.
    pub run_id: i64,
    /// Delta pages read.
    pub pages: u64,
    /// Records read (removals not counted).
    pub processed: u64,
    /// Records stored (kept and mapped), and pushes made.
    pub synced: u64,
    /// Records the exclusion rules dropped.
    pub excluded: u64,
    /// Records Graph reported removed.
    pub removed: u64,
    /// Records a stage failed on (kept for retry).
    pub failed: u64,
    /// Time inside the exclusion and mapping stages, summed over mailboxes, microseconds.
    pub stage_micros: u64,
    /// (mailbox, error) for mailboxes that could not be synced.
    pub mailbox_errors: Vec<(String, String)>,
    /// (mailbox, why) for mailboxes another process is working on: who holds it, for which
    /// run, and until when.
    pub skipped: Vec<(String, String)>,
    /// (mailbox, run) for mailboxes another run owed work nobody was doing (a one-off run
    /// that was killed, a service run no worker had taken up): this run finished that run's
    /// work for it, and the other run's log says it was resumed.
    pub resumed: Vec<(String, i64)>,
    /// The run as the store recorded it once this process was done: its figures by kind
    /// (emails, events), committed page by page, and its status (`running` when a skipped
    /// mailbox still owes it work). `m365sync runs` shows the same.
    pub recorded: Option<m365sync_store::sync::Run>,
}

/// Runs one sync of `tenant` (or of one mailbox of it, by address).
pub async fn run_tenant(
    env: &SyncEnv,
    tenant: &Tenant,
    only_mailbox: Option<&str>,
    trigger: &str,
) -> Result<RunReport, SyncError> {
    run_tenant_with(env, tenant, only_mailbox, trigger, &RunOptions::default()).await
}

/// [`run_tenant`] with options.
pub async fn run_tenant_with(
    env: &SyncEnv,
    tenant: &Tenant,
    only_mailbox: Option<&str>,
    trigger: &str,
    opts: &RunOptions,
) -> Result<RunReport, SyncError> {
    let mailboxes: Vec<Mailbox> = env
        .store
        .mailboxes(tenant.id)
        .await?
        .into_iter()
        .filter(|m| m.enabled && only_mailbox.is_none_or(|o| o.eq_ignore_ascii_case(&m.address)))
        .collect();
    if let Some(o) = only_mailbox {
        if mailboxes.is_empty() {
            return Err(SyncError::Plugin(format!(
                "tenant {}: no enabled mailbox '{o}'; `m365sync mailbox list` shows them",
                tenant.name
            )));
        }
    }
    run_mailboxes_with(env, tenant, mailboxes, trigger, opts).await
}

/// Called as each mailbox finishes: (mailboxes done, mailboxes in the run, the mailbox's
/// address, its counts). The CLI draws its progress line with it.
pub type Progress = Box<dyn Fn(usize, usize, &str, &Counts) + Send + Sync>;

/// How a one-off run goes.
#[derive(Default)]
pub struct RunOptions {
    /// Skip the plugin stages (keep all, map natively): the benchmark's baseline only.
    pub bypass_plugins: bool,
    /// Told as each mailbox finishes (the CLI's progress line); `None`: nobody is told.
    pub progress: Option<Progress>,
    /// Mailboxes synced at once (0: the CLI's default of 4). The calendar benchmark raises it
    /// to put every mailbox's Graph budget in play at once, as the service's workers do.
    pub mailboxes_in_flight: usize,
}

/// Runs one sync of the given mailboxes of `tenant`: their failed records are retried and
/// their folders brought up to date.
pub async fn run_mailboxes(
    env: &SyncEnv,
    tenant: &Tenant,
    mailboxes: Vec<Mailbox>,
    trigger: &str,
) -> Result<RunReport, SyncError> {
    run_mailboxes_with(env, tenant, mailboxes, trigger, &RunOptions::default()).await
}

/// [`run_mailboxes`] with options.
pub async fn run_mailboxes_with(
    env: &SyncEnv,
    tenant: &Tenant,
    mailboxes: Vec<Mailbox>,
    trigger: &str,
    opts: &RunOptions,
) -> Result<RunReport, SyncError> {
    let store = &env.store;
    store.mark_initial_sync(tenant.id).await?;
    let ctx = TenantContext::build(env, store.tenant_by_id(tenant.id).await?).await?;
    if opts.bypass_plugins {
        let s = ctx.stages.current();
        ctx.stages.replace(super::stages::Stages {
            exclusion: Arc::clone(&s.exclusion),
            mapping: Arc::clone(&s.mapping),
            ctx: s.ctx.clone(),
            bypass: true,
            shadows: Vec::new(),
            observer: Arc::clone(&s.observer),
        });
    }
    let ctx = Arc::new(ctx);
    let run_id = store.begin_run(tenant.id, None, trigger).await?;
    let holder = format!("cli-{}", std::process::id());
    let mut report = RunReport {
        run_id,
        pages: 0,
        processed: 0,
        synced: 0,
        excluded: 0,
        removed: 0,
        failed: 0,
        stage_micros: 0,
        mailbox_errors: Vec::new(),
        skipped: Vec::new(),
        resumed: Vec::new(),
        recorded: None,
    };
    // Each mailbox with the run it works for: this one, or a run that owes it work with
    // nobody working on it (a one-off run that was killed, a service run no worker has taken
    // up yet), which this run then finishes for it.
    let mut mine: Vec<(Mailbox, i64)> = Vec::new();
    for m in mailboxes {
        if store.assign_to_run(run_id, &[m.id]).await? == 1 {
            if store.claim_lease(m.id, &holder, CLI_LEASE_TTL_MS).await? {
                mine.push((m, run_id));
            } else {
                store.unassign_from_run(run_id, m.id).await?;
                let why = held_by(store, m.id, None).await?;
                report.skipped.push((m.address.clone(), why));
            }
            continue;
        }
        let owed = store.owed_run(m.id).await?;
        let claim = store
            .claim_lease_noting(m.id, &holder, CLI_LEASE_TTL_MS)
            .await?;
        match (owed, &claim) {
            (_, LeaseClaim::Refused) => {
                let why = held_by(store, m.id, owed).await?;
                report.skipped.push((m.address.clone(), why));
            }
            (Some(owed), _) => {
                note_resumption(store, owed, &m, &holder, &claim).await?;
                report.resumed.push((m.address.clone(), owed));
                mine.push((m, owed));
            }
            // The other run finished it between the two reads: it owes nothing now.
            (None, _) => {
                store.release_lease(m.id, &holder).await?;
                report.skipped.push((
                    m.address.clone(),
                    "another run finished it as this one started; nothing is owed".into(),
                ));
            }
        }
    }
    let lease = Lease {
        holder: holder.clone(),
        ttl_ms: CLI_LEASE_TTL_MS,
    };
    let stop = StopSignal::never();
    let mut total = Counts::default();
    let in_run = mine.len();
    let mut done = 0;
    let mut queue = mine.into_iter();
    let mut set = JoinSet::new();
    let in_flight = match opts.mailboxes_in_flight {
        0 => CLI_CONCURRENCY,
        n => n,
    };
    loop {
        while set.len() < in_flight {
            let Some((m, run_id)) = queue.next() else {
                break;
            };
            let (env, ctx, lease, stop) =
                (env.clone(), Arc::clone(&ctx), lease.clone(), stop.clone());
            let span = super::mailbox::mailbox_span(&ctx.tenant.name, &m.address, run_id);
            set.spawn(
                async move {
                    let started_ms = m365sync_store::now_ms();
                    let result = sync_mailbox(&env, &ctx, &m, run_id, Some(&lease), &stop).await;
                    let stamp = WorkerStamp {
                        holder: &lease.holder,
                        started_ms,
                    };
                    let recorded =
                        record_result(&env, &ctx, &m, run_id, &result, true, &stamp).await;
                    let _ = env.store.release_lease(m.id, &lease.holder).await;
                    (m, result, recorded)
                }
                .instrument(span),
            );
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (m, result, recorded) =
            joined.map_err(|e| SyncError::Plugin(format!("a mailbox task panicked: {e}")))?;
        recorded?;
        total += result.counts;
        done += 1;
        if let Some(progress) = &opts.progress {
            progress(done, in_run, &m.address, &result.counts);
        }
        if let Some(e) = result.error {
            report
                .mailbox_errors
                .push((m.address.clone(), e.to_string()));
        }
    }
    store.close_finished_runs().await?;
    report.pages = total.pages;
    report.processed = total.processed;
    report.synced = total.synced;
    report.excluded = total.excluded;
    report.removed = total.removed;
    report.failed = total.failed;
    report.stage_micros = total.stage_micros;
    report.recorded = Some(store.run(run_id).await?);
    Ok(report)
}

/// Why a mailbox cannot be worked on now: who holds its lease, for which run, until when
/// (UTC), and what happens next, so the operator can tell a live worker from a dead one.
async fn held_by(store: &Store, mailbox_id: i64, owed: Option<i64>) -> Result<String, SyncError> {
    let run = owed.map_or_else(String::new, |r| format!(" for run {r}"));
    Ok(match store.lease_of(mailbox_id).await? {
        Some((holder, until)) => {
            let until = chrono::DateTime::from_timestamp_millis(until).map_or_else(
                || until.to_string(),
                |t| t.format("%H:%M:%S UTC").to_string(),
            );
            format!(
                "{holder} is syncing it{run} (its lease runs to {until}); that run finishes it. If that process is gone, the lease runs out then and the next `sync run` or the service takes the work over"
            )
        }
        None => format!("another process took it{run} as this run started; that run finishes it"),
    })
}

/// When `claim` took the lease over from a worker that held it during `run_id` and never gave
/// it back (its process was killed, or stalled past its lease), the run is being resumed: its
/// `interruptions` goes up and its log says from whom (issue 20). A stale lease older than the
/// run belongs to earlier work and says nothing about this run. The service's workers and a
/// one-off run that finishes another run's work both call it.
pub async fn note_resumption(
    store: &Store,
    run_id: i64,
    mailbox: &Mailbox,
    holder: &str,
    claim: &LeaseClaim,
) -> Result<(), m365sync_store::StoreError> {
    let LeaseClaim::TakenOver { from, expired_ms } = claim else {
        return Ok(());
    };
    let run = store.run(run_id).await?;
    if *expired_ms <= run.started_ms {
        return Ok(());
    }
    let line = format!(
        "mailbox {}: run {run_id} resumed by {holder}: its previous worker {from} stopped without finishing (its process was killed, or stalled past its lease) and its lease ran out at {expired_ms} ms; the pages it committed are counted in this run, the page it had in flight is read again",
        mailbox.address
    );
    tracing::warn!(run = run_id, mailbox = %mailbox.address, previous = %from, "resuming a run an earlier worker left unfinished");
    store
        .note_interruption(run_id, mailbox.tenant_id, mailbox.id, &line)
        .await
}

/// One mailbox's `verify`: its synced folders compared with Graph.
#[derive(Debug, Serialize)]
pub struct MailboxVerify {
    /// The mailbox's address.
    pub mailbox: String,
    /// One check per synced folder, in sync order.
    pub folders: Vec<FolderCheck>,
    /// Why the mailbox could not be verified (another process holds it, Graph refused).
    pub error: Option<String>,
}

impl MailboxVerify {
    /// True when every folder was checked and matches Graph.
    pub fn complete(&self) -> bool {
        self.error.is_none() && self.folders.iter().all(FolderCheck::complete)
    }
}

/// `m365sync mailbox verify`: each enabled mailbox of `tenant` (or the one named), under its
/// lease as a one-off run takes it, brought up to date folder by folder and compared with
/// Graph id by id; with `repair`, a folder that still differs is read again at once from its
/// first URL (without, it is read again at its next run).
pub async fn verify_tenant(
    env: &SyncEnv,
    tenant: &Tenant,
    only_mailbox: Option<&str>,
    repair: bool,
) -> Result<Vec<MailboxVerify>, SyncError> {
    let store = &env.store;
    let mailboxes: Vec<Mailbox> = store
        .mailboxes(tenant.id)
        .await?
        .into_iter()
        .filter(|m| m.enabled && only_mailbox.is_none_or(|o| o.eq_ignore_ascii_case(&m.address)))
        .collect();
    if let (Some(o), true) = (only_mailbox, mailboxes.is_empty()) {
        return Err(SyncError::Plugin(format!(
            "tenant {}: no enabled mailbox '{o}'; `m365sync mailbox list` shows them",
            tenant.name
        )));
    }
    let ctx = TenantContext::build(env, store.tenant_by_id(tenant.id).await?).await?;
    let holder = format!("cli-verify-{}", std::process::id());
    let lease = Lease {
        holder: holder.clone(),
        ttl_ms: CLI_LEASE_TTL_MS,
    };
    let stop = StopSignal::never();
    let mut out = Vec::new();
    for m in &mailboxes {
        let mut report = MailboxVerify {
            mailbox: m.address.clone(),
            folders: Vec::new(),
            error: None,
        };
        if !store.claim_lease(m.id, &holder, CLI_LEASE_TTL_MS).await? {
            let owed = store.owed_run(m.id).await?;
            report.error = Some(format!(
                "{}; verify it when that is done",
                held_by(store, m.id, owed).await?
            ));
            out.push(report);
            continue;
        }
        let checked = async {
            let folders =
                super::mailbox::synced_folders(env, &ctx, m, None, Some(&lease), &stop).await?;
            for f in &folders {
                let job = folder_job(env, &ctx, m, &f.key, None, Some(&lease), &stop);
                // Up to date first, so what differs is not simply mail that came since.
                sync_folder(&job).await?;
                let (check, _) = verify_folder(&job, &f.path, repair).await?;
                report.folders.push(check);
            }
            Ok::<(), SyncError>(())
        }
        .await;
        let _ = store.release_lease(m.id, &holder).await;
        if let Err(e) = checked {
            report.error = Some(e.to_string());
        }
        out.push(report);
    }
    Ok(out)
}
