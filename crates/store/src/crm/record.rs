//! The one path contacts and entities share: the [`CrmRecord`] trait that says what differs
//! between the two kinds (table, columns, validation, the kind's own writes), and the `Store`
//! methods written once over it: read by id or external id, list a page, read all, create,
//! update, upsert by external id and save a batch. The per-kind methods
//! ([`Store::create_contact`], [`Store::create_entity`], ...) are thin names for these.
//!
//! Also here: what both kinds' validation and writes use (text checks, the org's write lock,
//! commit-or-rollback, LIKE patterns).

use std::future::Future;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::address::normalise_address;
use crate::{Backend, Store, StoreError};

/// The most records one listing returns; larger pages are cut to this.
pub const MAX_PAGE: i64 = 1000;
/// The longest name or external id accepted.
const MAX_TEXT_LEN: usize = 500;
/// Rows per multi-row INSERT: few statements, well under both databases' parameter limits.
pub(crate) const ROWS_PER_STATEMENT: usize = 300;

/// One record of a batch save ([`Store::save_contacts`], [`Store::save_entities`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSave<I> {
    /// The record to update; `None` updates the one with the input's external id, if any, and
    /// otherwise creates a record.
    pub id: Option<i64>,
    /// The record's fields as the caller gives them (an update replaces every field).
    pub input: I,
}

/// What a save did, so imports can report created, updated and unchanged records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveOutcome {
    /// A new record was written.
    Created,
    /// The stored record was changed.
    Updated,
    /// The stored record already held exactly this (nothing was written or queued).
    Unchanged,
}

impl SaveOutcome {
    /// The word for reports: `created`, `updated` or `unchanged` (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            SaveOutcome::Created => "created",
            SaveOutcome::Updated => "updated",
            SaveOutcome::Unchanged => "unchanged",
        }
    }
}

/// One page of a listing: records with ids above `after_id`, by id, at most `limit`
/// (1..=[`MAX_PAGE`]); `filter` keeps those whose name or an address (for entities, a domain)
/// contains it, case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// The most records to return (cut to 1..=[`MAX_PAGE`]).
    pub limit: i64,
    /// Only records with ids above this: the previous page's last id.
    pub after_id: Option<i64>,
    /// Only records whose name or an address (entities: a domain) contains this, in any case.
    pub filter: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: 100,
            after_id: None,
            filter: None,
        }
    }
}

/// A transaction on the store's pool.
pub(crate) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// A kind of CRM record (a contact or an entity): what the shared path needs to know of it.
///
/// The constants and row reader make the reads table-driven; `validate`, `create_in` and
/// `update_in` hold what is the kind's own (contact points and `contact_changes` for contacts).
/// Implemented by [`crate::crm::Contact`] and [`crate::crm::Entity`] only; product code uses it
/// to write imports, exports and commands once for both.
pub trait CrmRecord: Sized + Send + Sync + Unpin + 'static {
    /// The kind's word in messages and commands: `contact` or `entity`.
    const KIND: &'static str;
    /// The kind's plural: `contacts` or `entities` (also the key of a JSON file's list).
    const PLURAL: &'static str;
    /// The table the records are in.
    const TABLE: &'static str;
    /// `SELECT <columns> FROM <tables>`: how a record is read (with what it joins).
    const SELECT: &'static str;
    /// The table's alias in [`Self::SELECT`] with its dot (`c.`), or empty.
    const ALIAS: &'static str;
    /// A listing's filter condition over the LIKE pattern `$4`.
    const FILTER: &'static str;

    /// What a caller gives to create or update a record (an update replaces every field).
    type Input: Clone + PartialEq + Send + Sync + for<'a> From<&'a Self>;

    /// The record's m365sync id.
    fn id(&self) -> i64;

    /// The record's name.
    fn name(&self) -> &str;

    /// The input checked and normalised, or `Invalid` naming the field and the value.
    fn validate(input: &Self::Input) -> Result<Self::Input, StoreError>;

    /// The CRM's own id of the record, if the input has one.
    fn external_id(input: &Self::Input) -> Option<&str>;

    /// A record from a row of [`Self::SELECT`].
    fn from_row(row: &AnyRow) -> Result<Self, StoreError>;

    /// Fills in what is not in the row (a contact's contact points): one statement for the lot.
    fn complete(
        store: &Store,
        conn: &mut AnyConnection,
        records: Vec<Self>,
    ) -> impl Future<Output = Result<Vec<Self>, StoreError>> + Send;

    /// Writes a new record from a validated input, in `tx` (which holds the org's lock).
    fn create_in(
        tx: &mut Tx<'_>,
        org_id: i64,
        clean: &Self::Input,
    ) -> impl Future<Output = Result<Self, StoreError>> + Send;

    /// Replaces record `id`'s fields with a validated input, in `tx`; `Unchanged` (nothing
    /// written) when it already holds exactly this.
    fn update_in(
        store: &Store,
        tx: &mut Tx<'_>,
        org_id: i64,
        id: i64,
        clean: &Self::Input,
    ) -> impl Future<Output = Result<(SaveOutcome, Self), StoreError>> + Send;

    /// Deletes record `id` with what hangs off it, in `tx` (which holds the org's lock), and
    /// queues the addresses it affects; answers the record as it was and how many contacts
    /// lost it as their entity (0 for a contact).
    fn delete_in(
        store: &Store,
        tx: &mut Tx<'_>,
        org_id: i64,
        id: i64,
    ) -> impl Future<Output = Result<(Self, usize), StoreError>> + Send;
}

