//! `m365sync contact ...` and `m365sync entity ...`: the CRM records matching links mail to
//! (E8), edited one at a time or imported and exported in bulk, and the contacts that carry a
//! sync user's address (E9).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use m365sync::crm::export::{export_records, Exportable};
use m365sync::crm::import::{import_records, Format, ImportReport, Importable};
use m365sync_store::crm::{
    Contact, ContactInput, CrmRecord, Entity, EntityInput, EntityKind, ListQuery,
};
use m365sync_store::Store;

use super::admin::open;

const ID_HELP: &str = "m365sync's id (from `list`), or ext:ID for the CRM's external id";

/// `m365sync contact ...`
#[derive(Subcommand)]
pub enum ContactCommand {
    /// Add a contact. Addresses are stored trimmed and lower-cased; a malformed one is refused.
    Add {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The contact's full name (required).
        #[arg(long)]
        name: String,
        /// The Email field.
        #[arg(long)]
        email: Option<String>,
        /// The Alternate Email field.
        #[arg(long)]
        alt_email: Option<String>,
        /// A contact-point email (repeat for several).
        #[arg(long = "contact-point")]
        contact_points: Vec<String>,
        /// Its entity: an id, ext:EXTERNAL_ID, or a name.
        #[arg(long)]
        entity: Option<String>,
        /// The CRM's own id of the contact (imports update by it).
        #[arg(long)]
        external_id: Option<String>,
        /// Print the contact as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a contact; only the fields given change (an empty value clears a field).
    Update {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        #[arg(help = ID_HELP)]
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new Email field (an empty value clears it).
        #[arg(long)]
        email: Option<String>,
        /// A new Alternate Email field (an empty value clears it).
        #[arg(long)]
        alt_email: Option<String>,
        /// Add a contact-point email (repeat for several).
        #[arg(long = "add-contact-point")]
        add_contact_points: Vec<String>,
        /// Remove a contact-point email (repeat for several).
        #[arg(long = "remove-contact-point")]
        remove_contact_points: Vec<String>,
        /// Remove every contact-point email (before any --add-contact-point).
        #[arg(long)]
        clear_contact_points: bool,
        /// Its entity: an id, ext:EXTERNAL_ID, or a name.
        #[arg(long, conflicts_with = "no_entity")]
        entity: Option<String>,
        /// Detach the contact from its entity.
        #[arg(long)]
        no_entity: bool,
        /// A new CRM id for the contact (an empty value clears it).
        #[arg(long)]
        external_id: Option<String>,
        /// Print the updated contact as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a contact, with its links to synced mail (the mail itself stays).
    Remove {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        #[arg(help = ID_HELP)]
        id: String,
    },
    /// Show one contact.
    Show {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        #[arg(help = ID_HELP)]
        id: String,
        /// Print the contact as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an org's contacts by id, a page at a time.
    List {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// Only contacts whose name or an address contains this (any case).
        #[arg(long)]
        filter: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Only contacts with ids above this (the next page starts after the last id shown).
        #[arg(long)]
        after: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import contacts from a CSV or JSON file (an export, or a CRM's). A row is the contact
    /// with its external_id, else with its id, else a new one; importing twice changes nothing.
    /// Bad rows are reported by line (JSON: array index) and the rest is imported. Import the
    /// entities first when rows name them. Exits non-zero only when nothing could be read: the
    /// file is unreadable or not CSV/JSON, has no name column, or every row was bad.
    Import {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The CSV or JSON file to import.
        file: PathBuf,
        /// csv or json (default: from the file's extension).
        #[arg(long)]
        format: Option<Format>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export an org's contacts as CSV or JSON (what `import` reads back unchanged).
    Export {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// csv or json (default: from --out's extension, else csv).
        #[arg(long)]
        format: Option<Format>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Contacts that carry a sync user's address (a user's own, or a mailbox linked to a
    /// user): mail is never matched on such an address, so fix the contact.
    Warnings {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The contact's activity timeline: the emails (and events) matched to it, newest first.
    Timeline {
        /// The org (the firm) the contacts belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The contact's id, or `ext:ID`.
        id: String,
        /// At most this many items (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Start after this cursor (printed at the end of the previous page).
        #[arg(long)]
        before: Option<String>,
        /// Print JSON (the items and the next page's cursor) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `m365sync entity ...`
#[derive(Subcommand)]
pub enum EntityCommand {
    /// Add an entity: a household or a company, with optional domains.
    Add {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The entity's name (required), e.g. the family or company name.
        #[arg(long)]
        name: String,
        /// household or company.
        #[arg(long)]
        kind: EntityKind,
        /// An email domain of the entity (repeat for several).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// The CRM's own id of the entity (imports update by it).
        #[arg(long)]
        external_id: Option<String>,
        /// Print the entity as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an entity; only the fields given change.
    Update {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        #[arg(help = ID_HELP)]
        id: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// A new kind: household or company.
        #[arg(long)]
        kind: Option<EntityKind>,
        /// Add a domain (repeat for several).
        #[arg(long = "add-domain")]
        add_domains: Vec<String>,
        /// Remove a domain (repeat for several).
        #[arg(long = "remove-domain")]
        remove_domains: Vec<String>,
        /// Remove every domain (before any --add-domain).
        #[arg(long)]
        clear_domains: bool,
        /// A new CRM id for the entity (an empty value clears it).
        #[arg(long)]
        external_id: Option<String>,
        /// Print the updated entity as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an entity; its contacts stay, without an entity.
    Remove {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        #[arg(help = ID_HELP)]
        id: String,
    },
    /// Show one entity.
    Show {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        #[arg(help = ID_HELP)]
        id: String,
        /// Print the entity as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an org's entities by id, a page at a time.
    List {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// Only entities whose name or a domain contains this (any case).
        #[arg(long)]
        filter: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Only entities with ids above this (the next page starts after the last id shown).
        #[arg(long)]
        after: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import entities from a CSV or JSON file (columns id, external_id, name, kind, domains;
    /// domains separated by ';' in CSV). Bad rows are reported by line (JSON: array index) and
    /// the rest is imported; importing twice changes nothing. Exits non-zero only when nothing
    /// could be read: the file is unreadable, has no name column, or every row was bad.
    Import {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// The CSV or JSON file to import.
        file: PathBuf,
        /// csv or json (default: from the file's extension).
        #[arg(long)]
        format: Option<Format>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export an org's entities as CSV or JSON.
    Export {
        /// The org (the firm) the entities belong to, as declared with `m365sync apply` or
        /// `tenant add`.
        #[arg(long)]
        org: String,
        /// csv or json (default: from --out's extension, else csv).
        #[arg(long)]
        format: Option<Format>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// A record named on the command line: m365sync's id, or `ext:` and the external id.
enum Ref {
    Id(i64),
    External(String),
}

fn parse_ref(s: &str) -> anyhow::Result<Ref> {
    if let Some(ext) = s.strip_prefix("ext:") {
        return Ok(Ref::External(ext.to_string()));
    }
    s.trim()
        .parse()
        .map(Ref::Id)
        .map_err(|_| anyhow::anyhow!("'{s}' is neither an id nor ext:EXTERNAL_ID"))
}

/// The org's record of kind `R` named by `s` (an id or `ext:ID`).
async fn find<R: CrmRecord>(store: &Store, org_id: i64, s: &str) -> anyhow::Result<R> {
    Ok(match parse_ref(s)? {
        Ref::Id(id) => store.record::<R>(org_id, id).await?,
        Ref::External(ext) => store
            .record_by_external_id::<R>(org_id, &ext)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no {} with external id '{ext}' in this org", R::KIND)
            })?,
    })
}

/// An entity given as an id, `ext:ID` or a name.
async fn entity_ref(store: &Store, org_id: i64, s: &str) -> anyhow::Result<i64> {
    if s.starts_with("ext:") || s.trim().parse::<i64>().is_ok() {
        return Ok(find::<Entity>(store, org_id, s).await?.id);
    }
    match store.entities_named(org_id, s).await?.as_slice() {
        [e] => Ok(e.id),
        [] => anyhow::bail!("no entity named '{s}'; `m365sync entity list` shows them"),
        many => anyhow::bail!(
            "{} entities are named '{s}'; give its id or ext:EXTERNAL_ID",
            many.len()
        ),
    }
}

fn some(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// What the commands print of a kind of record, so `show`, `list`, `add`, `update`, `import`
/// and `export` are written once for contacts and entities.
trait Shown: Importable + Exportable + serde::Serialize {
    /// The listing's header line.
    fn list_header() -> String;
    /// The record's line in a listing.
    fn list_line(&self) -> String;
    /// The record, one field a line.
    fn show(&self);
    /// What `remove` adds after the record's name, given how many contacts lost it as their
    /// entity.
    fn removed_note(detached: usize) -> String;
}

impl Shown for Contact {
    fn list_header() -> String {
        format!(
            "{:<8} {:<14} {:<24} {:<30} {:<30} {:<6} ENTITY",
            "ID", "EXTERNAL ID", "NAME", "EMAIL", "ALT EMAIL", "POINTS"
        )
    }

    fn list_line(&self) -> String {
        let c = self;
        format!(
            "{:<8} {:<14} {:<24} {:<30} {:<30} {:<6} {}",
            c.id,
            c.external_id.as_deref().unwrap_or("-"),
            c.name,
            c.email.as_deref().unwrap_or("-"),
            c.alt_email.as_deref().unwrap_or("-"),
            c.contact_points.len(),
            c.entity_name.as_deref().unwrap_or("-")
        )
    }

    fn removed_note(_detached: usize) -> String {
        String::new()
    }

    fn show(&self) {
        let c = self;
        println!("contact {}: {}", c.id, c.name);
        println!(
            "  external id:    {}",
            c.external_id.as_deref().unwrap_or("-")
        );
        println!("  email:          {}", c.email.as_deref().unwrap_or("-"));
        println!(
            "  alt email:      {}",
            c.alt_email.as_deref().unwrap_or("-")
        );
        println!(
            "  contact points: {}",
            if c.contact_points.is_empty() {
                "-".to_string()
            } else {
                c.contact_points.join(", ")
            }
        );
        match (c.entity_id, &c.entity_name) {
            (Some(id), Some(name)) => println!("  entity:         {name} ({id})"),
            _ => println!("  entity:         -"),
        }
    }
}

impl Shown for Entity {
    fn list_header() -> String {
        format!(
            "{:<8} {:<14} {:<30} {:<10} DOMAINS",
            "ID", "EXTERNAL ID", "NAME", "KIND"
        )
    }

    fn list_line(&self) -> String {
        let e = self;
        format!(
            "{:<8} {:<14} {:<30} {:<10} {}",
            e.id,
            e.external_id.as_deref().unwrap_or("-"),
            e.name,
            e.kind.as_str(),
            e.domains.join(", ")
        )
    }

    fn removed_note(detached: usize) -> String {
        format!("; {detached} contact(s) no longer have an entity")
    }

    fn show(&self) {
        let e = self;
        println!("entity {}: {} ({})", e.id, e.name, e.kind.as_str());
        println!("  external id: {}", e.external_id.as_deref().unwrap_or("-"));
        println!(
            "  domains:     {}",
            if e.domains.is_empty() {
                "-".to_string()
            } else {
                e.domains.join(", ")
            }
        );
    }
}

/// Prints a record just added (`added contact 7` and the record), or as JSON.
fn print_added<R: Shown>(r: &R, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(r)
    } else {
        println!("added {} {}", R::KIND, r.id());
        r.show();
        Ok(())
    }
}

/// Saves `input` over the record `current` and prints what happened (`contact 7 updated`).
async fn update_and_print<R: Shown>(
    store: &Store,
    org_id: i64,
    current: &R,
    input: &R::Input,
    json: bool,
) -> anyhow::Result<()> {
    let (outcome, r) = store
        .update_record::<R>(org_id, current.id(), input)
        .await?;
    if json {
        print_json(&r)
    } else {
        println!("{} {} {}", R::KIND, r.id(), outcome.as_str());
        r.show();
        Ok(())
    }
}

/// `show`: one record, by id or `ext:ID`.
async fn show_cmd<R: Shown>(store: &Store, org: &str, id: &str, json: bool) -> anyhow::Result<()> {
    let org_id = store.org_id(org).await?;
    let r = find::<R>(store, org_id, id).await?;
    if json {
        print_json(&r)
    } else {
        r.show();
        Ok(())
    }
}

/// `remove`: one record, by id or `ext:ID`.
async fn remove_cmd<R: Shown>(store: &Store, org: &str, id: &str) -> anyhow::Result<()> {
    let org_id = store.org_id(org).await?;
    let r = find::<R>(store, org_id, id).await?;
    let (r, detached) = store.delete_record::<R>(org_id, r.id()).await?;
    println!(
        "removed {} {} ({}){}",
        R::KIND,
        r.id(),
        r.name(),
        R::removed_note(detached)
    );
    Ok(())
}

/// `list`: a page of the org's records, and where the next page starts.
async fn list_cmd<R: Shown>(
    store: &Store,
    org: &str,
    q: ListQuery,
    json: bool,
) -> anyhow::Result<()> {
    let org_id = store.org_id(org).await?;
    let page = store.list_records::<R>(org_id, &q).await?;
    if json {
        return print_json(&page);
    }
    println!("{}", R::list_header());
    for r in &page {
        println!("{}", r.list_line());
    }
    if page.len() as i64 >= q.limit.clamp(1, 1000) {
        if let Some(last) = page.last() {
            println!("(more: --after {})", last.id());
        }
    }
    Ok(())
}

/// `import`: a file into the org, and its report.
async fn import_cmd<R: Shown>(
    store: &Store,
    org: &str,
    file: &Path,
    format: Option<Format>,
    json: bool,
) -> anyhow::Result<()> {
    let org_id = store.org_id(org).await?;
    let (name, text, format) = read_import(file, format)?;
    let report = import_records::<R>(store, org_id, &name, &text, format).await?;
    finish_import(R::PLURAL, &name, &report, json)
}

/// `export`: the org's records to a file or standard output.
async fn export_cmd<R: Shown>(
    store: &Store,
    org: &str,
    format: Option<Format>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let org_id = store.org_id(org).await?;
    let format = export_format(format, out);
    let text = export_records::<R>(store, org_id, format).await?;
    write_export(&text, out)
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs `m365sync contact ...`.
pub async fn contact(config: Option<&Path>, cmd: ContactCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        ContactCommand::Add {
            org,
            name,
            email,
            alt_email,
            contact_points,
            entity,
            external_id,
            json,
        } => {
            let org_id = store.org_id(&org).await?;
            let entity_id = match entity {
                Some(e) => Some(entity_ref(&store, org_id, &e).await?),
                None => None,
            };
            let c = store
                .create_contact(
                    org_id,
                    &ContactInput {
                        external_id,
                        name,
                        email,
                        alt_email,
                        contact_points,
                        entity_id,
                    },
                )
                .await?;
            print_added(&c, json)?;
        }
        ContactCommand::Update {
            org,
            id,
            name,
            email,
            alt_email,
            add_contact_points,
            remove_contact_points,
            clear_contact_points,
            entity,
            no_entity,
            external_id,
            json,
        } => {
            let org_id = store.org_id(&org).await?;
            let current = find::<Contact>(&store, org_id, &id).await?;
            let mut input = ContactInput::from(&current);
            if let Some(name) = name {
                input.name = name;
            }
            if let Some(email) = email {
                input.email = some(Some(email));
            }
            if let Some(alt) = alt_email {
                input.alt_email = some(Some(alt));
            }
            if clear_contact_points {
                input.contact_points.clear();
            }
            let removed: Vec<String> = remove_contact_points
                .iter()
                .map(|p| p.trim().to_lowercase())
                .collect();
            input.contact_points.retain(|p| !removed.contains(p));
            input.contact_points.extend(add_contact_points);
            if no_entity {
                input.entity_id = None;
            } else if let Some(e) = entity {
                input.entity_id = Some(entity_ref(&store, org_id, &e).await?);
            }
            if let Some(ext) = external_id {
                input.external_id = some(Some(ext));
            }
            update_and_print(&store, org_id, &current, &input, json).await?;
        }
        ContactCommand::Remove { org, id } => {
            remove_cmd::<Contact>(&store, &org, &id).await?;
        }
        ContactCommand::Show { org, id, json } => {
            show_cmd::<Contact>(&store, &org, &id, json).await?;
        }
        ContactCommand::List {
            org,
            filter,
            limit,
            after,
            json,
        } => {
            let q = ListQuery {
                limit,
                after_id: after,
                filter,
            };
            list_cmd::<Contact>(&store, &org, q, json).await?;
        }
        ContactCommand::Import {
            org,
            file,
            format,
            json,
        } => {
            import_cmd::<Contact>(&store, &org, &file, format, json).await?;
        }
        ContactCommand::Export { org, format, out } => {
            export_cmd::<Contact>(&store, &org, format, out.as_deref()).await?;
        }
        ContactCommand::Timeline {
            org,
            id,
            limit,
            before,
            json,
        } => {
            let org_id = store.org_id(&org).await?;
            let c = find::<Contact>(&store, org_id, &id).await?;
            super::matching::timeline(config, &org, c.id, limit, before.as_deref(), json).await?;
        }
        ContactCommand::Warnings { org, json } => {
            let org_id = store.org_id(&org).await?;
            let warnings = store.contacts_with_sync_user_addresses(org_id).await?;
            if json {
                return print_json(&warnings);
            }
            if warnings.is_empty() {
                println!("no contact of {org} carries a sync user's address");
                return Ok(());
            }
            println!(
                "{:<8} {:<24} {:<14} {:<30} {:<16} {:<30} VIA",
                "CONTACT", "NAME", "FIELD", "ADDRESS", "TENANT", "SYNC USER"
            );
            for w in &warnings {
                println!(
                    "{:<8} {:<24} {:<14} {:<30} {:<16} {:<30} {}",
                    w.contact.id, w.contact.name, w.field, w.address, w.tenant, w.user_email, w.via
                );
            }
            println!(
                "{} address(es) of contacts belong to sync users: mail is never matched on them; remove them from the contacts",
                warnings.len()
            );
        }
    }
    Ok(())
}

/// Runs `m365sync entity ...`.
pub async fn entity(config: Option<&Path>, cmd: EntityCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        EntityCommand::Add {
            org,
            name,
            kind,
            domains,
            external_id,
            json,
        } => {
            let org_id = store.org_id(&org).await?;
            let e = store
                .create_entity(
                    org_id,
                    &EntityInput {
                        external_id,
                        name,
                        kind,
                        domains,
                    },
                )
                .await?;
            print_added(&e, json)?;
        }
        EntityCommand::Update {
            org,
            id,
            name,
            kind,
            add_domains,
            remove_domains,
            clear_domains,
            external_id,
            json,
        } => {
            let org_id = store.org_id(&org).await?;
            let current = find::<Entity>(&store, org_id, &id).await?;
            let mut input = EntityInput::from(&current);
            if let Some(name) = name {
                input.name = name;
            }
            if let Some(kind) = kind {
                input.kind = kind;
            }
            if clear_domains {
                input.domains.clear();
            }
            let removed: Vec<String> = remove_domains
                .iter()
                .map(|d| d.trim().trim_start_matches('@').to_lowercase())
                .collect();
            input.domains.retain(|d| !removed.contains(d));
            input.domains.extend(add_domains);
            if let Some(ext) = external_id {
                input.external_id = some(Some(ext));
            }
            update_and_print(&store, org_id, &current, &input, json).await?;
        }
        EntityCommand::Remove { org, id } => {
            remove_cmd::<Entity>(&store, &org, &id).await?;
        }
        EntityCommand::Show { org, id, json } => {
            show_cmd::<Entity>(&store, &org, &id, json).await?;
        }
        EntityCommand::List {
            org,
            filter,
            limit,
            after,
            json,
        } => {
            let q = ListQuery {
                limit,
                after_id: after,
                filter,
            };
            list_cmd::<Entity>(&store, &org, q, json).await?;
        }
        EntityCommand::Import {
            org,
            file,
            format,
            json,
        } => {
            import_cmd::<Entity>(&store, &org, &file, format, json).await?;
        }
        EntityCommand::Export { org, format, out } => {
            export_cmd::<Entity>(&store, &org, format, out.as_deref()).await?;
        }
    }
    Ok(())
}

/// The file's name (for reports), text and format.
fn read_import(file: &Path, format: Option<Format>) -> anyhow::Result<(String, String, Format)> {
    let name = file.display().to_string();
    let format = match format.or_else(|| Format::from_path(file)) {
        Some(f) => f,
        None => anyhow::bail!(
            "{name}: cannot tell CSV from JSON by the name; give --format csv or --format json"
        ),
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {name} (it must be UTF-8 text)"))?;
    Ok((name, text, format))
}

fn finish_import(what: &str, file: &str, report: &ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        print_json(report)?;
    } else {
        println!(
            "imported {what} from {file}: {} row(s): {} created, {} updated, {} unchanged, {} with errors",
            report.rows,
            report.created,
            report.updated,
            report.unchanged,
            report.errors.len()
        );
        for e in &report.errors {
            println!("  {e}");
        }
    }
    if report.nothing_imported() {
        anyhow::bail!("{file}: no row could be imported; see the errors above");
    }
    if !report.errors.is_empty() {
        return Err(crate::Partial(format!(
            "{file}: {} row(s) refused, the rest imported; see the errors above",
            report.errors.len()
        ))
        .into());
    }
    Ok(())
}

fn export_format(format: Option<Format>, out: Option<&Path>) -> Format {
    format
        .or_else(|| out.and_then(Format::from_path))
        .unwrap_or(Format::Csv)
}

fn write_export(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
