//! Builds a workspace of WebAssembly guests for `wasm32-wasip2`, shared by the build scripts of
//! `m365sync-plugin` (the default plugins, `plugins/`) and `m365sync-test-programs` (the
//! hostile test components, `tests/plugins/`), as wasmtime's `crates/test-programs/artifacts`
//! does.
//!
//! Both build into one target directory, `<target>/wasm-plugins`, outside every profile's
//! directory, so debug, release and clippy builds of the host reuse one build of the guests.
//! A toolchain without the `wasm32-wasip2` standard library gets it from rustup first (a fresh
//! machine's toolchain has only its host target, and rustup installs nothing by itself when
//! `RUSTUP_AUTO_INSTALL=0`); without rustup, the build stops with the one command to run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The guests' target.
pub const TARGET: &str = "wasm32-wasip2";

/// The repository root, from a crate directory two levels below it (`crates/NAME`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    manifest_dir
        .ancestors()
        .nth(2)
        .expect("crates/NAME has a grandparent")
        .to_path_buf()
}

/// `<target>/wasm-plugins`, from the build script's OUT_DIR
/// (`<target>/<profile>/build/<pkg>-<hash>/out`).
pub fn guest_target_dir() -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("wasm-plugins")
}

/// Builds `crates` of the guest workspace `root/dir` and exposes each component's path to the
/// crate being built as `M365SYNC_WASM_<CRATE_NAME>`.
pub fn build(root: &Path, dir: &str, crates: &[&str], target_dir: &Path) {
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    let workspace = root.join(dir);
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    for name in crates {
        println!("cargo:rerun-if-changed={}", workspace.join(name).display());
    }
    ensure_target();
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

/// True when the active toolchain has the guests' standard library.
fn target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

/// Installs the guests' target with rustup when the toolchain lacks it. The two build scripts
/// may race here; the loser's `rustup` may fail while the winner's succeeds, so success is
/// judged by looking again, for up to two minutes.
fn ensure_target() {
    if target_installed() {
        return;
    }
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Some(t) = &toolchain {
        cmd.args(["--toolchain", t]);
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (the default plugins are built for it)");
    let ran = cmd.output();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !target_installed() {
        if Instant::now() > deadline {
            let why = match &ran {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => format!("rustup could not be run: {e}"),
            };
            panic!(
                "the {TARGET} target is not installed and rustup could not add it ({why}); run `rustup target add {TARGET}`, then build again"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