/// A trimmed text field, `None` when empty; `Invalid` when too long or not one line.
pub(crate) fn clean_text(field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_TEXT_LEN || v.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{field} '{}' is too long or holds a control character; keep it to one line of at most {MAX_TEXT_LEN} characters",
            v.chars().take(40).collect::<String>()
        )));
    }
    Ok(Some(v.to_string()))
}

/// A normalised address, `None` when empty; `Invalid` naming the field when malformed.
pub(crate) fn clean_address(
    field: &str,
    value: Option<&str>,
) -> Result<Option<String>, StoreError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => normalise_address(v).map(Some).map_err(|e| {
            StoreError::Invalid(format!(
                "{field} '{v}' is not an email address: {e}; correct it or leave it empty"
            ))
        }),
    }
}

/// Commits `tx` when `result` is Ok, rolls it back explicitly otherwise (SQLite holds its write
/// lock until the rollback actually runs).
pub(crate) async fn finish<T>(tx: Tx<'_>, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match result {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

/// Takes the org's write lock first, so a change reads what it then writes without another
/// writer slipping in between (SQLite would otherwise fail the upgrade from read to write).
pub(crate) async fn lock_org(tx: &mut Tx<'_>, org_id: i64) -> Result<(), StoreError> {
    let n = sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound(format!("no org with id {org_id}")));
    }
    Ok(())
}

/// A bind marker: SQLite's numbered `$n` markers cost quadratically in long lists, `?` binds
/// in order; PostgreSQL needs `$n`.
pub(crate) fn marker(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".into(),
        Backend::Postgres => format!("${n}"),
    }
}

/// `%text%` for LIKE, with LIKE's own characters escaped (by `\`), lower-cased.
pub(crate) fn like_pattern(filter: &str) -> String {
    let mut p = String::from("%");
    for c in filter.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn page_limit(q: &ListQuery) -> i64 {
    q.limit.clamp(1, MAX_PAGE)
}

/// One record of the org, on `conn`; `NotFound` when it does not exist or is another org's.
pub(crate) async fn record_in<R: CrmRecord>(
    store: &Store,
    conn: &mut AnyConnection,
    org_id: i64,
    id: i64,
) -> Result<R, StoreError> {
    let a = R::ALIAS;
    let sql = format!("{} WHERE {a}org_id = $1 AND {a}id = $2", R::SELECT);
    let row = sqlx::query(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no {kind} with id {id} in this org; `m365sync {kind} list` shows them",
                kind = R::KIND
            ))
        })?;
    let record = R::from_row(&row)?;
    Ok(R::complete(store, conn, vec![record]).await?.remove(0))
}

