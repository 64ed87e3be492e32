//! `m365sync plugin shadow|shadow diff|shadow stop|promote|replay`: trying a candidate plugin
//! on live traffic (or on stored mail) before it decides anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use m365sync::config::ServiceConfig;
use m365sync::sync::replay::{self, ReplayReport};
use m365sync_plugin::{builtin, Kind};
use m365sync_store::plugins::{Installed, NewPlugin, PluginScope};
use m365sync_store::shadows::{Shadow, ShadowDiff};
use m365sync_store::Store;

use crate::plugin::{check, place, scope, short, validate, CasesChoice};

/// `plugin shadow FILE ...`, or one of its subcommands.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ShadowArgs {
    #[command(subcommand)]
    action: Option<ShadowAction>,
    /// The candidate component (.wasm), or `builtin:exclusion|mapping`.
    #[arg(required = true)]
    file: Option<String>,
    /// The org (the firm), as declared with `m365sync apply` or `tenant add`; without
    /// --tenant, the shadow runs for every tenant using the org's default in the slot.
    #[arg(long, required = true)]
    org: Option<String>,
    /// Run the shadow for this tenant only, beside its own plugin (or the org's default).
    #[arg(long)]
    tenant: Option<String>,
    /// exclusion or mapping.
    #[arg(long, required = true)]
    slot: Option<Kind>,
    /// Cases the candidate must pass before it runs (and again when it is promoted).
    /// Required for a component file unless --no-cases is given.
    #[arg(long, conflicts_with = "no_cases")]
    cases: Option<PathBuf>,
    /// Run a component file without any cases; its promotion's history line says so.
    #[arg(long)]
    no_cases: bool,
}

