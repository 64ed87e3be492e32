//! One mailbox folder's sync: its delta round (driven by [`crate::sync::round`]) with each page's
//! messages turned into the contract's `Email`, through the stages ([`crate::sync::stages`]),
//! their attachments fetched for the kept ones, and everything committed with the cursor in one
//! transaction ([`Store::commit_page`]), so a crash replays at most one page, harmlessly.
//!
//! **Why a backfill is complete at any folder size.** The round asks message delta with
//! `$filter=receivedDateTime ge COMMENCEMENT`; Graph answers at most 5,000 messages in such a
//! round, and later rounds carry only changes. So after every *full* round (the first one, or
//! one restarted after a 410) the folder is counted (`$count` over the same window): when Graph
//! holds more than the round returned, the rest is read by listing the window (`$filter`,
//! `$orderby=receivedDateTime desc`, `$top`; listings are not capped), keyset by received time
//! so messages arriving or leaving meanwhile cannot shift a page. When the round's messages
//! are one end of the window (Graph returns them in arrival order), two more counts prove it
//! and the listing reads only the other end. Messages the listing meets that the round already
//! stored are not passed through the stages again. The delta round began before the listing,
//! so anything that changes during the listing is in the next delta round. At the end, every
//! record of the folder the full round and its listing did not touch is reconciled away (gone
//! from Graph while the delta state was lost). A marker cursor (`FOLDER#list`) written as the
//! full round begins keeps the listing and the reconcile owed across a crash.
//!
//! A worker's lease is renewed inside each page's transaction, so a worker that lost its lease
//! can never commit over the one that took the mailbox over.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::Instrument as _;

use m365sync_graph::delta::{initial_url, RawItem};
use m365sync_graph::folders::{count_url, listing_url};
use m365sync_graph::GraphClient;
use m365sync_store::folders::listing_key;
use m365sync_store::schedule::Lease;
use m365sync_store::shadows::ShadowPage;
use m365sync_store::sync::{Cursor, FailedRecord, PageCommit};
use m365sync_store::Store;

use super::attachments;
use super::convert::{email_from_graph, record_for_store, GraphMessage, Origin};
use crate::sync::env::SyncObserver;
use crate::sync::error::SyncError;
use crate::sync::round::{retry_failed, run_round, PageSink, Round, RoundOutcome};
use crate::sync::stages::{decide, StageSlot};
use crate::sync::stop::StopSignal;
use crate::sync::Counts;

/// Everything a folder's sync needs.
pub struct FolderJob<'a> {
    /// The database.
    pub store: &'a Store,
    /// Told how long each page's commit took (the service's metrics).
    pub observer: &'a dyn SyncObserver,
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
    /// The folder's key (a well-known name or a Graph folder id): what its cursors, links
    /// and failures are stored under, and what its Graph URLs address.
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

/// What a folder's sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FolderOutcome {
    /// Its share of the run totals.
    pub counts: Counts,
    /// A full round (with its listing backfill and reconcile) completed in this call: the
    /// folder was just read whole, which the service follows with a verify.
    pub backfilled: bool,
    /// Messages the listing backfill read beyond what the delta round returned.
    pub listed: u64,
    /// Links the reconcile marked removed.
    pub reconciled: u64,
}

/// Runs the folder's earlier failures again, then one delta round to its deltaLink (resuming
/// a round a crash interrupted), then whatever a full round owes: the listing backfill of what
/// Graph's cap left out, and the reconcile.
pub async fn sync_folder(job: &FolderJob<'_>) -> Result<FolderOutcome, SyncError> {
    let mut counts = Counts::default();
    let marker = listing_key(job.folder);
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
        full_round_marker: Some(marker.clone()),
    };
    let fetch = |url: String| async move {
        job.client
            .delta_page(job.mailbox_address, &url, job.page_size)
            .await
    };
    let mut sink = FolderPages {
        job,
        counts: &mut counts,
        cursor_key: None,
        stats: RoundStats::default(),
    };
    retry_failed(&round, job.page_size, &mut sink).await?;
    sink.stats = RoundStats::default();
    let outcome = run_round(&round, fetch, &mut sink).await?;
    let stats = sink.stats;
    counts.pages += outcome.pages;
    let mut result = FolderOutcome::default();
    if let Some(owed) = job.store.cursor(job.mailbox_id, &marker).await? {
        if !owed.complete {
            let (listed, reconciled) =
                finish_full_round(job, &marker, owed, &outcome, &stats, &mut counts).await?;
            result.backfilled = true;
            result.listed = listed;
            result.reconciled = reconciled;
        }
    }
    result.counts = counts;
    Ok(result)
}

