//! m365sync: server-side Microsoft 365 email and calendar sync for CRMs.
//!
//! The library holds everything the `m365sync` binary runs. Today that is the Graph and
//! identity simulator ([`sim`]), the sandbox every test, benchmark and new user starts on; the
//! WebAssembly plugin host ([`plugin`]); the Graph client ([`graph`]), the store ([`store`]) and the
//! administration logic behind the CLI ([`admin`]).

pub mod admin;
pub mod apply;
pub mod bench;
pub mod calendar;
pub mod config;
pub mod crm;
pub mod graph;
pub mod matching;
pub mod plugin;
pub mod service;
pub mod sim;
pub mod store;
pub mod sync;
