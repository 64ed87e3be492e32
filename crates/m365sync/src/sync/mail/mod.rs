//! Mail: a mailbox's folders and their messages through the stage engine. [`folders`]
//! discovers the folder tree and says which folders are synced; [`convert`] reads Graph
//! message JSON into the contract's `Email` (and a mapped `CrmEmail` into the store's row);
//! [`folder`] runs one folder's delta round through the stages into the store and makes its
//! backfill complete at any size; [`attachments`] fetches the attachments of a page's kept
//! emails before the page commits (E5); [`verify`] compares a folder with Graph, id by id.

pub mod attachments;
pub mod convert;
pub mod folder;
pub mod folders;
pub mod verify;

pub use folder::{sync_folder, FolderJob, FolderOutcome};
pub use folders::{discover, DiscoverJob, SyncedFolder};
