//! Why a round of sync work stopped: the one error type of the inbound pipeline, shared by the
//! mail folders, the calendar, the outbound pushes and the matching job's plugin loading.

use m365sync_graph::GraphError;
use m365sync_store::StoreError;

/// Why a folder's, a calendar's or a mailbox's sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Graph refused or failed a request (after the client's own retries).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The database failed, or the worker's lease was lost.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A plugin could not be loaded, or its thread panicked. A plugin failing on one record is
    /// not this: that record fails alone and the page goes on.
    #[error("{0}")]
    Plugin(String),
    /// The service is stopping; the work left is still owed and resumes from the cursor.
    #[error("stopped before the folder's round finished; it resumes from its cursor")]
    Stopped,
}

impl SyncError {
    /// True when trying again later may succeed on its own: throttling, 5xx, network, the
    /// database, a lost lease. False for what needs an admin (credentials, permissions).
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Graph(GraphError::Auth(a)) => a.is_transient(),
            SyncError::Graph(GraphError::Exhausted { .. }) => true,
            SyncError::Graph(GraphError::SyncStateNotFound { .. }) => true,
            SyncError::Graph(_) => false,
            SyncError::Store(_) | SyncError::Stopped => true,
            SyncError::Plugin(_) => false,
        }
    }

    /// True for failures of this mailbox alone that repeat until an admin acts (A3): access
    /// denied or mailbox not found. Enough of them in a row disable the mailbox (E16).
    pub fn is_mailbox_permanent(&self) -> bool {
        matches!(self, SyncError::Graph(g) if g.is_mailbox_scoped())
    }
}