/// The id of the org's record with this external id, if any, read in `tx`.
async fn id_by_external_id<R: CrmRecord>(
    tx: &mut Tx<'_>,
    org_id: i64,
    external_id: &str,
) -> Result<Option<i64>, StoreError> {
    let sql = format!(
        "SELECT id FROM {} WHERE org_id = $1 AND external_id = $2",
        R::TABLE
    );
    Ok(sqlx::query(&sql)
        .bind(org_id)
        .bind(external_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get("id"))
        .transpose()?)
}

/// Refuses an external id another record of the org (not `id`) already has.
pub(crate) async fn check_external_id<R: CrmRecord>(
    tx: &mut Tx<'_>,
    org_id: i64,
    id: Option<i64>,
    external_id: Option<&str>,
) -> Result<(), StoreError> {
    let Some(ext) = external_id else {
        return Ok(());
    };
    let sql = format!(
        "SELECT id FROM {} WHERE org_id = $1 AND external_id = $2 AND id <> $3",
        R::TABLE
    );
    let other = sqlx::query(&sql)
        .bind(org_id)
        .bind(ext)
        .bind(id.unwrap_or(0))
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(other) = other {
        let other: i64 = other.try_get("id")?;
        let kind = R::KIND;
        return Err(StoreError::Invalid(format!(
            "external_id '{ext}' is already {kind} {other}'s; give another, or update {kind} {other}"
        )));
    }
    Ok(())
}

impl Store {
    /// One record of the org; `NotFound` when it does not exist or belongs to another org.
    pub async fn record<R: CrmRecord>(&self, org_id: i64, id: i64) -> Result<R, StoreError> {
        let mut conn = self.pool().acquire().await?;
        record_in(self, &mut conn, org_id, id).await
    }

