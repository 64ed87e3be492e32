//! The WebAssembly plugin host.
//!
//! Firms express their policy (which records to exclude, how Graph records map onto CRM
//! records, which contacts a record matches) as WebAssembly components against the contract in
//! `wit/plugin.wit`. This module loads, checks, sandboxes, bounds and calls them:
//!
//! | module | job |
//! |---|---|
//! | [`engine`] | the one wasmtime engine, its linker and epoch ticker |
//! | [`cache`] | compiled artifacts on disk by content digest and wasmtime version |
//! | [`sandbox`] | the import allow-list, the world/version check, WASI with nothing granted |
//! | [`limits`] | per-call bounds and the memory limiter |
//! | [`bindings`] | typed calls per world (`bindgen!`) |
//! | [`host`] | the host imports, scoped to one tenant |
//! | [`call`] | loading a plugin and running a batch with per-record results |
//! | [`cases`] | case files: run a plugin on inputs and diff against expected outputs |
//! | [`bench`] | the figures of BENCHMARKS.md |
//! | [`builtin`] | the default plugins, embedded in the binary |
//! | [`scaffold`] | `plugin new`: a Rust or Python plugin project that builds and passes its cases |

pub mod bindings;
pub mod builtin;
pub mod cache;
pub mod call;
pub mod cases;
pub mod engine;
pub mod host;
pub mod limits;
pub mod sandbox;
pub mod scaffold;

pub use call::{Plugin, RecordError};
pub use engine::{EngineConfig, PluginEngine};
pub use host::{TenantData, TenantView};
pub use limits::Limits;

/// The three plugin slots; each is one world of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Exclusion,
    Mapping,
    Matching,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Exclusion, Kind::Mapping, Kind::Matching];

    /// The world's name in `wit/plugin.wit`.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Exclusion => "exclusion",
            Kind::Mapping => "mapping",
            Kind::Matching => "matching",
        }
    }

    /// The interface the world exports.
    pub fn interface(self) -> &'static str {
        match self {
            Kind::Exclusion => "exclusion-plugin",
            Kind::Mapping => "mapping-plugin",
            Kind::Matching => "matching-plugin",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.world() == s)
            .ok_or_else(|| format!("unknown plugin kind {s:?}: exclusion, mapping or matching"))
    }
}

/// The contract version this host serves: `m365sync:plugin@0.1.x`.
pub const CONTRACT_PACKAGE: &str = "m365sync:plugin";
pub const CONTRACT_MAJOR_MINOR: (u64, u64) = (0, 1);

/// Why a plugin could not be loaded or called at all (per-record failures are [`RecordError`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("the plugin engine could not start: {0}")]
    Engine(String),
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the plugin is not a valid WebAssembly component: {0}")]
    Compile(String),
    #[error("the plugin imports interfaces outside the sandbox: {}; a plugin may import only m365sync:plugin/host@0.1.x and WASI cli, io, clocks and random (no filesystem, sockets, http or environment)", .0.join(", "))]
    ForbiddenImports(Vec<String>),
    #[error("the plugin is built against an incompatible contract: {found}; this host serves {CONTRACT_PACKAGE}@0.1.x")]
    IncompatibleVersion { found: String },
    #[error("the plugin does not export the {expected} world (it exports: {})", if .found.is_empty() { "nothing".to_string() } else { .found.join(", ") })]
    WrongWorld { expected: Kind, found: Vec<String> },
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    #[error("the plugin's describe() failed: {0}")]
    Describe(String),
    #[error("describe() says the plugin is a {found:?} plugin, but it was loaded as {expected}")]
    KindMismatch {
        expected: Kind,
        found: bindings::types::PluginKind,
    },
    #[error("the artifact cache at {path} failed: {message}")]
    Cache { path: String, message: String },
}
