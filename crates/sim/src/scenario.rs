//! Tenants described by hand in a TOML scenario file.
//!
//! ```toml
//! seed = 7
//! [[tenant]]
//! name = "Contoso"
//! domain = "contoso.example"
//! [[tenant.app]]
//! secrets = ["first-secret", "second-secret"]
//! access_policy = ["alice@contoso.example"]   # optional
//! [[tenant.user]]
//! upn = "alice@contoso.example"
//! name = "Alice Adams"
//! [[tenant.user]]
//! upn = "info@contoso.example"
//! name = "Info"
//! kind = "shared"
//! [[tenant.message]]
//! mailbox = "alice@contoso.example"
//! folder = "inbox"          # or a path: "Inbox/Clients/Acme" (created as needed)
//! from = "client@example.org"
//! to = ["alice@contoso.example"]
//! subject = "Hello"
//! received = "2026-05-01T10:00:00Z"
//! ```
//!
//! A malformed file is refused with its path, the line and the field at fault.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use super::ids::{mix64, Rng};
use super::model::{
    App, AppSecret, Attachment, AttachmentKind, Content, Group, MailboxKind, MessageContent,
    Recipient, Room, Tenant, User, World,
};

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not TOML, or does not have a scenario's shape (an unknown field, a wrong type).
    #[error("scenario {path} is not valid: {message}")]
    Parse {
        /// The file's path.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// The file parsed, but a value in it makes no sense (an unknown mailbox, a bad date).
    #[error("scenario {path}, line {line}: field `{field}`: {message}")]
    Invalid {
        /// The file's path.
        path: PathBuf,
        /// The line of the value at fault.
        line: usize,
        /// The name of the field at fault.
        field: String,
        /// What is wrong with the value.
        message: String,
    },
}

/// A parsed scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seeds generated ids and contents; 1 when absent.
    #[serde(default = "one")]
    pub seed: u64,
    /// The tenants, from `[[tenant]]` tables.
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantSpec>,
}

fn one() -> u64 {
    1
}

/// One `[[tenant]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// The organisation's name.
    pub name: String,
    /// The verified domain, such as `contoso.example`.
    pub domain: String,
    /// The tenant id; a random GUID when absent.
    pub id: Option<String>,
    /// The admin's UPN; the first user when absent.
    pub admin: Option<String>,
    /// App registrations, from `[[tenant.app]]`.
    #[serde(default, rename = "app")]
    pub apps: Vec<AppSpec>,
    /// Users and shared mailboxes, from `[[tenant.user]]`.
    #[serde(default, rename = "user")]
    pub users: Vec<UserSpec>,
    /// Microsoft 365 groups, from `[[tenant.group]]`.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupSpec>,
    /// Rooms, from `[[tenant.room]]`.
    #[serde(default, rename = "room")]
    pub rooms: Vec<RoomSpec>,
    /// Messages, from `[[tenant.message]]`.
    #[serde(default, rename = "message")]
    pub messages: Vec<MessageSpec>,
    /// Calendar items, in Graph's event JSON shape plus `mailbox` (read by the calendar module).
    #[serde(default, rename = "event")]
    pub events: Vec<toml::Value>,
}

/// One `[[tenant.app]]` table: an app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The client id; a random GUID when absent.
    pub client_id: Option<String>,
    /// The client secrets, all valid (as during a rotation).
    pub secrets: Vec<String>,
    /// Application permissions; when absent, the ones m365sync needs (mail, calendars, directory).
    pub roles: Option<Vec<String>>,
    /// Where the authorize endpoint may redirect; empty accepts any.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// UPNs the Exchange application access policy lets the app read; absent means every mailbox.
    pub access_policy: Option<Vec<String>>,
}

/// One `[[tenant.user]]` table: a person or a shared mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// The UPN, which is also the mail address.
    pub upn: Spanned<String>,
    /// The full name; the first word becomes the given name, the rest the surname.
    pub name: String,
    /// The object id; a random GUID when absent.
    pub id: Option<String>,
    /// `person` (the default) or `shared`.
    #[serde(default = "person")]
    pub kind: MailboxKind,
    /// The job title, when there is one.
    pub job_title: Option<String>,
}

fn person() -> MailboxKind {
    MailboxKind::Person
}

/// One `[[tenant.group]]` table: a Microsoft 365 group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's display name.
    pub name: String,
    /// The group's SMTP address.
    pub mail: String,
}

/// One `[[tenant.room]]` table: a room (resource calendar).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSpec {
    /// The room's display name.
    pub name: String,
    /// The room's SMTP address.
    pub email: String,
    /// How many people it seats; 0 when absent.
    #[serde(default)]
    pub capacity: u32,
}

