//! Loading a plugin and calling it on a batch, with per-record results.
//!
//! [`Plugin::load`] compiles (or loads from the cache), checks the sandbox and the world,
//! pre-links (`InstancePre`: imports are resolved once) and asks `describe()`. Each batch call
//! then gets a fresh Store and instance (a Store is an arena: nothing a plugin did survives
//! the batch, and nothing leaks across tenants).
//!
//! Failure is per record. A record too large to hand over fails alone, before any call. When
//! a whole call fails (trap, timeout, memory limit, an answer of the wrong length) the host
//! re-runs that batch's records one by one on fresh instances, within
//! [`Limits::isolation_budget`], so only the records that cause the failure fail; records not
//! reached within the budget carry the batch's error. The caller keeps failed records with
//! their error and retries them on the next run.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;

use wasmtime::component::InstancePre;

use super::bindings::exclusion::ExclusionPre;
use super::bindings::lean::{exclusion_plugin, mapping_plugin, matching_plugin};
use super::bindings::mapping::MappingPre;
use super::bindings::matching::MatchingPre;
use super::bindings::types::{
    ContactMatch, CrmEmail, CrmEvent, Descriptor, Email, Event, LogLevel, MatchInput, PluginKind,
    Verdict,
};
use super::cache::{self, Source};
use super::engine::PluginEngine;
use super::host::{HostState, LogLine, TenantData, TenantView};
use super::lean::{self, Conv, Fields};
use super::limits::Limits;
use super::sandbox;
use super::{Contract, Kind, PluginError};

/// Why one record has no result. The record is kept with this error and retried later.
#[derive(Clone, Debug, PartialEq, thiserror::Error, serde::Serialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum RecordError {
    /// The call ran past [`Limits::call_timeout`] and was interrupted at the next epoch tick.
    #[error("the plugin did not finish within {ms} ms")]
    Timeout {
        /// The call timeout in force, milliseconds.
        ms: u64,
    },
    /// The plugin asked to grow its memory (or a table) past the limit, and then trapped.
    #[error("the plugin reached its memory limit of {bytes} bytes")]
    MemoryLimit {
        /// [`Limits::max_memory_bytes`] in force.
        bytes: usize,
    },
    /// The plugin trapped: a panic, `unreachable`, or a host import asked for more than
    /// [`Limits::max_host_list`] items.
    #[error("the plugin trapped: {message}")]
    Trap {
        /// wasmtime's error chain, cut to 2 KiB.
        message: String,
    },
    /// The plugin answered an error for this record (the `err` case of its result).
    #[error("the plugin refused the record: {message}")]
    Refused {
        /// What the plugin said, cut to 2 KiB.
        message: String,
    },
    /// The plugin's answer does not fit the call: not one answer per record.
    #[error("the plugin's answer is malformed: {message}")]
    Malformed {
        /// What is wrong with it.
        message: String,
    },
    /// The record's estimated size is over [`Limits::max_record_bytes`]; it was never handed
    /// to the plugin.
    #[error("the record is too large to hand to a plugin ({bytes} bytes; the limit is {limit})")]
    InputTooLarge {
        /// The record's estimated size ([`Weigh`]), bytes.
        bytes: usize,
        /// [`Limits::max_record_bytes`] in force.
        limit: usize,
    },
    /// The plugin's answer for the record (or its `describe()` answer) is over
    /// [`Limits::max_output_record_bytes`].
    #[error(
        "the plugin's answer for this record is too large ({bytes} bytes; the limit is {limit})"
    )]
    OutputTooLarge {
        /// The answer's estimated size ([`Weigh`]), bytes.
        bytes: usize,
        /// [`Limits::max_output_record_bytes`] in force.
        limit: usize,
    },
    /// A fresh Store and instance could not be made ([`Plugin::instantiate_only`]).
    #[error("no plugin instance could be made: {message}")]
    Instantiate {
        /// wasmtime's error chain.
        message: String,
    },
    /// A call of another slot's interface (an exclusion plugin asked to map); every record of
    /// the batch carries it, and the plugin is not called.
    #[error("this is a {actual} plugin; it cannot be called as {called}")]
    WrongKind {
        /// The plugin's kind.
        actual: Kind,
        /// The kind whose call was made.
        called: Kind,
    },
}