/// What a round's delta pages held (removals aside): how many messages and the span of their
/// received times. Used to plan the listing only when the whole round ran in one call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RoundStats {
    messages: u64,
    oldest: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
}

impl RoundStats {
    fn add(&mut self, message: &GraphMessage<'_>) {
        if message.is_removed() {
            return;
        }
        self.messages += 1;
        if let Some(t) = message
            .received()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            let t = t.with_timezone(&Utc);
            self.oldest = Some(self.oldest.map_or(t, |o| o.min(t)));
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
        }
    }
}

/// The marker's link once the listing is planned and read: only the reconcile is left.
const RECONCILE_OWED: &str = "-";

/// Plans, reads and ends what a full round owes (see the module's docs). Returns (messages
/// listed, links reconciled away).
async fn finish_full_round(
    job: &FolderJob<'_>,
    marker: &str,
    mut owed: Cursor,
    outcome: &RoundOutcome,
    stats: &RoundStats,
    counts: &mut Counts,
) -> Result<(u64, u64), SyncError> {
    if owed.link.is_empty() {
        // The listing is not planned yet: the stats are this round's only when the whole
        // round ran here; otherwise the whole window is listed (its ids deduplicated).
        let whole_round_here =
            outcome.full && outcome.began_here && outcome.round_started_ms == owed.round_started_ms;
        let plan = plan_listing(job, whole_round_here.then_some(stats)).await?;
        owed.link = plan.unwrap_or_else(|| RECONCILE_OWED.to_string());
        job.store.put_cursor(job.mailbox_id, marker, &owed).await?;
    }
    let mut listed = 0;
    if owed.link != RECONCILE_OWED {
        listed = run_listing(job, marker, &mut owed, counts).await?;
    }
    let reconciled = job
        .store
        .reconcile_folder(job.mailbox_id, job.folder, owed.round_started_ms, job.lease)
        .await?;
    counts.removed += reconciled;
    owed.link = String::new();
    owed.complete = true;
    job.store.put_cursor(job.mailbox_id, marker, &owed).await?;
    Ok((listed, reconciled))
}

/// The first listing URL a full round needs, or `None` when the round returned every message
/// of the window. `stats` are the round's when it ran whole in this call.
async fn plan_listing(
    job: &FolderJob<'_>,
    stats: Option<&RoundStats>,
) -> Result<Option<String>, SyncError> {
    let Some(since) = job.since else {
        // An unfiltered round is not capped: it returned everything.
        return Ok(None);
    };
    let count = |range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>)| async move {
        let url = count_url(
            job.client.graph_url(),
            job.mailbox_graph_id,
            job.folder,
            range,
        );
        job.client.count(job.mailbox_address, &url).await
    };
    let total = count((Some(since), None)).await?;
    let list = |range| {
        Some(listing_url(
            job.client.graph_url(),
            job.mailbox_graph_id,
            job.folder,
            range,
            job.page_size,
            0,
            None,
        ))
    };
    let Some(stats) = stats else {
        return Ok(list((Some(since), None)));
    };
    if total <= stats.messages {
        return Ok(None);
    }
    if let (Some(oldest), Some(newest)) = (stats.oldest, stats.newest) {
        // The round returned the window's oldest block: list only what is newer.
        if count((Some(since), Some(newest))).await? == stats.messages {
            return Ok(list((Some(newest), None)));
        }
        // Or its newest block: list only what is older.
        if count((Some(oldest), None)).await? == stats.messages {
            return Ok(list((Some(since), Some(oldest))));
        }
    }
    Ok(list((Some(since), None)))
}

