//! m365sync: server-side Microsoft 365 email and calendar sync for CRMs.
//!
//! The library holds everything the `m365sync` binary runs. Today that is the Graph and
//! identity simulator ([`sim`]), the sandbox every test, benchmark and new user starts on, and
//! the WebAssembly plugin host ([`plugin`]).

pub mod plugin;
pub mod sim;
