//! JavaScript plugins: the JS exclusion example (examples/js-exclusion, built with
//! componentize-js) passes the Rust plugin's own case file, decides every generated record
//! exactly as the Rust plugin does, and every `plugin new --lang js` scaffold builds with the
//! same pinned npm tools and passes its own cases.
//!
//! The component comes from `M365SYNC_JS_PLUGIN` and the npm tools from
//! `M365SYNC_JS_NODE_MODULES` (scripts/test.sh sets both), or `scripts/build-js-plugin.sh` is run
//! here (it needs node and npm, and the npm registry for its first `npm ci`). Outside CI missing
//! tools skip these tests with the reason; in CI (`CI=true`) they fail them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use m365sync_plugin::cases::CaseFile;
use m365sync_plugin::{Kind, Plugin};

use crate::plugin_python::{assert_agrees_with_the_rust_plugin, repo, skip};
use crate::plugin_support::engine;

const BIN: &str = env!("CARGO_BIN_EXE_m365sync");
const NO_TOOLS: &str = "node and npm are not installed (bash scripts/build-js-plugin.sh)";

fn has(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The example's component, built once per test run when scripts/test.sh did not build it.
fn example() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("M365SYNC_JS_PLUGIN") {
                return Some(PathBuf::from(path));
            }
            if !has("node") || !has("npm") {
                return None;
            }
            let out = Command::new("bash")
                .arg(repo().join("scripts/build-js-plugin.sh"))
                .env("CARGO_TARGET_DIR", env!("CARGO_TARGET_TMPDIR"))
                .output()
                .expect("bash runs");
            assert!(
                out.status.success(),
                "scripts/build-js-plugin.sh failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
        .clone()
}

/// The installed npm tools of the example (componentize-js and its tree, as its lockfile pins).
fn node_modules() -> Option<PathBuf> {
    example()?;
    let dir = std::env::var_os("M365SYNC_JS_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("examples/js-exclusion/node_modules"));
    dir.join(".bin/componentize-js").exists().then_some(dir)
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

#[test]
fn js_exclusion_example_passes_the_rust_plugins_cases() {
    let Some(wasm) = example() else {
        return skip(NO_TOOLS);
    };
    let cases = repo().join("plugins/exclusion-rules/cases.toml");
    let stdout = run(Command::new(BIN)
        .args(["plugin", "test"])
        .arg(&wasm)
        .arg("--cases")
        .arg(&cases));
    assert!(stdout.starts_with("exclusion-rules 0.1.0+js"), "{stdout}");
    let n = CaseFile::parse(&std::fs::read_to_string(&cases).unwrap())
        .unwrap()
        .cases
        .len();
    // Every case, plus describe().
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", n + 1)),
        "{stdout}"
    );
}

#[test]
fn js_and_rust_exclusion_plugins_agree_on_generated_records() {
    let Some(wasm) = example() else {
        return skip(NO_TOOLS);
    };
    let js = Plugin::load_file(engine(), Kind::Exclusion, &wasm).expect("loads");
    assert_agrees_with_the_rust_plugin(&js, "javascript");
}

#[test]
fn the_js_example_imports_nothing_outside_the_sandbox() {
    let Some(wasm) = example() else {
        return skip(NO_TOOLS);
    };
    let bytes = std::fs::read(&wasm).unwrap();
    let imports = m365sync_plugin::sandbox::imports_of(engine().engine(), &bytes).unwrap();
    for name in &imports {
        assert!(
            !name.starts_with("wasi:filesystem/") && !name.starts_with("wasi:http/"),
            "{name} in {imports:?}"
        );
    }
}

#[test]
fn js_scaffolds_build_with_the_pinned_tools_and_pass_their_cases() {
    let Some(node_modules) = node_modules() else {
        return skip(NO_TOOLS);
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-js");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let example_lock =
        std::fs::read_to_string(repo().join("examples/js-exclusion/package-lock.json")).unwrap();
    for (kind, lang) in [
        ("exclusion", "js"),
        ("mapping", "javascript"),
        ("matching", "js"),
    ] {
        let name = format!("my-js-{kind}");
        let project = dir.join(&name);
        run(Command::new(BIN)
            .args([
                "plugin", "new", "--lang", lang, "--kind", kind, &name, "--dir",
            ])
            .arg(&project));
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        assert!(
            readme.contains("npm ci\nnpm run build"),
            "the README's commands are the ones tested:\n{readme}"
        );
        // The lockfile is the example's (the tools the example is tested with), renamed.
        let lock = std::fs::read_to_string(project.join("package-lock.json")).unwrap();
        assert_eq!(
            lock,
            example_lock.replace("\"m365sync-js-exclusion\"", &format!("\"{name}\""))
        );
        // `npm ci` would install exactly this tree from the registry; the test reuses the
        // example's installed copy of it to stay offline.
        std::os::unix::fs::symlink(&node_modules, project.join("node_modules")).unwrap();
        run(Command::new("npm")
            .current_dir(&project)
            .args(["run", "--silent", "build"]));
        let wasm = project.join(format!("my_js_{kind}.wasm"));
        let out = run(Command::new(BIN)
            .current_dir(&project)
            .args(["plugin", "test"])
            .arg(&wasm)
            .args(["--cases", "cases.toml"]));
        assert!(out.contains(" passed, 0 failed"), "{kind}: {out}");
        assert!(out.starts_with(&format!("{name} 0.1.0")), "{out}");
        if kind == "exclusion" {
            throws_with_its_message(&project, &wasm);
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A scaffolded JavaScript plugin whose policy throws on one record: that record fails with the
/// exception's message (the scaffold's `each` catches it), the others are decided. Without
/// the catch the whole batch traps and the message is lost, the sandbox having no console.
fn throws_with_its_message(project: &Path, wasm: &Path) {
    let app = project.join("app.js");
    let text = std::fs::read_to_string(&app).unwrap();
    let decide = "  decide(subject, addresses) {\n";
    assert!(
        text.contains(decide),
        "the scaffold's policy has decide(): {text}"
    );
    std::fs::write(
        &app,
        text.replace(
            decide,
            &format!("{decide}    if (subject === 'boom') throw new RangeError('the subject says boom');\n"),
        ),
    )
    .unwrap();
    run(Command::new("npm")
        .current_dir(project)
        .args(["run", "--silent", "build"]));
    let cases = std::fs::read_to_string(project.join("cases.toml")).unwrap();
    std::fs::write(
        project.join("boom.toml"),
        format!(
            "{cases}\n[[case]]\nname = \"a record the policy throws on fails with the message\"\n\
             email = {{ subject = \"boom\" }}\n\
             expect_error = \"RangeError: the subject says boom\"\n"
        ),
    )
    .unwrap();
    let out = run(Command::new(BIN)
        .current_dir(project)
        .args(["plugin", "test"])
        .arg(wasm)
        .args(["--cases", "boom.toml"]));
    assert!(out.contains(" passed, 0 failed"), "{out}");
}
