//! Importing contacts and entities from CSV or JSON files a CRM exported.
//!
//! Headers (CSV) and keys (JSON) are matched leniently: case, spaces, `_` and `-` do not
//! matter, and common variants are understood (`Alternate Email`, `alt_email`, `Email 2`...;
//! see [`contact_field`] and [`entity_field`]). In CSV, contact points (and entity domains) are
//! separated by `;`; in JSON they are an array. A contact's entity is referenced by
//! `entity_external_id`, `entity_id` (m365sync's id) or `entity` (its name).
//!
//! Which record a row is: the org's record with the row's external id if there is one, else
//! the record with the row's `id` (what [`super::export`] writes, so an export imports back
//! unchanged), else a new record. A column the file does not have keeps the stored value; a
//! column that is there but empty clears it.
//!
//! Each bad row is reported with the file name and its line (CSV) or array index (JSON) and the
//! reason, and the rest is imported. Only a file that cannot be read at all (not CSV or JSON,
//! no name column) is an error of the whole import.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::admin::csv::records;
use m365sync_store::crm::{ContactInput, EntityInput, EntityKind, RecordSave, SaveOutcome};

/// Rows saved per transaction: one commit per batch, and other writers wait at most one
/// batch.
const BATCH: usize = 200;
use m365sync_store::{Store, StoreError};

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// The format a file name's extension says (`.csv`, `.json`), if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "txt" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(format!("format '{other}' is neither csv nor json")),
        }
    }
}

/// Where a row is in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// A CSV line (1-based, the line the record starts on).
    Line(usize),
    /// A JSON array index (0-based).
    Index(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Index(n) => write!(f, "index {n}"),
        }
    }
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub file: String,
    pub location: Location,
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.location, self.message)
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Rows read (blank CSV lines are not rows).
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// The rows left out, in file order.
    pub errors: Vec<RowError>,
}

impl ImportReport {
    /// True when the file had rows and none could be imported: the import as a whole failed.
    pub fn nothing_imported(&self) -> bool {
        self.rows > 0 && self.errors.len() == self.rows
    }

    fn row_error(&mut self, file: &str, location: Location, message: String) {
        self.errors.push(RowError {
            file: file.to_string(),
            location,
            message,
        });
    }

    /// Records a row's store error, or fails the import when the database itself failed.
    fn store_error(
        &mut self,
        file: &str,
        location: Location,
        e: StoreError,
    ) -> Result<(), ImportError> {
        match row_problem(e) {
            Ok(message) => {
                self.row_error(file, location, message);
                Ok(())
            }
            Err(source) => Err(ImportError::Store {
                file: file.to_string(),
                location,
                source,
            }),
        }
    }

    fn count(&mut self, outcome: SaveOutcome) {
        match outcome {
            SaveOutcome::Created => self.created += 1,
            SaveOutcome::Updated => self.updated += 1,
            SaveOutcome::Unchanged => self.unchanged += 1,
        }
    }
}

/// Why a whole import failed (row problems are in [`ImportReport::errors`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {problem}")]
    Unreadable { file: String, problem: String },
    #[error(
        "{file}: the database failed part-way; rows before {location} were imported: {source}"
    )]
    Store {
        file: String,
        location: Location,
        source: StoreError,
    },
}

/// The columns of a contacts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactField {
    Id,
    ExternalId,
    Name,
    FirstName,
    LastName,
    Email,
    AltEmail,
    ContactPoints,
    EntityId,
    EntityExternalId,
    EntityName,
}

/// The columns of an entities file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityField {
    Id,
    ExternalId,
    Name,
    Kind,
    Domains,
}

