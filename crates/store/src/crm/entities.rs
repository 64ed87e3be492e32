//! Entities: households and companies, with optional email domains (stored as JSON text for
//! the matching plugin). Their [`CrmRecord`] implementation (reads, create, update), the
//! entity-only operations (find by name, delete) and the per-kind names of the shared methods.

use std::collections::BTreeSet;
use std::future::Future;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::changes::{affected_addresses, queue_changes};
use super::contacts::ContactInput;
use super::record::{
    check_external_id, clean_text, lock_org, record_in, CrmRecord, ListQuery, RecordSave,
    SaveOutcome, Tx,
};
use crate::address::normalise_domain;
use crate::{now_ms, Store, StoreError};

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    /// A family: people who share a household.
    Household,
    /// A business.
    Company,
}

impl EntityKind {
    /// The stored (and exported) word.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Household => "household",
            EntityKind::Company => "company",
        }
    }
}

impl std::str::FromStr for EntityKind {
    type Err = String;

    /// `household` or `company`, in any case (`family`, `business` and `organisation` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "household" | "family" => Ok(EntityKind::Household),
            "company" | "business" | "organisation" | "organization" => Ok(EntityKind::Company),
            other => Err(format!(
                "kind '{other}' is neither household nor company; use one of those"
            )),
        }
    }
}

/// A stored entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// m365sync's id of the entity.
    pub id: i64,
    /// The CRM's own id, so imports update what earlier imports created.
    pub external_id: Option<String>,
    /// The entity's name (never empty; not necessarily unique).
    pub name: String,
    /// Household or company.
    pub kind: EntityKind,
    /// Normalised domains (`smith.example`), sorted, without duplicates.
    pub domains: Vec<String>,
    /// When the entity was created (epoch ms).
    pub created_ms: i64,
    /// When the entity last changed (epoch ms).
    pub updated_ms: i64,
}

/// What an entity is made of, as a caller gives it. An update replaces every field. Once
/// validated ([`CrmRecord::validate`]) the same type holds the checked, normalised fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityInput {
    /// The CRM's own id of the entity, unique in the org.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The name; required.
    pub name: String,
    /// Household or company.
    pub kind: EntityKind,
    /// Email domains, in any case, with or without a leading `@`.
    #[serde(default)]
    pub domains: Vec<String>,
}

impl From<&Entity> for EntityInput {
    fn from(e: &Entity) -> Self {
        EntityInput {
            external_id: e.external_id.clone(),
            name: e.name.clone(),
            kind: e.kind,
            domains: e.domains.clone(),
        }
    }
}

