//! Importing mailboxes (E2): the Entra "Download users" CSV, or one address at a time. Each
//! user becomes a CRM user linked to its own mailbox. When the tenant can be reached, every
//! address is looked up in the directory (its object id becomes the Graph id, and a group's
//! address is refused); otherwise the address is stored as the Graph id, which Graph accepts
//! as well. Importing the same file again changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::admin_client;
use super::csv::{entra_users, EntraCsvError, EntraUser, Row, SkipReason};
use super::directory::{lookup_mailbox, DirectoryUser, LookupError};
use crate::credentials::token_cache_for;
use m365sync_graph::{GraphClient, GraphError};
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::tenants::Tenant;
use m365sync_store::{Store, StoreError};

/// Why a whole import (or a single add) could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The CSV file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
    /// The file is not an Entra users CSV as a whole.
    #[error("{path}: {error}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: EntraCsvError,
    },
    /// A single add's address is a group's or unknown to the directory.
    #[error("tenant {tenant}: {error}")]
    Lookup {
        /// `org/tenant`.
        tenant: String,
        /// What the directory said.
        error: LookupError,
    },
    /// A single add's mailbox or nominated user is not an address.
    #[error("tenant {tenant}: '{address}' is not an email address")]
    NotAnAddress {
        /// `org/tenant`.
        tenant: String,
        /// The text given.
        address: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A row left out on purpose.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The line the row starts on.
    pub line: usize,
    /// The row's UPN.
    pub who: String,
    /// Why it was left out.
    pub reason: SkipReason,
    /// The reason as the admin reads it, with what to do (a shared mailbox's command).
    pub note: String,
}

/// A row that could not be imported; the others were.
#[derive(Debug, Clone, Serialize)]
pub struct BadRow {
    /// The line the row starts on.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// The file imported, as given.
    pub file: String,
    /// Mailboxes that were new.
    pub created: Vec<String>,
    /// Mailboxes whose id, name or link changed.
    pub updated: Vec<String>,
    /// Mailboxes already exactly as the file says.
    pub unchanged: Vec<String>,
    /// Rows left out on purpose.
    pub skipped: Vec<Skipped>,
    /// Rows that could not be imported.
    pub errors: Vec<BadRow>,
    /// Set when the directory could not be used: why, and that addresses serve as Graph ids.
    pub directory_note: Option<String>,
    /// Every row in file order with what became of it: the per-line view the console shows,
    /// the same facts as the lists above.
    pub lines: Vec<LineResult>,
}

/// What became of one row of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new mailbox (and its user).
    Created,
    /// A mailbox whose id, name or link changed.
    Updated,
    /// Already exactly as the row says.
    Unchanged,
    /// Left out on purpose (guest, disabled, no mailbox, duplicate).
    Skipped,
    /// Not imported: the row is wrong, or the directory refused its address.
    Error,
}

/// One row's result.
#[derive(Debug, Clone, Serialize)]
pub struct LineResult {
    /// The line the row starts on.
    pub line: usize,
    /// The row's address (its UPN for a skipped row); none when the row has no readable one.
    pub address: Option<String>,
    /// What became of it.
    pub outcome: Outcome,
    /// For a skipped or failed row: why, and what to do.
    pub problem: Option<String>,
}

/// How addresses are resolved to Graph objects.
enum Resolver {
    Directory(Box<GraphClient>),
    Offline,
}

async fn resolver(
    store: &Store,
    tenant: &Tenant,
    http: Option<reqwest::Client>,
) -> Result<(Resolver, Option<String>), StoreError> {
    let Some(http) = http else {
        return Ok((
            Resolver::Offline,
            Some("directory not consulted (--offline): addresses serve as Graph ids".into()),
        ));
    };
    let tokens = token_cache_for(store, tenant, http.clone()).await?;
    match tokens.token().await {
        Ok(_) => Ok((
            Resolver::Directory(Box::new(admin_client(tenant, tokens, http))),
            None,
        )),
        Err(e) => Ok((
            Resolver::Offline,
            Some(format!(
                "directory not reachable ({e}); addresses serve as Graph ids, and groups cannot be told apart until `m365sync tenant test` passes"
            )),
        )),
    }
}

/// What one address resolved to.
enum Resolved {
    Found(DirectoryUser),
    /// Stored by address (no directory).
    ByAddress,
}

