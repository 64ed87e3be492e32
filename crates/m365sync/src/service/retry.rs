//! Retries (E10): a failed run, or every error of the last days, becomes a new run of the
//! mailboxes concerned. Their failed records are passed through the plugins again and their
//! folders brought up to date by whoever works on the run: the service's workers, or the CLI.

use serde::Serialize;

use m365sync_store::{Store, StoreError};

/// A retry that was set up.
#[derive(Debug, Clone, Serialize)]
pub struct RetryPlan {
    /// (tenant id, new run id, mailbox ids) per tenant with something to retry.
    pub runs: Vec<(i64, i64, Vec<i64>)>,
}

/// Sets up the retry of run `run_id`: a new run of the mailboxes that had errors in it.
pub async fn retry_run(store: &Store, run_id: i64) -> Result<RetryPlan, StoreError> {
    let run = store.run(run_id).await?;
    let mailboxes = store
        .mailboxes_to_retry(run.tenant_id, Some(run_id), 0)
        .await?;
    let mut plan = RetryPlan { runs: Vec::new() };
    if !mailboxes.is_empty() {
        let new_run = store
            .begin_run(run.tenant_id, None, &format!("retry of run {run_id}"))
            .await?;
        store.assign_to_run(new_run, &mailboxes).await?;
        plan.runs.push((run.tenant_id, new_run, mailboxes));
    }
    Ok(plan)
}

/// Sets up the retry of every error since `since_ms`, per tenant.
pub async fn retry_since(store: &Store, since_ms: i64) -> Result<RetryPlan, StoreError> {
    let mut plan = RetryPlan { runs: Vec::new() };
    for tenant in store.tenants(None).await? {
        let mailboxes = store.mailboxes_to_retry(tenant.id, None, since_ms).await?;
        if mailboxes.is_empty() {
            continue;
        }
        let new_run = store
            .begin_run(tenant.id, None, "retry of recent errors")
            .await?;
        store.assign_to_run(new_run, &mailboxes).await?;
        plan.runs.push((tenant.id, new_run, mailboxes));
    }
    Ok(plan)
}
