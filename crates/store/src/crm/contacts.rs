//! Contacts: a name, an Email, an Alternate Email, any number of contact-point emails (in
//! `contact_emails`) and an entity. Their [`CrmRecord`] implementation (reads, create,
//! update), the contact-only operations (delete, add a contact point, find by address) and the
//! per-kind names of the shared methods.
//!
//! Every write here queues the addresses it affects in `contact_changes` (see
//! [`super::changes`]) in its own transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::changes::{affected_addresses, queue_changes};
use super::record::{
    check_external_id, clean_address, clean_text, finish, lock_org, marker, record_in, CrmRecord,
    ListQuery, RecordSave, SaveOutcome, Tx, ROWS_PER_STATEMENT,
};
use crate::{now_ms, Store, StoreError};

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// m365sync's id of the contact.
    pub id: i64,
    /// The CRM's own id, so imports update what earlier imports created.
    pub external_id: Option<String>,
    /// The contact's name (never empty).
    pub name: String,
    /// The "Email" field, normalised.
    pub email: Option<String>,
    /// The "Alternate Email" field, normalised.
    pub alt_email: Option<String>,
    /// Further addresses the contact is reached at, normalised, sorted, without duplicates.
    pub contact_points: Vec<String>,
    /// The contact's entity (household or company), if any.
    pub entity_id: Option<i64>,
    /// The entity's name, for listings (read with the contact, never written through it).
    pub entity_name: Option<String>,
    /// When the contact was created (epoch ms).
    pub created_ms: i64,
    /// When the contact last changed (epoch ms).
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
/// update replaces every field (read the contact first to change one). Once validated
/// ([`CrmRecord::validate`]) the same type holds the checked, normalised fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactInput {
    /// The CRM's own id of the contact, unique in the org.
    pub external_id: Option<String>,
    /// The name; required.
    pub name: String,
    /// The "Email" field.
    pub email: Option<String>,
    /// The "Alternate Email" field.
    pub alt_email: Option<String>,
    /// Contact-point emails, in any order, duplicates allowed.
    pub contact_points: Vec<String>,
    /// The entity, an id of the same org.
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

/// The columns a contact is read with (and its entity's name), with the tables they come from.
macro_rules! contact_columns {
    () => {
        "c.id, c.external_id, c.name, c.email, c.alt_email, c.entity_id, e.name AS entity_name, c.created_ms, c.updated_ms FROM contacts c LEFT JOIN entities e ON e.id = c.entity_id"
    };
}

/// See `contact_columns!`.
const CONTACT_COLUMNS: &str = contact_columns!();

