//! Live plugin swaps: polls the registry's fingerprint and, when an install, rollback or
//! uninstall changed it, reloads the plugins of every tenant this process is working on. The
//! next page uses the new version; a page in flight finishes on the one it started with (P4).
//!
//! Each changed choice (an org's default or a tenant's plugin for one slot) counts as one swap
//! under the plugin swapped to (`m365sync_plugin_swaps_total{slot,plugin,version}`), whether or
//! not a tenant was being synced when it happened: tenants not in a run load the new version
//! when their next run starts, which is the same swap.

use std::collections::BTreeMap;
use std::sync::Arc;

use m365sync_plugin::{builtin, Kind};
use m365sync_store::plugins::Activation;

use super::Shared;

/// (org, tenant scope, slot) -> the activation.
type Choices = BTreeMap<(i64, i64, String), Activation>;

async fn choices(shared: &Shared) -> Option<Choices> {
    match shared.env.store.plugin_activations().await {
        Ok(rows) => Some(
            rows.into_iter()
                .map(|a| ((a.org_id, a.tenant_scope, a.slot.clone()), a))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the plugin registry");
            None
        }
    }
}

/// Counts the swaps from `old` to `new`: a choice added or changed counts under its new
/// plugin, a choice removed (uninstalled) under what replaces it: the org's default for a
/// tenant, else the built-in plugin.
fn count_swaps(shared: &Shared, old: &Choices, new: &Choices) {
    for (key, a) in new {
        let changed = old
            .get(key)
            .is_none_or(|o| o.digest != a.digest || o.activated_ms != a.activated_ms);
        if changed {
            shared.metrics.add_swap(&a.slot, &a.name, &a.version);
        }
    }
    for ((org, scope, slot), _) in old.iter().filter(|(k, _)| !new.contains_key(*k)) {
        match new.get(&(*org, 0, slot.clone())).filter(|_| *scope != 0) {
            Some(default) => shared
                .metrics
                .add_swap(slot, &default.name, &default.version),
            None => {
                let name = slot
                    .parse::<Kind>()
                    .map(|k| builtin::builtin(k).name)
                    .unwrap_or("built-in");
                shared.metrics.add_swap(slot, name, "built-in");
            }
        }
    }
}

/// The registry as the watcher first saw it: what later changes are swaps from.
pub struct Baseline {
    fingerprint: Option<String>,
    choices: Option<Choices>,
}

impl Baseline {
    /// Reads the registry now. The service does this before it reports itself started, so
    /// an install made as soon as it is up is counted as a swap, not taken for the start.
    pub async fn read(shared: &Shared) -> Baseline {
        Baseline {
            fingerprint: shared.env.store.plugin_fingerprint().await.ok(),
            choices: choices(shared).await,
        }
    }
}

/// The watcher's loop from `baseline`, until the service stops.
pub async fn plugin_watch(shared: Arc<Shared>, baseline: Baseline) {
    let stop = shared.stop.clone();
    let mut seen = baseline.fingerprint;
    let mut known = baseline.choices;
    while !stop.is_stopping() {
        tokio::select! {
            _ = tokio::time::sleep(shared.opts.plugin_poll) => {}
            _ = stop.stopped() => return,
        }
        let now = match shared.env.store.plugin_fingerprint().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the plugin registry");
                continue;
            }
        };
        if seen.as_ref() == Some(&now) {
            continue;
        }
        seen = Some(now);
        let current = choices(&shared).await;
        if let (Some(old), Some(new)) = (&known, &current) {
            count_swaps(&shared, old, new);
        }
        if current.is_some() {
            known = current;
        }
        for ctx in shared.contexts.all().await {
            match ctx.reload_plugins(&shared.env).await {
                Ok(true) => {
                    tracing::info!(tenant = %ctx.tenant.name, "plugins swapped; used from the next page");
                }
                Ok(false) => {}
                Err(e) => tracing::error!(
                    tenant = %ctx.tenant.name,
                    error = %e,
                    "the new plugin cannot be loaded; the tenant keeps its current plugins"
                ),
            }
        }
    }
}
