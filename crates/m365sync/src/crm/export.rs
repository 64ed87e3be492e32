//! Exporting an org's contacts and entities as CSV or JSON, in the shape
//! [`super::import`] reads: importing an export back changes nothing (every row is
//! `unchanged`), which makes an export a backup and a starting point for bulk edits.
//!
//! Rows carry m365sync's `id` beside the CRM's `external_id`, so records that have no external
//! id are still recognised on the way back in. A contact's entity is written as its id, its
//! external id and its name.

use std::collections::HashMap;
use std::future::Future;

use serde::Serialize;

use super::import::Format;
use m365sync_store::crm::{Contact, CrmRecord, Entity, EntityKind};
use m365sync_store::{Store, StoreError};

/// A contact as exported.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedContact {
    /// m365sync's id.
    pub id: i64,
    /// The CRM's own id.
    pub external_id: Option<String>,
    /// The name.
    pub name: String,
    /// The Email field.
    pub email: Option<String>,
    /// The Alternate Email field.
    pub alt_email: Option<String>,
    /// The contact-point emails.
    pub contact_points: Vec<String>,
    /// The entity's m365sync id.
    pub entity_id: Option<i64>,
    /// The entity's external id.
    pub entity_external_id: Option<String>,
    /// The entity's name.
    pub entity: Option<String>,
}

/// An entity as exported.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedEntity {
    /// m365sync's id.
    pub id: i64,
    /// The CRM's own id.
    pub external_id: Option<String>,
    /// The name.
    pub name: String,
    /// Household or company.
    pub kind: EntityKind,
    /// The email domains.
    pub domains: Vec<String>,
}

/// A kind of record an org's export writes: the row it becomes and that row's CSV fields.
/// Implemented for [`Contact`] and [`Entity`]; [`export_records`] is written once over it.
pub trait Exportable: CrmRecord {
    /// The record as exported (a JSON item; a CSV line).
    type Row: Serialize + Send;
    /// The CSV header, in the order of [`Exportable::csv_fields`].
    const HEADER: &'static [&'static str];

    /// The org's records as exported rows, by id.
    fn rows(
        store: &Store,
        org_id: i64,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send;

    /// A row's CSV fields (lists joined with `;`).
    fn csv_fields(row: Self::Row) -> Vec<String>;
}

/// One CSV field, quoted when it holds a comma, quote, line break or edge spaces.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.trim() != s {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

impl Exportable for Contact {
    type Row = ExportedContact;
    const HEADER: &'static [&'static str] = &[
        "id",
        "external_id",
        "name",
        "email",
        "alt_email",
        "contact_points",
        "entity_id",
        "entity_external_id",
        "entity",
    ];

    async fn rows(store: &Store, org_id: i64) -> Result<Vec<ExportedContact>, StoreError> {
        let entities = store.all_entities(org_id).await?;
        let ext: HashMap<i64, Option<String>> = entities
            .iter()
            .map(|e| (e.id, e.external_id.clone()))
            .collect();
        Ok(store
            .all_contacts(org_id)
            .await?
            .into_iter()
            .map(|c| ExportedContact {
                entity_external_id: c.entity_id.and_then(|id| ext.get(&id).cloned().flatten()),
                id: c.id,
                external_id: c.external_id,
                name: c.name,
                email: c.email,
                alt_email: c.alt_email,
                contact_points: c.contact_points,
                entity_id: c.entity_id,
                entity: c.entity_name,
            })
            .collect())
    }

    fn csv_fields(c: ExportedContact) -> Vec<String> {
        vec![
            c.id.to_string(),
            opt(&c.external_id),
            c.name,
            opt(&c.email),
            opt(&c.alt_email),
            c.contact_points.join(";"),
            c.entity_id.map(|i| i.to_string()).unwrap_or_default(),
            opt(&c.entity_external_id),
            opt(&c.entity),
        ]
    }
}

impl Exportable for Entity {
    type Row = ExportedEntity;
    const HEADER: &'static [&'static str] = &["id", "external_id", "name", "kind", "domains"];

    async fn rows(store: &Store, org_id: i64) -> Result<Vec<ExportedEntity>, StoreError> {
        Ok(store
            .all_entities(org_id)
            .await?
            .into_iter()
            .map(|e| ExportedEntity {
                id: e.id,
                external_id: e.external_id,
                name: e.name,
                kind: e.kind,
                domains: e.domains,
            })
            .collect())
    }

    fn csv_fields(e: ExportedEntity) -> Vec<String> {
        vec![
            e.id.to_string(),
            opt(&e.external_id),
            e.name,
            e.kind.as_str().to_string(),
            e.domains.join(";"),
        ]
    }
}

/// The org's records of kind `R` as a file of `format`.
pub async fn export_records<R: Exportable>(
    store: &Store,
    org_id: i64,
    format: Format,
) -> Result<String, StoreError> {
    let rows = R::rows(store, org_id).await?;
    Ok(match format {
        Format::Json => json(&rows),
        Format::Csv => {
            let header: Vec<String> = R::HEADER.iter().map(|h| h.to_string()).collect();
            let mut out = csv_line(&header);
            for row in rows {
                out.push_str(&csv_line(&R::csv_fields(row)));
            }
            out
        }
    })
}

/// The org's contacts as a file of `format`.
pub async fn export_contacts(
    store: &Store,
    org_id: i64,
    format: Format,
) -> Result<String, StoreError> {
    export_records::<Contact>(store, org_id, format).await
}

/// The org's entities as a file of `format`.
pub async fn export_entities(
    store: &Store,
    org_id: i64,
    format: Format,
) -> Result<String, StoreError> {
    export_records::<Entity>(store, org_id, format).await
}

fn json<T: Serialize>(rows: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into()) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::csv::records;

    #[test]
    fn csv_fields_survive_the_reader() {
        let fields: Vec<String> = ["plain", "a, b", "say \"hi\"", " edge ", "two\nlines", ""]
            .map(String::from)
            .to_vec();
        let text = csv_line(&fields);
        let back = records(&text).into_iter().next().unwrap().unwrap();
        assert_eq!(back.fields, fields);
    }
}