#[derive(Subcommand)]
enum ShadowAction {
    /// The records on which the shadow and the plugin in force disagree (the record, both
    /// verdicts or both mappings, the rule each named) and the records the shadow failed on,
    /// with the counts of agreed, disagreed and failed records.
    Diff {
        /// The org (the firm).
        #[arg(long)]
        org: String,
        /// The tenant's shadow instead of the org's.
        #[arg(long)]
        tenant: Option<String>,
        /// exclusion or mapping.
        #[arg(long)]
        slot: Kind,
        /// At most this many records listed (the counts cover all).
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drop the shadow and its diff; the plugin in force is untouched.
    Stop {
        /// The org (the firm).
        #[arg(long)]
        org: String,
        /// The tenant's shadow instead of the org's.
        #[arg(long)]
        tenant: Option<String>,
        /// exclusion or mapping.
        #[arg(long)]
        slot: Kind,
    },
}

/// `plugin replay` options.
pub struct Replay {
    /// The candidate.
    pub file: String,
    /// The org.
    pub org: String,
    /// One tenant, or every tenant using the org's default.
    pub tenant: Option<String>,
    /// The slot.
    pub slot: Kind,
    /// How far back (`30d`).
    pub since: String,
    /// Stored emails, and events, per tenant at most.
    pub limit: i64,
    /// JSON output.
    pub json: bool,
}

fn shadow_slot(slot: Kind) -> anyhow::Result<()> {
    if slot == Kind::Matching {
        bail!("shadow runs and replays are for the exclusion and mapping slots, not matching");
    }
    Ok(())
}

/// The name, version and digest of what runs in `scope`'s slot: the plugin in force there,
/// inherited, or the built-in one.
async fn in_force(
    store: &Store,
    scope: PluginScope,
    slot: Kind,
) -> anyhow::Result<(String, String, String)> {
    let active = match scope.tenant_id {
        Some(t) => store.active_plugin(scope.org_id, t, slot.world()).await?,
        None => store
            .active_plugins(scope.org_id)
            .await?
            .into_iter()
            .find(|(t, p)| t.is_none() && p.slot == slot.world())
            .map(|(_, p)| p),
    };
    Ok(match active {
        Some(p) => (p.name, p.version, p.digest),
        None => {
            let b = builtin::builtin(slot);
            (
                b.name.to_string(),
                "built-in".to_string(),
                m365sync_plugin::cache::digest(b.wasm),
            )
        }
    })
}

/// `plugin shadow ...`.
pub async fn shadow(config: Option<&Path>, args: ShadowArgs) -> anyhow::Result<()> {
    match args.action {
        Some(ShadowAction::Diff {
            org,
            tenant,
            slot,
            limit,
            json,
        }) => diff(config, &org, tenant.as_deref(), slot, limit, json).await,
        Some(ShadowAction::Stop { org, tenant, slot }) => {
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            let s = store
                .stop_shadow(scope, slot.world())
                .await
                .with_context(|| {
                    format!(
                        "cannot stop the {slot} shadow of {}",
                        place(&org, tenant.as_deref())
                    )
                })?;
            println!(
                "stopped the {slot} shadow {} {} (sha256 {}) of {} after {} agreed, {} disagreed, \
                 {} failed; the plugin in force is unchanged",
                s.name,
                s.version,
                short(&s.digest),
                place(&org, tenant.as_deref()),
                s.agreed,
                s.disagreed,
                s.failed
            );
            Ok(())
        }
        None => {
            let (Some(file), Some(org), Some(slot)) = (args.file, args.org, args.slot) else {
                bail!("plugin shadow needs FILE, --org and --slot");
            };
            shadow_slot(slot)?;
            let tenant = args.tenant;
            let cases = match (args.cases, args.no_cases) {
                (Some(path), _) => CasesChoice::File(path),
                (None, true) => CasesChoice::Skip,
                (None, false) => CasesChoice::Default,
            };
            let (store, scope) = scope(config, &org, tenant.as_deref()).await?;
            let v = validate(&file, &org, tenant.as_deref(), slot, cases).await?;
            let (live_name, live_version, live_digest) = in_force(&store, scope, slot).await?;
            if live_digest == v.digest {
                bail!(
                    "{file} ({} {}) is already the {slot} plugin in force for {}: a shadow of it \
                     would agree on every record; nothing was set",
                    v.name,
                    v.version,
                    place(&org, tenant.as_deref())
                );
            }
            store
                .start_shadow(
                    scope,
                    &NewPlugin {
                        slot: slot.world(),
                        digest: &v.digest,
                        name: &v.name,
                        version: &v.version,
                        wasm: &v.bytes,
                    },
                    &v.checked_against,
                    &v.cases_text,
                )
                .await?;
            println!(
                "{} {} (sha256 {}) now runs as the {slot} shadow of {} beside {live_name} \
                 {live_version}; it decides nothing. Compare with `m365sync plugin shadow diff \
                 --org {org}{} --slot {slot}`",
                v.name,
                v.version,
                short(&v.digest),
                place(&org, tenant.as_deref()),
                tenant
                    .as_deref()
                    .map(|t| format!(" --tenant {t}"))
                    .unwrap_or_default(),
            );
            Ok(())
        }
    }
}

/// The counts line of a diff.
fn counts(agreed: i64, disagreed: i64, failed: i64) -> String {
    format!("agreed {agreed}, disagreed {disagreed}, shadow failed {failed}")
}

/// One diff line: the record, both answers, the rule each named.
fn diff_line(tenant: &str, d: &ShadowDiff) -> String {
    let answer = |v: &str, rule: &str| {
        if rule.is_empty() {
            v.to_string()
        } else {
            format!("{v} ({rule})")
        }
    };
    let shadow = if d.outcome == "failed" {
        format!("FAILED: {}", d.shadow)
    } else {
        answer(&d.shadow, &d.shadow_rule)
    };
    format!(
        "tenant {tenant}, {} {}: {:?}\n    live:   {}\n    shadow: {shadow}",
        d.record_kind,
        d.graph_id,
        d.subject,
        answer(&d.live, &d.live_rule)
    )
}

async fn diff(
    config: Option<&Path>,
    org: &str,
    tenant: Option<&str>,
    slot: Kind,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    shadow_slot(slot)?;
    let (store, scope) = scope(config, org, tenant).await?;
    let Some(shadow) = store.shadow(scope, slot.world()).await? else {
        bail!(
            "no {slot} shadow runs for {}: start one with `m365sync plugin shadow FILE --org {org} \
             --slot {slot} --cases cases.toml`",
            place(org, tenant)
        );
    };
    let rows = store.shadow_diffs(scope, slot.world(), limit).await?;
    let names: HashMap<i64, String> = store
        .tenants(Some(org))
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let (live_name, live_version, live_digest) = in_force(&store, scope, slot).await?;
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["tenant"] = names.get(&r.tenant_id).cloned().unwrap_or_default().into();
                v
            })
            .collect();
        let out = serde_json::json!({
            "shadow": shadow_json(&shadow),
            "in_force": {"name": live_name, "version": live_version, "digest": live_digest},
            "agreed": shadow.agreed,
            "disagreed": shadow.disagreed,
            "failed": shadow.failed,
            "records": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let since = chrono::DateTime::from_timestamp_millis(shadow.started_ms).unwrap_or_default();
    println!(
        "{slot} shadow of {}: {} {} (sha256 {}) beside {live_name} {live_version} (sha256 {}), \
         since {}",
        place(org, tenant),
        shadow.name,
        shadow.version,
        short(&shadow.digest),
        short(&live_digest),
        since.format("%Y-%m-%d %H:%M:%S")
    );
    println!("{}", counts(shadow.agreed, shadow.disagreed, shadow.failed));
    for r in &rows {
        let name = names.get(&r.tenant_id).map(String::as_str).unwrap_or("?");
        println!("{}", diff_line(name, &r.diff));
    }
    let listed = (shadow.disagreed + shadow.failed).max(rows.len() as i64);
    if (rows.len() as i64) < listed {
        println!(
            "({} of {listed} records listed; --limit shows more)",
            rows.len()
        );
    }
    Ok(())
}

fn shadow_json(s: &Shadow) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "version": s.version,
        "digest": s.digest,
        "tenant_level": s.tenant_scope != 0,
        "started_ms": s.started_ms,
        "cases": s.cases,
    })
}