fn contact_from(r: &AnyRow) -> Result<Contact, sqlx::Error> {
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

/// A contact's fields checked and normalised: name required, addresses normalised, contact
/// points sorted without duplicates.
fn clean_contact(input: &ContactInput) -> Result<ContactInput, StoreError> {
    let name = clean_text("name", Some(&input.name))?.ok_or_else(|| {
        StoreError::Invalid("a contact needs a name, and the name is empty; give one".into())
    })?;
    let mut points = BTreeSet::new();
    for p in &input.contact_points {
        if let Some(p) = clean_address("contact point", Some(p))? {
            points.insert(p);
        }
    }
    Ok(ContactInput {
        external_id: clean_text("external_id", input.external_id.as_deref())?,
        name,
        email: clean_address("email", input.email.as_deref())?,
        alt_email: clean_address("alt_email", input.alt_email.as_deref())?,
        contact_points: points.into_iter().collect(),
        entity_id: input.entity_id,
    })
}

impl CrmRecord for Contact {
    const KIND: &'static str = "contact";
    const PLURAL: &'static str = "contacts";
    const TABLE: &'static str = "contacts";
    const SELECT: &'static str = concat!("SELECT ", contact_columns!());
    const ALIAS: &'static str = "c.";
    const FILTER: &'static str = "LOWER(c.name) LIKE $4 ESCAPE '\\'
               OR c.email LIKE $4 ESCAPE '\\' OR c.alt_email LIKE $4 ESCAPE '\\'
               OR EXISTS (SELECT 1 FROM contact_emails p WHERE p.contact_id = c.id AND p.address LIKE $4 ESCAPE '\\')";

    type Input = ContactInput;

    fn id(&self) -> i64 {
        self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn validate(input: &ContactInput) -> Result<ContactInput, StoreError> {
        clean_contact(input)
    }

    fn external_id(input: &ContactInput) -> Option<&str> {
        input.external_id.as_deref()
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(contact_from(row)?)
    }

    fn complete(
        store: &Store,
        conn: &mut AnyConnection,
        records: Vec<Self>,
    ) -> impl Future<Output = Result<Vec<Self>, StoreError>> + Send {
        store.with_points(conn, records)
    }

    fn create_in(
        tx: &mut Tx<'_>,
        org_id: i64,
        clean: &ContactInput,
    ) -> impl Future<Output = Result<Self, StoreError>> + Send {
        create_contact_in(tx, org_id, clean)
    }

    fn update_in(
        store: &Store,
        tx: &mut Tx<'_>,
        org_id: i64,
        id: i64,
        clean: &ContactInput,
    ) -> impl Future<Output = Result<(SaveOutcome, Self), StoreError>> + Send {
        update_contact_in(store, tx, org_id, id, clean)
    }

    async fn delete_in(
        store: &Store,
        tx: &mut Tx<'_>,
        org_id: i64,
        id: i64,
    ) -> Result<(Self, usize), StoreError> {
        let old: Contact = record_in(store, tx, org_id, id).await?;
        let affected = affected_addresses(Some(&ContactInput::from(&old)), None);
        queue_changes(tx, org_id, &affected, now_ms()).await?;
        for sql in [
            "DELETE FROM activity_matches WHERE contact_id = $1",
            "DELETE FROM contact_emails WHERE contact_id = $1",
            "DELETE FROM contacts WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut **tx).await?;
        }
        Ok((old, 0))
    }
}

/// Refuses an entity id that is not the org's, and an external id another contact of the org
/// already has; answers the entity's name.
async fn check_contact_refs(
    tx: &mut Tx<'_>,
    org_id: i64,
    id: Option<i64>,
    c: &ContactInput,
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
    check_external_id::<Contact>(tx, org_id, id, c.external_id.as_deref()).await?;
    Ok(entity_name)
}

/// Replaces a contact's contact points.
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
    c: &ContactInput,
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
    c: &ContactInput,
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
    c: &ContactInput,
) -> Result<(SaveOutcome, Contact), StoreError> {
    lock_org(tx, org_id).await?;
    let old: Contact = record_in(store, tx, org_id, id).await?;
    let before = ContactInput::from(&old);
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

impl Store {
    /// Fills in the contact points of `contacts` (one statement for the lot).
    pub(crate) async fn with_points<'e, E>(
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

    // ----- reads -----

    /// One contact of the org; `NotFound` when it does not exist or belongs to another org.
    pub async fn contact(&self, org_id: i64, id: i64) -> Result<Contact, StoreError> {
        self.record(org_id, id).await
    }

    /// The org's contact with this external id, if any.
    pub async fn contact_by_external_id(
        &self,
        org_id: i64,
        external_id: &str,
    ) -> Result<Option<Contact>, StoreError> {
        self.record_by_external_id(org_id, external_id).await
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
        self.list_records(org_id, q).await
    }

    /// Every contact of the org, by id (for exports; pages through [`Store::list_contacts`]).
    pub async fn all_contacts(&self, org_id: i64) -> Result<Vec<Contact>, StoreError> {
        self.all_records(org_id).await
    }

    /// The org's contacts whose entity is `entity_id`, with their contact points, in `tx`.
    pub(crate) async fn contacts_of_entity(
        &self,
        tx: &mut Tx<'_>,
        org_id: i64,
        entity_id: i64,
    ) -> Result<Vec<Contact>, StoreError> {
        let sql = format!("SELECT {CONTACT_COLUMNS} WHERE c.org_id = $1 AND c.entity_id = $2");
        let rows = sqlx::query(&sql)
            .bind(org_id)
            .bind(entity_id)
            .fetch_all(&mut **tx)
            .await?;
        let members = rows
            .iter()
            .map(contact_from)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_points(&mut **tx, members).await
    }

    // ----- changes -----

    /// Creates a contact in the org and queues its addresses for re-matching.
    pub async fn create_contact(
        &self,
        org_id: i64,
        input: &ContactInput,
    ) -> Result<Contact, StoreError> {
        self.create_record(org_id, input).await
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
        self.update_record(org_id, id, input).await
    }

    /// Creates or updates the org's contact with `input.external_id` (required): what imports
    /// do, so importing the same file twice changes nothing the second time.
    pub async fn upsert_contact_by_external_id(
        &self,
        org_id: i64,
        input: &ContactInput,
    ) -> Result<(SaveOutcome, Contact), StoreError> {
        self.upsert_record_by_external_id(org_id, input).await
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
            let current: Contact = record_in(self, &mut tx, org_id, id).await?;
            let mut input = ContactInput::from(&current);
            input.contact_points.push(address.to_string());
            let clean = clean_contact(&input)?;
            update_contact_in(self, &mut tx, org_id, id, &clean).await
        }
        .await;
        finish(tx, result).await
    }

    /// Saves many contacts in one transaction (see [`Store::save_records`]).
    pub async fn save_contacts(
        &self,
        org_id: i64,
        items: &[RecordSave<ContactInput>],
    ) -> Result<Vec<Result<(SaveOutcome, Contact), StoreError>>, StoreError> {
        self.save_records(org_id, items).await
    }

    /// Deletes a contact with its contact points and its activity matches, and queues all its
    /// addresses. Returns what was deleted.
    pub async fn delete_contact(&self, org_id: i64, id: i64) -> Result<Contact, StoreError> {
        Ok(self.delete_record::<Contact>(org_id, id).await?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
