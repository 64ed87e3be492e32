//! The CRM's own records, per org: contacts (a name, an Email, an Alternate Email, any number of
//! contact-point emails, and an entity) and entities (households or companies, with optional
//! domains). The matching job links synced mail to them (E8); a contact carrying a sync user's
//! address is reported (E9).
//!
//! Every function takes the org id and treats a record of another org as absent, so one org
//! never reads or changes another's records by guessing ids. Addresses and domains are stored
//! normalised ([`crate::address`]); a bad value is a [`StoreError::Invalid`] naming the
//! field and the value.
//!
//! Every change that adds, alters or removes an address of a contact (its field or its
//! contact's entity included) writes that address to `contact_changes` in the change's own
//! transaction, so the matching job re-matches exactly the stored mail of those addresses and
//! never misses a change however processes interleave. Which addresses a change affects:
//! - create: all the new contact's addresses;
//! - update: the addresses whose field changed (added, removed, or moved between Email,
//!   Alternate Email and contact points), or all old and new ones when the entity changed;
//! - delete: all its addresses (its activity matches go with it);
//! - deleting an entity: all addresses of the contacts that referenced it.
//!
//! Entity domains are stored for the matching plugin's use; changing them queues nothing,
//! because `contact_changes` is keyed by address.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{now_ms, Backend, Store, StoreError};
use crate::address::{normalise_address, normalise_domain};

/// The most records one listing returns; larger pages are cut to this.
pub const MAX_PAGE: i64 = 1000;
/// The longest name or external id accepted.
const MAX_TEXT_LEN: usize = 500;

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: i64,
    /// The CRM's own id, so imports update what earlier imports created.
    pub external_id: Option<String>,
    pub name: String,
    /// The "Email" field, normalised.
    pub email: Option<String>,
    /// The "Alternate Email" field, normalised.
    pub alt_email: Option<String>,
    /// Further addresses the contact is reached at, normalised, sorted, without duplicates.
    pub contact_points: Vec<String>,
    pub entity_id: Option<i64>,
    /// The entity's name, for listings (read with the contact, never written through it).
    pub entity_name: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Contact {
    /// Every address of the contact with the field it is in: `email`, `alt_email` or
    /// `contact_point` (the same address may be in several).
    pub fn addresses(&self) -> Vec<(&str, &'static str)> {
        let mut out = Vec::new();
        if let Some(e) = &self.email {
            out.push((e.as_str(), "email"));
        }
        if let Some(e) = &self.alt_email {
            out.push((e.as_str(), "alt_email"));
        }
        for p in &self.contact_points {
            out.push((p.as_str(), "contact_point"));
        }
        out
    }
}

/// What a contact is made of, as a caller gives it: addresses in any case and spacing. An
/// update replaces every field (read the contact first to change one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactInput {
    pub external_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub alt_email: Option<String>,
    pub contact_points: Vec<String>,
    pub entity_id: Option<i64>,
}

impl From<&Contact> for ContactInput {
    fn from(c: &Contact) -> Self {
        ContactInput {
            external_id: c.external_id.clone(),
            name: c.name.clone(),
            email: c.email.clone(),
            alt_email: c.alt_email.clone(),
            contact_points: c.contact_points.clone(),
            entity_id: c.entity_id,
        }
    }
}

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityKind {
    Household,
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
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub kind: EntityKind,
    /// Normalised domains (`smith.example`), sorted, without duplicates.
    pub domains: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What an entity is made of, as a caller gives it. An update replaces every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityInput {
    #[serde(default)]
    pub external_id: Option<String>,
    pub name: String,
    pub kind: EntityKind,
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

/// One record of a batch save ([`Store::save_contacts`], [`Store::save_entities`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSave<I> {
    /// The record to update; `None` updates the one with the input's external id, if any, and
    /// otherwise creates a record.
    pub id: Option<i64>,
    pub input: I,
}

/// What a save did, so imports can report created, updated and unchanged records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveOutcome {
    Created,
    Updated,
    /// The stored record already held exactly this (nothing was written or queued).
    Unchanged,
}

/// One page of a listing: records with ids above `after_id`, by id, at most `limit`
/// (1..=[`MAX_PAGE`]); `filter` keeps those whose name or an address (for entities, a domain)
/// contains it, case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    pub limit: i64,
    pub after_id: Option<i64>,
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

