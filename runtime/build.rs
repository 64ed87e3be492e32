//! Builds the WebAssembly components the host embeds and the tests load, so `cargo build` and
//! `cargo test` need no manual step (as wasmtime's `crates/test-programs/artifacts` does).
//!
//! Two workspaces of their own, compiled with `cargo build --release --target wasm32-wasip2`:
//! `plugins/` (the default plugins, embedded in the binary) and `tests/plugins/` (hostile and
//! ill-fitting components for the tests). They share one target directory,
//! `<target>/wasm-plugins`, outside every profile's directory, so debug, release and clippy
//! builds of the host reuse one build of the plugins. Each `.wasm` path is exposed to the crate
//! (library, binary and tests) as `M365SYNC_WASM_<CRATE_NAME>`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates of `plugins/`: (crate name, whether the library embeds it).
const DEFAULT_PLUGINS: &[&str] = &["exclusion-rules", "field-mapping", "contact-matching"];
/// Crates of `tests/plugins/`.
const TEST_PLUGINS: &[&str] = &["hostile", "escape", "future-version"];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir
        .parent()
        .expect("runtime/ has a parent")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("wasm-plugins");

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    build(&root, "plugins", DEFAULT_PLUGINS, &target_dir);
    build(&root, "tests/plugins", TEST_PLUGINS, &target_dir);
}

fn build(root: &Path, dir: &str, crates: &[&str], target_dir: &Path) {
    let workspace = root.join(dir);
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    for name in crates {
        println!("cargo:rerun-if-changed={}", workspace.join(name).display());
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--quiet")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // What the outer build sets for the host must not leak into a wasm build (flags for the
    // host, clippy's wrapper, another target dir). The jobserver (CARGO_MAKEFLAGS) is kept so
    // the inner build shares the outer build's job slots.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {dir}: {e}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
        {
            "\nhint: install the target with `rustup target add wasm32-wasip2`"
        } else {
            ""
        };
        panic!("building the WebAssembly components in {dir} failed:\n{stderr}{hint}");
    }
    for name in crates {
        let wasm = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        assert!(wasm.exists(), "{} was not produced", wasm.display());
        let var = format!("M365SYNC_WASM_{}", name.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}