/// What a call needs besides its records: whose data, which configuration, what bounds.
#[derive(Clone)]
pub struct CallContext {
    /// The one tenant whose data the host imports answer from; nothing else is reachable.
    pub tenant: Arc<dyn TenantView>,
    /// The plugin's configuration values for this tenant, as `host.config` answers them.
    pub config: Arc<BTreeMap<String, String>>,
    /// The bounds of each call (the tenant's own, or the defaults).
    pub limits: Limits,
}

impl CallContext {
    /// A context over an in-memory tenant with default limits.
    pub fn new(tenant: TenantData, config: BTreeMap<String, String>) -> Self {
        CallContext {
            tenant: Arc::new(tenant.indexed()),
            config: Arc::new(config),
            limits: Limits::default(),
        }
    }
}

/// The results of one batch, in input order, and what the plugin logged.
#[derive(Debug)]
pub struct BatchOutcome<T> {
    /// One result per input record, in input order.
    pub results: Vec<Result<T, RecordError>>,
    /// What the plugin wrote through `host.log`, stdout (as info) and stderr (as warn), over
    /// every instance of the batch, each within [`Limits::max_log_bytes`].
    pub log: Vec<LogLine>,
    /// Log lines dropped because the per-call bound was reached.
    pub log_dropped: usize,
    /// Instances made (1 per chunk, plus one per record re-run after a failed call).
    pub instances: usize,
}

/// The pre-linked component, by slot and contract version (0.2's calls take lean records; a
/// 0.2 component's export is found per interface, `crate::bindings::lean`).
enum Pre {
    Exclusion(ExclusionPre<HostState>),
    Mapping(MappingPre<HostState>),
    Matching(MatchingPre<HostState>),
    LeanExclusion(InstancePre<HostState>, exclusion_plugin::GuestIndices),
    LeanMapping(InstancePre<HostState>, mapping_plugin::GuestIndices),
    LeanMatching(InstancePre<HostState>, matching_plugin::GuestIndices),
}

