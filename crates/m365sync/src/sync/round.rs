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

use serde_json::Value;

use m365sync_graph::delta::DeltaPage;
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
}

/// What a round hands each page to: the caller's stages and store (mail and calendar each
/// have one).
pub trait PageSink {
    /// Stores one page's items with the cursor to commit in the same transaction (the
    /// nextLink mid-round, the deltaLink on the round's last page; `None` when the items are
    /// earlier failures being retried, which move no cursor).
    fn store(
        &mut self,
        items: Vec<Value>,
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
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .collect();
        sink.store(items, None).await?;
    }
    Ok(())
}

/// Runs the round to its deltaLink: `fetch` reads the page at a link, `sink` stores it.
/// Returns the number of pages read.
pub async fn run_round<F, Fetched>(
    round: &Round<'_>,
    fetch: F,
    sink: &mut impl PageSink,
) -> Result<u64, SyncError>
where
    F: Fn(String) -> Fetched,
    Fetched: Future<Output = Result<DeltaPage, GraphError>>,
{
    let mut pages = 0;
    let mut restarted = false;
    let mut round_started = now_ms();
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
                    Some(c) => {
                        if !c.complete {
                            round_started = c.round_started_ms;
                        }
                        c.link
                    }
                    None => round.initial_url.clone(),
                };
                unless_stopped(round.stop, fetch(url))
                    .await
                    .ok_or(SyncError::Stopped)?
            }
        };
        let page = match fetched {
            Ok(p) => p,
            Err(GraphError::SyncStateNotFound { .. }) if !restarted => {
                // The state is gone: the round starts over; the upserts absorb the overlap.
                restarted = true;
                round
                    .store
                    .reset_cursor(round.mailbox_id, round.folder)
                    .await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        pages += 1;
        let cursor = Cursor {
            link: page.cursor_link().expect("a page has one link").to_string(),
            complete: page.next_link.is_none(),
            round_started_ms: round_started,
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
            None => return Ok(pages),
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
