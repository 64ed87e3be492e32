//! One delta round, shared by a mail folder's sync and a calendar's pull: resume from the
//! stored cursor, start over once when Graph has lost the state (410), read the next page
//! ahead while the current one goes through the plugins and the store, and stop between pages
//! when the service stops.
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

use super::pipeline::SyncError;
use super::stop::StopSignal;

/// Where a round's cursor lives, and how a round with no cursor starts.
pub struct Round<'a> {
    pub store: &'a Store,
    pub mailbox_id: i64,
    /// The cursor's folder key (a mail folder, or the calendar's).
    pub folder: &'a str,
    pub stop: &'a StopSignal,
    /// The first URL of a round that has no cursor yet.
    pub initial_url: String,
}

/// What a round hands each page to: the caller's plugins and store.
pub trait PageSink {
    /// Stores one page's items with the cursor to commit in the same transaction (the
    /// nextLink mid-round, the deltaLink on the round's last page).
    fn store(
        &mut self,
        items: Vec<Value>,
        cursor: Cursor,
    ) -> impl Future<Output = Result<(), SyncError>> + Send;
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
        let stored = sink.store(page.items, cursor);
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
