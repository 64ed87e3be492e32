//! One matching job for one org: under the org's matching lease, each tenant's owed records go
//! through that tenant's matching plugin in batches, and each batch's matches are stored in
//! one transaction that also takes the records off the queue.
//!
//! What a job owes, in order: records whose address belongs to a contact that changed (found
//! through the recipients' address index: a re-match touches only them), records the plugin
//! failed on in an earlier job, then every new record the sync queued.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use super::input::{
    accept, batch_conversations, carry_thread_links, contacts_for, match_inputs, tenant_view,
};
use crate::sync::error::SyncError;
use crate::sync::stages::load_plugin;
use crate::sync::stages::stamp;
use crate::sync::SyncEnv;
use m365sync_plugin::call::CallContext;
use m365sync_plugin::{Kind, Plugin};
use m365sync_store::matching::{ActivityKind, MatchCandidate, MatchContact, MatchOutcome};
use m365sync_store::tenants::Tenant;
use m365sync_store::{Store, StoreError};

/// Records read, stored and taken off the queue per transaction.
const BATCH: i64 = 1000;
/// Records per plugin call: a batch goes through the plugin in parts of this size, each shown
/// what a batch of its own would show it.
const PLUGIN_BATCH: usize = 500;
/// How long a job's hold on its org lasts without renewal (renewed every batch).
const LEASE_MS: i64 = 60_000;

/// Why a job could not run. A record the plugin fails on is not an error of the job: it is
/// kept in `match_failures` and retried by the next one.
#[derive(Debug, Error)]
pub enum MatchError {
    /// The database failed; the queue is left as it was for the next job.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A tenant's matching plugin could not be loaded.
    #[error("org '{org}': {message}")]
    Plugin {
        /// The org whose job stopped (empty when converted from a [`SyncError`]).
        org: String,
        /// Why the plugin could not be used.
        message: String,
    },
    /// Another process holds the org's matching lease; two jobs at once would link twice.
    #[error("org '{org}': another process is running its matching job; it will pick up this work")]
    Busy {
        /// The org asked for.
        org: String,
    },
}

impl From<SyncError> for MatchError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(s) => MatchError::Store(s),
            other => MatchError::Plugin {
                org: String::new(),
                message: other.to_string(),
            },
        }
    }
}

/// What one job did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MatchReport {
    /// Records passed through a plugin.
    pub records: u64,
    /// Of those, linked to at least one contact.
    pub matched: u64,
    /// Of those, linked to nothing (they show in their user's review list).
    pub unmatched: u64,
    /// Records the plugin failed on (kept and retried by the next job).
    pub failed: u64,
    /// Links stored.
    pub links: u64,
    /// Addresses whose contacts changed since the last job.
    pub changed_addresses: u64,
    /// Stored records those addresses sent back through the plugin for a re-match.
    pub rematched_records: u64,
    /// Warnings the plugin logged (E9: a contact carrying a sync user's address).
    pub warnings: Vec<String>,
    /// The whole job's wall time, milliseconds.
    pub millis: u64,
    /// Where the time went: reading records and contacts, milliseconds.
    pub read_ms: u64,
    /// Time inside the matching plugin, milliseconds.
    pub plugin_ms: u64,
    /// Time storing the matches, milliseconds.
    pub write_ms: u64,
}

