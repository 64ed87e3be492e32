//! One mailbox folder's sync: delta pages through the exclusion and mapping plugins into the
//! store, each page committed with its cursor in one transaction (so a crash replays at most
//! one page, harmlessly). A 410 restarts the folder's round; upserts make the overlap harmless.
//!
//! The plugins are taken afresh for every page from a [`StageSlot`], so a plugin swapped on a
//! running service is used from the next page while the page in flight finishes on the version
//! it started with. A worker's lease is renewed inside each page's transaction, so a worker
//! that lost its lease can never commit over the one that took the mailbox over.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde_json::Value;

use m365sync_graph::delta::initial_url;
use m365sync_graph::{GraphClient, GraphError};
use m365sync_plugin::bindings::types::{Decision, Email, Verdict};
use m365sync_plugin::call::CallContext;
use m365sync_plugin::Plugin;
use m365sync_store::schedule::Lease;
use m365sync_store::sync::{Cursor, Exclusion, FailedRecord, PageCommit};
use m365sync_store::{Store, StoreError};

use super::attachments;
use super::convert::{crm_email_native, email_from_graph, record_for_store, Origin};
use super::round::{run_round, PageSink, Round};
use super::stop::StopSignal;

/// Why a folder's sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Plugin(String),
    /// The service is stopping; the work left is still owed and resumes from the cursor.
    #[error("stopped before the folder's round finished; it resumes from its cursor")]
    Stopped,
}

impl SyncError {
    /// True when trying again later may succeed on its own: throttling, 5xx, network, the
    /// database, a lost lease. False for what needs an admin (credentials, permissions).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Graph(GraphError::Auth(a)) => a.is_transient(),
            SyncError::Graph(GraphError::Exhausted { .. }) => true,
            SyncError::Graph(GraphError::SyncStateNotFound { .. }) => true,
            SyncError::Graph(_) => false,
            SyncError::Store(_) | SyncError::Stopped => true,
            SyncError::Plugin(_) => false,
        }
    }

    /// True for failures of this mailbox alone that repeat until an admin acts (A3): access
    /// denied or mailbox not found. Enough of them in a row disable the mailbox (E16).
    pub fn is_mailbox_permanent(&self) -> bool {
        matches!(self, SyncError::Graph(g) if g.is_mailbox_scoped())
    }
}

/// The plugins a tenant's records go through, with what their decisions are stamped with (P5).
pub struct Stages {
    pub exclusion: Arc<Plugin>,
    pub mapping: Arc<Plugin>,
    pub ctx: CallContext,
    /// Keep everything and map natively, skipping both plugins: only the benchmark's
    /// baseline (`m365sync sync bench --variant bypass`) sets it.
    pub bypass: bool,
}

/// The tenant's current plugins. Replaced whole when an admin swaps a plugin; readers keep the
/// `Arc` they took, so work in flight finishes on the version it started with.
pub struct StageSlot(RwLock<Arc<Stages>>);

impl StageSlot {
    /// A slot holding `stages`.
    pub fn new(stages: Stages) -> StageSlot {
        StageSlot(RwLock::new(Arc::new(stages)))
    }

    /// The plugins to use for the next page.
    pub fn current(&self) -> Arc<Stages> {
        Arc::clone(&self.0.read().expect("stage slot lock"))
    }

    /// Installs new plugins for every page that starts from now on.
    pub fn replace(&self, stages: Stages) {
        *self.0.write().expect("stage slot lock") = Arc::new(stages);
    }
}

/// `name version sha256:digest`, the stamp of a decision.
pub fn stamp(p: &Plugin) -> String {
    let d = p.descriptor();
    format!("{} {} sha256:{}", d.name, d.version, p.digest())
}

