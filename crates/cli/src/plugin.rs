//! `m365sync plugin new|test|bench|install|rollback|list|history`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use m365sync::config::ServiceConfig;
use m365sync_plugin::cases::CaseFile;
use m365sync_plugin::engine::{EngineConfig, PluginEngine};
use m365sync_plugin::scaffold::{self, Lang};
use m365sync_plugin::{builtin, Kind, Plugin, PluginError};
use m365sync_store::plugins::{NewPlugin, PluginScope};
use m365sync_store::Store;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project (Rust or Python) that builds and passes its own cases: a
    /// minimal working implementation, the contract (wit/), cases.toml and a README with the
    /// build and test commands. Refuses an existing directory.
    New {
        /// The plugin's name (lower-case letters, digits, '-'): its crate and describe() name.
        name: String,
        /// rust (cargo, wit-bindgen, wasm32-wasip2) or python (componentize-py).
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
    /// the org (its tenants' default) or of one tenant, in one transaction.
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
        /// Cases that must pass before activation (a builtin's own cases by default).
        #[arg(long)]
        cases: Option<PathBuf>,
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
    /// The active plugins of an org: its defaults and the tenants' overrides.
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
        } => install(config, &file, &org, tenant.as_deref(), slot, cases).await,
        PluginCommand::Rollback { org, tenant, slot } => {
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            let now = store.rollback_plugin(scope, slot.world()).await?;
            println!(
                "rolled back the {slot} plugin of {}: now {} {} (sha256 {})",
                place(&org, tenant.as_deref()),
                now.name,
                now.version,
                &now.digest[..16]
            );
            Ok(())
        }
        PluginCommand::List { org, json } => {
            let (store, scope) = scope(config, &org, None).await?;
            let active = store.active_plugins(scope.org_id).await?;
            let names: std::collections::HashMap<i64, String> = store
                .tenants(Some(&org))
                .await?
                .into_iter()
                .map(|t| (t.id, t.name))
                .collect();
            if json {
                let rows: Vec<_> = active.iter().map(|(t, p)| serde_json::json!({"tenant": t.and_then(|id| names.get(&id)), "plugin": p})).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<16} {:<10} {:<24} {:<10} SHA256",
                    "LEVEL", "SLOT", "NAME", "VERSION"
                );
                for (t, p) in active {
                    let level = t
                        .and_then(|id| names.get(&id).cloned())
                        .map(|n| format!("tenant {n}"))
                        .unwrap_or_else(|| "org default".into());
                    println!(
                        "{:<16} {:<10} {:<24} {:<10} {}",
                        level,
                        p.slot,
                        p.name,
                        p.version,
                        &p.digest[..16]
                    );
                }
            }
            Ok(())
        }
        PluginCommand::History { org, tenant, slot } => {
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            for h in store.plugin_history(scope, slot.world()).await? {
                let at = chrono::DateTime::from_timestamp_millis(h.at_ms).unwrap_or_default();
                println!(
                    "{}  {:<8} {} {} (sha256 {})",
                    at.format("%Y-%m-%d %H:%M:%S"),
                    h.action,
                    h.name,
                    h.version,
                    &h.digest[..16]
                );
            }
            Ok(())
        }
        other => tokio::task::spawn_blocking(move || run_local(other))
            .await
            .context("the plugin command panicked")?,
    }
}

fn place(org: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("tenant {t} of org {org}"),
        None => format!("org {org}"),
    }
}

async fn scope(
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
    cases: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (store, scope) = scope(config, org, tenant).await?;
    let (bytes, builtin_cases) = read_component(file)?;
    let cases_text = match (&cases, builtin_cases) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the case file {}", path.display()))?,
        ),
        (None, Some(text)) => Some(text.to_string()),
        (None, None) => None,
    };
    let file_name = file.to_string();
    let checked = bytes.clone();
    // Validation: compile, world and version, describe(), and the cases, before any write.
    let (digest, name, version) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(String, String, String)> {
            let engine = PluginEngine::new(EngineConfig::default())?;
            let plugin = Plugin::load(&engine, slot, &checked)
                .map_err(|e| load_error(e, format!("{file_name} is not a usable {slot} plugin")))?;
            if let Some(text) = cases_text {
                let case_file = CaseFile::parse(&text).context("the case file is not valid")?;
                if case_file.kind != slot {
                    bail!("the cases are for the {} slot, not {slot}", case_file.kind);
                }
                let report = case_file.run(&plugin)?;
                if !report.ok() {
                    println!("{report}");
                    bail!(
                        "{file_name}: {} of {} cases differ; nothing was installed",
                        report.failures.len(),
                        report.failures.len() + report.passed
                    );
                }
            }
            let d = plugin.descriptor();
            Ok((
                plugin.digest().to_string(),
                d.name.clone(),
                d.version.clone(),
            ))
        })
        .await
        .context("plugin validation panicked")??;
    store
        .install_plugin(
            scope,
            &NewPlugin {
                slot: slot.world(),
                digest: &digest,
                name: &name,
                version: &version,
                wasm: &bytes,
            },
        )
        .await?;
    println!(
        "installed {name} {version} (sha256 {}) as the {slot} plugin of {}",
        &digest[..16],
        place(org, tenant)
    );
    Ok(())
}

fn read_component(file: &str) -> anyhow::Result<(Vec<u8>, Option<&'static str>)> {
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
        _ => unreachable!("registry commands are handled in run"),
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
    } else {
        println!("  {}", project.build);
    }
    println!("  m365sync plugin test {wasm} --cases cases.toml");
    Ok(())
}

/// A load error with a hint for the usual cause: a componentize-py build without
/// `--stub-wasi` imports filesystem and sockets, which the sandbox refuses.
fn load_error(err: PluginError, what: String) -> anyhow::Error {
    let python = matches!(&err, PluginError::ForbiddenImports(names)
        if names.iter().any(|n| n.starts_with("wasi:filesystem/"))
            && names.iter().any(|n| n.starts_with("wasi:sockets/")));
    let err = anyhow::Error::new(err).context(what);
    if python {
        anyhow::anyhow!(
            "{err:#}\nhint: built with componentize-py? `componentize --stub-wasi` builds a \
             component that imports no files or sockets"
        )
    } else {
        err
    }
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
        "{} {} ({} plugin, sha256 {})",
        d.name,
        d.version,
        case_file.kind,
        &plugin.digest()[..16]
    );
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