/// Reads a folder's listing backfill from the marker's link to its end, page by page through
/// the stages into the store (the marker's link moving with each page's commit); returns how
/// many messages it passed through the stages.
async fn run_listing(
    job: &FolderJob<'_>,
    marker: &str,
    owed: &mut Cursor,
    counts: &mut Counts,
) -> Result<u64, SyncError> {
    let mut listed = 0;
    let mut keyset = Keyset::from_url(&owed.link);
    loop {
        if job.stop.is_stopping() {
            return Err(SyncError::Stopped);
        }
        let page = job
            .client
            .list_page(job.mailbox_address, &owed.link)
            .await?;
        counts.pages += 1;
        let full_page = page.items.len() >= keyset.top;
        let next = keyset.next(&page.items).filter(|_| full_page);
        let cursor = Cursor {
            link: match &next {
                Some(url) => url.clone(),
                None => RECONCILE_OWED.to_string(),
            },
            ..owed.clone()
        };
        let ids: Vec<String> = page
            .items
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect();
        let seen = job
            .store
            .seen_in_folder_since(job.mailbox_id, job.folder, owed.round_started_ms, &ids)
            .await?;
        // The listing's pages still arrive as value trees (the keyset reads them); written back
        // to text here, they go through the same typed page as a delta round's.
        let fresh: Vec<RawItem> = page
            .items
            .into_iter()
            .filter(|m| m["id"].as_str().is_some_and(|id| !seen.contains(id)))
            .filter_map(|m| serde_json::value::to_raw_value(&m).ok())
            .collect();
        listed += fresh.len() as u64;
        let mut sink = FolderPages {
            job,
            counts,
            cursor_key: Some(marker.to_string()),
            stats: RoundStats::default(),
        };
        sink.store(fresh, Some(cursor.clone())).await?;
        *owed = cursor;
        if next.is_none() {
            return Ok(listed);
        }
    }
}

/// Where a keyset listing stands: its window and page size, and the received time of the
/// last message read with how many read messages share it (the next page asks `le` that time
/// and skips them). Messages arriving meanwhile are newer than every page after the first;
/// a message leaving can only make a later page repeat one already read.
struct Keyset {
    graph_url: String,
    mailbox: String,
    folder: String,
    since: Option<DateTime<Utc>>,
    top: usize,
    last: Option<DateTime<Utc>>,
    ties: usize,
}

