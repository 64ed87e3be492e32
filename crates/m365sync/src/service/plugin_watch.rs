//! Live plugin swaps: polls the registry's fingerprint and, when an install or rollback changed
//! it, reloads the plugins of every tenant this process is working on. The next page uses the
//! new version; a page in flight finishes on the one it started with (P4).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Shared;

/// The watcher's loop, until the service stops.
pub async fn plugin_watch(shared: Arc<Shared>) {
    let stop = shared.stop.clone();
    let mut seen = shared.env.store.plugin_fingerprint().await.ok();
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
        for ctx in shared.contexts.all().await {
            match ctx.reload_plugins(&shared.env).await {
                Ok(true) => {
                    shared.metrics.plugin_swaps.fetch_add(1, Ordering::Relaxed);
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
