//! The stages a page's records go through between Graph and the store: **exclude** (the
//! tenant's exclusion plugin keeps or drops each record, naming the rule) then **map** (the
//! mapping plugin turns each kept record into the CRM's record), on a blocking thread, and one
//! **fold** of the verdicts into what a page commit stores: the kept records, the exclusions
//! with their rule, and the failures with their stage and error.
//!
//! Mail and calendar use it alike: each implements [`StageRecord`] for its contract type
//! (`Email`, `Event`) and turns the kept records into its own rows. Every decision carries the
//! [`stamp`] of the plugin versions that made it (P5). The plugins are taken from a
//! [`StageSlot`] afresh for every page, so a plugin swapped on a running service decides from
//! the next page on while the page in flight finishes on the version it started with (P3).

use std::sync::{Arc, RwLock};
use std::time::Instant;

use m365sync_plugin::bindings::types::{
    CrmEmail, CrmEvent, Decision as PluginDecision, Email, Event, Verdict,
};
use m365sync_plugin::call::{CallContext, RecordError};
use m365sync_plugin::{builtin, Kind, Plugin};
use m365sync_store::shadows::ShadowPage;
use m365sync_store::sync::{Exclusion, FailedRecord};
use m365sync_store::tenants::Tenant;

use super::env::{SyncEnv, SyncObserver};
use super::error::SyncError;
use super::shadow::{live_verdict, run_shadows, LiveVerdict, ShadowRun};

/// The plugins a tenant's records go through, with what their decisions are stamped with (P5).
pub struct Stages {
    /// The exclusion plugin in force (tenant override, org default or the builtin).
    pub exclusion: Arc<Plugin>,
    /// The mapping plugin in force.
    pub mapping: Arc<Plugin>,
    /// The tenant's view (rules, internal domains, sync users) and the plugins' configuration.
    pub ctx: CallContext,
    /// Keep everything and map natively, skipping both plugins: only the benchmark's
    /// baseline (`m365sync sync bench --variant bypass`) sets it.
    pub bypass: bool,
    /// Candidates running beside the exclusion or mapping plugin, deciding nothing
    /// ([`super::shadow`]); empty when no shadow is set for the tenant.
    pub shadows: Vec<ShadowRun>,
    /// Told how long each plugin call took (the service's metrics), from the run's
    /// [`SyncEnv`].
    pub observer: Arc<dyn SyncObserver>,
}

/// The tenant's current plugins. Replaced whole when an admin swaps a plugin; readers keep the
/// `Arc` they took, so work in flight finishes on the version it started with.
pub struct StageSlot(RwLock<Arc<Stages>>);

impl StageSlot {
    /// A slot holding `stages`.
    pub fn new(stages: Stages) -> StageSlot {
        StageSlot(RwLock::new(Arc::new(stages)))
    }

    /// The plugins to use for the next page.
    pub fn current(&self) -> Arc<Stages> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Installs new plugins for every page that starts from now on.
    pub fn replace(&self, stages: Stages) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(stages);
    }
}

/// `name version sha256:digest`, the stamp of a decision.
pub fn stamp(p: &Plugin) -> String {
    let d = p.descriptor();
    format!("{} {} sha256:{}", d.name, d.version, p.digest())
}

/// The plugin a tenant uses in `kind`'s slot: its own, else its org's default (both from the
/// registry), else the builtin. Compiled on a blocking thread (seconds for a cold, unoptimised
/// build), so the service's heartbeats and API go on meanwhile; the engine's artifact cache
/// makes later loads cheap.
pub async fn load_plugin(
    env: &SyncEnv,
    tenant: &Tenant,
    kind: Kind,
) -> Result<Arc<Plugin>, SyncError> {
    let bytes = match env
        .store
        .active_plugin(tenant.org_id, tenant.id, kind.world())
        .await?
    {
        Some(active) => env.store.plugin_wasm(&active.digest).await?,
        None => builtin::builtin(kind).wasm.to_vec(),
    };
    let engine = env.engine.clone();
    tokio::task::spawn_blocking(move || engine.load_shared(kind, &bytes))
        .await
        .map_err(|e| SyncError::Plugin(format!("loading a plugin panicked: {e}")))?
        .map_err(|e| {
            SyncError::Plugin(format!(
                "tenant {}: the {kind} plugin cannot be loaded: {e}",
                tenant.name
            ))
        })
}