/// One `[[tenant.message]]` table: a message in one mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// The UPN of the mailbox it is in; must be a user of this tenant.
    pub mailbox: Spanned<String>,
    /// A well-known folder name or a path such as `Inbox/Clients/Acme`; `inbox` when absent.
    #[serde(default = "inbox")]
    pub folder: Spanned<String>,
    /// The sender's address.
    pub from: String,
    /// `To` addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// `Cc` addresses.
    #[serde(default)]
    pub cc: Vec<String>,
    /// `Bcc` addresses.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The body; HTML when it starts with `<`, plain text otherwise.
    #[serde(default)]
    pub body: String,
    /// When it was received, RFC 3339 (such as `2026-05-01T10:00:00Z`).
    pub received: Spanned<String>,
    /// The `Message-ID`; made up from the seed when absent.
    pub internet_message_id: Option<String>,
    /// The conversation id; one per message when absent.
    pub conversation_id: Option<String>,
    /// Outlook categories by name.
    #[serde(default)]
    pub categories: Vec<String>,
    /// True when the message has been read; false when absent.
    #[serde(default)]
    pub is_read: bool,
    /// Internet message headers as (name, value) pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// File attachments, with generated contents.
    #[serde(default)]
    pub attachments: Vec<AttachmentSpec>,
}

fn inbox() -> Spanned<String> {
    Spanned::new(0..0, "inbox".to_string())
}

/// A file attachment of a scenario message, its bytes generated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    /// The file name.
    pub name: String,
    /// The size in bytes.
    pub size: u64,
    /// The MIME type; `application/octet-stream` when absent.
    #[serde(default = "octet")]
    pub content_type: String,
    /// True for an inline attachment.
    #[serde(default)]
    pub inline: bool,
}