/// `Alternate E-mail` -> `alternateemail`.
fn header_key(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The contact field a header or key names, if any.
pub fn contact_field(header: &str) -> Option<ContactField> {
    use ContactField::*;
    Some(match header_key(header).as_str() {
        "id" | "m365syncid" => Id,
        "externalid" | "extid" | "crmid" | "contactexternalid" | "reference" | "ref" => ExternalId,
        "name" | "fullname" | "contactname" | "displayname" => Name,
        "firstname" | "givenname" => FirstName,
        "lastname" | "surname" | "familyname" => LastName,
        "email" | "emailaddress" | "mail" | "primaryemail" | "email1" => Email,
        "altemail"
        | "alternateemail"
        | "alternativeemail"
        | "alternateemailaddress"
        | "secondaryemail"
        | "otheremail"
        | "email2" => AltEmail,
        "contactpoints" | "contactpoint" | "contactpointemails" | "contactpointemail"
        | "additionalemails" | "otheremails" | "emails" => ContactPoints,
        "entityid" => EntityId,
        "entityexternalid" | "entityextid" | "entityref" => EntityExternalId,
        "entity" | "entityname" | "household" | "company" | "account" | "organisation"
        | "organization" => EntityName,
        _ => return None,
    })
}

/// The entity field a header or key names, if any.
pub fn entity_field(header: &str) -> Option<EntityField> {
    use EntityField::*;
    Some(match header_key(header).as_str() {
        "id" | "m365syncid" => Id,
        "externalid" | "extid" | "crmid" | "entityexternalid" | "reference" | "ref" => ExternalId,
        "name" | "entityname" | "displayname" => Name,
        "kind" | "type" | "entitykind" | "entitytype" => Kind,
        "domains" | "domain" | "emaildomains" => Domains,
        _ => return None,
    })
}

/// A value of a row: text, or a list (JSON arrays; in CSV, text split on `;`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    List(Vec<String>),
}

impl Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
            Value::List(l) => Some(l.join(";")).filter(|t| !t.trim().is_empty()),
        }
    }

    fn list(&self) -> Vec<String> {
        match self {
            Value::Text(t) => t
                .split([';', ',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Value::List(l) => l.clone(),
        }
    }
}

/// One row: where it is and the values of the columns the file has.
struct RawRow<F> {
    location: Location,
    values: HashMap<F, Value>,
}

type Rows<F> = Vec<Result<RawRow<F>, (Location, String)>>;

fn csv_rows<F: Copy + Eq + std::hash::Hash>(
    file: &str,
    text: &str,
    field: fn(&str) -> Option<F>,
    has_name: fn(&[F]) -> bool,
) -> Result<Rows<F>, ImportError> {
    let unreadable = |problem: String| ImportError::Unreadable {
        file: file.to_string(),
        problem,
    };
    let mut recs = records(text).into_iter();
    let header = recs
        .next()
        .ok_or_else(|| {
            unreadable("the file is empty; it needs a header line such as name,email".into())
        })?
        .map_err(|e| unreadable(e.to_string()))?;
    let columns: Vec<Option<F>> = header.fields.iter().map(|h| field(h)).collect();
    let known: Vec<F> = columns.iter().flatten().copied().collect();
    if !has_name(&known) {
        return Err(unreadable(format!(
            "line {}: the header ({}) has no name column; is this the right file, and is it comma-separated?",
            header.line,
            header.fields.join(",")
        )));
    }
    let mut rows = Vec::new();
    for r in recs {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                rows.push(Err((Location::Line(e.line()), e.problem().to_string())));
                continue;
            }
        };
        let location = Location::Line(r.line);
        if r.fields.len() > columns.len() {
            rows.push(Err((
                location,
                format!(
                    "{} fields, but the header has {} (an unquoted comma? separate contact points with ';')",
                    r.fields.len(),
                    columns.len()
                ),
            )));
            continue;
        }
        let mut values = HashMap::new();
        for (i, col) in columns.iter().enumerate() {
            if let Some(col) = col {
                let v = r.fields.get(i).cloned().unwrap_or_default();
                // The first column of a kind wins, as in the Entra reader.
                values.entry(*col).or_insert(Value::Text(v));
            }
        }
        rows.push(Ok(RawRow { location, values }));
    }
    Ok(rows)
}