    /// The org's record with this external id (trimmed), if any.
    pub async fn record_by_external_id<R: CrmRecord>(
        &self,
        org_id: i64,
        external_id: &str,
    ) -> Result<Option<R>, StoreError> {
        let a = R::ALIAS;
        let sql = format!("{} WHERE {a}org_id = $1 AND {a}external_id = $2", R::SELECT);
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(external_id.trim())
            .fetch_all(&mut *conn)
            .await?;
        let found = rows
            .iter()
            .map(R::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(R::complete(self, &mut conn, found).await?.pop())
    }

    /// A page of the org's records, by id (see [`ListQuery`]; the kind's
    /// [`CrmRecord::FILTER`] says where the filter looks).
    pub async fn list_records<R: CrmRecord>(
        &self,
        org_id: i64,
        q: &ListQuery,
    ) -> Result<Vec<R>, StoreError> {
        let filter = q.filter.as_deref().filter(|f| !f.trim().is_empty());
        let a = R::ALIAS;
        let sql = format!(
            "{} WHERE {a}org_id = $1 AND {a}id > $2 AND ($3 = 0 OR {})
             ORDER BY {a}id LIMIT $5",
            R::SELECT,
            R::FILTER
        );
        let mut conn = self.pool().acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(q.after_id.unwrap_or(0))
            .bind(i64::from(filter.is_some()))
            .bind(like_pattern(filter.unwrap_or("")))
            .bind(page_limit(q))
            .fetch_all(&mut *conn)
            .await?;
        let found = rows
            .iter()
            .map(R::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        R::complete(self, &mut conn, found).await
    }

    /// Every record of the org, by id (for exports; pages through [`Store::list_records`]).
    pub async fn all_records<R: CrmRecord>(&self, org_id: i64) -> Result<Vec<R>, StoreError> {
        let mut out: Vec<R> = Vec::new();
        loop {
            let page = self
                .list_records::<R>(
                    org_id,
                    &ListQuery {
                        limit: MAX_PAGE,
                        after_id: out.last().map(R::id),
                        filter: None,
                    },
                )
                .await?;
            let done = (page.len() as i64) < MAX_PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Creates a record in the org (a contact's addresses are queued for re-matching).
    pub async fn create_record<R: CrmRecord>(
        &self,
        org_id: i64,
        input: &R::Input,
    ) -> Result<R, StoreError> {
        let clean = R::validate(input)?;
        let mut tx = self.pool().begin().await?;
        let result = R::create_in(&mut tx, org_id, &clean).await;
        finish(tx, result).await
    }

    /// Replaces a record's fields with `input` (a contact's affected addresses are queued).
    /// `NotFound` when the record is not the org's; `Unchanged` (nothing written) when it
    /// already holds exactly this.
    pub async fn update_record<R: CrmRecord>(
        &self,
        org_id: i64,
        id: i64,
        input: &R::Input,
    ) -> Result<(SaveOutcome, R), StoreError> {
        let clean = R::validate(input)?;
        let mut tx = self.pool().begin().await?;
        let result = R::update_in(self, &mut tx, org_id, id, &clean).await;
        finish(tx, result).await
    }

    /// Creates or updates the org's record with the input's external id (required): what
    /// imports do, so importing the same file twice changes nothing the second time.
    pub async fn upsert_record_by_external_id<R: CrmRecord>(
        &self,
        org_id: i64,
        input: &R::Input,
    ) -> Result<(SaveOutcome, R), StoreError> {
        let clean = R::validate(input)?;
        let Some(ext) = R::external_id(&clean).map(str::to_string) else {
            return Err(StoreError::Invalid(format!(
                "an upsert needs an external_id, and it is empty; give the CRM's id of the {}",
                R::KIND
            )));
        };
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            match id_by_external_id::<R>(&mut tx, org_id, &ext).await? {
                Some(id) => R::update_in(self, &mut tx, org_id, id, &clean).await,
                None => R::create_in(&mut tx, org_id, &clean)
                    .await
                    .map(|r| (SaveOutcome::Created, r)),
            }
        }
        .await;
        finish(tx, result).await
    }

    /// Deletes a record of the org (see [`CrmRecord::delete_in`] and the kinds'
    /// [`Store::delete_contact`], [`Store::delete_entity`]): the record as it was, and how many
    /// contacts lost it as their entity.
    pub async fn delete_record<R: CrmRecord>(
        &self,
        org_id: i64,
        id: i64,
    ) -> Result<(R, usize), StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            R::delete_in(self, &mut tx, org_id, id).await
        }
        .await;
        finish(tx, result).await
    }

    /// Saves many records in one transaction (what imports do: one commit per batch instead
    /// of one per row). Each item updates the record `id`, or with no id the org's record
    /// with the input's external id, or creates one. A bad item (invalid, unknown id) gets its
    /// own error and the others are saved; a database failure saves none and is the error.
    pub async fn save_records<R: CrmRecord>(
        &self,
        org_id: i64,
        items: &[RecordSave<R::Input>],
    ) -> Result<Vec<Result<(SaveOutcome, R), StoreError>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let one = async {
                    let clean = R::validate(&item.input)?;
                    let id = match (item.id, R::external_id(&clean)) {
                        (Some(id), _) => Some(id),
                        (None, Some(ext)) => id_by_external_id::<R>(&mut tx, org_id, ext).await?,
                        (None, None) => None,
                    };
                    match id {
                        Some(id) => R::update_in(self, &mut tx, org_id, id, &clean).await,
                        None => R::create_in(&mut tx, org_id, &clean)
                            .await
                            .map(|r| (SaveOutcome::Created, r)),
                    }
                }
                .await;
                match one {
                    Err(e @ (StoreError::Invalid(_) | StoreError::NotFound(_))) => out.push(Err(e)),
                    Err(other) => return Err(other),
                    Ok(saved) => out.push(Ok(saved)),
                }
            }
            Ok(out)
        }
        .await;
        finish(tx, result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_like_characters() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
