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

use std::future::Future;

use crate::admin::csv::records;
use m365sync_store::crm::{
    Contact, ContactInput, CrmRecord, Entity, EntityInput, EntityKind, RecordSave, SaveOutcome,
};
use m365sync_store::{Store, StoreError};

/// Rows saved per transaction: one commit per batch, and other writers wait at most one
/// batch.
const BATCH: usize = 200;

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of objects (or an object holding one).
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
    /// The file's name as the caller gave it.
    pub file: String,
    /// Where the row is in the file.
    pub location: Location,
    /// Why it was not imported, and what to fix.
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
    /// Records created.
    pub created: usize,
    /// Records changed.
    pub updated: usize,
    /// Records that already held the row's values.
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
    /// The file is not a file of records at all (not CSV or JSON, no name column).
    #[error("{file}: {problem}")]
    Unreadable {
        /// The file's name.
        file: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The database failed part-way: the rows before `location` were imported.
    #[error(
        "{file}: the database failed part-way; rows before {location} were imported: {source}"
    )]
    Store {
        /// The file's name.
        file: String,
        /// The first row not known to be saved.
        location: Location,
        /// The database's error.
        source: StoreError,
    },
}

/// The columns of a contacts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactField {
    /// m365sync's id (`id`), as an export writes it.
    Id,
    /// The CRM's own id.
    ExternalId,
    /// The full name.
    Name,
    /// A first name, joined with the last name when there is no name column.
    FirstName,
    /// A last name, joined with the first name when there is no name column.
    LastName,
    /// The Email field.
    Email,
    /// The Alternate Email field.
    AltEmail,
    /// Contact-point emails (`;`-separated in CSV).
    ContactPoints,
    /// The entity by m365sync's id.
    EntityId,
    /// The entity by the CRM's id.
    EntityExternalId,
    /// The entity by name (must be unique in the org).
    EntityName,
}

/// The columns of an entities file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityField {
    /// m365sync's id (`id`), as an export writes it.
    Id,
    /// The CRM's own id.
    ExternalId,
    /// The name.
    Name,
    /// `household` or `company`.
    Kind,
    /// Email domains (`;`-separated in CSV).
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
pub enum Value {
    /// A CSV field or a JSON string or number.
    Text(String),
    /// A JSON array of strings.
    List(Vec<String>),
}

impl Value {
    /// The value as trimmed text, `None` when empty (a list joined with `;`).
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t.trim().to_string()).filter(|t| !t.is_empty()),
            Value::List(l) => Some(l.join(";")).filter(|t| !t.trim().is_empty()),
        }
    }

    /// The value as a list (text split on `;`, `,` or line breaks; empty items dropped).
    pub fn list(&self) -> Vec<String> {
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

/// A kind of record a file can import: its columns and how a row's values become the
/// record's input. Implemented for [`Contact`] and [`Entity`]; [`import_records`] is written
/// once over it.
pub trait Importable: CrmRecord {
    /// The columns of the kind's files.
    type Field: Copy + Eq + std::hash::Hash + Send + Sync;
    /// What one import resolves a row's references with, and remembers across rows (a
    /// contact's entity); `()` when the kind references nothing.
    type Refs: Default + Send;
    /// The column of the CRM's own id.
    const EXTERNAL_ID: Self::Field;
    /// The column of m365sync's id.
    const ID: Self::Field;

    /// The column a header (CSV) or key (JSON) names, if any.
    fn field(header: &str) -> Option<Self::Field>;

    /// True when the CSV columns include a name (a file without one is refused as a whole).
    fn has_name(columns: &[Self::Field]) -> bool;

    /// The record's input: the row's values over `existing`'s (a column the row does not have
    /// keeps the stored value), or a new record's. `Invalid` when the row is not a record.
    fn apply(
        store: &Store,
        org_id: i64,
        values: &HashMap<Self::Field, Value>,
        existing: Option<&Self>,
        refs: &mut Self::Refs,
    ) -> impl Future<Output = Result<Self::Input, StoreError>> + Send;
}

/// Imports contacts into the org from `text` (`file` names it in errors).
pub async fn import_contacts(
    store: &Store,
    org_id: i64,
    file: &str,
    text: &str,
    format: Format,
) -> Result<ImportReport, ImportError> {
    import_records::<Contact>(store, org_id, file, text, format).await
}

/// Imports entities into the org from `text` (`file` names it in errors).
pub async fn import_entities(
    store: &Store,
    org_id: i64,
    file: &str,
    text: &str,
    format: Format,
) -> Result<ImportReport, ImportError> {
    import_records::<Entity>(store, org_id, file, text, format).await
}

/// Imports records of kind `R` into the org from `text` (`file` names it in errors): rows
/// are read, turned into saves, and saved 200 to a transaction.
pub async fn import_records<R: Importable>(
    store: &Store,
    org_id: i64,
    file: &str,
    text: &str,
    format: Format,
) -> Result<ImportReport, ImportError> {
    let rows = match format {
        Format::Csv => csv_rows(file, text, R::field, R::has_name)?,
        Format::Json => json_rows(file, text, R::field, R::PLURAL)?,
    };
    let mut report = ImportReport::default();
    let mut refs = R::Refs::default();
    let mut batch: Vec<(Location, RecordSave<R::Input>)> = Vec::new();
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
        if !pending.insert(row_key(&row.values, R::EXTERNAL_ID, R::ID)) {
            flush::<R>(store, org_id, file, &mut batch, &mut report).await?;
            pending.clear();
            pending.insert(row_key(&row.values, R::EXTERNAL_ID, R::ID));
        }
        match prepare::<R>(store, org_id, &row, &mut refs).await {
            Ok(save) => batch.push((row.location, save)),
            Err(e) => report.store_error(file, row.location, e)?,
        }
        if batch.len() >= BATCH {
            flush::<R>(store, org_id, file, &mut batch, &mut report).await?;
            pending.clear();
        }
    }
    flush::<R>(store, org_id, file, &mut batch, &mut report).await?;
    report.errors.sort_by_key(|e| match e.location {
        Location::Line(n) | Location::Index(n) => n,
    });
    Ok(report)
}

