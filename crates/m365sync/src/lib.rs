//! m365sync: server-side Microsoft 365 email and calendar sync for CRMs, the product itself.
//!
//! A Graph delta page becomes rows in [`sync`]: [`sync::round`] reads a folder's or a
//! calendar's pages, [`sync::stages`] runs them through the tenant's exclusion and mapping
//! plugins, and [`sync::mail`] and [`sync::calendar`] adapt their record types to it and
//! commit each page with its cursor. [`outbound`] is the other direction (CRM edits, an outbox,
//! Graph writes). [`matching`] links stored records to CRM contacts after a sync; [`crm`]
//! imports and exports contacts and entities; [`admin`] is the logic behind the
//! administration commands; [`service`] is `m365sync serve`.
//!
//! The crates below it: `m365sync-sim` (the simulator), `m365sync-plugin` (the WebAssembly
//! host), `m365sync-graph` (the Graph client) and `m365sync-store` (the database).

pub mod admin;
pub mod apply;

pub mod config;
pub mod credentials;
pub mod crm;
pub mod matching;
pub mod outbound;
pub mod service;
pub mod sync;
