//! Exporting an org's contacts and entities as CSV or JSON, in the shape
//! [`super::import`] reads: importing an export back changes nothing (every row is
//! `unchanged`), which makes an export a backup and a starting point for bulk edits.
//!
//! Rows carry m365sync's `id` beside the CRM's `external_id`, so records that have no external
//! id are still recognised on the way back in. A contact's entity is written as its id, its
//! external id and its name.

use std::collections::HashMap;

use serde::Serialize;

use super::import::Format;
use m365sync_store::crm::{Contact, Entity, EntityKind};
use m365sync_store::{Store, StoreError};

/// A contact as exported.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedContact {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub alt_email: Option<String>,
    pub contact_points: Vec<String>,
    pub entity_id: Option<i64>,
    pub entity_external_id: Option<String>,
    pub entity: Option<String>,
}

/// An entity as exported.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedEntity {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
    pub kind: EntityKind,
    pub domains: Vec<String>,
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

fn exported_contacts(contacts: Vec<Contact>, entities: &[Entity]) -> Vec<ExportedContact> {
    let ext: HashMap<i64, Option<String>> = entities
        .iter()
        .map(|e| (e.id, e.external_id.clone()))
        .collect();
    contacts
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
        .collect()
}

/// The org's contacts as a file of `format`.
pub async fn export_contacts(
    store: &Store,
    org_id: i64,
    format: Format,
) -> Result<String, StoreError> {
    let entities = store.all_entities(org_id).await?;
    let rows = exported_contacts(store.all_contacts(org_id).await?, &entities);
    Ok(match format {
        Format::Json => json(&rows),
        Format::Csv => {
            let mut out = csv_line(
                &[
                    "id",
                    "external_id",
                    "name",
                    "email",
                    "alt_email",
                    "contact_points",
                    "entity_id",
                    "entity_external_id",
                    "entity",
                ]
                .map(String::from),
            );
            for c in rows {
                out.push_str(&csv_line(&[
                    c.id.to_string(),
                    opt(&c.external_id),
                    c.name,
                    opt(&c.email),
                    opt(&c.alt_email),
                    c.contact_points.join(";"),
                    c.entity_id.map(|i| i.to_string()).unwrap_or_default(),
                    opt(&c.entity_external_id),
                    opt(&c.entity),
                ]));
            }
            out
        }
    })
}

/// The org's entities as a file of `format`.
pub async fn export_entities(
    store: &Store,
    org_id: i64,
    format: Format,
) -> Result<String, StoreError> {
    let rows: Vec<ExportedEntity> = store
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
        .collect();
    Ok(match format {
        Format::Json => json(&rows),
        Format::Csv => {
            let mut out =
                csv_line(&["id", "external_id", "name", "kind", "domains"].map(String::from));
            for e in rows {
                out.push_str(&csv_line(&[
                    e.id.to_string(),
                    opt(&e.external_id),
                    e.name,
                    e.kind.as_str().to_string(),
                    e.domains.join(";"),
                ]));
            }
            out
        }
    })
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
