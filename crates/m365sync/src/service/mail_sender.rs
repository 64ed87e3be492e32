//! The mail sender: sends the CRM's outbox emails (E15) as they are queued (the API pokes it)
//! and every tick, through [`crate::outbound::mail::send_due`], the one path the CLI's
//! `mail send` takes too. It also takes over rows whose sender died: a row left `sending` is
//! claimable once its claim runs out (`lease_secs`), and its next try looks for the message in
//! the mailbox before sending anything.

use std::sync::Arc;

use crate::outbound::mail::{send_due, Sender};

use super::Shared;

/// The sender's loop, until the service stops. A send in flight when the stop signal fires
/// finishes (the row is recorded); no new row is started.
pub async fn mail_sender(shared: Arc<Shared>) {
    let sender = Sender {
        holder: format!("{}/mail", shared.opts.holder),
        claim_ttl: shared.opts.lease_ttl,
    };
    let stop = shared.stop.clone();
    while !stop.is_stopping() {
        if let Err(e) = send_due(&shared.env.store, &shared.env.http, &sender, &stop).await {
            tracing::warn!(error = %e, "cannot send queued emails now; trying again next tick");
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.opts.poll) => {}
            _ = shared.mail_wake.notified() => {}
            _ = stop.stopped() => {}
        }
    }
}
