//! The inbound pipeline: where a Graph delta page becomes rows.
//!
//! ```text
//! mailbox.rs   one mailbox's share of a run: its mail folders, then its calendar, then its
//!   |          outbox (crate::outbound), under the worker's lease; the result becomes health
//!   +-- mail/      a folder's messages  --+
//!   +-- calendar/  a calendar's events  --+--> round.rs   the delta round: cursor, read-ahead, 410
//!                                         +--> stages.rs  exclude -> map on the plugin thread,
//!                                                         one fold of the verdicts
//!                                         +--> the store's page commit (records + cursor, one
//!                                              transaction)
//! ```
//!
//! [`round`] reads a folder's or a calendar's delta pages (resume from the stored cursor, one
//! restart on 410, the next page read while the current one is stored) and hands each to a
//! [`round::PageSink`]; [`stages`] runs a page's records through the tenant's exclusion and
//! mapping plugins and folds the verdicts, and [`shadow`] runs a candidate beside them that decides
//! nothing; [`mail`] and [`calendar`] only adapt their record
//! type (`Email`, `Event`) to the two and commit their pages. [`mailbox`] drives one mailbox,
//! [`env`] is what all sync work shares (store, plugin engine, HTTP), [`tenant`] builds what a
//! tenant's run needs, [`run`] drives one-off runs from the CLI (the
//! service drives scheduled ones, see [`crate::service`]), [`stop`] carries SIGTERM to the work
//! and [`error`] says why work stopped.

pub mod calendar;
pub mod env;
pub mod error;
pub mod mail;
pub mod mailbox;
pub mod replay;
pub mod round;
pub mod run;
pub mod shadow;
pub mod stages;
pub mod stop;
pub mod tenant;

pub use env::SyncEnv;
pub use error::SyncError;
pub use tenant::TenantContext;

/// What a mailbox's work did, summed over its folders and calendar: the run totals (E10).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Delta pages read.
    pub pages: u64,
    /// Records read (removals not counted).
    pub processed: u64,
    /// Records stored (kept and mapped), and pushes made.
    pub synced: u64,
    /// Records the exclusion rules dropped.
    pub excluded: u64,
    /// Records Graph reported removed.
    pub removed: u64,
    /// Records a stage failed on (kept for retry).
    pub failed: u64,
    /// Time spent inside the exclusion and mapping stages, microseconds (their price).
    pub stage_micros: u64,
    /// CRM events written to Microsoft (also in `synced`).
    pub pushed: u64,
    /// Pushes Microsoft refused (also in `failed`).
    pub push_failed: u64,
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
        self.pushed += o.pushed;
        self.push_failed += o.push_failed;
    }
}
