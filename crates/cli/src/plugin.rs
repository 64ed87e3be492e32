//! `m365sync plugin new|test|bench|install|uninstall|rollback|list|history`, and the shadow
//! commands (`shadow`, `shadow diff|stop`, `promote`, `replay`) whose handlers are in
//! [`crate::plugin_shadow`].

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use m365sync::admin::install::{Cases, Checked, InstallError};
use m365sync::config::ServiceConfig;
use m365sync_plugin::cases::CaseFile;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_plugin::scaffold::{self, Lang};
use m365sync_plugin::{builtin, Contract, Kind, Plugin, PluginError};
use m365sync_store::plugins::PluginScope;
use m365sync_store::Store;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project (Rust, Python or JavaScript) that builds and passes its own cases: a
    /// minimal working implementation, the contract (wit/), cases.toml and a README with the
    /// build and test commands. Refuses an existing directory.
    New {
        /// The plugin's name (lower-case letters, digits, '-'): its crate and describe() name.
        name: String,
        /// rust (cargo, wit-bindgen, wasm32-wasip2), python (componentize-py) or js, also
        /// spelled javascript (componentize-js, installed by npm from a pinned lockfile).
        #[arg(long)]
        lang: Lang,
        /// The slot: exclusion, mapping or matching.
        #[arg(long, default_value = "exclusion")]
        kind: Kind,
        /// The project directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a plugin on a case file and print what differs from the expected outputs; exits
    /// non-zero on any mismatch. FILE is a component (.wasm), or `builtin:exclusion`,
    /// `builtin:mapping`, `builtin:matching` for the default plugins.
    Test {
        /// The plugin component.
        file: String,
        /// The case file (TOML; see plugins/*/cases.toml). Defaults to the builtin's own cases.
        #[arg(long)]
        cases: Option<PathBuf>,
    },
    /// Validate a component (it compiles, exports the slot's world at a compatible version,
    /// `describe()` answers, the given cases pass) and only then make it the active plugin of
    /// the org (its tenants' default) or of one tenant, in one transaction. A component file
    /// needs --cases (or --no-cases, which the history records); installing the component
    /// already in force at that level changes nothing.
    Install {
        /// The component (.wasm), or `builtin:exclusion|mapping|matching`.
        file: String,
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`; without --tenant
        /// the plugin becomes the default of all its tenants.
        #[arg(long)]
        org: String,
        /// Install for this tenant only (the tenant's name within the org).
        #[arg(long)]
        tenant: Option<String>,
        /// exclusion, mapping or matching.
        #[arg(long)]
        slot: Kind,
        /// Cases that must pass before activation (a builtin's own cases by default). Required
        /// for a component file unless --no-cases is given.
        #[arg(long, conflicts_with = "no_cases")]
        cases: Option<PathBuf>,
        /// Install a component file without running any cases; `plugin history` shows the
        /// install as untested.
        #[arg(long)]
        no_cases: bool,
    },
    /// Remove the plugin installed for a slot at one level: with --tenant the tenant returns
    /// to the org's default, without it the org's default returns to the built-in plugin.
    /// Running services pick the change up like an install.
    Uninstall {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`.
        #[arg(long)]
        org: String,
        /// Uninstall this tenant's own plugin (the tenant then uses the org's default).
        #[arg(long)]
        tenant: Option<String>,
        /// The plugin slot: exclusion, mapping or matching.
        #[arg(long)]
        slot: Kind,
    },
    /// Return a slot to the version active before the current one.
    Rollback {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`; without --tenant,
        /// the org's default is rolled back.
        #[arg(long)]
        org: String,
        /// Roll back this tenant's plugin instead of the org's default.
        #[arg(long)]
        tenant: Option<String>,
        /// The plugin slot: exclusion, mapping or matching.
        #[arg(long)]
        slot: Kind,
    },
    /// What is in force in an org for every slot: the org's default and each tenant's plugin,
    /// saying whether it is the tenant's own, inherited from the org or the built-in one.
    List {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`.
        #[arg(long)]
        org: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A slot's installs and rollbacks, oldest first.
    History {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`; without --tenant,
        /// the org's default's history.
        #[arg(long)]
        org: String,
        /// This tenant's history instead of the org default's.
        #[arg(long)]
        tenant: Option<String>,
        /// The plugin slot: exclusion, mapping or matching.
        #[arg(long)]
        slot: Kind,
    },
    /// Run a candidate beside the plugin in force on live traffic: it decides nothing, its
    /// decisions are compared with the live ones, and `plugin shadow diff` lists the records on
    /// which they disagree. Validated as an install is (--cases, or --no-cases). One shadow per
    /// slot and level; a new one replaces it. `shadow diff` and `shadow stop` read and drop it.
    Shadow(crate::plugin_shadow::ShadowArgs),
    /// Make the shadow of a slot the version in force, validated exactly as an install is (it
    /// loads, exports the slot's world, describe() answers, the cases it was set with pass);
    /// the history records it as a promotion. Running services swap to it from the next page.
    Promote {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`.
        #[arg(long)]
        org: String,
        /// Promote this tenant's shadow instead of the org's.
        #[arg(long)]
        tenant: Option<String>,
        /// exclusion or mapping.
        #[arg(long)]
        slot: Kind,
    },
    /// Run a candidate over stored emails beside the plugins in force, without a live
    /// service, and print the records on which they disagree. The records are rebuilt from
    /// the store, which keeps no bodies or headers, nor the mail the exclusion dropped.
    Replay {
        /// The candidate component (.wasm), or `builtin:exclusion|mapping`.
        file: String,
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`; without
        /// --tenant, every tenant using the org's default in the slot.
        #[arg(long)]
        org: String,
        /// Replay this tenant's mail and events only.
        #[arg(long)]
        tenant: Option<String>,
        /// exclusion or mapping.
        #[arg(long)]
        slot: Kind,
        /// How far back, by an email's received time and an event's start: 30d, 12h, 45m.
        #[arg(long, default_value = "30d")]
        since: String,
        /// At most this many stored emails, and this many events, per tenant (the oldest
        /// first).
        #[arg(long, default_value_t = 10_000)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure the default plugins: cold and warm load, fresh instance, per-record cost in
    /// batches of 100; prints JSON (the figures of BENCHMARKS.md).
    Bench {
        /// Batches per plugin.
        #[arg(long, default_value_t = 2000)]
        batches: usize,
        /// Artifact cache used for the warm load (emptied first).
        #[arg(long, default_value = "bench-out/plugin-cache")]
        cache_dir: PathBuf,
        /// Also measure these components, each as KIND=FILE (e.g. exclusion=my.wasm).
        #[arg(long = "also", value_name = "KIND=FILE")]
        also: Vec<String>,
    },
}

/// Runs a plugin command. Loading and calling plugins is synchronous CPU work, so it runs on a
/// blocking thread; the registry commands talk to the database.
pub async fn run(cmd: PluginCommand, config: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Install {
            file,
            org,
            tenant,
            slot,
            cases,
            no_cases,
        } => {
            let cases = match (cases, no_cases) {
                (Some(path), _) => CasesChoice::File(path),
                (None, true) => CasesChoice::Skip,
                (None, false) => CasesChoice::Default,
            };
            install(config, &file, &org, tenant.as_deref(), slot, cases).await
        }
        PluginCommand::Uninstall { org, tenant, slot } => {
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            let removed = store
                .uninstall_plugin(scope, slot.world())
                .await
                .with_context(|| {
                    format!(
                        "cannot uninstall the {slot} plugin of {}",
                        place(&org, tenant.as_deref())
                    )
                })?;
            let now = match tenant {
                Some(_) => match store
                    .active_plugin(scope.org_id, scope.tenant_id.unwrap_or(0), slot.world())
                    .await?
                {
                    Some(p) => format!("the org default, {} {}", p.name, p.version),
                    None => builtin_label(slot),
                },
                None => builtin_label(slot),
            };
            println!(
                "uninstalled {} {} (sha256 {}) from the {slot} slot of {}; it now runs {now}",
                removed.name,
                removed.version,
                short(&removed.digest),
                place(&org, tenant.as_deref()),
            );
            Ok(())
        }
        PluginCommand::Rollback { org, tenant, slot } => {
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            let done =
                m365sync::admin::plugins::rollback(&store, &org, tenant.as_deref(), scope, slot)
                    .await?;
            println!("{}", done.summary);
            Ok(())
        }
        PluginCommand::List { org, json } => {
            let (store, scope) = scope(config, &org, None).await?;
            let rows = m365sync::admin::plugins::in_force(&store, &org, scope.org_id).await?;
            let engine = PluginEngine::new(ServiceConfig::load(config)?.engine_config())?;
            // Each component once, however many levels run it.
            let mut known = std::collections::HashMap::new();
            let mut rows_out = Vec::new();
            for row in rows {
                let key = (row.slot.clone(), row.digest.clone());
                let speaks = match known.get(&key) {
                    Some(s) => Speaks::clone(s),
                    None => {
                        let s = speaks(&store, &engine, &row.slot, &row.digest).await?;
                        known.insert(key, s.clone());
                        s
                    }
                };
                rows_out.push(ListRow { row, speaks });
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows_out)?);
            } else {
                print!("{}", list_table(&rows_out));
            }
            Ok(())
        }
        PluginCommand::History { org, tenant, slot } => {
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            for h in store.plugin_history(scope, slot.world()).await? {
                let at = chrono::DateTime::from_timestamp_millis(h.at_ms).unwrap_or_default();
                let checked = if h.cases.is_empty() {
                    String::new()
                } else {
                    format!("; {}", h.cases)
                };
                println!(
                    "{}  {:<9} {} {} (sha256 {}){checked}",
                    at.format("%Y-%m-%d %H:%M:%S"),
                    h.action,
                    h.name,
                    h.version,
                    short(&h.digest)
                );
            }
            Ok(())
        }
        PluginCommand::Shadow(args) => crate::plugin_shadow::shadow(config, args).await,
        PluginCommand::Promote { org, tenant, slot } => {
            crate::plugin_shadow::promote(config, &org, tenant.as_deref(), slot).await
        }
        PluginCommand::Replay {
            file,
            org,
            tenant,
            slot,
            since,
            limit,
            json,
        } => {
            let replay = crate::plugin_shadow::Replay {
                file,
                org,
                tenant,
                slot,
                since,
                limit,
                json,
            };
            crate::plugin_shadow::replay(config, replay).await
        }
        other => tokio::task::spawn_blocking(move || run_local(other))
            .await
            .context("the plugin command panicked")?,
    }
}

pub(crate) use m365sync::admin::plugins::{place, short};

/// The contract a component speaks and, for 0.2, the parts of a record it reads
/// (`describe().fields`); `plugin list` shows both.
#[derive(Clone, serde::Serialize)]
struct Speaks {
    /// `0.1` or `0.2`.
    contract: String,
    /// The parts it declared (0.2); none for 0.1, whose plugins receive whole records.
    reads: Option<Vec<&'static str>>,
}

impl Speaks {
    /// What the READS column says.
    fn reads_text(&self) -> String {
        match &self.reads {
            None => "all (whole records)".into(),
            Some(r) if r.is_empty() => "ids and flags only".into(),
            Some(r) => r.join(","),
        }
    }
}

/// A row of `plugin list`: the version in force, and the contract it speaks.
#[derive(serde::Serialize)]
struct ListRow {
    #[serde(flatten)]
    row: m365sync::admin::plugins::InForce,
    #[serde(flatten)]
    speaks: Speaks,
}

/// The contract of the component `digest` in `slot` and what it reads, from its `describe()`:
/// a built-in's bytes are in the binary, an installed one's in the store. Loading uses the
/// service's artifact cache, so it compiles only a component no service has run yet.
async fn speaks(
    store: &Store,
    engine: &PluginEngine,
    slot: &str,
    digest: &str,
) -> anyhow::Result<Speaks> {
    let kind: Kind = slot.parse().map_err(anyhow::Error::msg)?;
    let builtin = builtin::builtin(kind);
    let bytes = if m365sync_plugin::cache::digest(builtin.wasm) == digest {
        builtin.wasm.to_vec()
    } else {
        store.plugin_wasm(digest).await?
    };
    let plugin = Plugin::load(engine, kind, &bytes).map_err(|e| {
        load_error(
            e,
            format!("cannot load the {slot} plugin {}", short(digest)),
        )
    })?;
    Ok(Speaks {
        contract: plugin.contract().to_string(),
        reads: (plugin.contract() != Contract::V0_1)
            .then(|| m365sync_plugin::lean::field_names(plugin.fields())),
    })
}

/// `plugin list`'s table, its columns as wide as their widest cell.
fn list_table(rows: &[ListRow]) -> String {
    let reads: Vec<String> = rows.iter().map(|r| r.speaks.reads_text()).collect();
    let w = reads.iter().map(String::len).chain([5]).max().unwrap_or(5);
    let mut out = format!(
        "{:<20} {:<10} {:<24} {:<14} {:<8} {:<w$} {:<12} {:<16} SHADOW\n",
        "LEVEL", "SLOT", "NAME", "VERSION", "CONTRACT", "READS", "SOURCE", "SHA256"
    );
    for (ListRow { row: r, speaks }, reads) in rows.iter().zip(&reads) {
        let shadow = match &r.shadow {
            Some(s) => format!(
                "{} {} ({}): {} agreed, {} disagreed, {} failed",
                s.name, s.version, s.source, s.agreed, s.disagreed, s.failed
            ),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{:<20} {:<10} {:<24} {:<14} {:<8} {:<w$} {:<12} {:<16} {shadow}\n",
            r.level,
            r.slot,
            r.name,
            r.version,
            speaks.contract,
            reads,
            r.source,
            short(&r.digest)
        ));
    }
    out
}

fn builtin_label(slot: Kind) -> String {
    format!("the built-in {}", builtin::builtin(slot).name)
}

/// Which cases an install runs.
pub(crate) enum CasesChoice {
    /// `--cases FILE`.
    File(PathBuf),
    /// Neither flag: a builtin's own cases; a component file is refused.
    Default,
    /// `--no-cases`: none, and the history says so.
    Skip,
}

pub(crate) async fn scope(
    config: Option<&Path>,
    org: &str,
    tenant: Option<&str>,
) -> anyhow::Result<(Store, PluginScope)> {
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    let org_id = store.org_id(org).await?;
    let tenant_id = match tenant {
        Some(t) => Some(store.tenant(org, t).await?.id),
        None => None,
    };
    Ok((store, PluginScope { org_id, tenant_id }))
}

async fn install(
    config: Option<&Path>,
    file: &str,
    org: &str,
    tenant: Option<&str>,
    slot: Kind,
    cases: CasesChoice,
) -> anyhow::Result<()> {
    let v = validate(file, org, tenant, slot, cases).await?;
    let (store, scope) = scope(config, org, tenant).await?;
    let checked = Checked {
        bytes: v.bytes,
        digest: v.digest,
        name: v.name,
        version: v.version,
        checked_against: v.checked_against,
        passed: None,
        cases_text: v.cases_text,
        report: None,
    };
    let done = m365sync::admin::install::install(&store, org, tenant, scope, slot, checked).await?;
    println!("{}", done.summary);
    Ok(())
}

/// A component that passed what an install checks, ready to be written.
pub(crate) struct Validated {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// `sha256:...` of the bytes.
    pub digest: String,
    /// What `describe()` answered.
    pub name: String,
    /// What `describe()` answered.
    pub version: String,
    /// What the history says it was checked against.
    pub checked_against: String,
    /// The case file run, empty for none (kept with a shadow for its promotion).
    pub cases_text: String,
}

/// What an install checks before any write, for `install` and `shadow`: the cases choice
/// (a firm's component needs --cases or --no-cases), then [`check`].
pub(crate) async fn validate(
    file: &str,
    org: &str,
    tenant: Option<&str>,
    slot: Kind,
    cases: CasesChoice,
) -> anyhow::Result<Validated> {
    let (bytes, builtin_cases) = read_component(file)?;
    // (the case text, what the history says it was checked against)
    let (cases_text, mut checked_against) = match (&cases, builtin_cases) {
        (CasesChoice::File(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the case file {}", path.display()))?;
            let what = format!(
                "cases {} ({})",
                path.display(),
                &m365sync_plugin::cache::digest(text.as_bytes())[..16]
            );
            (Some(text), what)
        }
        (CasesChoice::Default, Some(text)) => (
            Some(text.to_string()),
            "the built-in plugin's own cases".to_string(),
        ),
        (CasesChoice::Default, None) => bail!(
            "{file} was not installed: a firm's component needs the cases it must pass before it \
             runs on {}'s mail. Give --cases cases.toml (the project's own), or --no-cases to \
             install it untested (the history records that)",
            place(org, tenant)
        ),
        (CasesChoice::Skip, _) => (
            None,
            "installed with --no-cases: no cases were run".to_string(),
        ),
    };
    let (digest, name, version, passed) =
        check(file.to_string(), slot, bytes.clone(), cases_text.clone()).await?;
    if let Some(n) = passed {
        checked_against = format!("{n} passed: {checked_against}");
    }
    Ok(Validated {
        bytes,
        digest,
        name,
        version,
        checked_against,
        cases_text: cases_text.unwrap_or_default(),
    })
}

/// Validation ([`m365sync::admin::install::check`], the API's too): it compiles, exports
/// `slot`'s world at a compatible version, `describe()` answers, and `cases_text` (if any)
/// passes; a failed case report is printed before the error. (digest, name, version, cases
/// passed).
pub(crate) async fn check(
    file_name: String,
    slot: Kind,
    checked: Vec<u8>,
    cases_text: Option<String>,
) -> anyhow::Result<(String, String, String, Option<usize>)> {
    let cases = Cases {
        what: String::new(),
        text: cases_text,
    };
    match m365sync::admin::install::check(&file_name, slot, checked, cases).await {
        Ok(c) => Ok((c.digest, c.name, c.version, c.passed)),
        Err(e) => {
            if let InstallError::CasesDiffer { report, .. } = &e {
                println!("{report}");
            }
            Err(e.into())
        }
    }
}

pub(crate) fn read_component(file: &str) -> anyhow::Result<(Vec<u8>, Option<&'static str>)> {
    Ok(match file.strip_prefix("builtin:") {
        Some(kind) => {
            let kind: Kind = kind.parse().map_err(anyhow::Error::msg)?;
            let b = builtin::builtin(kind);
            (b.wasm.to_vec(), Some(b.cases))
        }
        None => (
            std::fs::read(file).with_context(|| format!("cannot read the plugin {file}"))?,
            None,
        ),
    })
}

fn run_local(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Test { file, cases } => test(&file, cases),
        PluginCommand::New {
            name,
            lang,
            kind,
            dir,
        } => new(name, lang, kind, dir),
        PluginCommand::Bench {
            batches,
            cache_dir,
            also,
        } => {
            let mut extra = Vec::new();
            for spec in also {
                let (kind, file) = spec
                    .split_once('=')
                    .context("--also takes KIND=FILE, e.g. exclusion=my.wasm")?;
                let kind: Kind = kind.parse().map_err(anyhow::Error::msg)?;
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read the plugin {file}"))?;
                extra.push((file.to_string(), kind, bytes));
            }
            let figures = m365sync_bench::plugin_calls::run(&cache_dir, batches.max(10), &extra)?;
            println!("{}", serde_json::to_string_pretty(&figures)?);
            Ok(())
        }
        _ => unreachable!("registry and shadow commands are handled in run"),
    }
}

fn new(name: String, lang: Lang, kind: Kind, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
    let project = scaffold::create(&scaffold::Options {
        name: name.clone(),
        lang,
        kind,
        dir,
    })?;
    let dir = project.dir.display();
    println!("created the {lang} {kind} plugin {name} in {dir}:");
    for f in &project.files {
        println!("  {}", f.display());
    }
    let wasm = project.wasm.display();
    println!("\nbuild and test it:\n  cd {dir}");
    if lang == Lang::Python {
        println!("  python3 -m venv .venv && .venv/bin/pip install -r requirements.txt");
        println!(
            "  .venv/{}",
            project
                .build
                .replacen("componentize-py", "bin/componentize-py", 1)
        );
    } else if lang == Lang::Js {
        println!("  npm ci          # the build tools, exactly as package-lock.json pins them");
        println!("  npm run build   # componentize-js, see package.json");
    } else {
        println!("  {}", project.build);
    }
    println!("  m365sync plugin test {wasm} --cases cases.toml");
    Ok(())
}

/// A load error with a hint for the usual causes: a componentize-py build without
/// `--stub-wasi` imports filesystem and sockets, and a componentize-js build without
/// `--disable stdio http` imports filesystem and http; the sandbox refuses both.
fn load_error(err: PluginError, what: String) -> anyhow::Error {
    let hint = m365sync::admin::install::build_hint(&err);
    anyhow::anyhow!("{:#}{hint}", anyhow::Error::new(err).context(what))
}

fn test(file: &str, cases: Option<PathBuf>) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineConfig::default())?;
    let (bytes, builtin_cases) = read_component(file)?;
    let text = match (&cases, builtin_cases) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the case file {}", path.display()))?,
        (None, Some(text)) => text.to_string(),
        (None, None) => bail!("say which cases to run: --cases cases.toml"),
    };
    let case_file = CaseFile::parse(&text).context("the case file is not valid")?;
    let plugin = Plugin::load(&engine, case_file.kind, &bytes).map_err(|e| {
        load_error(
            e,
            format!("cannot load {file} as a {} plugin", case_file.kind),
        )
    })?;
    let d = plugin.descriptor();
    println!(
        "{} {} ({} plugin, contract {}, sha256 {})",
        d.name,
        d.version,
        case_file.kind,
        plugin.contract(),
        &plugin.digest()[..16]
    );
    // A 0.2 plugin sees only the parts it declared: say which, since a case that fails because
    // a field arrived empty is most often a part missing from `describe().fields`.
    if plugin.contract() != Contract::V0_1 {
        let reads = m365sync_plugin::lean::field_names(plugin.fields());
        println!(
            "reads: {}",
            if reads.is_empty() {
                "only ids and flags (no fields declared)".to_string()
            } else {
                reads.join(", ")
            }
        );
    }
    let report = case_file.run(&plugin)?;
    println!("{report}");
    if !report.ok() {
        bail!(
            "{} of {} cases differ",
            report.failures.len(),
            report.failures.len() + report.passed
        );
    }
    Ok(())
}
