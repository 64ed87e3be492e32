//! Records a stage failed on, as admins see and handle them (E10, issue 14): each named by its
//! id, subject, mailbox and folder, with the stage, the plugin version and the error; retried
//! by every run until it has failed the tenant's `failure_attempts` times, then parked (kept
//! and listed, retried only on request). The records themselves are written by the page
//! commits (`sync::write_exclusions_and_failures`).

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// A record a stage failed on.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The org's name.
    pub org: String,
    /// The tenant's name.
    pub tenant: String,
    /// The mailbox's id in the store.
    pub mailbox_id: i64,
    /// The mailbox's address.
    pub mailbox: String,
    /// The record's Graph id in that mailbox.
    pub graph_id: String,
    /// The folder's key (`inbox`, a Graph folder id, or `calendar`).
    pub folder: String,
    /// The folder's path (`Inbox/Clients/Acme`) when the folder tree knows it, else the key.
    pub folder_path: String,
    /// The record's subject.
    pub subject: String,
    /// The stage that failed: `convert`, `series`, `exclude` or `map`.
    pub stage: String,
    /// The stamp of the plugin whose stage failed (`name version sha256:digest`); empty for
    /// the product's own stages.
    pub plugin: String,
    /// The error, as the stage said it.
    pub error: String,
    /// How many times it has failed.
    pub attempts: i64,
    /// Parked: no longer retried by runs, only on request.
    pub parked: bool,
    /// When it first failed (epoch ms).
    pub first_ms: i64,
    /// When it last failed (epoch ms).
    pub last_ms: i64,
    /// The run in which it last failed.
    pub run_id: Option<i64>,
}

/// Which failed records to read or retry.
#[derive(Debug, Clone, Default)]
pub struct FailureFilter {
    /// Only this org's (its id).
    pub org_id: Option<i64>,
    /// Only this tenant's (its id).
    pub tenant_id: Option<i64>,
    /// Only this mailbox's (its id).
    pub mailbox_id: Option<i64>,
    /// Only parked ones (`Some(true)`) or only those still retried (`Some(false)`).
    pub parked: Option<bool>,
    /// Only this record (its Graph id).
    pub graph_id: Option<String>,
    /// Only records that last failed in this run.
    pub run_id: Option<i64>,
    /// At most this many (0: 200).
    pub limit: i64,
}

const WHERE: &str =
    "($1 = 0 OR t.org_id = $1) AND ($2 = 0 OR m.tenant_id = $2) AND ($3 = 0 OR f.mailbox_id = $3)
     AND ($4 = -1 OR f.parked = $4) AND ($5 = '' OR f.graph_id = $5) AND ($6 = 0 OR f.run_id = $6)";

impl Store {
    /// Failed records, most recently failed first.
    pub async fn failures(&self, f: &FailureFilter) -> Result<Vec<Failure>, StoreError> {
        let sql = format!(
            "SELECT o.name AS org, t.name AS tenant, f.mailbox_id, m.address, f.graph_id, f.folder,
                 COALESCE(mf.path, f.folder) AS folder_path, f.subject, f.stage, f.plugin, f.error,
                 f.attempts, f.parked, f.first_ms, f.last_ms, f.run_id
             FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id
                 JOIN tenants t ON t.id = m.tenant_id JOIN orgs o ON o.id = t.org_id
                 LEFT JOIN mail_folders mf ON mf.mailbox_id = f.mailbox_id AND mf.folder_key = f.folder AND mf.removed = 0
             WHERE {WHERE}
             ORDER BY f.last_ms DESC, f.graph_id LIMIT $7"
        );
        let rows = bind_filter(sqlx::query(&sql), f)
            .bind(if f.limit > 0 { f.limit } else { 200 })
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Failure {
                    org: r.try_get("org")?,
                    tenant: r.try_get("tenant")?,
                    mailbox_id: r.try_get("mailbox_id")?,
                    mailbox: r.try_get("address")?,
                    graph_id: r.try_get("graph_id")?,
                    folder: r.try_get("folder")?,
                    folder_path: r.try_get("folder_path")?,
                    subject: r.try_get("subject")?,
                    stage: r.try_get("stage")?,
                    plugin: r.try_get("plugin")?,
                    error: r.try_get("error")?,
                    attempts: r.try_get("attempts")?,
                    parked: r.try_get::<i64, _>("parked")? != 0,
                    first_ms: r.try_get("first_ms")?,
                    last_ms: r.try_get("last_ms")?,
                    run_id: r.try_get("run_id")?,
                })
            })
            .collect()
    }

    /// Takes the matching records out of the parking lot with their attempts reset, so the
    /// next run of their mailbox tries them again. Returns the mailboxes concerned (to make
    /// their next run due).
    pub async fn unpark_failures(&self, f: &FailureFilter) -> Result<Vec<i64>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT f.mailbox_id FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id
                 JOIN tenants t ON t.id = m.tenant_id WHERE {WHERE}"
        );
        let mailboxes: Vec<i64> = bind_filter(sqlx::query(&sql), f)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| r.try_get("mailbox_id"))
            .collect::<Result<_, _>>()?;
        let sql = format!(
            "UPDATE failed_records SET parked = 0, attempts = 0 WHERE (mailbox_id, graph_id) IN (
                 SELECT f.mailbox_id, f.graph_id FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id
                     JOIN tenants t ON t.id = m.tenant_id WHERE {WHERE})"
        );
        bind_filter(sqlx::query(&sql), f)
            .execute(self.pool())
            .await?;
        Ok(mailboxes)
    }

    /// Per mailbox of a tenant: (records owed a retry, records parked). A mailbox with either
    /// is `degraded` in its health.
    pub async fn failure_counts(
        &self,
        tenant_id: i64,
    ) -> Result<std::collections::HashMap<i64, (i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.mailbox_id, SUM(CASE WHEN f.parked = 0 THEN 1 ELSE 0 END) AS owed,
                 SUM(CASE WHEN f.parked = 1 THEN 1 ELSE 0 END) AS parked
             FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id
             WHERE m.tenant_id = $1 GROUP BY f.mailbox_id",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("mailbox_id")?,
                    (r.try_get("owed")?, r.try_get("parked")?),
                ))
            })
            .collect()
    }
}

fn bind_filter<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    f: &'q FailureFilter,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(f.org_id.unwrap_or(0))
        .bind(f.tenant_id.unwrap_or(0))
        .bind(f.mailbox_id.unwrap_or(0))
        .bind(match f.parked {
            None => -1i64,
            Some(p) => p as i64,
        })
        .bind(f.graph_id.as_deref().unwrap_or(""))
        .bind(f.run_id.unwrap_or(0))
}
