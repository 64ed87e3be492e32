//! Installing a plugin component at an org's or a tenant's level: what `m365sync plugin
//! install` and `POST /api/orgs/{org}/plugins/{slot}/install` (the console's "Install") both
//! do, so a component refused by one is refused by the other in the same words. Before any
//! write the component must load as that slot's plugin in the sandbox (it compiles, imports
//! nothing outside the sandbox, exports the slot's world at a contract version this host
//! serves, and `describe()` answers), and pass the case file it came with; then it becomes the
//! version in force in one transaction with a history line saying what it was checked against.
//! Installing the digest already in force changes nothing.

use m365sync_plugin::cases::CaseFile;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_plugin::{Kind, Plugin, PluginError};
use m365sync_store::plugins::{Installed, NewPlugin, PluginScope};
use m365sync_store::{Store, StoreError};

use super::plugins::{place, short};

/// The cases a component is checked against before it is installed.
#[derive(Debug, Clone)]
pub struct Cases {
    /// What the history says it was checked against (`cases cases.toml (ab12...)`, or why
    /// none were run).
    pub what: String,
    /// The case file's text; `None` installs untested (the history says so through `what`).
    pub text: Option<String>,
}

/// Why a component was not installed. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// It does not load as this slot's plugin.
    #[error("{file} is not a usable {slot} plugin: {source}{hint}")]
    NotUsable {
        /// The file's name as the admin gave it.
        file: String,
        /// The slot it was meant for.
        slot: Kind,
        /// Why it does not load.
        source: PluginError,
        /// How to build it so it loads, when the imports say which tool built it.
        hint: &'static str,
    },
    /// The case file does not parse.
    #[error("the case file is not valid: {0}")]
    BadCases(String),
    /// The case file is for another slot.
    #[error("the cases are for the {cases} slot, not {slot}")]
    WrongSlot {
        /// The case file's `kind`.
        cases: Kind,
        /// The slot being installed.
        slot: Kind,
    },
    /// Some cases gave another answer than expected.
    #[error("{file}: {failed} of {total} cases differ; nothing was installed")]
    CasesDiffer {
        /// The file's name as the admin gave it.
        file: String,
        /// Cases that differ.
        failed: usize,
        /// Cases run.
        total: usize,
        /// The case report, each difference named (what `plugin test` prints).
        report: String,
    },
    /// The check itself crashed (a bug of the host, not of the component).
    #[error("checking {0} crashed; nothing was installed (see the service log)")]
    Panicked(String),
    /// The database refused the install.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A component that passed an install's checks, ready to be written.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// `sha256:...` of the bytes.
    pub digest: String,
    /// What `describe()` answered.
    pub name: String,
    /// What `describe()` answered.
    pub version: String,
    /// What the history says it was checked against (`12 passed: cases ...`).
    pub checked_against: String,
    /// Cases that passed, none when none were run.
    pub passed: Option<usize>,
    /// The case file run, empty for none (kept with a shadow for its promotion).
    pub cases_text: String,
    /// The case report (each case passed), for the console to show.
    pub report: Option<String>,
}

/// What an install did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallDone {
    /// False when the same component was already in force there (nothing changed).
    pub activated: bool,
    /// The component's name, version and digest.
    pub name: String,
    /// The component's version.
    pub version: String,
    /// `sha256:...` of the component.
    pub digest: String,
    /// What the history says it was checked against.
    pub checked_against: String,
    /// Cases that passed, none when none were run.
    pub passed: Option<usize>,
    /// The case report, when cases ran.
    pub report: Option<String>,
    /// What happened, in one sentence.
    pub summary: String,
}

