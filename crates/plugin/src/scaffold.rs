//! `m365sync plugin new`: a plugin project that builds and passes its own cases from the start.
//!
//! A firm's developer should not have to learn the contract, the build flags and the case format
//! before seeing a plugin work. The scaffold is a complete project for one slot (exclusion,
//! mapping, matching) in Rust (cargo, `wit-bindgen`, `wasm32-wasip2`), Python
//! (componentize-py) or JavaScript (componentize-js, installed by npm): a minimal working implementation, the contract (`wit/`, copied so the
//! project is self-contained), a `cases.toml` that the implementation passes and a README with
//! the build and test commands.
//!
//! Everything is embedded in the binary, and the versions come from the files m365sync's own
//! plugins are built with, so a scaffold cannot drift from them: the `wit-bindgen` pin of
//! `plugins/Cargo.toml`, a `Cargo.lock` derived from `plugins/Cargo.lock` (so `cargo build
//! --locked` resolves exactly what the default plugins use), the toolchain file of the
//! repository, the componentize-py pin of `examples/python-exclusion/requirements.txt`, and the
//! npm tools of `examples/js-exclusion/package.json` with that example's `package-lock.json`
//! (the whole npm tree, so `npm ci` installs exactly what the example is built and tested with).
//! The templates live in `crates/plugin/templates/`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Kind;

/// The contract, copied into every project (`wit/`).
const WIT: &str = include_str!("../../../wit/plugin.wit");
const WIT_README: &str = include_str!("../../../wit/README.md");
/// Where the `wit-bindgen` pin and the lock file come from.
const PLUGINS_CARGO_TOML: &str = include_str!("../../../plugins/Cargo.toml");
const PLUGINS_CARGO_LOCK: &str = include_str!("../../../plugins/Cargo.lock");
const RUST_TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");
/// The componentize-py pin.
const PY_REQUIREMENTS: &str = include_str!("../../../examples/python-exclusion/requirements.txt");
/// The npm build tools (`devDependencies`) and the lockfile of the whole npm tree.
const JS_PACKAGE_JSON: &str = include_str!("../../../examples/js-exclusion/package.json");
const JS_PACKAGE_LOCK: &str = include_str!("../../../examples/js-exclusion/package-lock.json");
/// The example's package name, replaced in its lockfile by the new project's.
const JS_EXAMPLE_NAME: &str = "m365sync-js-exclusion";

const RUST_CARGO_TOML: &str = include_str!("../templates/rust/Cargo.toml");
const RUST_CARGO_CONFIG: &str = include_str!("../templates/rust/.cargo/config.toml");
const RUST_GITIGNORE: &str = include_str!("../templates/rust/gitignore");
const RUST_README: &str = include_str!("../templates/rust/README.md");
const PY_GITIGNORE: &str = include_str!("../templates/python/gitignore");
const PY_README: &str = include_str!("../templates/python/README.md");
const JS_PACKAGE_TEMPLATE: &str = include_str!("../templates/js/package.json");
const JS_GITIGNORE: &str = include_str!("../templates/js/gitignore");
const JS_README: &str = include_str!("../templates/js/README.md");

/// The implementation and the cases of one slot.
struct SlotTemplates {
    rust: &'static str,
    python: &'static str,
    js: &'static str,
    cases: &'static str,
}

fn slot_templates(kind: Kind) -> SlotTemplates {
    match kind {
        Kind::Exclusion => SlotTemplates {
            rust: include_str!("../templates/rust/lib-exclusion.rs"),
            python: include_str!("../templates/python/app-exclusion.py"),
            js: include_str!("../templates/js/app-exclusion.js"),
            cases: include_str!("../templates/cases-exclusion.toml"),
        },
        Kind::Mapping => SlotTemplates {
            rust: include_str!("../templates/rust/lib-mapping.rs"),
            python: include_str!("../templates/python/app-mapping.py"),
            js: include_str!("../templates/js/app-mapping.js"),
            cases: include_str!("../templates/cases-mapping.toml"),
        },
        Kind::Matching => SlotTemplates {
            rust: include_str!("../templates/rust/lib-matching.rs"),
            python: include_str!("../templates/python/app-matching.py"),
            js: include_str!("../templates/js/app-matching.js"),
            cases: include_str!("../templates/cases-matching.toml"),
        },
    }
}

