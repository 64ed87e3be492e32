//! The WebAssembly plugin host.
//!
//! Firms express their policy (which records to exclude, how Graph records map onto CRM
//! records, which contacts a record matches) as WebAssembly components against the contract in
//! `wit/plugin.wit`. This crate loads, checks, sandboxes, bounds and calls them:
//!
//! | module | job |
//! |---|---|
//! | [`engine`] | the one wasmtime engine, its linker and epoch ticker |
//! | [`cache`] | compiled artifacts on disk by content digest and wasmtime version |
//! | [`sandbox`] | the import allow-list, the world/version check, WASI with nothing granted |
//! | [`limits`] | per-call bounds and the memory limiter |
//! | [`bindings`] | typed calls per world (`bindgen!`) |
//! | [`host`] | the host imports, scoped to one tenant |
//! | [`lean`] | contract 0.2: records projected onto the parts a plugin declared |
//! | [`call`] | loading a plugin and running a batch with per-record results |
//! | [`cases`] | case files: run a plugin on inputs and diff against expected outputs |
//! | [`builtin`] | the default plugins, embedded in the binary |
//! | [`scaffold`] | `plugin new`: a Rust or Python plugin project that builds and passes its cases |
//!
//! The figures of BENCHMARKS.md for plugins are measured from outside, by the bench crate
//! (`m365sync_bench::plugin_calls`).

pub mod bindings;
pub mod builtin;
pub mod cache;
pub mod call;
pub mod cases;
pub mod engine;
pub mod host;
pub mod lean;
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
    /// Decides which emails and events stay out of the CRM (the `exclusion` world).
    Exclusion,
    /// Turns a kept Graph email or event into the CRM's record (the `mapping` world).
    Mapping,
    /// Links stored records to the CRM contacts they concern (the `matching` world).
    Matching,
}

impl Kind {
    /// Every kind, in the contract's order: for code that goes through all three slots.
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

/// The contract's WIT package; with [`Contract`], the contract versions this host serves:
/// `m365sync:plugin@0.1.x` and `@0.2.x`.
pub const CONTRACT_PACKAGE: &str = "m365sync:plugin";

/// A minor version of the contract this host serves. A plugin built against any patch of one
/// is accepted; one importing or exporting another version is refused
/// ([`PluginError::IncompatibleVersion`]). Older minors stay served beside the newest, so an
/// installed plugin never stops working because the host was upgraded (`wit/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Contract {
    /// `0.1`: whole records (`wit/0.1/plugin.wit`).
    #[serde(rename = "0.1")]
    V0_1,
    /// `0.2`: lean records, only the parts a plugin declares (`wit/plugin.wit`, [`lean`]).
    #[serde(rename = "0.2")]
    V0_2,
}

impl Contract {
    /// Every minor served, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1, Contract::V0_2];

    /// The newest minor: what `plugin new` scaffolds and the default plugins speak.
    pub const NEWEST: Contract = Contract::V0_2;

    /// Major and minor.
    pub fn major_minor(self) -> (u64, u64) {
        match self {
            Contract::V0_1 => (0, 1),
            Contract::V0_2 => (0, 2),
        }
    }

    /// The minor a semver version belongs to, if this host serves it.
    pub fn of(version: &semver::Version) -> Option<Contract> {
        Contract::ALL
            .into_iter()
            .find(|c| c.major_minor() == (version.major, version.minor))
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor) = self.major_minor();
        write!(f, "{major}.{minor}")
    }
}

/// Why a plugin could not be loaded or called at all (per-record failures are [`RecordError`]).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// wasmtime refused the engine's configuration, the host imports could not be linked, or
    /// the epoch ticker thread could not start ([`PluginEngine::new`]).
    #[error("the plugin engine could not start: {0}")]
    Engine(String),
    /// The plugin file could not be read ([`Plugin::load_file`]).
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file, as the caller gave it.
        path: String,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// wasmtime could not compile the bytes as a component (not WebAssembly, a core module
    /// rather than a component, or invalid); the message is wasmtime's error chain.
    #[error("the plugin is not a valid WebAssembly component: {0}")]
    Compile(String),
    /// The component imports interfaces outside the sandbox's allow-list (see [`sandbox`]);
    /// every such import is named, so the author sees them all at once.
    #[error("the plugin imports interfaces outside the sandbox: {}; a plugin may import only m365sync:plugin/host@0.1.x or @0.2.x and WASI cli, io, clocks and random (no filesystem, sockets, http or environment)", .0.join(", "))]
    ForbiddenImports(Vec<String>),
    /// The component imports or exports the contract at a version other than
    /// a [`Contract`] this host serves.
    #[error("the plugin is built against an incompatible contract: {found}; this host serves {CONTRACT_PACKAGE}@0.1.x and @0.2.x")]
    IncompatibleVersion {
        /// The first import or export at another version, as the component names it.
        found: String,
    },
    /// The component does not export the interface of the slot it was loaded for.
    #[error("the plugin does not export the {expected} world (it exports: {})", if .found.is_empty() { "nothing".to_string() } else { .found.join(", ") })]
    WrongWorld {
        /// The slot it was loaded for.
        expected: Kind,
        /// The interfaces it exports instead, so the message says what it is.
        found: Vec<String>,
    },
    /// The component could not be pre-linked against the host's imports, or its exports do
    /// not have the world's types; the message is wasmtime's error chain.
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    /// `describe()` failed while loading (trap, timeout, memory limit, an answer over the
    /// output bound); the message is the [`RecordError`]'s.
    #[error("the plugin's describe() failed: {0}")]
    Describe(String),
    /// `describe()` names another kind than the slot the plugin was loaded for.
    #[error("describe() says the plugin is a {found:?} plugin, but it was loaded as {expected}")]
    KindMismatch {
        /// The slot it was loaded for.
        expected: Kind,
        /// The kind its `describe()` answered.
        found: bindings::types::PluginKind,
    },
    /// The component compiled, but its artifact could not be stored in the cache directory
    /// ([`cache`]); the load fails with this error.
    #[error("the artifact cache at {path} failed: {message}")]
    Cache {
        /// The cache directory.
        path: String,
        /// The step that failed (create, serialize, write, rename) and the OS's error.
        message: String,
    },
}