/// Imports an Entra "Download users" CSV file into `tenant`. Bad rows are reported by line and
/// the rest goes on. `http` is `None` to skip the directory (`--offline`).
pub async fn import_csv(
    store: &Store,
    tenant: &Tenant,
    path: &Path,
    http: Option<reqwest::Client>,
) -> Result<ImportReport, ImportError> {
    let bytes = std::fs::read(path).map_err(|error| ImportError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    import_csv_bytes(store, tenant, &path.display().to_string(), &bytes, http).await
}

/// Imports the bytes of an Entra "Download users" CSV (an upload: the console sends the file
/// the browser read) into `tenant`, as [`import_csv`] does a file; `file` names it in the
/// report and errors.
pub async fn import_csv_bytes(
    store: &Store,
    tenant: &Tenant,
    file: &str,
    bytes: &[u8],
    http: Option<reqwest::Client>,
) -> Result<ImportReport, ImportError> {
    // Excel sometimes saves as Windows-1252: keep what is readable rather than refuse the file.
    let text = String::from_utf8_lossy(bytes);
    let rows = entra_users(&text).map_err(|error| ImportError::File {
        path: PathBuf::from(file),
        error,
    })?;
    let (mut resolver, note) = resolver(store, tenant, http).await?;
    let mut report = ImportReport {
        file: file.to_string(),
        directory_note: note,
        ..ImportReport::default()
    };
    let line_of = |line, address: Option<&str>, outcome, problem: Option<&str>| LineResult {
        line,
        address: address.map(str::to_string),
        outcome,
        problem: problem.map(str::to_string),
    };
    for row in rows {
        match row {
            Row::Bad { line, message } => {
                report
                    .lines
                    .push(line_of(line, None, Outcome::Error, Some(&message)));
                report.errors.push(BadRow { line, message });
            }
            Row::Skipped { line, who, reason } => {
                let note = reason.to_string();
                report
                    .lines
                    .push(line_of(line, Some(&who), Outcome::Skipped, Some(&note)));
                report.skipped.push(Skipped {
                    line,
                    note,
                    who,
                    reason,
                });
            }
            Row::User(u) => {
                let resolved = match &resolver {
                    Resolver::Offline => Resolved::ByAddress,
                    Resolver::Directory(client) => {
                        match lookup_mailbox(client, &u.user_principal_name).await {
                            Ok(d) => Resolved::Found(d),
                            Err(LookupError::Graph(GraphError::AccessDenied { .. })) => {
                                report.directory_note = Some("the app may not read the directory (User.Read.All); addresses serve as Graph ids".into());
                                resolver = Resolver::Offline;
                                Resolved::ByAddress
                            }
                            Err(e) => {
                                let message = e.to_string();
                                report.lines.push(line_of(
                                    u.line,
                                    Some(&u.address()),
                                    Outcome::Error,
                                    Some(&message),
                                ));
                                report.errors.push(BadRow {
                                    line: u.line,
                                    message,
                                });
                                continue;
                            }
                        }
                    }
                };
                let address = match &resolved {
                    Resolved::Found(d) if !d.mail.is_empty() => d.mail.to_ascii_lowercase(),
                    _ => u.address(),
                };
                let outcome = match save(store, tenant, &u, &address, resolved).await? {
                    Change::Created => Outcome::Created,
                    Change::Updated => Outcome::Updated,
                    Change::Unchanged => Outcome::Unchanged,
                };
                report
                    .lines
                    .push(line_of(u.line, Some(&address), outcome, None));
                match outcome {
                    Outcome::Created => report.created.push(address),
                    Outcome::Updated => report.updated.push(address),
                    _ => report.unchanged.push(address),
                }
            }
        }
    }
    Ok(report)
}

enum Change {
    Created,
    Updated,
    Unchanged,
}

async fn save(
    store: &Store,
    tenant: &Tenant,
    u: &EntraUser,
    address: &str,
    resolved: Resolved,
) -> Result<Change, StoreError> {
    let existing = store.mailbox_by_address(tenant.id, address).await?;
    let (graph_id, directory_name) = match resolved {
        Resolved::Found(d) => (d.id, d.display_name),
        // Keep an object id found earlier rather than fall back to the address.
        Resolved::ByAddress => (
            existing
                .as_ref()
                .map(|m| m.graph_id.clone())
                .unwrap_or_else(|| u.object_id.clone().unwrap_or_else(|| address.to_string())),
            String::new(),
        ),
    };
    let display_name = [u.display_name.as_str(), directory_name.as_str(), address]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or(address)
        .to_string();
    let user_id = store.user_id(tenant.id, address).await?;
    if let Some(m) = &existing {
        if m.graph_id == graph_id
            && m.display_name == display_name
            && m.user_id.is_some()
            && m.user_id == user_id
        {
            return Ok(Change::Unchanged);
        }
    }
    let kind = existing
        .as_ref()
        .map(|m| m.kind)
        .unwrap_or(MailboxKind::Person);
    let mailbox_id = store
        .upsert_mailbox(&NewMailbox {
            tenant_id: tenant.id,
            graph_id,
            address: address.to_string(),
            display_name: display_name.clone(),
            kind,
        })
        .await?;
    if kind == MailboxKind::Person || existing.as_ref().is_none_or(|m| m.user_id.is_none()) {
        let user_id = store.upsert_user(tenant.id, address, &display_name).await?;
        store.link_mailbox(mailbox_id, user_id).await?;
    }
    Ok(if existing.is_some() {
        Change::Updated
    } else {
        Change::Created
    })
}

/// What `mailbox add` did.
#[derive(Debug, Clone, Serialize)]
pub struct Added {
    /// The mailbox's address (the directory's primary SMTP address when it was looked up).
    pub address: String,
    /// The id Graph paths use: the object id, or the address when offline.
    pub graph_id: String,
    /// A person's own mailbox or a shared one.
    pub kind: MailboxKind,
    /// The CRM user it is linked to.
    pub user: String,
    /// Set when the directory could not be used.
    pub directory_note: Option<String>,
}

/// Adds one mailbox: a person's own (linked to a CRM user of the same address) or a shared one
/// linked to the nominated `user` (E14). The address is looked up in the directory when the
/// tenant can be reached, so a group is refused.
pub async fn add_mailbox(
    store: &Store,
    tenant: &Tenant,
    address: &str,
    kind: MailboxKind,
    user: Option<&str>,
    http: Option<reqwest::Client>,
) -> Result<Added, ImportError> {
    let tenant_name = format!("{}/{}", tenant.org, tenant.name);
    for a in std::iter::once(address).chain(user) {
        if !a.contains('@') || a.trim().contains(' ') {
            return Err(ImportError::NotAnAddress {
                tenant: tenant_name,
                address: a.to_string(),
            });
        }
    }
    let (resolver, note) = resolver(store, tenant, http).await?;
    // E14: the user a mailbox is linked to is a person of the directory. A user not declared
    // yet is looked up before anything is written, so a typo is refused instead of becoming a
    // phantom user that takes over the mailbox's link.
    let mut directory_user = None;
    if let (Resolver::Directory(client), Some(u)) = (&resolver, user) {
        let u = u.trim().to_ascii_lowercase();
        if u != address.trim().to_ascii_lowercase() && store.user_id(tenant.id, &u).await?.is_none()
        {
            match lookup_mailbox(client, &u).await {
                Ok(d) => directory_user = Some(d),
                Err(error) => {
                    return Err(ImportError::Lookup {
                        tenant: tenant_name,
                        error,
                    })
                }
            }
        }
    }
    let (graph_id, address, name) = match resolver {
        Resolver::Directory(client) => match lookup_mailbox(&client, address).await {
            Ok(d) => {
                let addr = if d.mail.is_empty() {
                    address.to_string()
                } else {
                    d.mail
                };
                (d.id, addr.to_ascii_lowercase(), d.display_name)
            }
            Err(error) => {
                return Err(ImportError::Lookup {
                    tenant: tenant_name,
                    error,
                })
            }
        },
        Resolver::Offline => {
            let a = address.trim().to_ascii_lowercase();
            (a.clone(), a.clone(), a)
        }
    };
    let mailbox_id = store
        .upsert_mailbox(&NewMailbox {
            tenant_id: tenant.id,
            graph_id: graph_id.clone(),
            address: address.clone(),
            display_name: name.clone(),
            kind,
        })
        .await?;
    let user = user.unwrap_or(&address).trim().to_ascii_lowercase();
    let user_id = match store.user_id(tenant.id, &user).await? {
        Some(id) => id,
        None => {
            let display = if user == address {
                name.as_str()
            } else if let Some(d) = &directory_user {
                d.display_name.as_str()
            } else {
                user.as_str()
            };
            store.upsert_user(tenant.id, &user, display).await?
        }
    };
    store.link_mailbox(mailbox_id, user_id).await?;
    Ok(Added {
        address,
        graph_id,
        kind,
        user,
        directory_note: note,
    })
}