fn octet() -> String {
    "application/octet-stream".into()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn addr(a: &str) -> Recipient {
    Recipient {
        name: a.split('@').next().unwrap_or(a).to_string(),
        address: a.to_string(),
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks scenario text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let invalid =
            |span: std::ops::Range<usize>, field: &str, message: String| ScenarioError::Invalid {
                path: path.to_path_buf(),
                line: line_of(text, span.start),
                field: field.to_string(),
                message,
            };
        for t in &scenario.tenants {
            for u in &t.users {
                if !u.upn.get_ref().contains('@') {
                    return Err(invalid(
                        u.upn.span(),
                        "upn",
                        format!("'{}' is not an address", u.upn.get_ref()),
                    ));
                }
            }
            let known = |a: &str| {
                t.users
                    .iter()
                    .any(|u| u.upn.get_ref().eq_ignore_ascii_case(a))
            };
            for m in &t.messages {
                if !known(m.mailbox.get_ref()) {
                    return Err(invalid(
                        m.mailbox.span(),
                        "mailbox",
                        format!("no user '{}' in tenant {}", m.mailbox.get_ref(), t.domain),
                    ));
                }
                let folder = m.folder.get_ref();
                let well_known = super::model::WELL_KNOWN_FOLDERS
                    .iter()
                    .map(|(n, _)| *n)
                    .chain(
                        super::model::MORE_WELL_KNOWN_FOLDERS
                            .iter()
                            .map(|(n, _, _)| *n),
                    )
                    .any(|n| n.eq_ignore_ascii_case(folder));
                if !well_known && !folder.contains('/') {
                    return Err(invalid(m.folder.span(), "folder", format!("'{folder}' is neither a well-known folder (inbox, sentitems, drafts, deleteditems, archive, junkemail, outbox, ...) nor a path such as \"Inbox/Clients/Acme\"")));
                }
                if DateTime::parse_from_rfc3339(m.received.get_ref()).is_err() {
                    return Err(invalid(
                        m.received.span(),
                        "received",
                        format!(
                            "'{}' is not an RFC 3339 date-time such as 2026-05-01T10:00:00Z",
                            m.received.get_ref()
                        ),
                    ));
                }
            }
            super::calendar::check_scenario_events(t, text)
                .map_err(|(offset, field, message)| invalid(offset..offset, &field, message))?;
        }
        Ok(scenario)
    }

    /// Builds the world the scenario describes.
    pub fn build(&self) -> World {
        let mut rng = Rng::new(self.seed);
        let mut world = World::new(mix64(self.seed) as u32);
        for spec in &self.tenants {
            let t = world.tenants.len();
            let admin = spec
                .admin
                .clone()
                .or_else(|| spec.users.first().map(|u| u.upn.get_ref().clone()))
                .unwrap_or_default();
            world.tenants.push(Tenant::new(
                spec.id.clone().unwrap_or_else(|| rng.guid()),
                spec.domain.clone(),
                spec.name.clone(),
                admin,
            ));
            for a in &spec.apps {
                world.tenants[t].apps.push(App {
                    client_id: a.client_id.clone().unwrap_or_else(|| rng.guid()),
                    display_name: "m365sync".into(),
                    secrets: a
                        .secrets
                        .iter()
                        .map(|s| AppSecret {
                            value: s.clone(),
                            expires_at: None,
                        })
                        .collect(),
                    roles: a.roles.clone().unwrap_or_else(|| {
                        [
                            "Mail.ReadWrite",
                            "Mail.Send",
                            "Calendars.ReadWrite",
                            "User.Read.All",
                            "Group.Read.All",
                            "Place.Read.All",
                        ]
                        .map(String::from)
                        .to_vec()
                    }),
                    redirect_uris: a.redirect_uris.clone(),
                    access_policy: a
                        .access_policy
                        .as_ref()
                        .map(|p| p.iter().map(|s| s.to_ascii_lowercase()).collect()),
                });
            }
            for u in &spec.users {
                let upn = u.upn.get_ref().clone();
                let (given, surname) = u.name.split_once(' ').unwrap_or((&u.name, ""));
                world.add_user(
                    t,
                    User {
                        id: u.id.clone().unwrap_or_else(|| rng.guid()),
                        mail: upn.clone(),
                        upn,
                        display_name: u.name.clone(),
                        given_name: given.to_string(),
                        surname: surname.to_string(),
                        job_title: u.job_title.clone(),
                        kind: u.kind,
                        folders: Vec::new(),
                        folder_log: Default::default(),
                        sync_generation: 0,
                        calendar: Default::default(),
                    },
                );
            }
            world.tenants[t].groups = spec
                .groups
                .iter()
                .map(|g| Group {
                    id: rng.guid(),
                    display_name: g.name.clone(),
                    mail: g.mail.clone(),
                    mail_enabled: true,
                    security_enabled: false,
                    group_types: vec!["Unified".into()],
                })
                .collect();
            world.tenants[t].rooms = spec
                .rooms
                .iter()
                .map(|r| Room {
                    id: rng.guid(),
                    display_name: r.name.clone(),
                    email_address: r.email.clone(),
                    capacity: r.capacity,
                    building: String::new(),
                })
                .collect();
            for (i, m) in spec.messages.iter().enumerate() {
                let u = world.tenants[t]
                    .user_by_key(m.mailbox.get_ref())
                    .expect("checked at load");
                // A path's missing folders are created on first use.
                let f = world
                    .ensure_folder_path(t, u, m.folder.get_ref())
                    .expect("checked at load");
                let received = DateTime::parse_from_rfc3339(m.received.get_ref())
                    .expect("checked at load")
                    .with_timezone(&Utc);
                let content = MessageContent {
                    internet_message_id: m.internet_message_id.clone().unwrap_or_else(|| {
                        format!(
                            "<scenario.{i}.{:x}@{}>",
                            mix64(self.seed ^ i as u64),
                            spec.domain
                        )
                    }),
                    conversation_id: m
                        .conversation_id
                        .clone()
                        .unwrap_or_else(|| format!("AAQkScenario{i}")),
                    conversation_index: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        (i as u64).to_be_bytes(),
                    ),
                    subject: m.subject.clone(),
                    body: Arc::from(m.body.as_str()),
                    body_is_html: m.body.trim_start().starts_with('<'),
                    from: Some(addr(&m.from)),
                    to: m.to.iter().map(|a| addr(a)).collect(),
                    cc: m.cc.iter().map(|a| addr(a)).collect(),
                    bcc: m.bcc.iter().map(|a| addr(a)).collect(),
                    reply_to: vec![],
                    received,
                    sent: received,
                    is_draft: false,
                    is_read: m.is_read,
                    importance: "normal",
                    inference_classification: "focused",
                    categories: m.categories.clone(),
                    flagged: false,
                    headers: m.headers.clone(),
                    attachments: m
                        .attachments
                        .iter()
                        .enumerate()
                        .map(|(j, a)| Attachment {
                            id: format!("AAMkScenAtt{i}_{j}"),
                            name: a.name.clone(),
                            kind: AttachmentKind::File {
                                content_type: a.content_type.clone(),
                                content: Content::Generated {
                                    seed: mix64((i * 1000 + j) as u64),
                                    len: a.size,
                                },
                                is_inline: a.inline,
                                content_id: None,
                            },
                            last_modified: received,
                        })
                        .collect(),
                };
                world.add_message(t, u, f, content, false);
            }
            super::calendar::build_scenario_events(&mut world, t, spec);
        }
        world
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "[[tenant]]\nname = \"C\"\ndomain = \"c.example\"\n[[tenant.user]]\nupn = \"a@c.example\"\nname = \"A\"\n[[tenant.message]]\nmailbox = \"nobody@c.example\"\nfrom = \"x@y\"\nsubject = \"s\"\nreceived = \"2026-01-01T00:00:00Z\"\n";
        let err = Scenario::parse(text, Path::new("s.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.toml") && err.contains("line 8") && err.contains("mailbox"),
            "{err}"
        );
        let err = Scenario::parse("[[tenant]]\nname = 1\n", Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.toml") && err.contains("line 2"), "{err}");
        let err = Scenario::parse(
            "[[tenant]]\nname=\"x\"\ndomain=\"y\"\ncolour = 3\n",
            Path::new("u.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