impl Pre {
    /// A fresh instance of a 0.2 exclusion component in `store`, its interface loaded.
    fn lean_exclusion(
        pre: &InstancePre<HostState>,
        idx: &exclusion_plugin::GuestIndices,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<exclusion_plugin::Guest> {
        let instance = pre.instantiate(&mut *store)?;
        idx.load(&mut *store, &instance)
    }

    /// A fresh instance of a 0.2 mapping component in `store`, its interface loaded.
    fn lean_mapping(
        pre: &InstancePre<HostState>,
        idx: &mapping_plugin::GuestIndices,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<mapping_plugin::Guest> {
        let instance = pre.instantiate(&mut *store)?;
        idx.load(&mut *store, &instance)
    }

    /// A fresh instance of a 0.2 matching component in `store`, its interface loaded.
    fn lean_matching(
        pre: &InstancePre<HostState>,
        idx: &matching_plugin::GuestIndices,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<matching_plugin::Guest> {
        let instance = pre.instantiate(&mut *store)?;
        idx.load(&mut *store, &instance)
    }
}

/// A loaded, checked plugin, ready to be called any number of times from any thread.
pub struct Plugin {
    kind: Kind,
    digest: String,
    descriptor: Descriptor,
    /// The parts of a record a 0.2 plugin declared; every part for a 0.1 plugin.
    fields: Fields,
    contract: Contract,
    source: Source,
    engine: PluginEngine,
    pre: Pre,
}

/// The estimated bytes a value occupies when copied across the boundary.
pub trait Weigh {
    /// The estimate, bytes: string lengths plus a fixed overhead per value, list and record.
    /// Only the bounds use it, so it need not match the canonical ABI exactly.
    fn weigh(&self) -> usize;
}

impl Weigh for String {
    fn weigh(&self) -> usize {
        self.len() + 8
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn weigh(&self) -> usize {
        8 + self.as_ref().map_or(0, Weigh::weigh)
    }
}

impl<T: Weigh> Weigh for Vec<T> {
    fn weigh(&self) -> usize {
        8 + self.iter().map(Weigh::weigh).sum::<usize>()
    }
}

macro_rules! weigh_fields {
    ($ty:ty => $($field:ident),*) => {
        impl Weigh for $ty {
            fn weigh(&self) -> usize {
                32 $(+ Weigh::weigh(&self.$field))*
            }
        }
    };
}

use super::bindings::types::{
    Address, AttachmentInfo, Attendee, Body, CrmAttendee, Header, Location,
};
weigh_fields!(Address => email, name);
weigh_fields!(Body => content);
weigh_fields!(Header => name, value);
weigh_fields!(AttachmentInfo => name, content_type);
weigh_fields!(Attendee => email, name);
weigh_fields!(Location => display_name, email, location_type);
weigh_fields!(CrmAttendee => email, name);
weigh_fields!(Email => id, mailbox, user, folder, addresses, subject, body, preview, sent,
    received, categories, headers, attachments, internet_message_id, conversation_id);
weigh_fields!(Event => id, mailbox, user, subject, body, start, end, organizer, attendees,
    location, locations, recurrence, online_meeting_provider, online_meeting_url, categories);
weigh_fields!(MatchInput => record_id, user, addresses, conversation_id, thread_matches);
weigh_fields!(Verdict => rule, reason);
weigh_fields!(CrmEmail => external_id, internet_message_id, conversation_id, mailbox, from, to,
    cc, bcc, subject, description, sent, received, categories);
weigh_fields!(CrmEvent => external_id, subject, description, start, end, assigned_to, attendees,
    location, resources, recurring, reminder_at, teams_url);
weigh_fields!(ContactMatch => contact, entity, address, reason);
weigh_fields!(Descriptor => name, version);

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

impl Plugin {
    /// Loads a plugin of `kind` from component bytes. Fails if it does not compile, imports
    /// anything outside the sandbox, exports another world or contract version, cannot be
    /// linked, or does not answer `describe()` as a plugin of `kind`.
    pub fn load(engine: &PluginEngine, kind: Kind, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let digest = cache::digest(bytes);
        let (component, source) = cache::load(
            &engine.engine,
            engine.config.cache_dir.as_deref(),
            &digest,
            bytes,
        )?;
        let contract = sandbox::check(&component, kind)?;
        let instance_pre = engine
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Instantiate(format!("{e:#}")))?;
        let inst = |e: wasmtime::Error| PluginError::Instantiate(format!("{e:#}"));
        let pre = match (kind, contract) {
            (Kind::Exclusion, Contract::V0_1) => {
                Pre::Exclusion(ExclusionPre::new(instance_pre).map_err(inst)?)
            }
            (Kind::Mapping, Contract::V0_1) => {
                Pre::Mapping(MappingPre::new(instance_pre).map_err(inst)?)
            }
            (Kind::Matching, Contract::V0_1) => {
                Pre::Matching(MatchingPre::new(instance_pre).map_err(inst)?)
            }
            (Kind::Exclusion, Contract::V0_2) => {
                let idx = exclusion_plugin::GuestIndices::new(&instance_pre).map_err(inst)?;
                Pre::LeanExclusion(instance_pre, idx)
            }
            (Kind::Mapping, Contract::V0_2) => {
                let idx = mapping_plugin::GuestIndices::new(&instance_pre).map_err(inst)?;
                Pre::LeanMapping(instance_pre, idx)
            }
            (Kind::Matching, Contract::V0_2) => {
                let idx = matching_plugin::GuestIndices::new(&instance_pre).map_err(inst)?;
                Pre::LeanMatching(instance_pre, idx)
            }
        };
        let mut plugin = Plugin {
            kind,
            digest,
            descriptor: Descriptor {
                name: String::new(),
                version: String::new(),
                kind: PluginKind::Exclusion,
                config: Vec::new(),
            },
            fields: Fields::all(),
            contract,
            source,
            engine: engine.clone(),
            pre,
        };
        let ctx = CallContext::new(TenantData::default(), BTreeMap::new());
        let (descriptor, fields) = plugin
            .describe_fields(&ctx)
            .map_err(|e| PluginError::Describe(e.to_string()))?;
        let found_kind = match descriptor.kind {
            PluginKind::Exclusion => Kind::Exclusion,
            PluginKind::Mapping => Kind::Mapping,
            PluginKind::Matching => Kind::Matching,
        };
        if found_kind != kind {
            return Err(PluginError::KindMismatch {
                expected: kind,
                found: descriptor.kind,
            });
        }
        plugin.descriptor = descriptor;
        plugin.fields = fields;
        Ok(plugin)
    }

    /// Reads and loads a plugin file.
    pub fn load_file(
        engine: &PluginEngine,
        kind: Kind,
        path: &std::path::Path,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Plugin::load(engine, kind, &bytes)
    }

    /// The slot the plugin was loaded for (its `describe()` agreed).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// SHA-256 of the component bytes (hex).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// What the plugin answered to `describe()` when loaded.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The contract version the plugin was built against.
    pub fn contract(&self) -> Contract {
        self.contract
    }

    /// The parts of a record the plugin reads: what it declared (0.2), or all (0.1).
    pub fn fields(&self) -> Fields {
        self.fields
    }

    /// Whether the load compiled the component or found it in the artifact cache.
    pub fn source(&self) -> Source {
        self.source
    }

    /// A fresh Store for one call of `ctx`'s tenant, with its limits armed.
    fn store(&self, ctx: &CallContext) -> Store<HostState> {
        let state = HostState::new(ctx.tenant.clone(), ctx.config.clone(), &ctx.limits);
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(self.engine.ticks(ctx.limits.call_timeout));
        store.epoch_deadline_trap();
        store
    }

    /// Turns a failed call into the error of its records.
    fn classify(ctx: &CallContext, store: &Store<HostState>, e: wasmtime::Error) -> RecordError {
        if store.data().limiter.hit {
            return RecordError::MemoryLimit {
                bytes: ctx.limits.max_memory_bytes,
            };
        }
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return RecordError::Timeout {
                ms: ctx.limits.call_timeout.as_millis() as u64,
            };
        }
        let trap = e.downcast_ref::<wasmtime::Trap>().copied();
        // Two stacks can overflow: wasmtime's native one (Trap::StackOverflow), and the shadow
        // stack a Rust or C guest keeps in its linear memory for locals that are not in
        // registers; that one runs off the bottom of memory and traps as an out-of-bounds
        // access, with one function repeated down the backtrace.
        let shadow = trap == Some(wasmtime::Trap::MemoryOutOfBounds)
            && e.downcast_ref::<wasmtime::WasmBacktrace>()
                .is_some_and(recursing);
        if trap == Some(wasmtime::Trap::StackOverflow) || shadow {
            return RecordError::Trap {
                message: "stack overflow: the plugin recursed deeper than its stack allows".into(),
            };
        }
        // A Rust guest's panic message goes to stderr before the trap (std's panic hook): the
        // record's error names it, not only the wasm backtrace.
        let [_, (stderr, _)] = store.data().wasi.output();
        let message = match panic_message(&String::from_utf8_lossy(&stderr)) {
            Some(panic) => format!("panicked: {panic}"),
            // JavaScript and Python runtimes abort this way on an uncaught exception, with
            // nowhere to print it in the sandbox: say what to do, not only where it stopped.
            None if trap == Some(wasmtime::Trap::UnreachableCodeReached) => format!(
                "the plugin stopped itself (wasm `unreachable`) without a message, as an uncaught \
                 JavaScript or Python exception does: catch it in the plugin and answer it as \
                 the record's error to see it here (wit/README.md, \"Errors\"); {e:#}"
            ),
            None => format!("{e:#}"),
        };
        RecordError::Trap {
            message: truncate(message, 2048),
        }
    }

    /// Collects the Store's log and captured output into `out`.
    fn drain_log(store: &mut Store<HostState>, log: &mut Vec<LogLine>, dropped_lines: &mut usize) {
        let data = store.data_mut();
        log.append(&mut data.log.lines);
        *dropped_lines += data.log.dropped;
        let [stdout, stderr] = data.wasi.output();
        for (level, (bytes, dropped)) in [(LogLevel::Info, stdout), (LogLevel::Warn, stderr)] {
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                log.push(LogLine {
                    level,
                    message: line.to_string(),
                });
            }
            if dropped > 0 {
                log.push(LogLine {
                    level: LogLevel::Warn,
                    message: format!("{dropped} bytes of output over the limit were dropped"),
                });
            }
        }
    }

    /// The plugin's self-description.
    pub fn describe(&self, ctx: &CallContext) -> Result<Descriptor, RecordError> {
        self.describe_fields(ctx).map(|(d, _)| d)
    }

    /// The plugin's self-description and the parts of a record it reads (all, for 0.1).
    fn describe_fields(&self, ctx: &CallContext) -> Result<(Descriptor, Fields), RecordError> {
        let mut store = self.store(ctx);
        let all = |d| (d, Fields::all());
        let result = match &self.pre {
            Pre::Exclusion(pre) => pre.instantiate(&mut store).and_then(|i| {
                i.m365sync_plugin_exclusion_plugin()
                    .call_describe(&mut store)
                    .map(all)
            }),
            Pre::Mapping(pre) => pre.instantiate(&mut store).and_then(|i| {
                i.m365sync_plugin_mapping_plugin()
                    .call_describe(&mut store)
                    .map(all)
            }),
            Pre::Matching(pre) => pre.instantiate(&mut store).and_then(|i| {
                i.m365sync_plugin_matching_plugin()
                    .call_describe(&mut store)
                    .map(all)
            }),
            Pre::LeanExclusion(pre, idx) => Pre::lean_exclusion(pre, idx, &mut store)
                .and_then(|g| g.call_describe(&mut store).map(lean::descriptor)),
            Pre::LeanMapping(pre, idx) => Pre::lean_mapping(pre, idx, &mut store)
                .and_then(|g| g.call_describe(&mut store).map(lean::descriptor)),
            Pre::LeanMatching(pre, idx) => Pre::lean_matching(pre, idx, &mut store)
                .and_then(|g| g.call_describe(&mut store).map(lean::descriptor)),
        };
        let (descriptor, fields) = result.map_err(|e| Self::classify(ctx, &store, e))?;
        let bytes = descriptor.weigh();
        if bytes > ctx.limits.max_output_record_bytes {
            return Err(RecordError::OutputTooLarge {
                bytes,
                limit: ctx.limits.max_output_record_bytes,
            });
        }
        Ok((descriptor, fields))
    }

    /// Makes a fresh Store and instance and drops them (what every batch pays; for benchmarks).
    pub fn instantiate_only(&self, ctx: &CallContext) -> Result<(), RecordError> {
        let mut store = self.store(ctx);
        let r = match &self.pre {
            Pre::Exclusion(pre) => pre.instantiate(&mut store).map(drop),
            Pre::Mapping(pre) => pre.instantiate(&mut store).map(drop),
            Pre::Matching(pre) => pre.instantiate(&mut store).map(drop),
            Pre::LeanExclusion(pre, _) | Pre::LeanMapping(pre, _) | Pre::LeanMatching(pre, _) => {
                pre.instantiate(&mut store).map(drop)
            }
        };
        r.map_err(|e| RecordError::Instantiate {
            message: format!("{e:#}"),
        })
    }

    /// Runs `call` over `items` in chunks, each on a fresh instance, isolating failures.
    fn run<I, O, F>(&self, ctx: &CallContext, items: &[I], call: F) -> BatchOutcome<O>
    where
        I: Clone + Weigh,
        O: Weigh,
        F: Fn(&mut Store<HostState>, &[I]) -> wasmtime::Result<Vec<Result<O, String>>>,
    {
        // One span per batch call: which slot, which plugin and version, how many records;
        // never the records themselves.
        let _span = tracing::info_span!(
            "plugin call",
            slot = %self.kind,
            plugin = %self.descriptor.name,
            version = %self.descriptor.version,
            records = items.len(),
        )
        .entered();
        let limits = &ctx.limits;
        let mut out = BatchOutcome {
            results: Vec::with_capacity(items.len()),
            log: Vec::new(),
            log_dropped: 0,
            instances: 0,
        };
        let mut slots: Vec<Option<Result<O, RecordError>>> =
            (0..items.len()).map(|_| None).collect();
        let mut ready = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let bytes = item.weigh();
            if bytes > limits.max_record_bytes {
                slots[i] = Some(Err(RecordError::InputTooLarge {
                    bytes,
                    limit: limits.max_record_bytes,
                }));
            } else {
                ready.push(i);
            }
        }

        // One call: fresh store, instance, call, checks. Err means the whole call failed.
        let once = |idx: &[usize],
                    out: &mut BatchOutcome<O>|
         -> Result<Vec<Result<O, RecordError>>, RecordError> {
            let contiguous = idx.windows(2).all(|w| w[1] == w[0] + 1);
            let chunk: Cow<'_, [I]> = match (idx.first(), idx.last()) {
                (Some(&a), Some(&b)) if contiguous => Cow::Borrowed(&items[a..=b]),
                _ => Cow::Owned(idx.iter().map(|&i| items[i].clone()).collect()),
            };
            let mut store = self.store(ctx);
            out.instances += 1;
            let result = call(&mut store, &chunk);
            Self::drain_log(&mut store, &mut out.log, &mut out.log_dropped);
            let answers = result.map_err(|e| Self::classify(ctx, &store, e))?;
            if answers.len() != chunk.len() {
                return Err(RecordError::Malformed {
                    message: format!("{} answers for {} records", answers.len(), chunk.len()),
                });
            }
            Ok(answers
                .into_iter()
                .map(|a| match a {
                    Ok(o) => {
                        let bytes = o.weigh();
                        if bytes > limits.max_output_record_bytes {
                            Err(RecordError::OutputTooLarge {
                                bytes,
                                limit: limits.max_output_record_bytes,
                            })
                        } else {
                            Ok(o)
                        }
                    }
                    Err(message) => Err(RecordError::Refused {
                        message: truncate(message, 2048),
                    }),
                })
                .collect())
        };