/// A kind of record the stages carry: the contract's `Email` or `Event`. Each says how its
/// batch is passed to the two plugins; everything else about the stages is shared.
pub trait StageRecord: Clone + Send + Sync + 'static {
    /// What the mapping plugin makes of one record (serialisable: a mapping shadow compares
    /// records as JSON).
    type Mapped: Send + serde::Serialize + 'static;

    /// `email` or `event`, as shadow diffs name the kind of record.
    const KIND: &'static str;

    /// The record's Graph id, which names it in exclusions and failures.
    fn graph_id(&self) -> &str;

    /// The record's subject, which names it in the failures list.
    fn subject(&self) -> &str;

    /// The exclusion plugin's verdicts, one per record, in order.
    fn exclude(
        plugin: &Plugin,
        ctx: &CallContext,
        batch: &[Self],
    ) -> Vec<Result<Verdict, RecordError>>;

    /// The mapping plugin's records, one per record, in order.
    fn map(
        plugin: &Plugin,
        ctx: &CallContext,
        batch: &[Self],
    ) -> Vec<Result<Self::Mapped, RecordError>>;

    /// The mapping without a plugin, for the benchmark's baseline ([`Stages::bypass`]); `None`
    /// where there is none (the plugins then run even when bypass is asked for).
    fn map_natively(&self) -> Option<Self::Mapped> {
        None
    }
}

impl StageRecord for Email {
    type Mapped = CrmEmail;
    const KIND: &'static str = "email";

    fn graph_id(&self) -> &str {
        &self.id
    }

    fn subject(&self) -> &str {
        &self.subject
    }

    fn exclude(
        plugin: &Plugin,
        ctx: &CallContext,
        batch: &[Email],
    ) -> Vec<Result<Verdict, RecordError>> {
        plugin.exclude_emails(ctx, batch).results
    }

    fn map(
        plugin: &Plugin,
        ctx: &CallContext,
        batch: &[Email],
    ) -> Vec<Result<CrmEmail, RecordError>> {
        plugin.map_emails(ctx, batch).results
    }

    fn map_natively(&self) -> Option<CrmEmail> {
        Some(super::mail::convert::crm_email_native(self))
    }
}

impl StageRecord for Event {
    type Mapped = CrmEvent;
    const KIND: &'static str = "event";

    fn graph_id(&self) -> &str {
        &self.id
    }

    fn subject(&self) -> &str {
        &self.subject
    }

    fn exclude(
        plugin: &Plugin,
        ctx: &CallContext,
        batch: &[Event],
    ) -> Vec<Result<Verdict, RecordError>> {
        plugin.exclude_events(ctx, batch).results
    }

    fn map(
        plugin: &Plugin,
        ctx: &CallContext,
        batch: &[Event],
    ) -> Vec<Result<CrmEvent, RecordError>> {
        plugin.map_events(ctx, batch).results
    }
}

/// The stage a record failed in, as failed records and logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading Graph's JSON into the contract's record.
    Convert,
    /// A recurring event's series master could not be read.
    Series,
    /// The exclusion plugin.
    Exclude,
    /// The mapping plugin, or turning its record into the store's.
    Map,
}

impl Stage {
    /// The name stored with a failed record.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Convert => "convert",
            Stage::Series => "series",
            Stage::Exclude => "exclude",
            Stage::Map => "map",
        }
    }
}

/// One record's way out of the stages.
pub enum Verdicted<M> {
    /// Kept and mapped.
    Kept(M),
    /// Dropped by the exclusion plugin, with the rule it named.
    Excluded(String),
    /// A stage failed on it; the record is kept for retry.
    Failed(Stage, String),
}

