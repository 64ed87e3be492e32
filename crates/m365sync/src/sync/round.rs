//! One delta round, shared by a mail folder's sync and a calendar's pull: resume from the
//! stored cursor, start over once when Graph has lost the state (410), read the next page
//! ahead while the current one goes through the plugins and the store, and stop between pages
//! when the service stops. Before a round, [`retry_failed`] passes the records that failed in
//! earlier runs through the same sink again (E10).
//!
//! Reading ahead is what keeps a budget-bound mailbox busy: without it the mailbox sends
//! nothing while our CPU handles a page, and those pauses add up to the difference between the
//! budget's least time and ours. The page read ahead is fetched from the link the current page
//! stores as its cursor, so a crash or a stop still resumes exactly where the store says.

use std::future::Future;

use m365sync_graph::delta::{DeltaPage, RawItem};
use m365sync_graph::GraphError;
use m365sync_store::sync::Cursor;
use m365sync_store::{now_ms, Store};

use super::error::SyncError;
use super::stop::StopSignal;

/// Where a round's cursor lives, and how a round with no cursor starts.
pub struct Round<'a> {
    /// Where the cursor is kept.
    pub store: &'a Store,
    /// The mailbox whose folder (or calendar) this is.
    pub mailbox_id: i64,
    /// The cursor's folder key (a mail folder, or the calendar's).
    pub folder: &'a str,
    /// Ends the round between pages.
    pub stop: &'a StopSignal,
    /// The first URL of a round that has no cursor yet.
    pub initial_url: String,
    /// Where to mark that a full round began (a mail folder's `FOLDER#list`), so what follows
    /// it is owed even across a crash; `None` for a round that needs nothing after it.
    pub full_round_marker: Option<String>,
}

/// What a round hands each page to: the caller's stages and store (mail and calendar each
/// have one).
pub trait PageSink {
    /// Stores one page's items with the cursor to commit in the same transaction (the
    /// nextLink mid-round, the deltaLink on the round's last page; `None` when the items are
    /// earlier failures being retried, which move no cursor).
    fn store(
        &mut self,
        items: Vec<RawItem>,
        cursor: Option<Cursor>,
    ) -> impl Future<Output = Result<(), SyncError>> + Send;
}

/// Passes the records of `round`'s folder that failed in earlier runs through `sink` again
/// (E10), `page_size` at a time, before the round goes on. Their stored Graph JSON is used, so
/// nothing is refetched; a record changed or removed since was already replaced by the round
/// that saw the change.
pub async fn retry_failed(
    round: &Round<'_>,
    page_size: usize,
    sink: &mut impl PageSink,
) -> Result<(), SyncError> {
    let failed = round
        .store
        .failed_payloads(round.mailbox_id, round.folder)
        .await?;
    for chunk in failed.chunks(page_size.max(1)) {
        let items = chunk
            .iter()
            .filter_map(|p| serde_json::value::RawValue::from_string(p.clone()).ok())
            .collect();
        sink.store(items, None).await?;
    }
    Ok(())
}

/// What a round came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Delta pages read (in this call).
    pub pages: u64,
    /// The round began from its first URL (an initial round, or a restart after 410), so it
    /// returned the folder's whole content (up to Graph's cap on a filtered round).
    pub full: bool,
    /// The whole round ran in this call, from its first page (else it resumed a round an
    /// earlier process began, and what this call saw is only part of it).
    pub began_here: bool,
    /// When the round began (the store's clock).
    pub round_started_ms: i64,
}

/// Runs the round to its deltaLink: `fetch` reads the page at a link, `sink` stores it.
/// A round that begins from its first URL is *full*; when `round.full_round_marker` names a
/// cursor key, a marker is written there as such a round begins (an incomplete cursor with an
/// empty link), so whatever must follow a full round (a listing backfill, the reconcile) is
/// owed even if the process dies before the round ends.
pub async fn run_round<F, Fetched>(
    round: &Round<'_>,
    fetch: F,
    sink: &mut impl PageSink,
) -> Result<RoundOutcome, SyncError>
where
    F: Fn(String) -> Fetched,
    Fetched: Future<Output = Result<DeltaPage, GraphError>>,
{
    let mut outcome = RoundOutcome {
        pages: 0,
        full: false,
        began_here: false,
        round_started_ms: now_ms(),
    };
    let mut restarted = false;
    // The next page, fetched while the current one was being stored.
    let mut ahead: Option<Result<DeltaPage, GraphError>> = None;
    loop {
        if round.stop.is_stopping() {
            // A page read ahead is dropped unstored: the cursor still points at it.
            return Err(SyncError::Stopped);
        }
        let fetched = match ahead.take() {
            Some(fetched) => fetched,
            None => {
                let url = match round.store.cursor(round.mailbox_id, round.folder).await? {
                    Some(c) if !c.complete => {
                        // Resuming a round an earlier call began.
                        outcome.round_started_ms = c.round_started_ms;
                        outcome.full = c.full;
                        c.link
                    }
                    Some(c) => {
                        // A new incremental round from the last deltaLink.
                        outcome.round_started_ms = now_ms();
                        c.link
                    }
                    None => {
                        outcome.round_started_ms = now_ms();
                        outcome.full = true;
                        outcome.began_here = true;
                        if let Some(marker) = &round.full_round_marker {
                            round
                                .store
                                .begin_full_round(
                                    round.mailbox_id,
                                    marker,
                                    outcome.round_started_ms,
                                )
                                .await?;
                        }
                        round.initial_url.clone()
                    }
                };
                unless_stopped(round.stop, fetch(url))
                    .await
                    .ok_or(SyncError::Stopped)?
            }
        };
        let page = match fetched {
            Ok(p) => p,
            Err(GraphError::SyncStateNotFound { .. }) if !restarted => {
                // The state is gone: the round starts over from its first URL; the upserts
                // absorb the overlap and the full round's reconcile removes what is gone.
                restarted = true;
                round
                    .store
                    .reset_cursor(round.mailbox_id, round.folder)
                    .await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        outcome.pages += 1;
        let Some(link) = page.cursor_link() else {
            return Err(SyncError::Graph(GraphError::Malformed {
                mailbox: round.folder.to_string(),
                detail: "a delta page without a nextLink or deltaLink".into(),
            }));
        };
        let cursor = Cursor {
            link: link.to_string(),
            complete: page.next_link.is_none(),
            round_started_ms: outcome.round_started_ms,
            full: outcome.full,
        };
        let stored = sink.store(page.items, Some(cursor));
        let (stored, fetched_next) = match &page.next_link {
            Some(link) => {
                let (stored, next) =
                    tokio::join!(stored, unless_stopped(round.stop, fetch(link.clone())));
                (stored, Some(next))
            }
            None => (stored.await, None),
        };
        stored?;
        match fetched_next {
            None => return Ok(outcome),
            // The page in hand is stored; the rest resumes from its cursor.
            Some(None) => return Err(SyncError::Stopped),
            Some(Some(next)) => ahead = Some(next),
        }
    }
}

/// The fetch's answer, or `None` once a stop is asked for (at once if it already was).
async fn unless_stopped<T>(stop: &StopSignal, fetch: impl Future<Output = T>) -> Option<T> {
    if stop.is_stopping() {
        return None;
    }
    tokio::select! {
        answer = fetch => Some(answer),
        _ = stop.stopped() => None,
    }
}
