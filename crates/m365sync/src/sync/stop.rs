//! The signal that tells sync work to stop at the next safe point (SIGTERM): a page being
//! committed is finished, a page being fetched is abandoned (nothing of it was stored yet).

use tokio::sync::watch;

/// Held by whoever decides to stop (the service's signal handler).
pub struct StopHandle(watch::Sender<bool>);

/// Seen by the work that must stop. Cheap to clone.
#[derive(Clone)]
pub struct StopSignal(watch::Receiver<bool>);

/// A connected handle and signal.
pub fn stop_pair() -> (StopHandle, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (StopHandle(tx), StopSignal(rx))
}

impl StopHandle {
    /// Asks every holder of the signal to stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl StopSignal {
    /// A signal that never fires (one-off runs from the CLI).
    pub fn never() -> StopSignal {
        stop_pair().1
    }

    /// True once a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when a stop is asked for (never, if the handle is gone without asking).
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        loop {
            if *rx.borrow_and_update() {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
