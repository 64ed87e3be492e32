//! Builds the hostile and ill-fitting test components (`tests/plugins/`) for the tests, as
//! wasmtime's `crates/test-programs/artifacts` does. See the plugin crate's
//! `build/wasm_guests.rs`.

#[path = "../plugin/build/wasm_guests.rs"]
mod wasm_guests;

/// Crates of `tests/plugins/`.
const TEST_PLUGINS: &[&str] = &[
    "hostile",
    "escape",
    "future-version",
    "remap",
    "noop",
    "failmatch",
];

fn main() {
    let root = wasm_guests::repo_root();
    wasm_guests::build(
        &root,
        "tests/plugins",
        TEST_PLUGINS,
        &wasm_guests::guest_target_dir(),
    );
}
