//! Email sync: Graph delta pages through the tenant's exclusion and mapping plugins into the
//! store. [`convert`] turns Graph JSON into contract records, [`pipeline`] syncs one folder,
//! [`attachments`] fetches the attachments of a page's kept emails, [`run`] one tenant.

pub mod attachments;
pub mod convert;
pub mod pipeline;
pub mod run;
