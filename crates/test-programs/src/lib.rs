//! Paths of the WebAssembly components the tests load: hostile, ill-fitting and
//! future-versioned plugins from `tests/plugins/`, built by this crate's build script for
//! `wasm32-wasip2`. A dev-dependency only: nothing of the product links it.

/// A component that misbehaves on request: traps, loops, allocates without end, answers
/// the wrong count (`tests/plugins/hostile`).
pub const HOSTILE: &str = env!("M365SYNC_WASM_HOSTILE");
/// A component that imports what the sandbox refuses (`tests/plugins/escape`).
pub const ESCAPE: &str = env!("M365SYNC_WASM_ESCAPE");
/// A component built against a contract version this host does not serve
/// (`tests/plugins/future-version`).
pub const FUTURE_VERSION: &str = env!("M365SYNC_WASM_FUTURE_VERSION");
/// A mapping plugin that maps otherwise than the default on purpose (`[remapped] SUBJECT`) and
/// fails subjects containing `unmappable` (`tests/plugins/remap`): the live mapping shadow's
/// candidate.
pub const REMAP: &str = env!("M365SYNC_WASM_REMAP");
/// An exclusion plugin of contract 0.2 that declares no fields and keeps everything
/// (`tests/plugins/noop`): the 0.2 side of the tests that run both contract versions.
pub const NOOP_V0_2: &str = env!("M365SYNC_WASM_NOOP");
/// A matching plugin of contract 0.2 that fails on purpose (`tests/plugins/failmatch`): an
/// address containing `unmatchable` is its record's error, one containing `stranger` is
/// answered with a contact the host never showed; every other record matches nothing.
pub const FAILMATCH: &str = env!("M365SYNC_WASM_FAILMATCH");