/// The language of a scaffolded plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// A cargo crate using `wit-bindgen`, built for `wasm32-wasip2`.
    Rust,
    /// A Python app made a component by componentize-py.
    Python,
    /// A JavaScript module made a component by componentize-js (npm).
    Js,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

impl std::str::FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            _ => Err(format!(
                "unknown plugin language {s:?}: rust, python or js (javascript)"
            )),
        }
    }
}

/// Why a project could not be created. Nothing is left behind when creation fails.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name breaks a rule of [`check_name`].
    #[error("invalid plugin name {name:?}: {why}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The rule it breaks, phrased as what to do instead.
        why: String,
    },
    /// Something already exists at the project directory's path (even an empty directory).
    #[error("{} already exists; choose another name or --dir (nothing is overwritten)", .0.display())]
    Exists(PathBuf),
    /// A directory could not be created or a file written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The directory or file that failed.
        path: PathBuf,
        /// The OS's error.
        source: std::io::Error,
    },
}

/// What to create.
#[derive(Clone, Debug)]
pub struct Options {
    /// The plugin's name: `describe()` answers it, and for Rust it is the crate name.
    pub name: String,
    /// The language of the project.
    pub lang: Lang,
    /// The slot the plugin fills: the world it is built against and the templates used.
    pub kind: Kind,
    /// The project directory; it must not exist.
    pub dir: PathBuf,
}

/// A created project: where, what, and how to build and test it.
#[derive(Clone, Debug)]
pub struct Project {
    /// The project directory, as [`Options::dir`] gave it.
    pub dir: PathBuf,
    /// Relative paths of the files written.
    pub files: Vec<PathBuf>,
    /// The build command, run inside `dir`.
    pub build: String,
    /// The component the build produces, relative to `dir`.
    pub wasm: PathBuf,
}

/// A name usable as a crate name, a file name and a plugin name: lower-case ASCII letters,
/// digits and `-`, starting with a letter, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why: &str| {
        Err(ScaffoldError::InvalidName {
            name: name.to_string(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("give 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("use lower-case letters, digits and '-' only");
    }
    if name.ends_with('-') || name.contains("--") {
        return bad("'-' separates words: not at the end, not twice");
    }
    if lock_packages().any(|p| p == name) {
        return bad("a dependency of the plugin has this name");
    }
    Ok(())
}

/// The `wit-bindgen = ...` line of `plugins/Cargo.toml`.
fn wit_bindgen_dependency() -> &'static str {
    PLUGINS_CARGO_TOML
        .lines()
        .find(|l| l.starts_with("wit-bindgen ="))
        .expect("plugins/Cargo.toml pins wit-bindgen")
}

/// `plugins/Cargo.lock` split into its header and its `[[package]]` blocks.
fn lock_blocks() -> (&'static str, Vec<&'static str>) {
    let mut parts = PLUGINS_CARGO_LOCK.split("\n[[package]]\n");
    let header = parts.next().unwrap_or_default();
    (header, parts.collect())
}

fn block_name(block: &str) -> &str {
    block
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_default()
}

/// Names of the registry packages in `plugins/Cargo.lock`.
fn lock_packages() -> impl Iterator<Item = &'static str> {
    lock_blocks()
        .1
        .into_iter()
        .filter(|b| b.contains("\nsource = "))
        .map(block_name)
}

/// The lock file of a plugin crate named `name` that depends on wit-bindgen alone: the registry
/// packages of `plugins/Cargo.lock` (the default plugins depend on nothing else) and the new
/// crate, in cargo's order (by name), so `cargo build --locked` accepts it unchanged.
fn cargo_lock(name: &str) -> String {
    let (header, blocks) = lock_blocks();
    let ours =
        format!("name = \"{name}\"\nversion = \"0.1.0\"\ndependencies = [\n \"wit-bindgen\",\n]\n");
    let mut out: Vec<String> = blocks
        .into_iter()
        .filter(|b| b.contains("\nsource = "))
        .map(|b| {
            let b = b.trim_end_matches('\n');
            format!("{b}\n")
        })
        .collect();
    let at = out
        .iter()
        .position(|b| block_name(b) > name)
        .unwrap_or(out.len());
    out.insert(at, ours);
    let mut text = header.to_string();
    for b in out {
        text.push_str("\n[[package]]\n");
        text.push_str(&b);
    }
    text
}

