//! The run log as admins read it (E10, T3): filtered by tenant and to errors, and the mailboxes
//! a retry should take up again.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// One line of a run's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// The run the line belongs to.
    pub run_id: i64,
    /// The org's name.
    pub org: String,
    /// The tenant's name.
    pub tenant: String,
    /// The mailbox's address, for a line about one mailbox.
    pub mailbox: Option<String>,
    /// `info`, `warning` or `error`.
    pub level: String,
    /// What happened, and for an error what to do.
    pub message: String,
    /// When, epoch ms.
    pub at_ms: i64,
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this tenant (its id).
    pub tenant_id: Option<i64>,
    /// Only this org (its id); ignored when `tenant_id` is set.
    pub org_id: Option<i64>,
    /// Only errors.
    pub errors_only: bool,
    /// Only lines at or after this time.
    pub since_ms: Option<i64>,
    /// Only this run.
    pub run_id: Option<i64>,
    /// The most lines to return.
    pub limit: i64,
}

impl Store {
    /// Log lines, newest first.
    pub async fn logs(&self, f: &LogFilter) -> Result<Vec<LogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.run_id, o.name AS org, t.name AS tenant, m.address, l.level, l.message, l.at_ms
             FROM run_log l JOIN tenants t ON t.id = l.tenant_id JOIN orgs o ON o.id = t.org_id
                 LEFT JOIN mailboxes m ON m.id = l.mailbox_id
             WHERE ($1 = 0 OR l.tenant_id = $1) AND ($2 = 0 OR t.org_id = $2)
                 AND ($3 = 0 OR l.level = 'error') AND l.at_ms >= $4 AND ($5 = 0 OR l.run_id = $5)
             ORDER BY l.at_ms DESC, l.id DESC LIMIT $6",
        )
        .bind(f.tenant_id.unwrap_or(0))
        .bind(f.org_id.unwrap_or(0))
        .bind(f.errors_only as i64)
        .bind(f.since_ms.unwrap_or(0))
        .bind(f.run_id.unwrap_or(0))
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogEntry {
                    run_id: r.try_get("run_id")?,
                    org: r.try_get("org")?,
                    tenant: r.try_get("tenant")?,
                    mailbox: r.try_get("address")?,
                    level: r.try_get("level")?,
                    message: r.try_get("message")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }

    /// The mailboxes (ids) of a tenant with something to retry: a record that failed, or a
    /// logged error, in run `run_id` or (with `since_ms`) since that time; a mailbox that has
    /// completed a run since its logged errors is healed and left out of the latter.
    pub async fn mailboxes_to_retry(
        &self,
        tenant_id: i64,
        run_id: Option<i64>,
        since_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT id FROM (
                 SELECT f.mailbox_id AS id FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id
                 WHERE m.tenant_id = $1 AND ($2 = 0 OR f.run_id = $2) AND f.last_ms >= $3
                 UNION
                 SELECT l.mailbox_id AS id FROM run_log l JOIN mailboxes m ON m.id = l.mailbox_id
                 WHERE l.tenant_id = $1 AND l.mailbox_id IS NOT NULL AND l.level = 'error'
                     AND ($2 = 0 OR l.run_id = $2) AND l.at_ms >= $3
                     AND ($2 <> 0 OR l.at_ms > COALESCE(m.last_success_ms, 0))
             ) AS x ORDER BY id",
        )
        .bind(tenant_id)
        .bind(run_id.unwrap_or(0))
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// How many records wait for a retry in a tenant.
    pub async fn failed_record_count(&self, tenant_id: i64) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id WHERE m.tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await?
        .try_get("n")?)
    }
}