/// A hint for a component whose imports show the tool that built it without its sandbox
/// flags (a line of its own), or nothing.
pub fn build_hint(err: &PluginError) -> &'static str {
    let imports = |prefix: &str| {
        matches!(err, PluginError::ForbiddenImports(names)
            if names.iter().any(|n| n.starts_with(prefix)))
    };
    let files = imports("wasi:filesystem/");
    if files && imports("wasi:sockets/") {
        "\nhint: built with componentize-py? `componentize --stub-wasi` builds a component that \
         imports no files or sockets"
    } else if files && imports("wasi:http/") {
        "\nhint: built with componentize-js? `--disable stdio http fetch-event` builds a \
         component that imports no files or http"
    } else {
        ""
    }
}

/// Loads `bytes` as `slot`'s plugin and runs `cases`, on a blocking thread (compiling and
/// calling a component is CPU work).
pub async fn check(
    file: &str,
    slot: Kind,
    bytes: Vec<u8>,
    cases: Cases,
) -> Result<Checked, InstallError> {
    let file = file.to_string();
    let name = file.clone();
    tokio::task::spawn_blocking(move || check_now(&file, slot, bytes, cases))
        .await
        .map_err(|_| InstallError::Panicked(name))?
}

fn check_now(
    file: &str,
    slot: Kind,
    bytes: Vec<u8>,
    cases: Cases,
) -> Result<Checked, InstallError> {
    let not_usable = |source: PluginError| InstallError::NotUsable {
        file: file.to_string(),
        slot,
        hint: build_hint(&source),
        source,
    };
    let engine = PluginEngine::new(EngineConfig::default()).map_err(not_usable)?;
    let plugin = Plugin::load(&engine, slot, &bytes).map_err(not_usable)?;
    let mut passed = None;
    let mut report_text = None;
    if let Some(text) = &cases.text {
        let case_file =
            CaseFile::parse(text).map_err(|e| InstallError::BadCases(format!("{e:#}")))?;
        if case_file.kind != slot {
            return Err(InstallError::WrongSlot {
                cases: case_file.kind,
                slot,
            });
        }
        let report = case_file
            .run(&plugin)
            .map_err(|e| InstallError::BadCases(format!("{e:#}")))?;
        if !report.ok() {
            return Err(InstallError::CasesDiffer {
                file: file.to_string(),
                failed: report.failures.len(),
                total: report.failures.len() + report.passed,
                report: report.to_string(),
            });
        }
        passed = Some(report.passed);
        report_text = Some(report.to_string());
    }
    let d = plugin.descriptor();
    Ok(Checked {
        digest: plugin.digest().to_string(),
        name: d.name.clone(),
        version: d.version.clone(),
        checked_against: match passed {
            Some(n) => format!("{n} passed: {}", cases.what),
            None => cases.what,
        },
        passed,
        cases_text: cases.text.unwrap_or_default(),
        report: report_text,
        bytes,
    })
}

/// Makes a checked component the version in force in `slot` at `scope` (the org's default, or
/// the tenant's override), with its history line; nothing changes when it already is.
pub async fn install(
    store: &Store,
    org: &str,
    tenant: Option<&str>,
    scope: PluginScope,
    slot: Kind,
    checked: Checked,
) -> Result<InstallDone, StoreError> {
    let outcome = store
        .install_plugin_checked(
            scope,
            &NewPlugin {
                slot: slot.world(),
                digest: &checked.digest,
                name: &checked.name,
                version: &checked.version,
                wasm: &checked.bytes,
            },
            &checked.checked_against,
        )
        .await?;
    let (name, version, digest) = (&checked.name, &checked.version, &checked.digest);
    let activated = outcome == Installed::Activated;
    let summary = if activated {
        format!(
            "installed {name} {version} (sha256 {}) as the {slot} plugin of {}",
            short(digest),
            place(org, tenant)
        )
    } else {
        format!(
            "{name} {version} (sha256 {}) is already the {slot} plugin of {}: nothing changed",
            short(digest),
            place(org, tenant)
        )
    };
    Ok(InstallDone {
        activated,
        name: checked.name,
        version: checked.version,
        digest: checked.digest,
        checked_against: checked.checked_against,
        passed: checked.passed,
        report: checked.report,
        summary,
    })
}
