//! `m365sync plugin new`: every scaffold (Rust and Python, each slot) builds and passes its own
//! cases (a Rust one also after its version is bumped), and an existing directory is refused.
//! The JavaScript scaffolds are tested in `plugin_js.rs`, beside the example whose npm tools
//! they share.
//!
//! The Rust projects build with cargo for wasm32-wasip2 into one shared target directory under
//! the test target (wit-bindgen is compiled once, and later runs are warm). The Python projects
//! need componentize-py: outside CI its absence skips that test with the reason, in CI
//! (`CI=true`) it fails it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plugin_python::{componentize_py, skip};

const BIN: &str = env!("CARGO_BIN_EXE_m365sync");
const KINDS: [&str; 3] = ["exclusion", "mapping", "matching"];

/// A fresh directory for this test's projects.
fn workdir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scaffold-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn new(lang: &str, kind: &str, dir: &Path) -> PathBuf {
    let name = format!("my-{lang}-{kind}");
    let project = dir.join(&name);
    run(Command::new(BIN)
        .args([
            "plugin", "new", "--lang", lang, "--kind", kind, &name, "--dir",
        ])
        .arg(&project));
    project
}

/// `m365sync plugin test` on the project's cases; every case and describe() pass.
fn passes_its_cases(project: &Path, wasm: &Path) {
    let out = run(Command::new(BIN)
        .current_dir(project)
        .args(["plugin", "test"])
        .arg(wasm)
        .args(["--cases", "cases.toml"]));
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn rust_scaffolds_build_and_pass_their_cases() {
    let dir = workdir("rust");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    for kind in KINDS {
        let project = new("rust", kind, &dir);
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        assert!(
            readme.contains("```\ncargo build --release\n```"),
            "{readme}"
        );
        let mut fmt = Command::new(env!("CARGO"));
        run(fmt.current_dir(&project).args(["fmt", "--check"]));
        // A firm bumps its plugin's version: the README's build command still works, the
        // dependencies stay as locked, and describe() reports the new version.
        let lock_before = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
        let version = if kind == "exclusion" {
            let manifest = project.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).unwrap();
            std::fs::write(
                &manifest,
                text.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
            )
            .unwrap();
            "0.2.0"
        } else {
            "0.1.0"
        };
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(&project)
            .args(["build", "--release", "--offline", "--quiet"])
            .env("CARGO_TARGET_DIR", &target);
        // What the outer build set for the host must not reach the wasm build.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            build.env_remove(var);
        }
        run(&mut build);
        let lock_after = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
        let own = format!("name = \"my-rust-{kind}\"\nversion = \"0.1.0\"");
        assert_eq!(
            lock_after,
            lock_before.replace(
                &own,
                &format!("name = \"my-rust-{kind}\"\nversion = \"{version}\"")
            ),
            "only the plugin's own line of Cargo.lock changes"
        );
        let wasm = target
            .join("wasm32-wasip2/release")
            .join(format!("my_rust_{kind}.wasm"));
        passes_its_cases(&project, &wasm);
        let out = run(Command::new(BIN)
            .current_dir(&project)
            .args(["plugin", "test"])
            .arg(&wasm)
            .args(["--cases", "cases.toml"]));
        assert!(
            out.starts_with(&format!("my-rust-{kind} {version} ")),
            "{out}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn python_scaffolds_build_and_pass_their_cases() {
    let Some(tool) = componentize_py() else {
        return skip("componentize-py is not installed (bash scripts/python-env.sh)");
    };
    let dir = workdir("python");
    for kind in KINDS {
        let project = new("python", kind, &dir);
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        let wasm = format!("my_python_{kind}.wasm");
        let build =
            format!("componentize-py -d wit -w {kind} componentize --stub-wasi app -o {wasm}");
        assert!(
            readme.contains(&build),
            "the README's command is the one tested:\n{readme}"
        );
        run(Command::new(&tool)
            .current_dir(&project)
            .arg("--quiet")
            .args(build.split(' ').skip(1)));
        passes_its_cases(&project, &project.join(&wasm));
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plugin_new_refuses_an_existing_directory_and_bad_names() {
    let dir = workdir("refuse");
    let project = dir.join("taken");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("mine.txt"), "keep me").unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "new", "--lang", "rust", "taken", "--dir"])
        .arg(&project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read_dir(&project).unwrap().count(), 1);

    let out = Command::new(BIN)
        .current_dir(&dir)
        .args(["plugin", "new", "--lang", "python", "../escape"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid plugin name"));
    std::fs::remove_dir_all(&dir).ok();
}