fn json_rows<F: Copy + Eq + std::hash::Hash>(
    file: &str,
    text: &str,
    field: fn(&str) -> Option<F>,
    list_key: &str,
) -> Result<Rows<F>, ImportError> {
    let unreadable = |problem: String| ImportError::Unreadable {
        file: file.to_string(),
        problem,
    };
    let doc: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| unreadable(format!("not JSON: {e}")))?;
    let items = match doc {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut o) => match o.remove(list_key) {
            Some(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(unreadable(format!(
                    "expected an array of objects (or an object with a \"{list_key}\" array)"
                )))
            }
        },
        _ => {
            return Err(unreadable(format!(
                "expected an array of objects (or an object with a \"{list_key}\" array)"
            )))
        }
    };
    let mut rows = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let location = Location::Index(i);
        let serde_json::Value::Object(o) = item else {
            rows.push(Err((
                location,
                "not an object; each item is one record".to_string(),
            )));
            continue;
        };
        let mut values = HashMap::new();
        let mut bad = None;
        for (k, v) in o {
            let Some(f) = field(&k) else { continue };
            let v = match v {
                serde_json::Value::Null => Value::Text(String::new()),
                serde_json::Value::String(s) => Value::Text(s),
                serde_json::Value::Number(n) => Value::Text(n.to_string()),
                serde_json::Value::Array(a) => {
                    let mut list = Vec::new();
                    for x in a {
                        match x {
                            serde_json::Value::String(s) => list.push(s),
                            other => {
                                bad = Some(format!("\"{k}\" holds {other}, not a string"));
                            }
                        }
                    }
                    Value::List(list)
                }
                other => {
                    bad = Some(format!("\"{k}\" is {other}; give text"));
                    continue;
                }
            };
            values.entry(f).or_insert(v);
        }
        rows.push(match bad {
            Some(message) => Err((location, message)),
            None => Ok(RawRow { location, values }),
        });
    }
    Ok(rows)
}