/// The `"devDependencies": {...}` object of the JavaScript example's package.json, as written
/// there (exact versions).
fn js_dev_dependencies() -> &'static str {
    let start = JS_PACKAGE_JSON
        .find("\"devDependencies\": {")
        .expect("examples/js-exclusion/package.json has devDependencies")
        + "\"devDependencies\": ".len();
    let len = JS_PACKAGE_JSON[start..]
        .find('}')
        .expect("devDependencies is closed")
        + 1;
    &JS_PACKAGE_JSON[start..start + len]
}

/// The example's lockfile with the project's name instead of the example's: the name is the
/// one thing of the root package npm ci compares besides the dependencies, which are the same.
fn js_package_lock(name: &str) -> String {
    JS_PACKAGE_LOCK.replace(
        &format!("\"name\": \"{JS_EXAMPLE_NAME}\""),
        &format!("\"name\": \"{name}\""),
    )
}

/// Replaces every `{{key}}` of `template`.
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut text = template.to_string();
    for (key, value) in vars {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    debug_assert!(!text.contains("{{"), "a template variable was left: {text}");
    text
}

/// The files of a project: (relative path, contents), the build command and the component.
fn files(opts: &Options) -> (Vec<(PathBuf, String)>, String, PathBuf) {
    let name = opts.name.as_str();
    let kind = opts.kind.world();
    let stem = name.replace('-', "_");
    let t = slot_templates(opts.kind);
    let (wasm, build) = match opts.lang {
        Lang::Rust => (
            PathBuf::from(format!("target/wasm32-wasip2/release/{stem}.wasm")),
            // Not --locked: after a version bump the lock's own line must change, which
            // --locked refuses; the dependencies stay as Cargo.lock pins them either way.
            "cargo build --release".to_string(),
        ),
        Lang::Python => (
            PathBuf::from(format!("{stem}.wasm")),
            format!("componentize-py -d wit -w {kind} componentize --stub-wasi app -o {stem}.wasm"),
        ),
        Lang::Js => (
            PathBuf::from(format!("{stem}.wasm")),
            "npm ci && npm run build".to_string(),
        ),
    };
    let wasm_text = wasm.display().to_string();
    let vars = [
        ("name", name),
        ("kind", kind),
        ("wasm", wasm_text.as_str()),
        ("wit_bindgen", wit_bindgen_dependency()),
        ("dev_dependencies", js_dev_dependencies()),
    ];
    let mut files = vec![
        (PathBuf::from("wit/plugin.wit"), WIT.to_string()),
        (PathBuf::from("wit/README.md"), WIT_README.to_string()),
        (PathBuf::from("cases.toml"), render(t.cases, &vars)),
    ];
    match opts.lang {
        Lang::Rust => files.extend([
            ("Cargo.toml".into(), render(RUST_CARGO_TOML, &vars)),
            ("Cargo.lock".into(), cargo_lock(name)),
            (".cargo/config.toml".into(), RUST_CARGO_CONFIG.to_string()),
            ("rust-toolchain.toml".into(), RUST_TOOLCHAIN.to_string()),
            (".gitignore".into(), RUST_GITIGNORE.to_string()),
            ("README.md".into(), render(RUST_README, &vars)),
            ("src/lib.rs".into(), render(t.rust, &vars)),
        ]),
        Lang::Python => files.extend([
            ("app.py".into(), render(t.python, &vars)),
            ("requirements.txt".into(), PY_REQUIREMENTS.to_string()),
            (".gitignore".into(), PY_GITIGNORE.to_string()),
            ("README.md".into(), render(PY_README, &vars)),
        ]),
        Lang::Js => files.extend([
            ("app.js".into(), render(t.js, &vars)),
            ("package.json".into(), render(JS_PACKAGE_TEMPLATE, &vars)),
            ("package-lock.json".into(), js_package_lock(name)),
            (".gitignore".into(), JS_GITIGNORE.to_string()),
            ("README.md".into(), render(JS_README, &vars)),
        ]),
    }
    (files, build, wasm)
}