/// A page's records through the stages: the records, one verdict each, in order.
pub struct Decided<R: StageRecord> {
    /// The records as they went in.
    pub records: Vec<R>,
    /// One per record.
    pub verdicts: Vec<Verdicted<R::Mapped>>,
    /// The exclusion plugin's stamp, for exclusions and its failures.
    pub exclusion_stamp: String,
    /// The mapping plugin's stamp, for its failures.
    pub mapping_stamp: String,
    /// Both plugins' stamps, for kept records.
    pub decided_by: String,
    /// Time inside the plugins, microseconds (their price; the benchmark reports it). The
    /// shadows' time is not in it.
    pub micros: u64,
    /// What the shadows would have decided, compared with the verdicts: written after the
    /// page commits ([`super::shadow::record`]), never part of it.
    pub shadows: Vec<ShadowPage>,
}

/// Runs `records` through the exclusion then the mapping plugin on a blocking thread (plugin
/// calls are synchronous CPU work), mapping only what was kept. `ctx` overrides the stages'
/// call context (the calendar turns the plugin's internal-only rule off: C3 decides that).
pub async fn decide<R: StageRecord>(
    stages: &Stages,
    ctx: Option<CallContext>,
    records: Vec<R>,
) -> Result<Decided<R>, SyncError> {
    let exclusion = Arc::clone(&stages.exclusion);
    let mapping = Arc::clone(&stages.mapping);
    let ctx = ctx.unwrap_or_else(|| stages.ctx.clone());
    let bypass = stages.bypass;
    let observer = Arc::clone(&stages.observer);
    let shadows: Vec<ShadowRun> = if bypass {
        Vec::new()
    } else {
        stages
            .shadows
            .iter()
            .map(|s| ShadowRun {
                slot: s.slot,
                plugin: Arc::clone(&s.plugin),
                org_id: s.org_id,
                tenant_scope: s.tenant_scope,
                tenant_id: s.tenant_id,
            })
            .collect()
    };
    // The plugin calls' spans belong under the caller's (the mailbox's), across the thread.
    let span = tracing::Span::current();
    let (records, verdicts, micros, shadows) = tokio::task::spawn_blocking(move || {
        let _in_caller = span.enter();
        let started = Instant::now();
        let (verdicts, live) =
            if bypass && records.first().is_none_or(|r| r.map_natively().is_some()) {
                let verdicts = records
                    .iter()
                    .map(|r| match r.map_natively() {
                        Some(m) => Verdicted::Kept(m),
                        None => Verdicted::Failed(Stage::Map, "no native mapping".into()),
                    })
                    .collect();
                (verdicts, Vec::new())
            } else {
                run_plugins(&exclusion, &mapping, &ctx, &records, observer.as_ref())
            };
        let micros = started.elapsed().as_micros() as u64;
        // After the live verdicts are final: the shadows only read them.
        let shadows = if shadows.is_empty() {
            Vec::new()
        } else {
            run_shadows(
                &shadows,
                &ctx,
                &records,
                &live,
                &verdicts,
                observer.as_ref(),
            )
        };
        (records, verdicts, micros, shadows)
    })
    .await
    .map_err(|e| SyncError::Plugin(format!("a plugin call panicked: {e}")))?;
    let exclusion_stamp = stamp(&stages.exclusion);
    let mapping_stamp = stamp(&stages.mapping);
    let decided_by = format!("{exclusion_stamp}; {mapping_stamp}");
    Ok(Decided {
        records,
        verdicts,
        exclusion_stamp,
        mapping_stamp,
        decided_by,
        micros,
        shadows,
    })
}

