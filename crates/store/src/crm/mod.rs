//! The CRM's own records, per org: contacts (a name, an Email, an Alternate Email, any number of
//! contact-point emails, and an entity) and entities (households or companies, with optional
//! domains). The matching job links synced mail to them (E8); a contact carrying a sync user's
//! address is reported (E9).
//!
//! Every function takes the org id and treats a record of another org as absent, so one org
//! never reads or changes another's records by guessing ids. Addresses and domains are stored
//! normalised ([`crate::address`]); a bad value is a [`crate::StoreError::Invalid`] naming the
//! field and the value.
//!
//! Every change that adds, alters or removes an address of a contact (its field or its
//! contact's entity included) writes that address to `contact_changes` in the change's own
//! transaction, so the matching job re-matches exactly the stored mail of those addresses and
//! never misses a change however processes interleave. Which addresses a change affects:
//! - create: all the new contact's addresses;
//! - update: the addresses whose field changed (added, removed, or moved between Email,
//!   Alternate Email and contact points), or all old and new ones when the entity changed;
//! - delete: all its addresses (its activity matches go with it);
//! - deleting an entity: all addresses of the contacts that referenced it.
//!
//! Entity domains are stored for the matching plugin's use; changing them queues nothing,
//! because `contact_changes` is keyed by address.
//!
//! The store's CRM code, by concern:
//! - [`record`]: the [`CrmRecord`] trait and the one path both kinds share (read, list,
//!   create, update, upsert, batch save), and the helpers their writes use;
//! - [`contacts`]: contacts, their contact points and the contact-only operations;
//! - [`entities`]: entities and the entity-only operations;
//! - [`changes`]: which addresses a change queues in `contact_changes`, and the queueing;
//! - [`warnings`]: contacts that carry a sync user's address (E9).

pub mod changes;
pub mod contacts;
pub mod entities;
pub mod record;
pub mod warnings;

pub use contacts::{Contact, ContactInput};
pub use entities::{Entity, EntityInput, EntityKind};
pub use record::{CrmRecord, ListQuery, RecordSave, SaveOutcome, MAX_PAGE};
pub use warnings::SyncAddressWarning;