        for chunk in ready.chunks(limits.max_batch.max(1)) {
            match once(chunk, &mut out) {
                Ok(answers) => {
                    for (&i, a) in chunk.iter().zip(answers) {
                        slots[i] = Some(a);
                    }
                }
                Err(batch_error) if chunk.len() == 1 => slots[chunk[0]] = Some(Err(batch_error)),
                Err(batch_error) => {
                    let started = Instant::now();
                    for &i in chunk {
                        if started.elapsed() >= limits.isolation_budget {
                            slots[i] = Some(Err(batch_error.clone()));
                            continue;
                        }
                        slots[i] = Some(match once(&[i], &mut out) {
                            Ok(mut answers) => answers.pop().expect("one answer for one record"),
                            Err(e) => Err(e),
                        });
                    }
                }
            }
        }
        out.results = slots
            .into_iter()
            .map(|s| s.expect("every record has a result"))
            .collect();
        out
    }

    fn wrong_kind<O>(&self, called: Kind, n: usize) -> BatchOutcome<O> {
        BatchOutcome {
            results: (0..n)
                .map(|_| {
                    Err(RecordError::WrongKind {
                        actual: self.kind,
                        called,
                    })
                })
                .collect(),
            log: Vec::new(),
            log_dropped: 0,
            instances: 0,
        }
    }

    /// Exclusion: a verdict per email.
    pub fn exclude_emails(&self, ctx: &CallContext, batch: &[Email]) -> BatchOutcome<Verdict> {
        let f = self.fields;
        match &self.pre {
            Pre::Exclusion(pre) => self.run(ctx, batch, |store, items| {
                let i = pre.instantiate(&mut *store)?;
                i.m365sync_plugin_exclusion_plugin()
                    .call_exclude_emails(&mut *store, items)
            }),
            Pre::LeanExclusion(pre, idx) => self.run(ctx, batch, |store, items| {
                let guest = Pre::lean_exclusion(pre, idx, store)?;
                lean::with_emails(items, f, |lean| {
                    guest.call_exclude_emails(&mut *store, lean)
                })
                .map(answers)
            }),
            _ => self.wrong_kind(Kind::Exclusion, batch.len()),
        }
    }

    /// Exclusion: a verdict per event.
    pub fn exclude_events(&self, ctx: &CallContext, batch: &[Event]) -> BatchOutcome<Verdict> {
        let f = self.fields;
        match &self.pre {
            Pre::Exclusion(pre) => self.run(ctx, batch, |store, items| {
                let i = pre.instantiate(&mut *store)?;
                i.m365sync_plugin_exclusion_plugin()
                    .call_exclude_events(&mut *store, items)
            }),
            Pre::LeanExclusion(pre, idx) => self.run(ctx, batch, |store, items| {
                let guest = Pre::lean_exclusion(pre, idx, store)?;
                lean::with_events(items, f, |lean| {
                    guest.call_exclude_events(&mut *store, lean)
                })
                .map(answers)
            }),
            _ => self.wrong_kind(Kind::Exclusion, batch.len()),
        }
    }

    /// Mapping: the CRM email record per email.
    pub fn map_emails(&self, ctx: &CallContext, batch: &[Email]) -> BatchOutcome<CrmEmail> {
        let f = self.fields;
        match &self.pre {
            Pre::Mapping(pre) => self.run(ctx, batch, |store, items| {
                let i = pre.instantiate(&mut *store)?;
                i.m365sync_plugin_mapping_plugin()
                    .call_map_emails(&mut *store, items)
            }),
            Pre::LeanMapping(pre, idx) => self.run(ctx, batch, |store, items| {
                let guest = Pre::lean_mapping(pre, idx, store)?;
                lean::with_emails(items, f, |lean| guest.call_map_emails(&mut *store, lean))
                    .map(answers)
            }),
            _ => self.wrong_kind(Kind::Mapping, batch.len()),
        }
    }

    /// Mapping: the CRM event record per event.
    pub fn map_events(&self, ctx: &CallContext, batch: &[Event]) -> BatchOutcome<CrmEvent> {
        let f = self.fields;
        match &self.pre {
            Pre::Mapping(pre) => self.run(ctx, batch, |store, items| {
                let i = pre.instantiate(&mut *store)?;
                i.m365sync_plugin_mapping_plugin()
                    .call_map_events(&mut *store, items)
            }),
            Pre::LeanMapping(pre, idx) => self.run(ctx, batch, |store, items| {
                let guest = Pre::lean_mapping(pre, idx, store)?;
                lean::with_events(items, f, |lean| guest.call_map_events(&mut *store, lean))
                    .map(answers)
            }),
            _ => self.wrong_kind(Kind::Mapping, batch.len()),
        }
    }

    /// Matching: the contact matches per stored record.
    pub fn match_records(
        &self,
        ctx: &CallContext,
        batch: &[MatchInput],
    ) -> BatchOutcome<Vec<ContactMatch>> {
        let f = self.fields;
        match &self.pre {
            Pre::Matching(pre) => self.run(ctx, batch, |store, items| {
                let i = pre.instantiate(&mut *store)?;
                i.m365sync_plugin_matching_plugin()
                    .call_match_records(&mut *store, items)
            }),
            Pre::LeanMatching(pre, idx) => self.run(ctx, batch, |store, items| {
                let guest = Pre::lean_matching(pre, idx, store)?;
                lean::with_match_inputs(items, f, |lean| {
                    guest.call_match_records(&mut *store, lean)
                })
                .map(answers)
            }),
            _ => self.wrong_kind(Kind::Matching, batch.len()),
        }
    }
}

