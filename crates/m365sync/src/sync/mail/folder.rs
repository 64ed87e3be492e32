//! One mailbox folder's sync: its delta round (driven by [`crate::sync::round`]) with each page's
//! messages turned into the contract's `Email`, through the stages ([`crate::sync::stages`]),
//! their attachments fetched for the kept ones, and everything committed with the cursor in one
//! transaction ([`Store::commit_page`]), so a crash replays at most one page, harmlessly.
//!
//! A worker's lease is renewed inside each page's transaction, so a worker that lost its lease
//! can never commit over the one that took the mailbox over.

use chrono::{DateTime, Utc};
use serde_json::Value;

use m365sync_graph::delta::initial_url;
use m365sync_graph::GraphClient;
use m365sync_store::schedule::Lease;
use m365sync_store::sync::{Cursor, EmailRecord, PageCommit};
use m365sync_store::Store;

use super::attachments;
use super::convert::{email_from_graph, record_for_store, Origin};
use crate::sync::error::SyncError;
use crate::sync::round::{retry_failed, run_round, PageSink, Round};
use crate::sync::stages::{decide, StageSlot};
use crate::sync::stop::StopSignal;
use crate::sync::Counts;

/// Everything a folder's sync needs.
pub struct FolderJob<'a> {
    /// The database.
    pub store: &'a Store,
    /// The tenant's Graph client.
    pub client: &'a GraphClient,
    /// The tenant's plugins.
    pub stages: &'a StageSlot,
    /// The org the records belong to.
    pub org_id: i64,
    /// The tenant the mailbox belongs to.
    pub tenant_id: i64,
    /// The mailbox.
    pub mailbox_id: i64,
    /// The mailbox's Graph id (or UPN).
    pub mailbox_graph_id: &'a str,
    /// The mailbox's primary address.
    pub mailbox_address: &'a str,
    /// The CRM user owning the mailbox's records, if linked.
    pub user: Option<&'a str>,
    /// The folder (a well-known name or a Graph folder id).
    pub folder: &'a str,
    /// Messages per delta page (`Prefer: odata.maxpagesize`).
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

/// Runs the folder's earlier failures again, then one delta round to its deltaLink (resuming
/// a round a crash interrupted).
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
    retry_failed(&round, job.page_size, &mut sink).await?;
    let pages = run_round(&round, fetch, &mut sink).await?;
    counts.pages += pages;
    Ok(counts)
}

/// A folder's pages on their way through the stages into the store.
struct FolderPages<'a, 'j> {
    job: &'a FolderJob<'j>,
    counts: &'a mut Counts,
}

impl PageSink for FolderPages<'_, '_> {
    async fn store(&mut self, items: Vec<Value>, cursor: Option<Cursor>) -> Result<(), SyncError> {
        let commit = process_page(self.job, items, cursor, self.counts).await?;
        Ok(self.job.store.commit_page(&commit).await?)
    }
}

/// One page of messages: removals noted, the rest through the stages, attachments of the kept
/// ones fetched; what the page's transaction will write.
async fn process_page(
    job: &FolderJob<'_>,
    items: Vec<Value>,
    cursor: Option<Cursor>,
    counts: &mut Counts,
) -> Result<PageCommit, SyncError> {
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
    let mut emails = Vec::new();
    let mut payloads = Vec::new();
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
    let decided = decide(&job.stages.current(), None, emails).await?;
    counts.stage_micros += decided.micros;
    let folded = decided.fold(
        payloads,
        Value::to_string,
        |email, crm, payload, decided_by| -> Result<(EmailRecord, bool), (String, Value)> {
            let record = record_for_store(&email, &crm, decided_by);
            Ok((record, attachments::has_attachments(&payload)))
        },
    );
    counts.synced += folded.kept.len() as u64;
    counts.excluded += folded.exclusions.len() as u64;
    counts.failed += folded.failures.len() as u64;
    commit.exclusions = folded.exclusions;
    commit.failures = folded.failures;
    let mut with_attachments = Vec::new();
    for (record, has_attachments) in folded.kept {
        if has_attachments {
            with_attachments.push(commit.upserts.len());
        }
        commit.upserts.push(record);
    }
    // Kept emails only: nothing is downloaded for mail the rules drop (E5).
    attachments::fetch_for_page(job, &mut commit.upserts, &with_attachments).await?;
    Ok(commit)
}