/// Runs the org's matching job now: every tenant's owed records, until its queue is empty.
/// `holder` names this process in the lease.
pub async fn run_org(env: &SyncEnv, org: &str, holder: &str) -> Result<MatchReport, MatchError> {
    let started = Instant::now();
    let store = &env.store;
    let org_id = store.org_id(org).await?;
    if !store.claim_match_lease(org_id, holder, LEASE_MS).await? {
        return Err(MatchError::Busy { org: org.into() });
    }
    let result = run_under_lease(env, org, org_id, holder).await;
    store.release_match_lease(org_id, holder).await?;
    let mut report = result?;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

async fn run_under_lease(
    env: &SyncEnv,
    org: &str,
    org_id: i64,
    holder: &str,
) -> Result<MatchReport, MatchError> {
    let store = &env.store;
    let mut report = MatchReport::default();
    let sync_users = store.org_sync_user_addresses(org_id).await?;
    let changes = store.contact_changes(org_id).await?;
    let changed: Vec<String> = changes.iter().map(|(a, _)| a.clone()).collect();
    report.changed_addresses = changed.len() as u64;
    for tenant in store.tenants(Some(org)).await? {
        if !changed.is_empty() {
            let emails = store
                .records_with_addresses(tenant.id, ActivityKind::Email, &changed)
                .await?;
            let events = store
                .records_with_addresses(tenant.id, ActivityKind::Event, &changed)
                .await?;
            report.rematched_records += (emails.len() + events.len()) as u64;
            store
                .queue_for_matching(tenant.id, ActivityKind::Email, &emails)
                .await?;
            store
                .queue_for_matching(tenant.id, ActivityKind::Event, &events)
                .await?;
        }
        for (kind, id, _) in store.match_failures(tenant.id).await? {
            store.queue_for_matching(tenant.id, kind, &[id]).await?;
        }
        if store.match_queue_len(tenant.id).await? == 0 {
            continue;
        }
        let plugin = load_plugin(env, &tenant, Kind::Matching)
            .await
            .map_err(|e| MatchError::Plugin {
                org: org.into(),
                message: e.to_string(),
            })?;
        let hide_unmatched_events = !store
            .calendar_settings(tenant.org_id, tenant.id)
            .await?
            .sync_unmatched_events;
        for kind in [ActivityKind::Email, ActivityKind::Event] {
            let job = TenantJob {
                store,
                tenant: &tenant,
                kind,
                plugin: &plugin,
                sync_users: &sync_users,
                hide_unmatched_events,
            };
            drain_tenant(&job, holder, &mut report).await?;
        }
    }
    store.forget_contact_changes(org_id, &changes).await?;
    Ok(report)
}

/// A batch read ahead: its queued ids, the records, and the contacts their addresses reach.
struct Prepared {
    ids: Vec<i64>,
    batch: Vec<MatchCandidate>,
    contacts: Vec<MatchContact>,
    read_ms: u64,
}

/// Reads the next batch after record `after` (three statements: see
/// [`Store::match_batch`]); none when the queue holds no more.
async fn prepare(
    store: Store,
    tenant: Tenant,
    kind: ActivityKind,
    after: i64,
) -> Result<Option<Prepared>, StoreError> {
    let started = Instant::now();
    let read = store
        .match_batch(tenant.id, tenant.org_id, kind, after, BATCH)
        .await?;
    if read.ids.is_empty() {
        return Ok(None);
    }
    Ok(Some(Prepared {
        ids: read.ids,
        batch: read.candidates,
        contacts: read.contacts,
        read_ms: started.elapsed().as_millis() as u64,
    }))
}

/// What one tenant's drain works with.
struct TenantJob<'a> {
    store: &'a Store,
    tenant: &'a Tenant,
    kind: ActivityKind,
    plugin: &'a Arc<Plugin>,
    sync_users: &'a [String],
    /// C3: events matching nothing are kept out of the CRM.
    hide_unmatched_events: bool,
}

/// Passes a tenant's queued records of one kind through its plugin until none is left. The
/// next batch is read while the current one is in the plugin and being stored (two cores, two
/// jobs); its thread matches are read only after the current batch is stored, so a thread that
/// spans the two batches is seen whole.
async fn drain_tenant(
    job: &TenantJob<'_>,
    holder: &str,
    report: &mut MatchReport,
) -> Result<(), MatchError> {
    let (store, tenant) = (job.store, job.tenant);
    let decided_by = stamp(job.plugin);
    let mut next = prepare(store.clone(), tenant.clone(), job.kind, 0).await?;
    while let Some(current) = next.take() {
        if !store
            .claim_match_lease(tenant.org_id, holder, LEASE_MS)
            .await?
        {
            return Err(MatchError::Busy {
                org: tenant.org.clone(),
            });
        }
        let last = *current.ids.last().expect("a prepared batch is not empty");
        let ahead = tokio::spawn(prepare(store.clone(), tenant.clone(), job.kind, last));
        report.read_ms += current.read_ms;
        let result = match_batch(job, &decided_by, current, report).await;
        // The read-ahead finishes either way, so no statement is left running on the pool.
        let read_ahead = ahead.await.map_err(|e| MatchError::Plugin {
            org: tenant.org.clone(),
            message: format!("reading the next batch panicked: {e}"),
        })?;
        result?;
        next = read_ahead?;
    }
    Ok(())
}