impl Keyset {
    fn from_url(url: &str) -> Keyset {
        // The plan's URL is ours (`listing_url`): its parts are read back from it, so a
        // listing resumed after a crash continues exactly where its cursor says.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut k = Keyset {
            graph_url: String::new(),
            mailbox: String::new(),
            folder: String::new(),
            since: None,
            top: 100,
            last: None,
            ties: 0,
        };
        if let Some((graph, rest)) = base.split_once("/users/") {
            k.graph_url = graph.to_string();
            let mut parts = rest.split('/');
            k.mailbox = decode(parts.next().unwrap_or_default());
            let _ = parts.next(); // mailFolders
            k.folder = decode(parts.next().unwrap_or_default());
        }
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match name {
                "$top" => k.top = value.parse().unwrap_or(100),
                "$skip" => k.ties = value.parse().unwrap_or(0),
                "$filter" => {
                    for clause in value.split(" and ") {
                        let mut words = clause.split_whitespace();
                        let (_, op, time) = (words.next(), words.next(), words.next());
                        let time = time
                            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                            .map(|t| t.with_timezone(&Utc));
                        match op {
                            Some("ge") => k.since = time,
                            Some("le") => k.last = time,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        k
    }

    /// The URL of the page after one holding `items` (newest first).
    fn next(&mut self, items: &[Value]) -> Option<String> {
        let received = |m: &Value| {
            m["receivedDateTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let last = items.iter().rev().find_map(received)?;
        let at_last = items.iter().filter(|m| received(m) == Some(last)).count();
        self.ties = if self.last == Some(last) {
            self.ties + at_last
        } else {
            at_last
        };
        self.last = Some(last);
        Some(listing_url(
            &self.graph_url,
            &self.mailbox,
            &self.folder,
            (self.since, self.last),
            self.top,
            self.ties,
            None,
        ))
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A folder's pages on their way through the stages into the store.
struct FolderPages<'a, 'j> {
    job: &'a FolderJob<'j>,
    counts: &'a mut Counts,
    /// The cursor's key when it is not the folder's delta cursor (the listing's marker).
    cursor_key: Option<String>,
    /// What the round's pages held.
    stats: RoundStats,
}

impl PageSink for FolderPages<'_, '_> {
    async fn store(
        &mut self,
        items: Vec<RawItem>,
        cursor: Option<Cursor>,
    ) -> Result<(), SyncError> {
        let (mut commit, shadows) =
            process_page(self.job, items, cursor, self.counts, &mut self.stats).await?;
        commit.cursor_key = self.cursor_key.clone();
        // The page's one transaction, as a span of its own: how long the store takes for
        // how many records (counts and the folder's id only, no content).
        let span = tracing::info_span!(
            "page commit",
            folder = %commit.folder,
            records = commit.upserts.len(),
            removals = commit.removals.len(),
            exclusions = commit.exclusions.len(),
            failures = commit.failures.len(),
        );
        let started = std::time::Instant::now();
        self.job.store.commit_page(&commit).instrument(span).await?;
        self.job.observer.page_committed("mail", started.elapsed());
        // The shadows' comparison of the page, once the page is committed and apart from it.
        crate::sync::shadow::record(self.job.store, shadows).await;
        Ok(())
    }
}

/// One page of messages: each read typed from the page's text, removals noted, the rest through
/// the stages, attachments of the kept ones fetched; what the page's transaction will write.
/// The text of a message is kept beside it only to be stored as a failed record's payload.
async fn process_page(
    job: &FolderJob<'_>,
    items: Vec<RawItem>,
    cursor: Option<Cursor>,
    counts: &mut Counts,
    stats: &mut RoundStats,
) -> Result<(PageCommit, Vec<ShadowPage>), SyncError> {
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
        cursor_key: None,
        run_id: job.run_id,
        lease: job.lease.cloned(),
    };
    let mut emails = Vec::new();
    // Each kept candidate: its text (a failure's payload) and whether it has attachments.
    let mut candidates = Vec::new();
    for item in items {
        let message = match serde_json::from_str::<GraphMessage<'_>>(item.get()) {
            Ok(m) => m,
            Err(e) => {
                // A message this version cannot read fails alone, kept for a retry.
                commit.failures.push(unreadable(&item, &e));
                counts.processed += 1;
                counts.failed += 1;
                continue;
            }
        };
        stats.add(&message);
        match email_from_graph(&message, &origin) {
            Some(e) => {
                let has_attachments = message.has_attachments();
                emails.push(e);
                drop(message);
                candidates.push((item, has_attachments));
            }
            None => {
                if !message.id().is_empty() {
                    commit.removals.push(message.id().to_string());
                    counts.removed += 1;
                }
            }
        }
    }
    counts.processed += emails.len() as u64;
    if emails.is_empty() {
        return Ok((commit, Vec::new()));
    }
    let mut decided = decide(&job.stages.current(), None, emails).await?;
    let shadows = std::mem::take(&mut decided.shadows);
    counts.stage_micros += decided.micros;
    let folded = decided.fold(
        candidates,
        |(item, _)| item.get().to_string(),
        |email, crm, (_, has_attachments), decided_by| -> Result<_, (String, Box<_>)> {
            Ok((record_for_store(&email, &crm, decided_by), has_attachments))
        },
    );
    counts.synced += folded.kept.len() as u64;
    counts.excluded += folded.exclusions.len() as u64;
    counts.failed += folded.failures.len() as u64;
    commit.exclusions = folded.exclusions;
    commit.failures.extend(folded.failures);
    let mut with_attachments = Vec::new();
    for (record, has_attachments) in folded.kept {
        if has_attachments {
            with_attachments.push(commit.upserts.len());
        }
        commit.upserts.push(record);
    }
    // Kept emails only: nothing is downloaded for mail the rules drop (E5).
    attachments::fetch_for_page(job, &mut commit.upserts, &with_attachments).await?;
    Ok((commit, shadows))
}

/// The failed record of a message whose JSON this version cannot read (a field of an
/// unexpected type): stage `convert`, named by its id when that much can be read.
fn unreadable(item: &RawItem, e: &serde_json::Error) -> FailedRecord {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(default)]
        id: String,
        #[serde(default)]
        subject: Option<String>,
    }
    let named = serde_json::from_str::<Named>(item.get()).ok();
    FailedRecord {
        graph_id: named.as_ref().map(|n| n.id.clone()).unwrap_or_default(),
        stage: "convert".into(),
        error: format!("Graph sent a message this version cannot read ({e}); it is kept and read again at the next run"),
        subject: named.and_then(|n| n.subject).unwrap_or_default(),
        plugin: String::new(),
        payload: item.get().to_string(),
    }
}