/// Which record a row names (its external id, else its id), to keep a record to one row per
/// batch; a row naming none gets a key of its own.
fn row_key<F: Eq + std::hash::Hash>(values: &HashMap<F, Value>, ext: F, id: F) -> String {
    static UNNAMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(e) = values.get(&ext).and_then(Value::text) {
        return format!("ext:{e}");
    }
    if let Some(i) = values.get(&id).and_then(Value::text) {
        return format!("id:{i}");
    }
    format!(
        "new:{}",
        UNNAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn parse_id(what: &str, v: &Value) -> Result<Option<i64>, String> {
    match v.text() {
        None => Ok(None),
        Some(t) => t.parse::<i64>().map(Some).map_err(|_| {
            format!("{what} '{t}' is not a number; leave it empty or give m365sync's id")
        }),
    }
}

/// A store error that belongs to the row (bad value, unknown reference) rather than the run.
fn row_problem(e: StoreError) -> Result<String, StoreError> {
    match e {
        StoreError::Invalid(m) | StoreError::NotFound(m) => Ok(m),
        other => Err(other),
    }
}

/// Imports contacts into the org from `text` (`file` names it in errors).
pub async fn import_contacts(
    store: &Store,
    org_id: i64,
    file: &str,
    text: &str,
    format: Format,
) -> Result<ImportReport, ImportError> {
    use ContactField as F;
    let rows = match format {
        Format::Csv => csv_rows(file, text, contact_field, |cols| {
            cols.contains(&F::Name) || cols.contains(&F::FirstName) || cols.contains(&F::LastName)
        })?,
        Format::Json => json_rows(file, text, contact_field, "contacts")?,
    };
    let mut report = ImportReport::default();
    let mut entities = EntityResolver::default();
    let mut batch: Vec<(Location, RecordSave<ContactInput>)> = Vec::new();
    let mut pending = std::collections::HashSet::new();
    for row in rows {
        report.rows += 1;
        let row = match row {
            Ok(r) => r,
            Err((location, message)) => {
                report.row_error(file, location, message);
                continue;
            }
        };
        // A record already in the batch is saved first, so this row starts from its values.
        if !pending.insert(row_key(
            &row.values,
            ContactField::ExternalId,
            ContactField::Id,
        )) {
            flush_contacts(store, org_id, file, &mut batch, &mut report).await?;
            pending.clear();
            pending.insert(row_key(
                &row.values,
                ContactField::ExternalId,
                ContactField::Id,
            ));
        }
        match prepare_contact(store, org_id, &row, &mut entities).await {
            Ok(save) => batch.push((row.location, save)),
            Err(e) => report.store_error(file, row.location, e)?,
        }
        if batch.len() >= BATCH {
            flush_contacts(store, org_id, file, &mut batch, &mut report).await?;
            pending.clear();
        }
    }
    flush_contacts(store, org_id, file, &mut batch, &mut report).await?;
    report.errors.sort_by_key(|e| match e.location {
        Location::Line(n) | Location::Index(n) => n,
    });
    Ok(report)
}

async fn flush_contacts(
    store: &Store,
    org_id: i64,
    file: &str,
    batch: &mut Vec<(Location, RecordSave<ContactInput>)>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (locations, saves): (Vec<Location>, Vec<RecordSave<ContactInput>>) =
        std::mem::take(batch).into_iter().unzip();
    let results = store
        .save_contacts(org_id, &saves)
        .await
        .map_err(|source| ImportError::Store {
            file: file.to_string(),
            location: locations[0],
            source,
        })?;
    for (location, result) in locations.into_iter().zip(results) {
        match result {
            Ok((outcome, _)) => report.count(outcome),
            Err(e) => report.store_error(file, location, e)?,
        }
    }
    Ok(())
}

/// Entity references of one import, looked up once each.
#[derive(Default)]
struct EntityResolver {
    by_external_id: HashMap<String, i64>,
    by_name: HashMap<String, i64>,
}

impl EntityResolver {
    async fn resolve(
        &mut self,
        store: &Store,
        org_id: i64,
        values: &HashMap<ContactField, Value>,
    ) -> Result<Option<Option<i64>>, StoreError> {
        use ContactField as F;
        let present = [F::EntityExternalId, F::EntityId, F::EntityName]
            .iter()
            .any(|f| values.contains_key(f));
        if !present {
            return Ok(None);
        }
        let get = |f: F| values.get(&f).and_then(Value::text);
        if let Some(ext) = get(F::EntityExternalId) {
            if let Some(id) = self.by_external_id.get(&ext) {
                return Ok(Some(Some(*id)));
            }
            let e = store.entity_by_external_id(org_id, &ext).await?.ok_or_else(|| {
                StoreError::Invalid(format!(
                    "no entity with external id '{ext}' in this org; import the entities first, or fix the reference"
                ))
            })?;
            self.by_external_id.insert(ext, e.id);
            return Ok(Some(Some(e.id)));
        }
        if let Some(v) = values.get(&F::EntityId) {
            if let Some(id) = parse_id("entity_id", v).map_err(StoreError::Invalid)? {
                store.entity(org_id, id).await.map_err(|e| match e {
                    StoreError::NotFound(_) => StoreError::Invalid(format!(
                        "no entity with id {id} in this org; `m365sync entity list` shows them"
                    )),
                    other => other,
                })?;
                return Ok(Some(Some(id)));
            }
        }
        if let Some(name) = get(F::EntityName) {
            let key = name.to_lowercase();
            if let Some(id) = self.by_name.get(&key) {
                return Ok(Some(Some(*id)));
            }
            let found = store.entities_named(org_id, &name).await?;
            return match found.as_slice() {
                [e] => {
                    self.by_name.insert(key, e.id);
                    Ok(Some(Some(e.id)))
                }
                [] => Err(StoreError::Invalid(format!(
                    "no entity named '{name}' in this org; import the entities first, or fix the name"
                ))),
                many => Err(StoreError::Invalid(format!(
                    "{} entities are named '{name}'; reference the entity by entity_external_id or entity_id",
                    many.len()
                ))),
            };
        }
        Ok(Some(None))
    }
}

async fn prepare_contact(
    store: &Store,
    org_id: i64,
    row: &RawRow<ContactField>,
    entities: &mut EntityResolver,
) -> Result<RecordSave<ContactInput>, StoreError> {
    use ContactField as F;
    let v = &row.values;
    let get = |f: F| v.get(&f).and_then(Value::text);
    let ext = get(F::ExternalId);
    let id = match v.get(&F::Id) {
        Some(x) => parse_id("id", x).map_err(StoreError::Invalid)?,
        None => None,
    };
    let mut existing = None;
    if let Some(ext) = &ext {
        existing = store.contact_by_external_id(org_id, ext).await?;
    }
    if existing.is_none() {
        if let Some(id) = id {
            existing = Some(store.contact(org_id, id).await.map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::Invalid(format!(
                    "no contact with id {id} in this org; leave id empty to create the contact"
                )),
                other => other,
            })?);
        }
    }
    let mut input = existing
        .as_ref()
        .map(ContactInput::from)
        .unwrap_or_default();
    if v.contains_key(&F::ExternalId) {
        input.external_id = ext;
    }
    if v.contains_key(&F::Name) {
        input.name = get(F::Name).unwrap_or_default();
    } else if v.contains_key(&F::FirstName) || v.contains_key(&F::LastName) {
        input.name = [get(F::FirstName), get(F::LastName)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
    }
    if input.name.trim().is_empty() {
        return Err(StoreError::Invalid(
            "no name; every contact needs one".into(),
        ));
    }
    if v.contains_key(&F::Email) {
        input.email = get(F::Email);
    }
    if v.contains_key(&F::AltEmail) {
        input.alt_email = get(F::AltEmail);
    }
    if let Some(points) = v.get(&F::ContactPoints) {
        input.contact_points = points.list();
    }
    if let Some(entity_id) = entities.resolve(store, org_id, v).await? {
        input.entity_id = entity_id;
    }
    Ok(RecordSave {
        id: existing.map(|c| c.id),
        input,
    })
}

/// Imports entities into the org from `text` (`file` names it in errors).
pub async fn import_entities(
    store: &Store,
    org_id: i64,
    file: &str,
    text: &str,
    format: Format,
) -> Result<ImportReport, ImportError> {
    let rows = match format {
        Format::Csv => csv_rows(file, text, entity_field, |cols| {
            cols.contains(&EntityField::Name)
        })?,
        Format::Json => json_rows(file, text, entity_field, "entities")?,
    };
    let mut report = ImportReport::default();
    let mut batch: Vec<(Location, RecordSave<EntityInput>)> = Vec::new();
    let mut pending = std::collections::HashSet::new();
    for row in rows {
        report.rows += 1;
        let row = match row {
            Ok(r) => r,
            Err((location, message)) => {
                report.row_error(file, location, message);
                continue;
            }
        };
        if !pending.insert(row_key(
            &row.values,
            EntityField::ExternalId,
            EntityField::Id,
        )) {
            flush_entities(store, org_id, file, &mut batch, &mut report).await?;
            pending.clear();
            pending.insert(row_key(
                &row.values,
                EntityField::ExternalId,
                EntityField::Id,
            ));
        }
        match prepare_entity(store, org_id, &row).await {
            Ok(save) => batch.push((row.location, save)),
            Err(e) => report.store_error(file, row.location, e)?,
        }
        if batch.len() >= BATCH {
            flush_entities(store, org_id, file, &mut batch, &mut report).await?;
            pending.clear();
        }
    }
    flush_entities(store, org_id, file, &mut batch, &mut report).await?;
    report.errors.sort_by_key(|e| match e.location {
        Location::Line(n) | Location::Index(n) => n,
    });
    Ok(report)
}

async fn flush_entities(
    store: &Store,
    org_id: i64,
    file: &str,
    batch: &mut Vec<(Location, RecordSave<EntityInput>)>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (locations, saves): (Vec<Location>, Vec<RecordSave<EntityInput>>) =
        std::mem::take(batch).into_iter().unzip();
    let results = store
        .save_entities(org_id, &saves)
        .await
        .map_err(|source| ImportError::Store {
            file: file.to_string(),
            location: locations[0],
            source,
        })?;
    for (location, result) in locations.into_iter().zip(results) {
        match result {
            Ok((outcome, _)) => report.count(outcome),
            Err(e) => report.store_error(file, location, e)?,
        }
    }
    Ok(())
}

async fn prepare_entity(
    store: &Store,
    org_id: i64,
    row: &RawRow<EntityField>,
) -> Result<RecordSave<EntityInput>, StoreError> {
    use EntityField as F;
    let v = &row.values;
    let get = |f: F| v.get(&f).and_then(Value::text);
    let ext = get(F::ExternalId);
    let id = match v.get(&F::Id) {
        Some(x) => parse_id("id", x).map_err(StoreError::Invalid)?,
        None => None,
    };
    let mut existing = None;
    if let Some(ext) = &ext {
        existing = store.entity_by_external_id(org_id, ext).await?;
    }
    if existing.is_none() {
        if let Some(id) = id {
            existing = Some(store.entity(org_id, id).await.map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::Invalid(format!(
                    "no entity with id {id} in this org; leave id empty to create the entity"
                )),
                other => other,
            })?);
        }
    }
    let kind = match get(F::Kind) {
        Some(k) => Some(k.parse::<EntityKind>().map_err(StoreError::Invalid)?),
        None => None,
    };
    let mut input = match (&existing, kind) {
        (Some(e), _) => EntityInput::from(e),
        (None, Some(kind)) => EntityInput {
            external_id: None,
            name: String::new(),
            kind,
            domains: Vec::new(),
        },
        (None, None) => {
            return Err(StoreError::Invalid(
                "no kind; give household or company".into(),
            ))
        }
    };
    if let Some(kind) = kind {
        input.kind = kind;
    }
    if v.contains_key(&F::ExternalId) {
        input.external_id = ext;
    }
    if v.contains_key(&F::Name) {
        input.name = get(F::Name).unwrap_or_default();
    }
    if input.name.trim().is_empty() {
        return Err(StoreError::Invalid(
            "no name; every entity needs one".into(),
        ));
    }
    if let Some(domains) = v.get(&F::Domains) {
        input.domains = domains.list();
    }
    Ok(RecordSave {
        id: existing.map(|e| e.id),
        input,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_matched_leniently() {
        assert_eq!(
            contact_field("Alternate Email"),
            Some(ContactField::AltEmail)
        );
        assert_eq!(contact_field("alt_email"), Some(ContactField::AltEmail));
        assert_eq!(contact_field(" E-mail "), Some(ContactField::Email));
        assert_eq!(contact_field("External ID"), Some(ContactField::ExternalId));
        assert_eq!(
            contact_field("Contact Points"),
            Some(ContactField::ContactPoints)
        );
        assert_eq!(contact_field("Household"), Some(ContactField::EntityName));
        assert_eq!(contact_field("notes"), None);
        assert_eq!(entity_field("Type"), Some(EntityField::Kind));
        assert_eq!(entity_field("Domain"), Some(EntityField::Domains));
    }

    #[test]
    fn csv_rows_keep_their_lines_and_lists_split_on_semicolons() {
        let rows = csv_rows(
            "c.csv",
            "Name,Email,Contact Points,notes\nAlice,a@x.example,\"b@x.example; c@x.example\",hi\n\nBob,\"bad\"x,,\nC,a,b,c,d\n",
            contact_field,
            |c| c.contains(&ContactField::Name),
        )
        .unwrap();
        let first = rows[0].as_ref().unwrap();
        assert_eq!(first.location, Location::Line(2));
        assert_eq!(
            first.values[&ContactField::ContactPoints].list(),
            ["b@x.example", "c@x.example"]
        );
        assert!(matches!(&rows[1], Err((Location::Line(4), _))));
        assert!(matches!(&rows[2], Err((Location::Line(5), m)) if m.contains("5 fields")));
        let err = csv_rows("c.csv", "email\na@x.example\n", contact_field, |c| {
            c.contains(&ContactField::Name)
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.starts_with("c.csv: line 1: the header (email) has no name column"),
            "{err}"
        );
    }

    #[test]
    fn json_rows_keep_their_index() {
        let rows = json_rows(
            "c.json",
            r#"[{"name":"A","contact_points":["x@y.example"]}, 3, {"name":"B","email":{"a":1}}]"#,
            contact_field,
            "contacts",
        )
        .unwrap();
        assert!(rows[0].is_ok());
        assert!(matches!(&rows[1], Err((Location::Index(1), _))));
        assert!(matches!(&rows[2], Err((Location::Index(2), m)) if m.contains("\"email\"")));
        assert!(json_rows("c.json", "{\"x\":1}", contact_field, "contacts").is_err());
        assert!(
            json_rows("c.json", "{\"contacts\":[]}", contact_field, "contacts")
                .unwrap()
                .is_empty()
        );
    }
}