/// A 0.2 plugin's answers as 0.1's types (the same shapes).
fn answers<A: Conv<B>, B>(answers: Vec<Result<A, String>>) -> Vec<Result<B, String>> {
    answers.into_iter().map(|a| a.map(Conv::conv)).collect()
}

/// How long a call may take at most, given the engine's tick (for messages and tests).
pub fn effective_timeout(engine: &PluginEngine, limits: &Limits) -> Duration {
    engine.config.epoch_tick * engine.ticks(limits.call_timeout) as u32
}

/// Whether a trap's backtrace is a deep recursion: its innermost frames (at least 16) are all
/// the same function.
fn recursing(backtrace: &wasmtime::WasmBacktrace) -> bool {
    const DEPTH: usize = 16;
    let frames = backtrace.frames();
    frames.len() >= DEPTH
        && frames[..DEPTH]
            .iter()
            .all(|f| f.func_index() == frames[0].func_index())
}

/// The last panic a Rust guest printed to stderr (`thread '..' panicked at FILE:LINE:COL:` and
/// the message on the following lines, up to std's `note:` line), as `MESSAGE (at FILE:LINE:COL)`.
pub fn panic_message(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines.iter().rposition(|l| l.contains("panicked at "))?;
    let head = lines[start];
    let at = head
        .split_once("panicked at ")
        .map(|(_, rest)| rest.trim_end_matches(':').to_string())
        .unwrap_or_default();
    // Older std put the message on the same line: `panicked at 'msg', file:line:col`.
    if let Some(old) = at.strip_prefix('\'') {
        return Some(old.replacen("', ", " (at ", 1) + ")");
    }
    let message: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("note:") && !l.starts_with("stack backtrace"))
        .copied()
        .collect();
    let message = message.join("\n").trim().to_string();
    Some(if message.is_empty() {
        format!("(no message) (at {at})")
    } else {
        format!("{message} (at {at})")
    })
}

#[cfg(test)]
mod panic_tests {
    use super::panic_message;

    #[test]
    fn a_guest_panic_is_read_from_stderr() {
        let stderr = "some log\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nthe record has no sender\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("the record has no sender (at src/lib.rs:12:9)")
        );
        assert_eq!(panic_message("no panic here"), None);
    }
}