/// Creates the project. The directory must not exist (an existing one, even empty, is refused
/// rather than merged into); if writing fails part-way, the directory is removed again.
pub fn create(opts: &Options) -> Result<Project, ScaffoldError> {
    check_name(&opts.name)?;
    let dir = &opts.dir;
    if dir.symlink_metadata().is_ok() {
        return Err(ScaffoldError::Exists(dir.clone()));
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    // create_dir (not create_dir_all) fails if the directory appeared meanwhile.
    std::fs::create_dir(dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ScaffoldError::Exists(dir.clone()),
        _ => ScaffoldError::Io {
            path: dir.clone(),
            source,
        },
    })?;
    let (files, build, wasm) = files(opts);
    let written = write_all(dir, &files).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(dir);
    })?;
    Ok(Project {
        dir: dir.clone(),
        files: written,
        build,
        wasm,
    })
}

fn write_all(dir: &Path, files: &[(PathBuf, String)]) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        let io = |source| ScaffoldError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
        written.push(rel.clone());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["my-plugin", "x", "firm2-exclusion"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "My",
            "2fast",
            "a_b",
            "a b",
            "a-",
            "a--b",
            "../x",
            "wit-bindgen",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pin_is_the_default_plugins_one() {
        let dep = wit_bindgen_dependency();
        assert!(dep.contains("version = \"="), "exactly pinned: {dep}");
        let version = dep.split('"').nth(1).unwrap().trim_start_matches('=');
        assert!(
            PLUGINS_CARGO_LOCK
                .contains(&format!("name = \"wit-bindgen\"\nversion = \"{version}\"")),
            "plugins/Cargo.lock resolves wit-bindgen {version}"
        );
        assert!(PY_REQUIREMENTS.contains("componentize-py=="));
    }

    #[test]
    fn the_lock_has_the_registry_packages_and_the_new_crate_in_order() {
        let lock = cargo_lock("my-plugin");
        let names: Vec<&str> = lock
            .split("\n[[package]]\n")
            .skip(1)
            .map(block_name)
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.contains(&"my-plugin") && names.contains(&"wit-bindgen"));
        assert!(!names.contains(&"exclusion-rules"));
        assert!(lock.starts_with("# This file is automatically @generated by Cargo."));
        assert!(lock.ends_with("]\n") || lock.ends_with("\"\n"));
    }

    #[test]
    fn every_template_renders_completely() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for kind in Kind::ALL {
                let opts = Options {
                    name: "p".into(),
                    lang,
                    kind,
                    dir: "p".into(),
                };
                for (path, text) in files(&opts).0 {
                    assert!(!text.contains("{{"), "{lang} {kind} {}", path.display());
                }
            }
        }
    }

    #[test]
    fn the_js_tools_and_lock_are_the_examples() {
        let deps = js_dev_dependencies();
        assert!(deps.starts_with('{') && deps.ends_with('}'), "{deps}");
        assert!(
            deps.contains("\"@bytecodealliance/componentize-js\": \""),
            "{deps}"
        );
        assert!(
            !deps.contains('^') && !deps.contains('~'),
            "exact versions: {deps}"
        );
        let lock = js_package_lock("my-plugin");
        assert_eq!(
            lock.matches("\"name\": \"my-plugin\"").count(),
            2,
            "root and packages[\"\"]"
        );
        assert!(!lock.contains(JS_EXAMPLE_NAME));
        assert_eq!("javascript".parse::<Lang>(), Ok(Lang::Js));
    }

    #[test]
    fn an_existing_directory_is_refused_and_left_alone() {
        let dir = std::env::temp_dir().join(format!("m365sync-scaffold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep.txt"), "mine").unwrap();
        let opts = Options {
            name: "p".into(),
            lang: Lang::Rust,
            kind: Kind::Exclusion,
            dir: dir.clone(),
        };
        assert!(matches!(create(&opts), Err(ScaffoldError::Exists(_))));
        assert_eq!(
            std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
            "mine"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
