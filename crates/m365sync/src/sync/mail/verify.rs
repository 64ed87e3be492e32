//! `mailbox verify`: a folder's messages in Graph against what the store holds for it, id by
//! id (issue 14: nothing silent). Graph's side is a listing of the folder's ids received since
//! the commencement date (`$select=id`, keyset pages of 1,000); the store's side is the
//! folder's kept emails, exclusions and failed records, so every message is accounted for
//! whatever was decided about it.
//!
//! Graph moves on while a check runs (new mail, moves), so a difference is confirmed before it
//! is called a gap: the folder's next delta round is run (it carries every change since the
//! last one) and the folder is compared again; what still differs is a gap. A gap is repaired
//! by reading the folder again from its first URL ([`Store::resync_folder`](m365sync_store::Store::resync_folder)): a full round, its
//! listing backfill and its reconcile make the store equal to Graph.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use m365sync_graph::folders::{listing_url, MAX_LISTING_PAGE};

use super::folder::{sync_folder, FolderJob};
use crate::sync::error::SyncError;
use crate::sync::Counts;

/// The most ids of each kind a report names (the counts are always whole).
pub const IDS_NAMED: usize = 50;

/// One folder compared with Graph.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FolderCheck {
    /// The folder's key.
    pub folder: String,
    /// Its path (`Inbox/Clients/Acme`).
    pub path: String,
    /// Messages Graph holds in the folder, received since the commencement date.
    pub graph: u64,
    /// Of the store's: emails kept (linked, not removed).
    pub kept: u64,
    /// Of the store's: records the exclusion rules dropped.
    pub excluded: u64,
    /// Of the store's: records a stage failed on (listed by `m365sync failures list`).
    pub failed: u64,
    /// How many messages Graph holds that the store does not account for.
    pub missing: u64,
    /// How many records the store holds for the folder that Graph no longer has there.
    pub extra: u64,
    /// The first [`IDS_NAMED`] missing ids.
    pub missing_ids: Vec<String>,
    /// The first [`IDS_NAMED`] extra ids.
    pub extra_ids: Vec<String>,
    /// A repair (a full re-read of the folder) was made or scheduled.
    pub repaired: bool,
}

impl FolderCheck {
    /// True when the store accounts for exactly what Graph holds.
    pub fn complete(&self) -> bool {
        self.missing == 0 && self.extra == 0
    }
}

/// Compares one folder with Graph once.
pub async fn check_folder(job: &FolderJob<'_>, path: &str) -> Result<FolderCheck, SyncError> {
    let graph = graph_ids(job, job.since).await?;
    let held = job
        .store
        .folder_holdings(job.mailbox_id, job.folder)
        .await?;
    let stored = held.all();
    let mut missing: Vec<String> = graph
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .cloned()
        .collect();
    let mut extra: Vec<String> = stored
        .iter()
        .filter(|id| !graph.contains(**id))
        .map(|id| id.to_string())
        .collect();
    missing.sort();
    extra.sort();
    Ok(FolderCheck {
        folder: job.folder.to_string(),
        path: path.to_string(),
        graph: graph.len() as u64,
        kept: held.kept.len() as u64,
        excluded: held.excluded.len() as u64,
        failed: held.failed.len() as u64,
        missing: missing.len() as u64,
        extra: extra.len() as u64,
        missing_ids: missing.into_iter().take(IDS_NAMED).collect(),
        extra_ids: extra.into_iter().take(IDS_NAMED).collect(),
        repaired: false,
    })
}

/// Checks a folder, confirming a difference with one more delta round before calling it a
/// gap; with `repair`, a confirmed gap is read again at once (a full round) and checked
/// again; without it, the re-read is scheduled for the folder's next run. Returns the check
/// and the work the rounds did.
pub async fn verify_folder(
    job: &FolderJob<'_>,
    path: &str,
    repair: bool,
) -> Result<(FolderCheck, Counts), SyncError> {
    let mut counts = Counts::default();
    let mut check = check_folder(job, path).await?;
    if check.complete() {
        return Ok((check, counts));
    }
    // Changes since the last round (mail arriving or moving during the check) are in the
    // next delta round: take it, then look again.
    counts += sync_folder(job).await?.counts;
    check = check_folder(job, path).await?;
    if check.complete() {
        return Ok((check, counts));
    }
    job.store.resync_folder(job.mailbox_id, job.folder).await?;
    if repair {
        counts += sync_folder(job).await?.counts;
        check = check_folder(job, path).await?;
    }
    check.repaired = true;
    Ok((check, counts))
}

/// Graph's ids of the folder's messages received since `since`, by keyset listing of ids.
async fn graph_ids(
    job: &FolderJob<'_>,
    since: Option<DateTime<Utc>>,
) -> Result<HashSet<String>, SyncError> {
    let mut ids = HashSet::new();
    let mut upper: Option<DateTime<Utc>> = None;
    let mut ties = 0usize;
    loop {
        let url = listing_url(
            job.client.graph_url(),
            job.mailbox_graph_id,
            job.folder,
            (since, upper),
            MAX_LISTING_PAGE,
            ties,
            Some("id,receivedDateTime"),
        );
        let page = job.client.list_page(job.mailbox_address, &url).await?;
        let received = |m: &Value| {
            m["receivedDateTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        for m in &page.items {
            if let Some(id) = m["id"].as_str() {
                ids.insert(id.to_string());
            }
        }
        if page.items.len() < MAX_LISTING_PAGE {
            return Ok(ids);
        }
        let Some(last) = page.items.iter().rev().find_map(received) else {
            return Ok(ids);
        };
        let at_last = page
            .items
            .iter()
            .filter(|m| received(m) == Some(last))
            .count();
        ties = if upper == Some(last) {
            ties + at_last
        } else {
            at_last
        };
        upper = Some(last);
    }
}