/// One batch through the plugin in parts of [`PLUGIN_BATCH`], its matches stored in one
/// transaction.
async fn match_batch(
    job: &TenantJob<'_>,
    decided_by: &str,
    current: Prepared,
    report: &mut MatchReport,
) -> Result<(), MatchError> {
    let (store, tenant, plugin, sync_users) = (job.store, job.tenant, job.plugin, job.sync_users);
    let Prepared {
        ids,
        batch,
        contacts,
        ..
    } = current;
    let read_started = Instant::now();
    let mut threads = match job.kind {
        ActivityKind::Email => {
            store
                .thread_matches(tenant.id, &batch_conversations(&batch))
                .await?
        }
        ActivityKind::Event => HashMap::new(),
    };
    report.read_ms += read_started.elapsed().as_millis() as u64;
    let mut outcomes = Vec::with_capacity(ids.len());
    // The plugin is called per PLUGIN_BATCH records, each part shown exactly what it would
    // have been shown as a batch of its own read after the parts before it were stored: the
    // contacts its addresses reach, and its threads' links with the earlier parts' outcomes
    // carried in (a thread's inheritance depends on where batches end).
    for part in batch.chunks(PLUGIN_BATCH) {
        let prepare_started = Instant::now();
        let part_contacts = contacts_for(part, &contacts);
        // What the plugin may name: the part's contacts and its threads' (with their entity).
        let mut shown: HashMap<i64, Option<i64>> =
            part_contacts.iter().map(|c| (c.id, c.entity_id)).collect();
        for conversation in batch_conversations(part) {
            for t in threads.get(&conversation).into_iter().flatten() {
                shown.entry(t.link.contact_id).or_insert(t.link.entity_id);
            }
        }
        let inputs = match_inputs(part, &threads);
        let ctx = CallContext::new(
            tenant_view(&tenant.org, &tenant.name, &part_contacts, sync_users),
            BTreeMap::new(),
        );
        let plugin_started = Instant::now();
        report.read_ms += (plugin_started - prepare_started).as_millis() as u64;
        let call_plugin = plugin.clone();
        let outcome = tokio::task::spawn_blocking(move || call_plugin.match_records(&ctx, &inputs))
            .await
            .map_err(|e| MatchError::Plugin {
                org: tenant.org.clone(),
                message: format!("the matching plugin's call panicked: {e}"),
            })?;
        for line in outcome.log {
            if report.warnings.len() < 100 && !report.warnings.contains(&line.message) {
                tracing::warn!(tenant = %tenant.name, "matching plugin: {}", line.message);
                report.warnings.push(line.message);
            }
        }
        let mut results = Vec::with_capacity(part.len());
        for (candidate, answer) in part.iter().zip(outcome.results) {
            let result = answer
                .map_err(|e| e.to_string())
                .and_then(|ms| accept(ms, &shown));
            match &result {
                Ok(ms) if ms.is_empty() => report.unmatched += 1,
                Ok(ms) => {
                    report.matched += 1;
                    report.links += ms.len() as u64;
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(
                        tenant = %tenant.name,
                        record = candidate.id,
                        plugin = %decided_by,
                        "matching failed: {e}"
                    );
                }
            }
            results.push(result);
        }
        carry_thread_links(&mut threads, part, &results);
        // A failure row names the plugin version that failed it (`save_matches` stores
        // `decided_by` with it), as a failed email names its stage's plugin.
        for (candidate, result) in part.iter().zip(results) {
            outcomes.push(MatchOutcome {
                record_id: candidate.id,
                occurred_ms: candidate.occurred_ms,
                result,
            });
        }
        report.plugin_ms += plugin_started.elapsed().as_millis() as u64;
    }
    // Records queued but no longer stored leave the queue too.
    let stored: HashSet<i64> = batch.iter().map(|c| c.id).collect();
    for id in ids.iter().filter(|id| !stored.contains(id)) {
        outcomes.push(MatchOutcome {
            record_id: *id,
            occurred_ms: 0,
            result: Ok(Vec::new()),
        });
    }
    report.records += batch.len() as u64;
    let write_started = Instant::now();
    store
        .save_matches(
            tenant.id,
            job.kind,
            decided_by,
            &outcomes,
            job.hide_unmatched_events,
        )
        .await?;
    report.write_ms += write_started.elapsed().as_millis() as u64;
    Ok(())
}

/// Runs the org's job, waiting out another process's hold for up to `wait`: what a caller that
/// needs the result now (the CLI, a test) uses.
pub async fn run_org_waiting(
    env: &SyncEnv,
    org: &str,
    holder: &str,
    wait: Duration,
) -> Result<MatchReport, MatchError> {
    let deadline = Instant::now() + wait;
    loop {
        match run_org(env, org, holder).await {
            Err(MatchError::Busy { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => return other,
        }
    }
}
