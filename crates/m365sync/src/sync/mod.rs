//! Email sync: Graph delta pages through the tenant's exclusion and mapping plugins into the
//! store. [`convert`] turns Graph JSON into contract records, [`pipeline`] syncs one folder
//! (its delta round driven by [`round`], which the calendar's pull shares),
//! [`attachments`] fetches the attachments of a page's kept emails, [`mailbox`] one
//! mailbox's share of a run, [`tenant`] builds what a tenant's run needs, [`run`] drives
//! one-off runs from the CLI (the service drives scheduled ones, see [`crate::service`]), and
//! [`stop`] carries SIGTERM to the work.

pub mod attachments;
pub mod convert;
pub mod mailbox;
pub mod pipeline;
pub mod round;
pub mod run;
pub mod stop;
pub mod tenant;

pub use tenant::{SyncEnv, TenantContext};