/// Saves the batch in one transaction and counts what each row did.
async fn flush<R: Importable>(
    store: &Store,
    org_id: i64,
    file: &str,
    batch: &mut Vec<(Location, RecordSave<R::Input>)>,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let (locations, saves): (Vec<Location>, Vec<RecordSave<R::Input>>) =
        std::mem::take(batch).into_iter().unzip();
    let results = store
        .save_records::<R>(org_id, &saves)
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

/// A row as a save: of the org's record with the row's external id, else of the record with
/// its `id` (which must exist), else of a new record.
async fn prepare<R: Importable>(
    store: &Store,
    org_id: i64,
    row: &RawRow<R::Field>,
    refs: &mut R::Refs,
) -> Result<RecordSave<R::Input>, StoreError> {
    let v = &row.values;
    let ext = v.get(&R::EXTERNAL_ID).and_then(Value::text);
    let id = match v.get(&R::ID) {
        Some(x) => parse_id("id", x).map_err(StoreError::Invalid)?,
        None => None,
    };
    let mut existing = None;
    if let Some(ext) = &ext {
        existing = store.record_by_external_id::<R>(org_id, ext).await?;
    }
    if existing.is_none() {
        if let Some(id) = id {
            existing = Some(store.record::<R>(org_id, id).await.map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::Invalid(format!(
                    "no {kind} with id {id} in this org; leave id empty to create the {kind}",
                    kind = R::KIND
                )),
                other => other,
            })?);
        }
    }
    let input = R::apply(store, org_id, v, existing.as_ref(), refs).await?;
    Ok(RecordSave {
        id: existing.map(|r| r.id()),
        input,
    })
}

/// The name check both kinds make once a row's values are applied.
fn require_name(name: &str, kind: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::Invalid(format!(
            "no name; every {kind} needs one"
        )));
    }
    Ok(())
}

impl Importable for Contact {
    type Field = ContactField;
    type Refs = EntityResolver;
    const EXTERNAL_ID: ContactField = ContactField::ExternalId;
    const ID: ContactField = ContactField::Id;

    fn field(header: &str) -> Option<ContactField> {
        contact_field(header)
    }

    fn has_name(cols: &[ContactField]) -> bool {
        use ContactField as F;
        cols.contains(&F::Name) || cols.contains(&F::FirstName) || cols.contains(&F::LastName)
    }

    async fn apply(
        store: &Store,
        org_id: i64,
        v: &HashMap<ContactField, Value>,
        existing: Option<&Contact>,
        entities: &mut EntityResolver,
    ) -> Result<ContactInput, StoreError> {
        use ContactField as F;
        let get = |f: F| v.get(&f).and_then(Value::text);
        let mut input = existing.map(ContactInput::from).unwrap_or_default();
        if v.contains_key(&F::ExternalId) {
            input.external_id = get(F::ExternalId);
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
        require_name(&input.name, Contact::KIND)?;
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
        Ok(input)
    }
}

impl Importable for Entity {
    type Field = EntityField;
    type Refs = ();
    const EXTERNAL_ID: EntityField = EntityField::ExternalId;
    const ID: EntityField = EntityField::Id;

    fn field(header: &str) -> Option<EntityField> {
        entity_field(header)
    }

    fn has_name(cols: &[EntityField]) -> bool {
        cols.contains(&EntityField::Name)
    }

    async fn apply(
        _store: &Store,
        _org_id: i64,
        v: &HashMap<EntityField, Value>,
        existing: Option<&Entity>,
        _refs: &mut (),
    ) -> Result<EntityInput, StoreError> {
        use EntityField as F;
        let get = |f: F| v.get(&f).and_then(Value::text);
        let kind = match get(F::Kind) {
            Some(k) => Some(k.parse::<EntityKind>().map_err(StoreError::Invalid)?),
            None => None,
        };
        let mut input = match (existing, kind) {
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
            input.external_id = get(F::ExternalId);
        }
        if v.contains_key(&F::Name) {
            input.name = get(F::Name).unwrap_or_default();
        }
        require_name(&input.name, Entity::KIND)?;
        if let Some(domains) = v.get(&F::Domains) {
            input.domains = domains.list();
        }
        Ok(input)
    }
}

/// Entity references of one import, looked up once each.
#[derive(Default)]
pub struct EntityResolver {
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
