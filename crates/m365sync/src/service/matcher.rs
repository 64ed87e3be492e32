//! The service's matching task (E8): whenever an org has records queued by the sync or
//! contacts that changed, its matching job runs, so new mail reaches contacts' timelines soon
//! after it is stored and always by the end of each sync run. It wakes every scheduler tick,
//! and at once when poked (a contact changed through the API).
//!
//! Any number of processes may run it: the org's matching lease lets one job run at a time,
//! and the others find the org busy and move on.

use std::sync::Arc;

use crate::matching::{run_org, MatchError};

use super::Shared;

/// The matching loop, until the service stops.
pub async fn matcher(shared: Arc<Shared>) {
    let stop = shared.stop.clone();
    while !stop.is_stopping() {
        match shared.env.store.orgs_with_match_work().await {
            Ok(orgs) => {
                for org in orgs {
                    if stop.is_stopping() {
                        return;
                    }
                    match run_org(&shared.env, &org, &shared.opts.holder).await {
                        Ok(r) if r.records > 0 => tracing::info!(
                            org = %org,
                            records = r.records,
                            matched = r.matched,
                            unmatched = r.unmatched,
                            failed = r.failed,
                            rematched = r.rematched_records,
                            ms = r.millis,
                            "matching job done"
                        ),
                        Ok(_) | Err(MatchError::Busy { .. }) => {}
                        Err(e) => {
                            tracing::warn!(org = %org, error = %e, "matching job failed; it runs again next tick")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "matching: cannot read the queue; trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.opts.poll) => {}
            _ = shared.match_wake.notified() => {}
            _ = stop.stopped() => {}
        }
    }
}