fn entity_from(r: &AnyRow) -> Result<Entity, StoreError> {
    let kind: String = r.try_get("kind")?;
    let domains: String = r.try_get("domains")?;
    Ok(Entity {
        id: r.try_get("id")?,
        external_id: r.try_get("external_id")?,
        name: r.try_get("name")?,
        kind: kind.parse().map_err(StoreError::Invalid)?,
        domains: serde_json::from_str(&domains).map_err(|e| {
            StoreError::Invalid(format!(
                "stored entity domains '{domains}' are not a list: {e}"
            ))
        })?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

/// An entity's fields checked and normalised: name required, domains normalised, sorted,
/// without duplicates.
fn clean_entity(input: &EntityInput) -> Result<EntityInput, StoreError> {
    let name = clean_text("name", Some(&input.name))?.ok_or_else(|| {
        StoreError::Invalid("an entity needs a name, and the name is empty; give one".into())
    })?;
    let mut domains = BTreeSet::new();
    for d in &input.domains {
        if d.trim().is_empty() {
            continue;
        }
        domains.insert(normalise_domain(d).map_err(|e| {
            StoreError::Invalid(format!(
                "domain '{}' is not a domain: {e}; correct it or leave it out",
                d.trim()
            ))
        })?);
    }
    Ok(EntityInput {
        external_id: clean_text("external_id", input.external_id.as_deref())?,
        name,
        kind: input.kind,
        domains: domains.into_iter().collect(),
    })
}

impl CrmRecord for Entity {
    const KIND: &'static str = "entity";
    const PLURAL: &'static str = "entities";
    const TABLE: &'static str = "entities";
    const SELECT: &'static str = "SELECT * FROM entities";
    const ALIAS: &'static str = "";
    const FILTER: &'static str = "LOWER(name) LIKE $4 ESCAPE '\\' OR domains LIKE $4 ESCAPE '\\'";

    type Input = EntityInput;

    fn id(&self) -> i64 {
        self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(input: &EntityInput) -> Result<EntityInput, StoreError> {
        clean_entity(input)
    }

    fn external_id(input: &EntityInput) -> Option<&str> {
        input.external_id.as_deref()
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        entity_from(row)
    }

    async fn complete(
        _store: &Store,
        _conn: &mut AnyConnection,
        records: Vec<Self>,
    ) -> Result<Vec<Self>, StoreError> {
        Ok(records)
    }

    fn create_in(
        tx: &mut Tx<'_>,
        org_id: i64,
        clean: &EntityInput,
    ) -> impl Future<Output = Result<Self, StoreError>> + Send {
        create_entity_in(tx, org_id, clean)
    }

    fn update_in(
        store: &Store,
        tx: &mut Tx<'_>,
        org_id: i64,
        id: i64,
        clean: &EntityInput,
    ) -> impl Future<Output = Result<(SaveOutcome, Self), StoreError>> + Send {
        update_entity_in(store, tx, org_id, id, clean)
    }

    async fn delete_in(
        store: &Store,
        tx: &mut Tx<'_>,
        org_id: i64,
        id: i64,
    ) -> Result<(Self, usize), StoreError> {
        let old = entity_in(tx, org_id, id).await?;
        let members = store.contacts_of_entity(tx, org_id, id).await?;
        let mut affected = BTreeSet::new();
        for c in &members {
            affected.extend(affected_addresses(Some(&ContactInput::from(c)), None));
        }
        let now = now_ms();
        queue_changes(tx, org_id, &affected, now).await?;
        sqlx::query("UPDATE contacts SET entity_id = NULL, updated_ms = $1 WHERE org_id = $2 AND entity_id = $3")
            .bind(now)
            .bind(org_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("UPDATE activity_matches SET entity_id = NULL WHERE entity_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM entities WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok((old, members.len()))
    }
}

fn domains_json(domains: &[String]) -> String {
    serde_json::to_string(domains).unwrap_or_else(|_| "[]".into())
}

async fn create_entity_in(
    tx: &mut Tx<'_>,
    org_id: i64,
    e: &EntityInput,
) -> Result<Entity, StoreError> {
    lock_org(tx, org_id).await?;
    check_external_id::<Entity>(tx, org_id, None, e.external_id.as_deref()).await?;
    let now = now_ms();
    let id: i64 = sqlx::query(
        "INSERT INTO entities (org_id, external_id, name, kind, domains, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(&e.external_id)
    .bind(&e.name)
    .bind(e.kind.as_str())
    .bind(domains_json(&e.domains))
    .bind(now)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .next()
    .ok_or(sqlx::Error::RowNotFound)?
    .try_get("id")?;
    entity_in(tx, org_id, id).await
}

/// One entity of the org, in `tx` (an entity needs nothing beyond its row, so no store).
async fn entity_in(tx: &mut Tx<'_>, org_id: i64, id: i64) -> Result<Entity, StoreError> {
    let row = sqlx::query("SELECT * FROM entities WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no entity with id {id} in this org; `m365sync entity list` shows them"
            ))
        })?;
    entity_from(&row)
}

async fn update_entity_in(
    store: &Store,
    tx: &mut Tx<'_>,
    org_id: i64,
    id: i64,
    e: &EntityInput,
) -> Result<(SaveOutcome, Entity), StoreError> {
    lock_org(tx, org_id).await?;
    let old: Entity = record_in(store, tx, org_id, id).await?;
    if &EntityInput::from(&old) == e {
        return Ok((SaveOutcome::Unchanged, old));
    }
    check_external_id::<Entity>(tx, org_id, Some(id), e.external_id.as_deref()).await?;
    sqlx::query(
        "UPDATE entities SET external_id = $1, name = $2, kind = $3, domains = $4, updated_ms = $5
         WHERE id = $6 AND org_id = $7",
    )
    .bind(&e.external_id)
    .bind(&e.name)
    .bind(e.kind.as_str())
    .bind(domains_json(&e.domains))
    .bind(now_ms())
    .bind(id)
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok((SaveOutcome::Updated, entity_in(tx, org_id, id).await?))
}

impl Store {
    // ----- reads -----

    /// One entity of the org; `NotFound` when it does not exist or belongs to another org.
    pub async fn entity(&self, org_id: i64, id: i64) -> Result<Entity, StoreError> {
        self.record(org_id, id).await
    }

    /// The org's entity with this external id, if any.
    pub async fn entity_by_external_id(
        &self,
        org_id: i64,
        external_id: &str,
    ) -> Result<Option<Entity>, StoreError> {
        self.record_by_external_id(org_id, external_id).await
    }

    /// The org's entities with exactly this name (trimmed, case-insensitive), by id. Names need
    /// not be unique; a caller resolving a name should refuse more than one.
    pub async fn entities_named(&self, org_id: i64, name: &str) -> Result<Vec<Entity>, StoreError> {
        sqlx::query("SELECT * FROM entities WHERE org_id = $1 AND LOWER(name) = $2 ORDER BY id")
            .bind(org_id)
            .bind(name.trim().to_lowercase())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(entity_from)
            .collect()
    }

    /// A page of the org's entities, by id (see [`ListQuery`]). The filter looks in the name
    /// and the domains.
    pub async fn list_entities(
        &self,
        org_id: i64,
        q: &ListQuery,
    ) -> Result<Vec<Entity>, StoreError> {
        self.list_records(org_id, q).await
    }

    /// Every entity of the org, by id.
    pub async fn all_entities(&self, org_id: i64) -> Result<Vec<Entity>, StoreError> {
        self.all_records(org_id).await
    }

    // ----- changes -----

    /// Creates an entity in the org.
    pub async fn create_entity(
        &self,
        org_id: i64,
        input: &EntityInput,
    ) -> Result<Entity, StoreError> {
        self.create_record(org_id, input).await
    }

    /// Replaces an entity's fields with `input`; `Unchanged` when it already holds exactly this.
    pub async fn update_entity(
        &self,
        org_id: i64,
        id: i64,
        input: &EntityInput,
    ) -> Result<(SaveOutcome, Entity), StoreError> {
        self.update_record(org_id, id, input).await
    }

    /// Creates or updates the org's entity with `input.external_id` (required), for imports.
    pub async fn upsert_entity_by_external_id(
        &self,
        org_id: i64,
        input: &EntityInput,
    ) -> Result<(SaveOutcome, Entity), StoreError> {
        self.upsert_record_by_external_id(org_id, input).await
    }

    /// Saves many entities in one transaction (see [`Store::save_records`]).
    pub async fn save_entities(
        &self,
        org_id: i64,
        items: &[RecordSave<EntityInput>],
    ) -> Result<Vec<Result<(SaveOutcome, Entity), StoreError>>, StoreError> {
        self.save_records(org_id, items).await
    }

    /// Deletes an entity. Its contacts stay, without an entity; their addresses are queued
    /// (their matches carry the entity), and activity matches naming it lose it. Returns what
    /// was deleted and how many contacts it had.
    pub async fn delete_entity(&self, org_id: i64, id: i64) -> Result<(Entity, usize), StoreError> {
        self.delete_record(org_id, id).await
    }
}