/// A contact carrying a sync user's address (E9): the matching job never matches mail on that
/// address, and an admin should fix the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncAddressWarning {
    pub contact: Contact,
    pub address: String,
    /// Which of the contact's fields holds it: `email`, `alt_email` or `contact_point`.
    pub field: String,
    /// The tenant the sync user belongs to.
    pub tenant: String,
    /// The sync user's own address (`users.email`).
    pub user_email: String,
    /// `user` when the address is the user's own, `mailbox` when it is a mailbox linked to
    /// the user (a shared mailbox, or an alias mailbox).
    pub via: String,
}

/// A contact's fields once checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CleanContact {
    external_id: Option<String>,
    name: String,
    email: Option<String>,
    alt_email: Option<String>,
    contact_points: Vec<String>,
    entity_id: Option<i64>,
}

impl CleanContact {
    fn of(c: &Contact) -> CleanContact {
        CleanContact {
            external_id: c.external_id.clone(),
            name: c.name.clone(),
            email: c.email.clone(),
            alt_email: c.alt_email.clone(),
            contact_points: c.contact_points.clone(),
            entity_id: c.entity_id,
        }
    }

    fn address_fields(&self) -> BTreeSet<(String, &'static str)> {
        let mut out = BTreeSet::new();
        if let Some(e) = &self.email {
            out.insert((e.clone(), "email"));
        }
        if let Some(e) = &self.alt_email {
            out.insert((e.clone(), "alt_email"));
        }
        for p in &self.contact_points {
            out.insert((p.clone(), "contact_point"));
        }
        out
    }
}

/// The addresses whose matches a change from `old` to `new` can alter (see the module docs).
fn affected_addresses(old: Option<&CleanContact>, new: Option<&CleanContact>) -> BTreeSet<String> {
    let before = old.map(CleanContact::address_fields).unwrap_or_default();
    let after = new.map(CleanContact::address_fields).unwrap_or_default();
    let entity_changed = old.map(|c| c.entity_id) != new.map(|c| c.entity_id);
    if entity_changed || old.is_none() || new.is_none() {
        before.union(&after).map(|(a, _)| a.clone()).collect()
    } else {
        before
            .symmetric_difference(&after)
            .map(|(a, _)| a.clone())
            .collect()
    }
}

fn clean_text(field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
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

fn clean_address(field: &str, value: Option<&str>) -> Result<Option<String>, StoreError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => normalise_address(v).map(Some).map_err(|e| {
            StoreError::Invalid(format!(
                "{field} '{v}' is not an email address: {e}; correct it or leave it empty"
            ))
        }),
    }
}

fn clean_contact(input: &ContactInput) -> Result<CleanContact, StoreError> {
    let name = clean_text("name", Some(&input.name))?.ok_or_else(|| {
        StoreError::Invalid("a contact needs a name, and the name is empty; give one".into())
    })?;
    let mut points = BTreeSet::new();
    for p in &input.contact_points {
        if let Some(p) = clean_address("contact point", Some(p))? {
            points.insert(p);
        }
    }
    Ok(CleanContact {
        external_id: clean_text("external_id", input.external_id.as_deref())?,
        name,
        email: clean_address("email", input.email.as_deref())?,
        alt_email: clean_address("alt_email", input.alt_email.as_deref())?,
        contact_points: points.into_iter().collect(),
        entity_id: input.entity_id,
    })
}

/// An entity's fields once checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CleanEntity {
    external_id: Option<String>,
    name: String,
    kind: EntityKind,
    domains: Vec<String>,
}

