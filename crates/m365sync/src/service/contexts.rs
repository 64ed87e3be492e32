//! Tenant contexts shared by a process's workers: one per tenant run, built by the first worker
//! that needs it, so a run's mailboxes share one token cache and one Graph client (its
//! per-tenant concurrency limit then holds across workers).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::sync::error::SyncError;
use crate::sync::{SyncEnv, TenantContext};

/// The contexts of the runs this process is working on.
#[derive(Default)]
pub struct Contexts {
    by_tenant: Mutex<HashMap<i64, (i64, Arc<TenantContext>)>>,
}

impl Contexts {
    /// The context of `tenant_id`'s run `run_id`, built if this is the run's first mailbox here.
    /// A context of an earlier run is replaced.
    pub async fn get(
        &self,
        env: &SyncEnv,
        tenant_id: i64,
        run_id: i64,
    ) -> Result<Arc<TenantContext>, SyncError> {
        let mut map = self.by_tenant.lock().await;
        if let Some((run, ctx)) = map.get(&tenant_id) {
            if *run == run_id {
                return Ok(Arc::clone(ctx));
            }
        }
        let tenant = env.store.tenant_by_id(tenant_id).await?;
        let ctx = Arc::new(TenantContext::build(env, tenant).await?);
        map.insert(tenant_id, (run_id, Arc::clone(&ctx)));
        Ok(ctx)
    }

    /// Drops the contexts of runs that are over.
    pub async fn forget_runs(&self, runs: &[i64]) {
        let mut map = self.by_tenant.lock().await;
        map.retain(|_, (run, _)| !runs.contains(run));
    }

    /// Every live context, for the plugin watcher.
    pub async fn all(&self) -> Vec<Arc<TenantContext>> {
        self.by_tenant
            .lock()
            .await
            .values()
            .map(|(_, c)| Arc::clone(c))
            .collect()
    }
}
