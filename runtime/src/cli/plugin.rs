//! `m365sync plugin test|bench`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use m365sync::plugin::cases::CaseFile;
use m365sync::plugin::engine::{EngineConfig, PluginEngine};
use m365sync::plugin::{builtin, Kind, Plugin};

#[derive(Subcommand)]
pub enum PluginCommand {
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

pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Test { file, cases } => test(&file, cases),
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
            let figures = m365sync::plugin::bench::run(&cache_dir, batches.max(10), &extra)?;
            println!("{}", serde_json::to_string_pretty(&figures)?);
            Ok(())
        }
    }
}

fn test(file: &str, cases: Option<PathBuf>) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineConfig::default())?;
    let (bytes, builtin_cases) = match file.strip_prefix("builtin:") {
        Some(kind) => {
            let kind: Kind = kind.parse().map_err(anyhow::Error::msg)?;
            let b = builtin::builtin(kind);
            (b.wasm.to_vec(), Some(b.cases))
        }
        None => (
            std::fs::read(file).with_context(|| format!("cannot read the plugin {file}"))?,
            None,
        ),
    };
    let text = match (&cases, builtin_cases) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the case file {}", path.display()))?,
        (None, Some(text)) => text.to_string(),
        (None, None) => bail!("say which cases to run: --cases cases.toml"),
    };
    let case_file = CaseFile::parse(&text).context("the case file is not valid")?;
    let plugin = Plugin::load(&engine, case_file.kind, &bytes)
        .with_context(|| format!("cannot load {file} as a {} plugin", case_file.kind))?;
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
