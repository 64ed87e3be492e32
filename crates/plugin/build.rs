//! Builds the default plugins (`plugins/`, a workspace of WebAssembly guests) so `cargo build`
//! needs no manual step; the library embeds them (`builtin`). See `build/wasm_guests.rs`.

#[path = "build/wasm_guests.rs"]
mod wasm_guests;

/// Crates of `plugins/`, each embedded in the library.
const DEFAULT_PLUGINS: &[&str] = &["exclusion-rules", "field-mapping", "contact-matching"];

fn main() {
    let root = wasm_guests::repo_root();
    wasm_guests::build(
        &root,
        "plugins",
        DEFAULT_PLUGINS,
        &wasm_guests::guest_target_dir(),
    );
}