fn clean_entity(input: &EntityInput) -> Result<CleanEntity, StoreError> {
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
    Ok(CleanEntity {
        external_id: clean_text("external_id", input.external_id.as_deref())?,
        name,
        kind: input.kind,
        domains: domains.into_iter().collect(),
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Commits `tx` when `result` is Ok, rolls it back explicitly otherwise (SQLite holds its write
/// lock until the rollback actually runs).
async fn finish<T>(tx: Tx<'_>, result: Result<T, StoreError>) -> Result<T, StoreError> {
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
async fn lock_org(tx: &mut Tx<'_>, org_id: i64) -> Result<(), StoreError> {
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

/// Writes addresses to `contact_changes` for the matching job.
async fn queue_changes(
    tx: &mut Tx<'_>,
    org_id: i64,
    addresses: &BTreeSet<String>,
    now: i64,
) -> Result<(), StoreError> {
    let all: Vec<&String> = addresses.iter().collect();
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO contact_changes (org_id, address, at_ms) VALUES {}
             ON CONFLICT (org_id, address) DO UPDATE SET at_ms = excluded.at_ms",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(org_id).bind(now);
        for a in chunk {
            q = q.bind(*a);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows per multi-row INSERT: few statements, well under both databases' parameter limits.
const ROWS_PER_STATEMENT: usize = 300;

const CONTACT_COLUMNS: &str = "c.id, c.external_id, c.name, c.email, c.alt_email, c.entity_id, e.name AS entity_name, c.created_ms, c.updated_ms FROM contacts c LEFT JOIN entities e ON e.id = c.entity_id";

fn contact_from(r: &sqlx::any::AnyRow) -> Result<Contact, sqlx::Error> {
    Ok(Contact {
        id: r.try_get("id")?,
        external_id: r.try_get("external_id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        alt_email: r.try_get("alt_email")?,
        contact_points: Vec::new(),
        entity_id: r.try_get("entity_id")?,
        entity_name: r.try_get("entity_name")?,
        created_ms: r.try_get("created_ms")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

fn entity_from(r: &sqlx::any::AnyRow) -> Result<Entity, StoreError> {
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

/// A bind marker: SQLite's numbered `$n` markers cost quadratically in long lists, `?` binds
/// in order; PostgreSQL needs `$n`.
fn marker(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".into(),
        Backend::Postgres => format!("${n}"),
    }
}

/// `%text%` for LIKE, with LIKE's own characters escaped (by `\`), lower-cased.
fn like_pattern(filter: &str) -> String {
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

impl Store {
    // ----- contacts: reads -----

    /// Fills in the contact points of `contacts` (one statement for the lot).
    async fn with_points<'e, E>(
        &self,
        ex: E,
        mut contacts: Vec<Contact>,
    ) -> Result<Vec<Contact>, StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        if contacts.is_empty() {
            return Ok(contacts);
        }
        let markers: Vec<String> = (1..=contacts.len())
            .map(|n| marker(self.backend(), n))
            .collect();
        let sql = format!(
            "SELECT contact_id, address FROM contact_emails WHERE contact_id IN ({}) ORDER BY contact_id, address",
            markers.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for c in &contacts {
            q = q.bind(c.id);
        }
        let mut points: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for r in q.fetch_all(ex).await? {
            points
                .entry(r.try_get("contact_id")?)
                .or_default()
                .push(r.try_get("address")?);
        }
        for c in &mut contacts {
            c.contact_points = points.remove(&c.id).unwrap_or_default();
        }
        Ok(contacts)
    }

    /// One contact of the org; `NotFound` when it does not exist or belongs to another org.
    pub async fn contact(&self, org_id: i64, id: i64) -> Result<Contact, StoreError> {
        let mut conn = self.pool().acquire().await?;
        contact_in(self, &mut conn, org_id, id).await
    }

    /// The org's contact with this external id, if any.
    pub async fn contact_by_external_id(
        &self,
        org_id: i64,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} WHERE c.org_id = $1 AND c.external_id = $2");
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(external_id.trim())
            .fetch_all(self.pool())
            .await?;
        let found = rows
            .iter()
            .map(contact_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.with_points(self.pool(), found).await?.pop())
    }

    /// The org's contacts carrying `address` in any field (normalised before the lookup), by id.
    pub async fn contacts_by_address(
        &self,
        org_id: i64,
        address: &str,
    ) -> Result<Vec<Contact>, StoreError> {
        let address = address.trim().to_lowercase();
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} WHERE c.org_id = $1 AND (c.email = $2 OR c.alt_email = $2
               OR EXISTS (SELECT 1 FROM contact_emails p WHERE p.contact_id = c.id AND p.address = $2))
             ORDER BY c.id"
        );
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(address)
            .fetch_all(self.pool())
            .await?;
        let found = rows
            .iter()
            .map(contact_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_points(self.pool(), found).await
    }

    /// A page of the org's contacts, by id (see [`ListQuery`]). The filter looks in the name,
    /// Email, Alternate Email and contact points.
    pub async fn list_contacts(
        &self,
        org_id: i64,
        q: &ListQuery,
    ) -> Result<Vec<Contact>, StoreError> {
        let filter = q.filter.as_deref().filter(|f| !f.trim().is_empty());
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} WHERE c.org_id = $1 AND c.id > $2 AND ($3 = 0 OR LOWER(c.name) LIKE $4 ESCAPE '\\'
               OR c.email LIKE $4 ESCAPE '\\' OR c.alt_email LIKE $4 ESCAPE '\\'
               OR EXISTS (SELECT 1 FROM contact_emails p WHERE p.contact_id = c.id AND p.address LIKE $4 ESCAPE '\\'))
             ORDER BY c.id LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(q.after_id.unwrap_or(0))
            .bind(i64::from(filter.is_some()))
            .bind(like_pattern(filter.unwrap_or("")))
            .bind(page_limit(q))
            .fetch_all(self.pool())
            .await?;
        let found = rows
            .iter()
            .map(contact_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_points(self.pool(), found).await
    }

    /// Every contact of the org, by id (for exports; pages through [`Store::list_contacts`]).
    pub async fn all_contacts(&self, org_id: i64) -> Result<Vec<Contact>, StoreError> {
        let mut out: Vec<Contact> = Vec::new();
        loop {
            let page = self
                .list_contacts(
                    org_id,
                    &ListQuery {
                        limit: MAX_PAGE,
                        after_id: out.last().map(|c| c.id),
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

    // ----- contacts: changes -----

    /// Creates a contact in the org and queues its addresses for re-matching.
    pub async fn create_contact(
        &self,
        org_id: i64,
        input: &ContactInput,
    ) -> Result<Contact, StoreError> {
        let clean = clean_contact(input)?;
        let mut tx = self.pool().begin().await?;
        let result = create_contact_in(&mut tx, org_id, &clean).await;
        finish(tx, result).await
    }

    /// Replaces a contact's fields with `input` and queues the addresses the change affects.
    /// `NotFound` when the contact is not the org's; `Unchanged` (nothing written) when the
    /// contact already holds exactly this.
    pub async fn update_contact(
        &self,
        org_id: i64,
        id: i64,
        input: &ContactInput,
    ) -> Result<(SaveOutcome, Contact), StoreError> {
        let clean = clean_contact(input)?;
        let mut tx = self.pool().begin().await?;
        let result = update_contact_in(self, &mut tx, org_id, id, &clean).await;
        finish(tx, result).await
    }

    /// Creates or updates the org's contact with `input.external_id` (required): what imports
    /// do, so importing the same file twice changes nothing the second time.
    pub async fn upsert_contact_by_external_id(
        &self,
        org_id: i64,
        input: &ContactInput,
    ) -> Result<(SaveOutcome, Contact), StoreError> {
        let clean = clean_contact(input)?;
        let Some(ext) = clean.external_id.clone() else {
            return Err(StoreError::Invalid(
                "an upsert needs an external_id, and it is empty; give the CRM's id of the contact"
                    .into(),
            ));
        };
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let existing: Option<i64> =
                sqlx::query("SELECT id FROM contacts WHERE org_id = $1 AND external_id = $2")
                    .bind(org_id)
                    .bind(&ext)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("id"))
                    .transpose()?;
            match existing {
                Some(id) => update_contact_in(self, &mut tx, org_id, id, &clean).await,
                None => create_contact_in(&mut tx, org_id, &clean)
                    .await
                    .map(|c| (SaveOutcome::Created, c)),
            }
        }
        .await;
        finish(tx, result).await
    }

    /// Adds one contact-point email to a contact (what the review list's "map and remember the
    /// address" does); `Unchanged` when the contact already has it as a contact point.
    pub async fn add_contact_point(
        &self,
        org_id: i64,
        id: i64,
        address: &str,
    ) -> Result<(SaveOutcome, Contact), StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let current = contact_in(self, &mut tx, org_id, id).await?;
            let mut input = ContactInput::from(&current);
            input.contact_points.push(address.to_string());
            let clean = clean_contact(&input)?;
            update_contact_in(self, &mut tx, org_id, id, &clean).await
        }
        .await;
        finish(tx, result).await
    }

    /// Saves many contacts in one transaction (what imports do: one commit per batch instead
    /// of one per row). Each item updates the contact `id`, or with no id the org's contact
    /// with the input's external id, or creates one. A bad item (invalid, unknown id) gets its
    /// own error and the others are saved; a database failure saves none and is the error.
    pub async fn save_contacts(
        &self,
        org_id: i64,
        items: &[RecordSave<ContactInput>],
    ) -> Result<Vec<Result<(SaveOutcome, Contact), StoreError>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let one = async {
                    let clean = clean_contact(&item.input)?;
                    let id = match (item.id, &clean.external_id) {
                        (Some(id), _) => Some(id),
                        (None, Some(ext)) => sqlx::query(
                            "SELECT id FROM contacts WHERE org_id = $1 AND external_id = $2",
                        )
                        .bind(org_id)
                        .bind(ext)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get("id"))
                        .transpose()?,
                        (None, None) => None,
                    };
                    match id {
                        Some(id) => update_contact_in(self, &mut tx, org_id, id, &clean).await,
                        None => create_contact_in(&mut tx, org_id, &clean)
                            .await
                            .map(|c| (SaveOutcome::Created, c)),
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

    /// Deletes a contact with its contact points and its activity matches, and queues all its
    /// addresses. Returns what was deleted.
    pub async fn delete_contact(&self, org_id: i64, id: i64) -> Result<Contact, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let old = contact_in(self, &mut tx, org_id, id).await?;
            let affected = affected_addresses(Some(&CleanContact::of(&old)), None);
            queue_changes(&mut tx, org_id, &affected, now_ms()).await?;
            for sql in [
                "DELETE FROM activity_matches WHERE contact_id = $1",
                "DELETE FROM contact_emails WHERE contact_id = $1",
                "DELETE FROM contacts WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            Ok(old)
        }
        .await;
        finish(tx, result).await
    }

    // ----- entities -----

    /// One entity of the org; `NotFound` when it does not exist or belongs to another org.
    pub async fn entity(&self, org_id: i64, id: i64) -> Result<Entity, StoreError> {
        let mut conn = self.pool().acquire().await?;
        entity_in(&mut conn, org_id, id).await
    }

    /// The org's entity with this external id, if any.
    pub async fn entity_by_external_id(
        &self,
        org_id: i64,
        external_id: &str,
    ) -> Result<Option<Entity>, StoreError> {
        sqlx::query("SELECT * FROM entities WHERE org_id = $1 AND external_id = $2")
            .bind(org_id)
            .bind(external_id.trim())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(entity_from)
            .transpose()
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
        let filter = q.filter.as_deref().filter(|f| !f.trim().is_empty());
        sqlx::query(
            "SELECT * FROM entities WHERE org_id = $1 AND id > $2
               AND ($3 = 0 OR LOWER(name) LIKE $4 ESCAPE '\\' OR domains LIKE $4 ESCAPE '\\')
             ORDER BY id LIMIT $5",
        )
        .bind(org_id)
        .bind(q.after_id.unwrap_or(0))
        .bind(i64::from(filter.is_some()))
        .bind(like_pattern(filter.unwrap_or("")))
        .bind(page_limit(q))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(entity_from)
        .collect()
    }

    /// Every entity of the org, by id.
    pub async fn all_entities(&self, org_id: i64) -> Result<Vec<Entity>, StoreError> {
        let mut out: Vec<Entity> = Vec::new();
        loop {
            let page = self
                .list_entities(
                    org_id,
                    &ListQuery {
                        limit: MAX_PAGE,
                        after_id: out.last().map(|e| e.id),
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

    /// Creates an entity in the org.
    pub async fn create_entity(
        &self,
        org_id: i64,
        input: &EntityInput,
    ) -> Result<Entity, StoreError> {
        let clean = clean_entity(input)?;
        let mut tx = self.pool().begin().await?;
        let result = create_entity_in(&mut tx, org_id, &clean).await;
        finish(tx, result).await
    }

    /// Replaces an entity's fields with `input`; `Unchanged` when it already holds exactly this.
    pub async fn update_entity(
        &self,
        org_id: i64,
        id: i64,
        input: &EntityInput,
    ) -> Result<(SaveOutcome, Entity), StoreError> {
        let clean = clean_entity(input)?;
        let mut tx = self.pool().begin().await?;
        let result = update_entity_in(&mut tx, org_id, id, &clean).await;
        finish(tx, result).await
    }

    /// Creates or updates the org's entity with `input.external_id` (required), for imports.
    pub async fn upsert_entity_by_external_id(
        &self,
        org_id: i64,
        input: &EntityInput,
    ) -> Result<(SaveOutcome, Entity), StoreError> {
        let clean = clean_entity(input)?;
        let Some(ext) = clean.external_id.clone() else {
            return Err(StoreError::Invalid(
                "an upsert needs an external_id, and it is empty; give the CRM's id of the entity"
                    .into(),
            ));
        };
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let existing: Option<i64> =
                sqlx::query("SELECT id FROM entities WHERE org_id = $1 AND external_id = $2")
                    .bind(org_id)
                    .bind(&ext)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("id"))
                    .transpose()?;
            match existing {
                Some(id) => update_entity_in(&mut tx, org_id, id, &clean).await,
                None => create_entity_in(&mut tx, org_id, &clean)
                    .await
                    .map(|e| (SaveOutcome::Created, e)),
            }
        }
        .await;
        finish(tx, result).await
    }

    /// Saves many entities in one transaction, as [`Store::save_contacts`] does contacts.
    pub async fn save_entities(
        &self,
        org_id: i64,
        items: &[RecordSave<EntityInput>],
    ) -> Result<Vec<Result<(SaveOutcome, Entity), StoreError>>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let one = async {
                    let clean = clean_entity(&item.input)?;
                    let id = match (item.id, &clean.external_id) {
                        (Some(id), _) => Some(id),
                        (None, Some(ext)) => sqlx::query(
                            "SELECT id FROM entities WHERE org_id = $1 AND external_id = $2",
                        )
                        .bind(org_id)
                        .bind(ext)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get("id"))
                        .transpose()?,
                        (None, None) => None,
                    };
                    match id {
                        Some(id) => update_entity_in(&mut tx, org_id, id, &clean).await,
                        None => create_entity_in(&mut tx, org_id, &clean)
                            .await
                            .map(|e| (SaveOutcome::Created, e)),
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

    /// Deletes an entity. Its contacts stay, without an entity; their addresses are queued
    /// (their matches carry the entity), and activity matches naming it lose it. Returns what
    /// was deleted and how many contacts it had.
    pub async fn delete_entity(&self, org_id: i64, id: i64) -> Result<(Entity, usize), StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = async {
            lock_org(&mut tx, org_id).await?;
            let old = entity_in(&mut tx, org_id, id).await?;
            let sql = format!("SELECT {CONTACT_COLUMNS} WHERE c.org_id = $1 AND c.entity_id = $2");
            let rows = sqlx::query(&sql)
                .bind(org_id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            let members = rows.iter().map(contact_from).collect::<Result<Vec<_>, _>>()?;
            let members = self.with_points(&mut *tx, members).await?;
            let mut affected = BTreeSet::new();
            for c in &members {
                affected.extend(affected_addresses(Some(&CleanContact::of(c)), None));
            }
            let now = now_ms();
            queue_changes(&mut tx, org_id, &affected, now).await?;
            sqlx::query("UPDATE contacts SET entity_id = NULL, updated_ms = $1 WHERE org_id = $2 AND entity_id = $3")
                .bind(now)
                .bind(org_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE activity_matches SET entity_id = NULL WHERE entity_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM entities WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok((old, members.len()))
        }
        .await;
        finish(tx, result).await
    }

    // ----- E9 -----

    /// The org's contacts that carry a sync user's address (E9): a user's own address
    /// (`users.email`) or the address of a mailbox linked to a user, in any tenant of the org.
    /// One warning per (contact, address, user), by contact id then address.
    pub async fn contacts_with_sync_user_addresses(
        &self,
        org_id: i64,
    ) -> Result<Vec<SyncAddressWarning>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.contact_id, a.address, a.field, o.user_email, o.tenant, o.via FROM (
                 SELECT c.id AS contact_id, c.email AS address, 'email' AS field FROM contacts c
                   WHERE c.org_id = $1 AND c.email IS NOT NULL
                 UNION ALL SELECT c.id, c.alt_email, 'alt_email' FROM contacts c
                   WHERE c.org_id = $1 AND c.alt_email IS NOT NULL
                 UNION ALL SELECT c.id, p.address, 'contact_point' FROM contacts c
                   JOIN contact_emails p ON p.contact_id = c.id WHERE c.org_id = $1
             ) a JOIN (
                 SELECT u.email AS address, u.email AS user_email, t.name AS tenant, 'user' AS via
                   FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE t.org_id = $1
                 UNION ALL SELECT m.address, u.email, t.name, 'mailbox'
                   FROM mailboxes m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id
                   WHERE t.org_id = $1
             ) o ON o.address = a.address
             ORDER BY a.contact_id, a.address, a.field, o.tenant, o.user_email, o.via DESC",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        let mut seen = BTreeSet::new();
        let mut hits = Vec::new();
        for r in &rows {
            let contact_id: i64 = r.try_get("contact_id")?;
            let address: String = r.try_get("address")?;
            let field: String = r.try_get("field")?;
            let tenant: String = r.try_get("tenant")?;
            let user_email: String = r.try_get("user_email")?;
            // `user` sorts before `mailbox` (via DESC): a user's own address mailbox is one hit.
            if seen.insert((
                contact_id,
                address.clone(),
                field.clone(),
                tenant.clone(),
                user_email.clone(),
            )) {
                hits.push((
                    contact_id,
                    address,
                    field,
                    tenant,
                    user_email,
                    r.try_get::<String, _>("via")?,
                ));
            }
        }
        let mut contacts: BTreeMap<i64, Contact> = BTreeMap::new();
        let mut out = Vec::new();
        for (contact_id, address, field, tenant, user_email, via) in hits {
            let contact = match contacts.get(&contact_id) {
                Some(c) => c.clone(),
                None => {
                    let c = self.contact(org_id, contact_id).await?;
                    contacts.insert(contact_id, c.clone());
                    c
                }
            };
            out.push(SyncAddressWarning {
                contact,
                address,
                field,
                tenant,
                user_email,
                via,
            });
        }
        Ok(out)
    }
}

async fn contact_in(
    store: &Store,
    conn: &mut sqlx::AnyConnection,
    org_id: i64,
    id: i64,
) -> Result<Contact, StoreError> {
    let sql = format!("SELECT {CONTACT_COLUMNS} WHERE c.org_id = $1 AND c.id = $2");
    let row = sqlx::query(&sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no contact with id {id} in this org; `m365sync contact list` shows them"
            ))
        })?;
    let c = contact_from(&row)?;
    Ok(store.with_points(&mut *conn, vec![c]).await?.remove(0))
}

async fn entity_in(
    conn: &mut sqlx::AnyConnection,
    org_id: i64,
    id: i64,
) -> Result<Entity, StoreError> {
    let row = sqlx::query("SELECT * FROM entities WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "no entity with id {id} in this org; `m365sync entity list` shows them"
            ))
        })?;
    entity_from(&row)
}

/// Refuses an entity id that is not the org's, and an external id another contact of the org
/// already has.
async fn check_contact_refs(
    tx: &mut Tx<'_>,
    org_id: i64,
    id: Option<i64>,
    c: &CleanContact,
) -> Result<Option<String>, StoreError> {
    let mut entity_name = None;
    if let Some(entity_id) = c.entity_id {
        let found = sqlx::query("SELECT name FROM entities WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(entity_id)
            .fetch_optional(&mut **tx)
            .await?;
        match found {
            Some(r) => entity_name = Some(r.try_get("name")?),
            None => {
                return Err(StoreError::Invalid(format!(
                    "entity {entity_id} is not an entity of this org; `m365sync entity list` shows them"
                )))
            }
        }
    }
    if let Some(ext) = &c.external_id {
        let other = sqlx::query(
            "SELECT id FROM contacts WHERE org_id = $1 AND external_id = $2 AND id <> $3",
        )
        .bind(org_id)
        .bind(ext)
        .bind(id.unwrap_or(0))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(other) = other {
            let other: i64 = other.try_get("id")?;
            return Err(StoreError::Invalid(format!(
                "external_id '{ext}' is already contact {other}'s; give another, or update contact {other}"
            )));
        }
    }
    Ok(entity_name)
}

async fn write_points(tx: &mut Tx<'_>, id: i64, points: &[String]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM contact_emails WHERE contact_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for chunk in points.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${})", i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO contact_emails (contact_id, address) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(id);
        for p in chunk {
            q = q.bind(p);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn create_contact_in(
    tx: &mut Tx<'_>,
    org_id: i64,
    c: &CleanContact,
) -> Result<Contact, StoreError> {
    lock_org(tx, org_id).await?;
    let entity_name = check_contact_refs(tx, org_id, None, c).await?;
    let now = now_ms();
    let id: i64 = sqlx::query(
        "INSERT INTO contacts (org_id, external_id, name, email, alt_email, entity_id, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(org_id)
    .bind(&c.external_id)
    .bind(&c.name)
    .bind(&c.email)
    .bind(&c.alt_email)
    .bind(c.entity_id)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .next()
    .ok_or(sqlx::Error::RowNotFound)?
    .try_get("id")?;
    write_points(tx, id, &c.contact_points).await?;
    queue_changes(tx, org_id, &affected_addresses(None, Some(c)), now).await?;
    Ok(stored(id, c, entity_name, now, now))
}

/// The contact as just written (saves a read after each write).
fn stored(
    id: i64,
    c: &CleanContact,
    entity_name: Option<String>,
    created_ms: i64,
    updated_ms: i64,
) -> Contact {
    Contact {
        id,
        external_id: c.external_id.clone(),
        name: c.name.clone(),
        email: c.email.clone(),
        alt_email: c.alt_email.clone(),
        contact_points: c.contact_points.clone(),
        entity_id: c.entity_id,
        entity_name,
        created_ms,
        updated_ms,
    }
}

async fn update_contact_in(
    store: &Store,
    tx: &mut Tx<'_>,
    org_id: i64,
    id: i64,
    c: &CleanContact,
) -> Result<(SaveOutcome, Contact), StoreError> {
    lock_org(tx, org_id).await?;
    let old = contact_in(store, tx, org_id, id).await?;
    let before = CleanContact::of(&old);
    if &before == c {
        return Ok((SaveOutcome::Unchanged, old));
    }
    let entity_name = check_contact_refs(tx, org_id, Some(id), c).await?;
    let now = now_ms();
    sqlx::query(
        "UPDATE contacts SET external_id = $1, name = $2, email = $3, alt_email = $4, entity_id = $5, updated_ms = $6
         WHERE id = $7 AND org_id = $8",
    )
    .bind(&c.external_id)
    .bind(&c.name)
    .bind(&c.email)
    .bind(&c.alt_email)
    .bind(c.entity_id)
    .bind(now)
    .bind(id)
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    if before.contact_points != c.contact_points {
        write_points(tx, id, &c.contact_points).await?;
    }
    queue_changes(tx, org_id, &affected_addresses(Some(&before), Some(c)), now).await?;
    Ok((
        SaveOutcome::Updated,
        stored(id, c, entity_name, old.created_ms, now),
    ))
}

async fn check_entity_external_id(
    tx: &mut Tx<'_>,
    org_id: i64,
    id: Option<i64>,
    e: &CleanEntity,
) -> Result<(), StoreError> {
    if let Some(ext) = &e.external_id {
        let other = sqlx::query(
            "SELECT id FROM entities WHERE org_id = $1 AND external_id = $2 AND id <> $3",
        )
        .bind(org_id)
        .bind(ext)
        .bind(id.unwrap_or(0))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(other) = other {
            let other: i64 = other.try_get("id")?;
            return Err(StoreError::Invalid(format!(
                "external_id '{ext}' is already entity {other}'s; give another, or update entity {other}"
            )));
        }
    }
    Ok(())
}

fn domains_json(domains: &[String]) -> String {
    serde_json::to_string(domains).unwrap_or_else(|_| "[]".into())
}

async fn create_entity_in(
    tx: &mut Tx<'_>,
    org_id: i64,
    e: &CleanEntity,
) -> Result<Entity, StoreError> {
    lock_org(tx, org_id).await?;
    check_entity_external_id(tx, org_id, None, e).await?;
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

async fn update_entity_in(
    tx: &mut Tx<'_>,
    org_id: i64,
    id: i64,
    e: &CleanEntity,
) -> Result<(SaveOutcome, Entity), StoreError> {
    lock_org(tx, org_id).await?;
    let old = entity_in(tx, org_id, id).await?;
    let before = CleanEntity {
        external_id: old.external_id.clone(),
        name: old.name.clone(),
        kind: old.kind,
        domains: old.domains.clone(),
    };
    if &before == e {
        return Ok((SaveOutcome::Unchanged, old));
    }
    check_entity_external_id(tx, org_id, Some(id), e).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(
        email: Option<&str>,
        alt: Option<&str>,
        points: &[&str],
        entity: Option<i64>,
    ) -> CleanContact {
        CleanContact {
            external_id: None,
            name: "A".into(),
            email: email.map(Into::into),
            alt_email: alt.map(Into::into),
            contact_points: points.iter().map(|p| p.to_string()).collect(),
            entity_id: entity,
        }
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_change_affects_the_addresses_whose_field_or_entity_changed() {
        let old = contact(
            Some("a@x.example"),
            Some("b@x.example"),
            &["c@x.example"],
            None,
        );
        let moved = contact(
            Some("a@x.example"),
            Some("c@x.example"),
            &["d@x.example"],
            None,
        );
        assert_eq!(
            affected_addresses(Some(&old), Some(&moved)),
            set(&["b@x.example", "c@x.example", "d@x.example"])
        );
        let renamed = CleanContact {
            name: "B".into(),
            ..old.clone()
        };
        assert!(affected_addresses(Some(&old), Some(&renamed)).is_empty());
        let rehomed = CleanContact {
            entity_id: Some(3),
            ..old.clone()
        };
        assert_eq!(
            affected_addresses(Some(&old), Some(&rehomed)),
            set(&["a@x.example", "b@x.example", "c@x.example"])
        );
        assert_eq!(
            affected_addresses(None, Some(&old)),
            affected_addresses(Some(&old), None)
        );
    }

    #[test]
    fn inputs_are_normalised_and_checked_naming_the_field() {
        let c = clean_contact(&ContactInput {
            name: "  Alice ".into(),
            email: Some("  Alice@Example.COM ".into()),
            alt_email: Some("  ".into()),
            contact_points: vec![
                "B@x.example".into(),
                "b@x.example ".into(),
                "a@x.example".into(),
            ],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.name, "Alice");
        assert_eq!(c.email.as_deref(), Some("alice@example.com"));
        assert_eq!(c.alt_email, None);
        assert_eq!(c.contact_points, ["a@x.example", "b@x.example"]);
        let err = clean_contact(&ContactInput {
            name: "A".into(),
            alt_email: Some("bob@@x.example".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("alt_email 'bob@@x.example'"), "{err}");
        assert!(clean_contact(&ContactInput::default())
            .unwrap_err()
            .to_string()
            .contains("needs a name"));
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
