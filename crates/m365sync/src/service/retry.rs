//! Retries (E10): a failed run, or every error of the last days, becomes a new run of the
//! mailboxes concerned. Their failed records are passed through the plugins again and their
//! folders brought up to date by whoever works on the run: the service's workers, or the CLI.

use serde::Serialize;

use m365sync_store::{Store, StoreError};

/// A retry that was set up: one new run per tenant with something to retry (none when
/// nothing had errors).
#[derive(Debug, Clone, Serialize)]
pub struct RetryPlan {
    /// The runs started.
    pub runs: Vec<RetryRun>,
}

/// One tenant's retry run.
#[derive(Debug, Clone, Serialize)]
pub struct RetryRun {
    /// The tenant's id.
    pub tenant_id: i64,
    /// The new run, as `GET /api/runs/{id}` and `m365sync runs` name it.
    pub run_id: i64,
    /// The mailboxes it syncs again (those with errors), by id.
    pub mailbox_ids: Vec<i64>,
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
        plan.runs.push(RetryRun {
            tenant_id: run.tenant_id,
            run_id: new_run,
            mailbox_ids: mailboxes,
        });
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
        plan.runs.push(RetryRun {
            tenant_id: tenant.id,
            run_id: new_run,
            mailbox_ids: mailboxes,
        });
    }
    Ok(plan)
}