/// `plugin promote`: the shadow re-validated as an install (loads, world, describe(), the
/// cases it was set with), then activated with a history line, in one transaction.
pub async fn promote(
    config: Option<&Path>,
    org: &str,
    tenant: Option<&str>,
    slot: Kind,
) -> anyhow::Result<()> {
    shadow_slot(slot)?;
    let (store, scope) = scope(config, org, tenant).await?;
    let Some(shadow) = store.shadow(scope, slot.world()).await? else {
        bail!(
            "no {slot} shadow runs for {}: nothing to promote (`m365sync plugin shadow FILE` \
             starts one)",
            place(org, tenant)
        );
    };
    let bytes = store.plugin_wasm(&shadow.digest).await?;
    let cases_text = (!shadow.cases_text.is_empty()).then(|| shadow.cases_text.clone());
    let what = format!("the {slot} shadow {} {}", shadow.name, shadow.version);
    let (digest, name, version, passed) = check(what, slot, bytes, cases_text)
        .await
        .with_context(|| format!("nothing was promoted in {}", place(org, tenant)))?;
    let checked = match passed {
        Some(n) => format!(
            "promoted from shadow ({} agreed, {} disagreed, {} failed); {n} passed: {}",
            shadow.agreed,
            shadow.disagreed,
            shadow.failed,
            shadow
                .cases
                .split_once(": ")
                .map_or(shadow.cases.as_str(), |(_, c)| c)
        ),
        None => format!(
            "promoted from shadow ({} agreed, {} disagreed, {} failed); {}",
            shadow.agreed, shadow.disagreed, shadow.failed, shadow.cases
        ),
    };
    let outcome = store
        .promote_shadow(scope, slot.world(), &digest, &checked)
        .await?;
    match outcome {
        Installed::Activated => println!(
            "promoted {name} {version} (sha256 {}): it is now the {slot} plugin of {}; running \
             services use it from their next page",
            short(&digest),
            place(org, tenant)
        ),
        Installed::AlreadyActive => println!(
            "{name} {version} (sha256 {}) was already the {slot} plugin of {}: the shadow was \
             dropped, nothing else changed",
            short(&digest),
            place(org, tenant)
        ),
    }
    Ok(())
}

/// `plugin replay`.
pub async fn replay(config: Option<&Path>, r: Replay) -> anyhow::Result<()> {
    shadow_slot(r.slot)?;
    let age = crate::ops::parse_age(&r.since)?;
    let cfg = ServiceConfig::load(config)?;
    let store = Store::open(&cfg.database_url, cfg.secret_key()?).await?;
    let env = crate::admin::sync_env(&cfg, store)?;
    let (bytes, _) = crate::plugin::read_component(&r.file)?;
    let engine = env.engine.clone();
    let slot = r.slot;
    let file = r.file.clone();
    let candidate = tokio::task::spawn_blocking(move || engine.load_shared(slot, &bytes))
        .await
        .context("loading the candidate panicked")?
        .with_context(|| format!("{file} is not a usable {slot} plugin"))?;
    let tenants = replay::replay_tenants(&env, &r.org, r.tenant.as_deref(), slot)
        .await
        .with_context(|| format!("cannot replay in {}", place(&r.org, r.tenant.as_deref())))?;
    let since_ms = m365sync_store::now_ms() - age;
    let d = candidate.descriptor();
    let (cname, cversion) = (d.name.clone(), d.version.clone());
    let report = replay::replay(
        &env,
        tenants,
        slot,
        Arc::clone(&candidate),
        since_ms,
        r.limit,
    )
    .await
    .with_context(|| {
        format!(
            "the replay in {} failed",
            place(&r.org, r.tenant.as_deref())
        )
    })?;
    if r.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_replay(&report, &cname, &cversion, slot, &r.since);
    Ok(())
}

fn print_replay(report: &ReplayReport, name: &str, version: &str, slot: Kind, since: &str) {
    println!(
        "replayed {name} {version} as the {slot} plugin over {} stored email(s) and {} \
         event(s) of the last {since} ({}){}",
        report.emails,
        report.events,
        if report.tenants.is_empty() {
            "no tenant uses this level's plugin".to_string()
        } else {
            format!("tenants {}", report.tenants.join(", "))
        },
        if report.unreadable > 0 {
            format!(
                "; {} could not be rebuilt and were skipped",
                report.unreadable
            )
        } else {
            String::new()
        }
    );
    println!(
        "{}{}",
        counts(report.agreed, report.disagreed, report.failed),
        if report.live_failed > 0 {
            format!(
                "; the plugins in force failed on {} (not compared)",
                report.live_failed
            )
        } else {
            String::new()
        }
    );
    for d in &report.diffs {
        println!("{}", diff_line(&d.tenant, &d.diff));
    }
    println!("note: {}", report.missing);
}