/// Exclude, then map what was kept (the whole batch without a copy when all was kept); with
/// each record's outcome, the exclusion's own answers (what a shadow is compared with).
fn run_plugins<R: StageRecord>(
    exclusion: &Plugin,
    mapping: &Plugin,
    ctx: &CallContext,
    records: &[R],
    observer: &dyn SyncObserver,
) -> (Vec<Verdicted<R::Mapped>>, Vec<LiveVerdict>) {
    let observed = |slot: &'static str, plugin: &Plugin, records: usize, started: Instant| {
        if records > 0 {
            let d = plugin.descriptor();
            observer.plugin_called(slot, &d.name, &d.version, records, started.elapsed());
        }
    };
    let started = Instant::now();
    let verdicts = R::exclude(exclusion, ctx, records);
    observed("exclusion", exclusion, records.len(), started);
    let live = verdicts.iter().map(live_verdict).collect();
    let kept =
        |v: &Result<Verdict, RecordError>| matches!(v, Ok(v) if v.decision == PluginDecision::Keep);
    let started = Instant::now();
    let mapped = if verdicts.iter().all(kept) {
        let mapped = R::map(mapping, ctx, records);
        observed("mapping", mapping, records.len(), started);
        mapped
    } else {
        let batch: Vec<R> = records
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| kept(v))
            .map(|(r, _)| r.clone())
            .collect();
        let mapped = R::map(mapping, ctx, &batch);
        observed("mapping", mapping, batch.len(), started);
        mapped
    };
    let mut mapped = mapped.into_iter();
    let verdicts = verdicts
        .into_iter()
        .map(|v| match v {
            Err(e) => Verdicted::Failed(Stage::Exclude, e.to_string()),
            Ok(v) if v.decision == PluginDecision::Drop => {
                Verdicted::Excluded(v.rule.unwrap_or_else(|| "(no rule)".into()))
            }
            Ok(_) => match mapped.next() {
                Some(Ok(m)) => Verdicted::Kept(m),
                Some(Err(e)) => Verdicted::Failed(Stage::Map, e.to_string()),
                None => Verdicted::Failed(
                    Stage::Map,
                    "the mapping plugin answered fewer records than it was given".into(),
                ),
            },
        })
        .collect();
    (verdicts, live)
}

/// What the stages' verdicts come to for a page commit.
pub struct Folded<K> {
    /// The kept records, turned into the caller's rows, in order.
    pub kept: Vec<K>,
    /// Records the exclusion plugin dropped, with the rule and the plugin that decided.
    pub exclusions: Vec<Exclusion>,
    /// Records a stage failed on, with the Graph JSON so a retry needs no refetch.
    pub failures: Vec<FailedRecord>,
}

impl<R: StageRecord> Decided<R> {
    /// Folds the verdicts: each record with its `candidate` (what the caller kept beside it,
    /// the Graph JSON among it) goes to `kept` through `keep`, to the exclusions, or to the
    /// failures (with `payload` of its candidate, made only for failures). `keep` may refuse a
    /// mapped record with a message, handing its candidate back (boxed: the refusal is rare and
    /// a candidate can be large); the record then fails in the map stage.
    pub fn fold<C, K>(
        self,
        candidates: Vec<C>,
        payload: impl Fn(&C) -> String,
        mut keep: impl FnMut(R, R::Mapped, C, &str) -> Result<K, (String, Box<C>)>,
    ) -> Folded<K> {
        let mut folded = Folded {
            kept: Vec::new(),
            exclusions: Vec::new(),
            failures: Vec::new(),
        };
        let (stamp, decided_by) = (&self.exclusion_stamp, &self.decided_by);
        let records = self.records.into_iter().zip(self.verdicts);
        for ((record, verdict), candidate) in records.zip(candidates) {
            let graph_id = record.graph_id().to_string();
            let subject = record.subject().to_string();
            let (stage, error, candidate) = match verdict {
                Verdicted::Kept(mapped) => match keep(record, mapped, candidate, decided_by) {
                    Ok(k) => {
                        folded.kept.push(k);
                        continue;
                    }
                    Err((error, candidate)) => (Stage::Map, error, *candidate),
                },
                Verdicted::Excluded(rule) => {
                    folded.exclusions.push(Exclusion {
                        graph_id,
                        rule,
                        decided_by: stamp.clone(),
                    });
                    continue;
                }
                Verdicted::Failed(stage, error) => (stage, error, candidate),
            };
            let plugin = match stage {
                Stage::Exclude => self.exclusion_stamp.clone(),
                Stage::Map => self.mapping_stamp.clone(),
                Stage::Convert | Stage::Series => String::new(),
            };
            folded.failures.push(FailedRecord {
                graph_id,
                stage: stage.as_str().into(),
                error,
                subject,
                plugin,
                payload: payload(&candidate),
            });
        }
        folded
    }
}