/// Everything a folder's sync needs.
pub struct FolderJob<'a> {
    pub store: &'a Store,
    pub client: &'a GraphClient,
    pub stages: &'a StageSlot,
    pub org_id: i64,
    pub tenant_id: i64,
    pub mailbox_id: i64,
    /// The mailbox's Graph id (or UPN) and primary address.
    pub mailbox_graph_id: &'a str,
    pub mailbox_address: &'a str,
    pub user: Option<&'a str>,
    pub folder: &'a str,
    pub page_size: usize,
    /// The tenant's `attachment_cap_bytes`, as the run's settings say (E5).
    pub attachment_cap: i64,
    /// The commencement date: the first round reaches back this far (E4).
    pub since: Option<DateTime<Utc>>,
    /// The run the work counts toward (failed records remember it for `m365sync retry`).
    pub run_id: Option<i64>,
    /// The worker's lease on the mailbox, renewed with every page.
    pub lease: Option<&'a Lease>,
    /// Stops the round between pages.
    pub stop: &'a StopSignal,
}

/// What a folder's sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub pages: u64,
    pub processed: u64,
    pub synced: u64,
    pub excluded: u64,
    pub removed: u64,
    pub failed: u64,
    /// Time spent inside the exclusion and mapping stages, microseconds (their price).
    pub stage_micros: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.pages += o.pages;
        self.processed += o.processed;
        self.synced += o.synced;
        self.excluded += o.excluded;
        self.removed += o.removed;
        self.failed += o.failed;
        self.stage_micros += o.stage_micros;
    }
}

/// Runs one delta round of a folder to its deltaLink (resuming a round a crash interrupted).
pub async fn sync_folder(job: &FolderJob<'_>) -> Result<Counts, SyncError> {
    let mut counts = Counts::default();
    let round = Round {
        store: job.store,
        mailbox_id: job.mailbox_id,
        folder: job.folder,
        stop: job.stop,
        initial_url: initial_url(
            job.client.graph_url(),
            job.mailbox_graph_id,
            job.folder,
            job.since,
        ),
    };
    let fetch = |url: String| async move {
        job.client
            .delta_page(job.mailbox_address, &url, job.page_size)
            .await
    };
    let mut sink = FolderPages {
        job,
        counts: &mut counts,
    };
    let pages = run_round(&round, fetch, &mut sink).await?;
    counts.pages = pages;
    Ok(counts)
}

/// A folder's pages on their way through the plugins into the store.
struct FolderPages<'a, 'j> {
    job: &'a FolderJob<'j>,
    counts: &'a mut Counts,
}

impl PageSink for FolderPages<'_, '_> {
    async fn store(&mut self, items: Vec<Value>, cursor: Cursor) -> Result<(), SyncError> {
        let commit = process_page(self.job, items, Some(cursor), self.counts).await?;
        Ok(self.job.store.commit_page(&commit).await?)
    }
}

/// Passes the records that failed in earlier runs through the stages again (E10), before the
/// folder's round goes on. Their stored Graph JSON is used, so no refetch is needed; a record
/// changed or removed since was already replaced by the delta round that saw the change.
pub async fn retry_failed(job: &FolderJob<'_>) -> Result<Counts, SyncError> {
    let mut counts = Counts::default();
    let failed = job
        .store
        .failed_payloads(job.mailbox_id, job.folder)
        .await?;
    for chunk in failed.chunks(job.page_size.max(1)) {
        let items = chunk
            .iter()
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .collect();
        let commit = process_page(job, items, None, &mut counts).await?;
        job.store.commit_page(&commit).await?;
    }
    Ok(counts)
}

