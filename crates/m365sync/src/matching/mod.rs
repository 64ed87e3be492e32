//! The matching job (E8, E9): links stored emails (and events) to the CRM contacts and
//! entities they concern, through each tenant's matching plugin.
//!
//! - [`job`] drains an org's queue of records owed a pass ([`m365sync_store::matching`]): new
//!   records queued by the sync in their own transaction, records carrying an address whose
//!   contact changed (never a rescan), and records the plugin failed on before.
//! - [`input`] turns stored records into the plugin's `match-input` and checks what it answers:
//!   a plugin may only link contacts the host showed it, so it can never reach another org.
//!
//! What is matched shows on the contact's timeline; what is not goes to its user's review list
//! ([`m365sync_store::review`]).

pub mod input;
pub mod job;

pub use job::{run_org, MatchError, MatchReport};
