//! Mail: a mailbox folder's messages through the stage engine. [`convert`] reads Graph message
//! JSON into the contract's `Email` (and a mapped `CrmEmail` into the store's row), [`folder`]
//! runs one folder's delta round through the stages into the store, and [`attachments`] fetches
//! the attachments of a page's kept emails before the page commits (E5).

pub mod attachments;
pub mod convert;
pub mod folder;

pub use folder::{sync_folder, FolderJob};