async fn process_page(
    job: &FolderJob<'_>,
    items: Vec<Value>,
    cursor: Option<Cursor>,
    counts: &mut Counts,
) -> Result<PageCommit, SyncError> {
    let stages = job.stages.current();
    let origin = Origin {
        mailbox: job.mailbox_address,
        user: job.user,
        folder: job.folder,
    };
    let mut commit = PageCommit {
        org_id: job.org_id,
        tenant_id: job.tenant_id,
        mailbox_id: job.mailbox_id,
        folder: job.folder.to_string(),
        upserts: Vec::new(),
        removals: Vec::new(),
        exclusions: Vec::new(),
        failures: Vec::new(),
        cursor,
        run_id: job.run_id,
        lease: job.lease.cloned(),
    };
    let mut emails: Vec<Email> = Vec::new();
    let mut payloads: Vec<Value> = Vec::new();
    for item in items {
        match email_from_graph(&item, &origin) {
            Some(e) => {
                emails.push(e);
                payloads.push(item);
            }
            None => {
                if let Some(id) = item["id"].as_str() {
                    commit.removals.push(id.to_string());
                    counts.removed += 1;
                }
            }
        }
    }
    counts.processed += emails.len() as u64;
    if emails.is_empty() {
        return Ok(commit);
    }
    // Plugin calls are synchronous CPU work: off the async workers.
    let stages_excl = Arc::clone(&stages.exclusion);
    let stages_map = Arc::clone(&stages.mapping);
    let ctx = stages.ctx.clone();
    let bypass = stages.bypass;
    let (emails, verdicts, mapped, micros) = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let micros = || started.elapsed().as_micros() as u64;
        if bypass {
            let keep = || Verdict {
                decision: Decision::Keep,
                rule: None,
                reason: "bypass".into(),
            };
            let verdicts = emails.iter().map(|_| Ok(keep())).collect();
            let mapped = emails.iter().map(|e| Ok(crm_email_native(e))).collect();
            let spent = micros();
            return (emails, verdicts, mapped, spent);
        }
        let verdicts = stages_excl.exclude_emails(&ctx, &emails).results;
        let kept: Vec<Email> = emails
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| matches!(v, Ok(v) if v.decision == Decision::Keep))
            .map(|(e, _)| e.clone())
            .collect();
        let mapped = stages_map.map_emails(&ctx, &kept).results;
        let spent = micros();
        (emails, verdicts, mapped, spent)
    })
    .await
    .map_err(|e| SyncError::Plugin(format!("a plugin call panicked: {e}")))?;
    counts.stage_micros += micros;
    let (excl_stamp, map_stamp) = (stamp(&stages.exclusion), stamp(&stages.mapping));
    let decided_by = format!("{excl_stamp}; {map_stamp}");
    let mut mapped = mapped.into_iter();
    let mut with_attachments = Vec::new();
    for ((email, verdict), payload) in emails.iter().zip(verdicts).zip(payloads) {
        match verdict {
            Err(e) => {
                counts.failed += 1;
                commit.failures.push(FailedRecord {
                    graph_id: email.id.clone(),
                    stage: "exclude".into(),
                    error: e.to_string(),
                    payload: payload.to_string(),
                });
            }
            Ok(v) if v.decision == Decision::Drop => {
                counts.excluded += 1;
                commit.exclusions.push(Exclusion {
                    graph_id: email.id.clone(),
                    rule: v.rule.unwrap_or_else(|| "(no rule)".into()),
                    decided_by: excl_stamp.clone(),
                });
            }
            Ok(_) => match mapped.next().expect("one mapping result per kept email") {
                Ok(crm) => {
                    counts.synced += 1;
                    if attachments::has_attachments(&payload) {
                        with_attachments.push(commit.upserts.len());
                    }
                    commit
                        .upserts
                        .push(record_for_store(email, &crm, &decided_by));
                }
                Err(e) => {
                    counts.failed += 1;
                    commit.failures.push(FailedRecord {
                        graph_id: email.id.clone(),
                        stage: "map".into(),
                        error: e.to_string(),
                        payload: payload.to_string(),
                    });
                }
            },
        }
    }
    // Kept emails only: nothing is downloaded for mail the rules drop (E5).
    attachments::fetch_for_page(job, &mut commit.upserts, &with_attachments).await?;
    Ok(commit)
}
