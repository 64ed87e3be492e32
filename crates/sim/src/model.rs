//! The simulated Microsoft 365 world: tenants, their apps, users, mailboxes, folders and messages.
//!
//! Every folder keeps a change log next to its contents. Delta queries are answered from these
//! two alone: an initial round walks the folder's contents in arrival order, a later round walks
//! the log between the sequence numbers sealed into its token. All mutation goes through
//! [`World`]'s methods so the log can never disagree with the contents.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use super::ids::{message_id, Rng};

/// The well-known mail folders every mailbox has, in display order: (name, display name).
pub const WELL_KNOWN_FOLDERS: [(&str, &str); 7] = [
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("archive", "Archive"),
    ("junkemail", "Junk Email"),
    ("outbox", "Outbox"),
];

/// The root of the folders mail clients show, the parent of Inbox and its siblings:
/// (well-known name, display name).
pub const ROOT_FOLDER: (&str, &str) = ("msgfolderroot", "Top of Information Store");

/// The other well-known folders every mailbox has: (name, display name, parent's well-known
/// name, `None` for the root). They come after [`WELL_KNOWN_FOLDERS`] and the root, so the
/// first seven keep the ids (and indices) they always had.
pub const MORE_WELL_KNOWN_FOLDERS: [(&str, &str, Option<&str>); 5] = [
    ("conversationhistory", "Conversation History", None),
    ("syncissues", "Sync Issues", None),
    ("conflicts", "Conflicts", Some("syncissues")),
    ("localfailures", "Local Failures", Some("syncissues")),
    ("serverfailures", "Server Failures", Some("syncissues")),
];

/// What kind of directory object a mailbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    /// A person who signs in.
    Person,
    /// A shared mailbox: a user object with sign-in disabled.
    Shared,
}

/// An app registration in a tenant, with the application permissions an admin consented to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    /// The application (client) id, a GUID.
    pub client_id: String,
    /// The name shown in Entra and on the consent page.
    pub display_name: String,
    /// Every currently configured client secret.
    pub secrets: Vec<AppSecret>,
    /// Application permissions (app roles) such as `Mail.ReadWrite`.
    pub roles: Vec<String>,
    /// Where the authorize endpoint may send a code; empty accepts any (AADSTS50011 otherwise).
    pub redirect_uris: Vec<String>,
    /// An Exchange application access policy: when set, only these mailboxes (UPNs, lowercase)
    /// may be read with app-only tokens; the rest answer 403 ErrorAccessDenied.
    pub access_policy: Option<Vec<String>>,
}

/// One client secret. Several may be valid at once, which is how secrets rotate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppSecret {
    /// The secret text a client presents as `client_secret`.
    pub value: String,
    /// Unix seconds after which the secret answers AADSTS7000222.
    pub expires_at: Option<i64>,
}

/// A Microsoft 365 group: has an address, but is not a mailbox m365sync may sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The group's object id.
    pub id: String,
    /// The group's display name.
    pub display_name: String,
    /// The group's SMTP address.
    pub mail: String,
    /// True for groups that receive mail (Microsoft 365 and distribution groups).
    pub mail_enabled: bool,
    /// True for security groups.
    pub security_enabled: bool,
    /// `Unified` for a Microsoft 365 group; empty for other kinds.
    pub group_types: Vec<String>,
}

/// A room (resource calendar).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// The room's object id.
    pub id: String,
    /// The room's display name.
    pub display_name: String,
    /// The room's SMTP address, which invitations are sent to.
    pub email_address: String,
    /// How many people the room seats.
    pub capacity: u32,
    /// The building the room is in, as `places` reports it.
    pub building: String,
}

/// A directory user with a mailbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct User {
    /// The user's object id, a GUID.
    pub id: String,
    /// The user principal name the user signs in with.
    pub upn: String,
    /// The primary SMTP address.
    pub mail: String,
    /// The full name shown in the directory.
    pub display_name: String,
    /// The first name.
    pub given_name: String,
    /// The last name.
    pub surname: String,
    /// The job title, when the directory has one.
    pub job_title: Option<String>,
    /// Whether this is a person or a shared mailbox.
    pub kind: MailboxKind,
    /// Every folder the mailbox ever had, by index; deleted ones stay as tombstones, because
    /// messages and sealed delta tokens name folders by index.
    pub folders: Vec<Folder>,
    /// Changes to the folder hierarchy (created, renamed, moved, deleted), for
    /// `mailFolders/delta`: change sequence -> folder index.
    pub folder_log: BTreeMap<u64, usize>,
    /// Bumped to invalidate every delta token of this mailbox (control API).
    pub sync_generation: u64,
    /// The mailbox's calendar: its events and their change log.
    pub calendar: Calendar,
}

impl User {
    /// Finds a folder by id or by well-known name (case-insensitive, as Graph does).
    pub fn folder_index(&self, name_or_id: &str) -> Option<usize> {
        let wanted = name_or_id
            .strip_prefix("('")
            .and_then(|s| s.strip_suffix("')"))
            .unwrap_or(name_or_id);
        self.folders.iter().position(|f| {
            !f.deleted
                && (f.id == wanted
                    || f.well_known
                        .as_deref()
                        .is_some_and(|w| w.eq_ignore_ascii_case(wanted)))
        })
    }
}

/// A mail folder: its contents in arrival order plus the log of changes that delta replays.
#[derive(Debug, Serialize, Deserialize)]
pub struct Folder {
    /// The folder's Exchange id (`AQMkAD...`).
    pub id: String,
    /// The name the folder shows.
    pub display_name: String,
    /// The well-known name (`inbox`, `sentitems`, ...) when the folder has one.
    pub well_known: Option<String>,
    /// The parent folder's index; `None` only for the root (`msgfolderroot`).
    pub parent: Option<usize>,
    /// Hidden folders are left out of listings unless `includeHiddenFolders=true` is asked.
    pub hidden: bool,
    /// Permanently deleted: kept so indices stay valid, invisible to every request.
    pub deleted: bool,
    /// The world sequence at creation (0 for the folders a mailbox starts with), so a first
    /// folder delta round leaves folders created after it began to the next round.
    pub created: u64,
    /// The sequence of the folder's latest hierarchy change, to fold repeated changes.
    pub changed: u64,
    /// arrival sequence -> message key.
    pub items: BTreeMap<u64, u64>,
    /// change sequence -> change.
    pub log: BTreeMap<u64, FolderChange>,
    /// message key -> sequence of its latest change in this folder (to fold repeated changes).
    pub last_change: HashMap<u64, u64>,
}

/// A folder id as Exchange makes them (`AQMkAD` and 32 characters), from `rng`.
pub fn folder_id(rng: &mut super::ids::Rng) -> String {
    format!(
        "AQMkAD{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, rng.bytes(24))
    )
}

impl Folder {
    /// An empty, visible user folder.
    pub fn new(id: String, display_name: &str, parent: Option<usize>) -> Folder {
        Folder {
            id,
            display_name: display_name.to_string(),
            well_known: None,
            parent,
            hidden: false,
            deleted: false,
            created: 0,
            changed: 0,
            items: BTreeMap::new(),
            log: BTreeMap::new(),
            last_change: HashMap::new(),
        }
    }

    /// The same folder, addressable by a well-known name.
    pub fn well_known(mut self, name: &str) -> Folder {
        self.well_known = Some(name.to_string());
        self
    }
}

/// One entry of a folder's change log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FolderChange {
    /// The message was created, arrived or changed; delta sends its current state.
    Upsert {
        /// The message's key in [`World::messages`].
        key: u64,
    },
    /// The message was deleted or moved out; delta sends `@removed` with the ids it had here.
    Removed {
        /// The message's key in [`World::messages`] (gone from it once deleted).
        key: u64,
        /// Its ImmutableId, which never changes.
        immutable_id: String,
        /// Its default id as it was in this folder (default ids change on every move).
        default_id: String,
        /// When it was received, so a delta filtered on `receivedDateTime` can leave out
        /// removals outside its filter.
        received: DateTime<Utc>,
    },
}

/// An address as Graph writes it: `{"emailAddress":{"name":..,"address":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Recipient {
    /// The display name.
    pub name: String,
    /// The SMTP address.
    pub address: String,
}

/// Where an attachment's bytes come from. Generated content is produced on demand from a seed,
/// so a tenant with gigabytes of attachments costs no memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Content {
    /// Bytes held in memory: uploaded by a client or set through the control API.
    Bytes(#[serde(with = "crate::persist::arc_bytes")] Arc<[u8]>),
    /// Bytes drawn on demand from a seeded generator.
    Generated {
        /// Seeds the generator, so the same attachment always has the same bytes.
        seed: u64,
        /// The size in bytes.
        len: u64,
    },
}

impl Content {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated { len, .. } => *len,
        }
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes themselves.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Bytes(b) => b.to_vec(),
            Content::Generated { seed, len } => Rng::new(*seed).bytes(*len as usize),
        }
    }
}

/// The three attachment kinds Graph has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AttachmentKind {
    /// A file attachment (`#microsoft.graph.fileAttachment`).
    File {
        /// The MIME type, such as `application/pdf`.
        content_type: String,
        /// The file's bytes.
        content: Content,
        /// True for an image shown in the body, referenced by `cid:`.
        is_inline: bool,
        /// The `Content-ID` an inline image is referenced by in the HTML body.
        content_id: Option<String>,
    },
    /// An attached message (subject and body are enough for the simulator).
    Item {
        /// The attached message's subject.
        subject: String,
        /// The attached message's body.
        body: String,
    },
    /// A link to a file in OneDrive or SharePoint.
    Reference {
        /// Where the file lives.
        source_url: String,
    },
}

/// One attachment of a message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment's id, unique within its message.
    pub id: String,
    /// The file name shown to the user.
    pub name: String,
    /// What kind of attachment it is and what it holds.
    pub kind: AttachmentKind,
    /// When the attachment last changed (`lastModifiedDateTime`).
    pub last_modified: DateTime<Utc>,
}

impl Attachment {
    /// The size Graph reports.
    pub fn size(&self) -> u64 {
        match &self.kind {
            AttachmentKind::File { content, .. } => content.len(),
            AttachmentKind::Item { subject, body } => (subject.len() + body.len() + 400) as u64,
            AttachmentKind::Reference { .. } => 0,
        }
    }
}

/// The content of a message, before the world gives it an identity and a place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageContent {
    /// The `Message-ID` header, the same in every copy of the message.
    pub internet_message_id: String,
    /// Groups the messages of one thread.
    pub conversation_id: String,
    /// Base64 header that orders messages within their conversation.
    pub conversation_index: String,
    /// The subject line.
    pub subject: String,
    /// The body, shared rather than copied between the copies of a message.
    #[serde(with = "crate::persist::arc_str")]
    pub body: Arc<str>,
    /// True when `body` is HTML, false for plain text.
    pub body_is_html: bool,
    /// The sender (`from`); `None` when the message has none.
    pub from: Option<Recipient>,
    /// The `To` recipients.
    pub to: Vec<Recipient>,
    /// The `Cc` recipients.
    pub cc: Vec<Recipient>,
    /// The `Bcc` recipients (only the sender's copy keeps them).
    pub bcc: Vec<Recipient>,
    /// Where replies should go, when not to the sender.
    pub reply_to: Vec<Recipient>,
    /// When the message arrived (`receivedDateTime`).
    pub received: DateTime<Utc>,
    /// When the message was sent (`sentDateTime`).
    pub sent: DateTime<Utc>,
    /// True for an unsent draft.
    pub is_draft: bool,
    /// True once the message has been read.
    pub is_read: bool,
    /// `low`, `normal` or `high`.
    #[serde(with = "crate::persist::static_str")]
    pub importance: crate::persist::StaticStr,
    /// Focused Inbox's verdict: `focused` or `other`.
    #[serde(with = "crate::persist::static_str")]
    pub inference_classification: crate::persist::StaticStr,
    /// Outlook categories (colour tags) by name.
    pub categories: Vec<String>,
    /// True when the message is flagged for follow-up.
    pub flagged: bool,
    /// Internet message headers as (name, value) pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The attachments, with their content.
    pub attachments: Vec<Attachment>,
}

/// A message in a mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    /// The world-unique key the message's ids are derived from.
    pub key: u64,
    /// Index of the tenant in [`World::tenants`].
    pub tenant: usize,
    /// Index of the mailbox in its tenant's users.
    pub user: usize,
    /// Index of the folder in the mailbox's folders.
    pub folder: usize,
    /// The world sequence at which it arrived in its current folder; orders folder contents.
    pub arrival: u64,
    /// How often it was moved; part of its default id, which therefore changes on every move.
    pub moves: u32,
    /// Bumped on every change; part of the change key in `@odata.etag`.
    pub version: u32,
    /// When the message was created (`createdDateTime`).
    pub created: DateTime<Utc>,
    /// When the message last changed (`lastModifiedDateTime`).
    pub last_modified: DateTime<Utc>,
    /// The first 255 characters of the body as text, kept because every listing sends it.
    pub body_preview: String,
    /// Everything a client sees of the message besides its identity and place.
    pub content: MessageContent,
}

/// A mail sent through `sendMail` to an address outside the simulated tenants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboundMail {
    /// The sending tenant's id.
    pub tenant: String,
    /// The sender's address.
    pub from: String,
    /// The addresses outside the world it was sent to.
    pub to: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The `Message-ID` the message was sent with.
    pub internet_message_id: String,
}

/// A tenant: its directory, its apps, and the lines that invalidate tokens issued before them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant id, a GUID.
    pub id: String,
    /// The tenant's verified domain, such as `contoso.example`.
    pub domain: String,
    /// The organisation's name.
    pub display_name: String,
    /// The admin who consents in the authorization-code flow.
    pub admin_upn: String,
    /// The app registrations of the tenant.
    pub apps: Vec<App>,
    /// Every user and shared mailbox of the tenant, by index.
    pub users: Vec<User>,
    /// Lowercase object id, UPN and mail -> index into `users`.
    pub user_index: HashMap<String, usize>,
    /// The tenant's Microsoft 365 groups, listed but never synced.
    pub groups: Vec<Group>,
    /// The tenant's rooms (resource calendars).
    pub rooms: Vec<Room>,
    /// Access tokens issued at a world sequence below this one are expired. A sequence, not a
    /// time, so a token fetched right after an expiry is valid at once.
    pub access_tokens_min_seq: u64,
    /// Refresh tokens issued at a world sequence below this one answer AADSTS700082.
    pub refresh_tokens_min_seq: u64,
}

impl Tenant {
    /// A new tenant with no users.
    pub fn new(id: String, domain: String, display_name: String, admin_upn: String) -> Self {
        Tenant {
            id,
            domain,
            display_name,
            admin_upn,
            apps: Vec::new(),
            users: Vec::new(),
            user_index: HashMap::new(),
            groups: Vec::new(),
            rooms: Vec::new(),
            access_tokens_min_seq: 0,
            refresh_tokens_min_seq: 0,
        }
    }

    /// Resolves a user by object id, UPN or mail, case-insensitively.
    pub fn user_by_key(&self, key: &str) -> Option<usize> {
        self.user_index.get(&key.to_ascii_lowercase()).copied()
    }

    /// The app with this client id.
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// Mutable access to the app with this client id.
    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// True when `address` belongs to a user of this tenant.
    pub fn is_internal(&self, address: &str) -> bool {
        self.user_by_key(address).is_some()
    }
}

/// Everything the simulator holds. Guarded by one mutex in [`super::Sim`].
#[derive(Debug, Serialize, Deserialize)]
pub struct World {
    /// Every tenant, by index.
    pub tenants: Vec<Tenant>,
    /// Every message in the world, by key.
    pub messages: HashMap<u64, Message>,
    /// The sequence that orders every arrival and change in the world.
    pub seq: u64,
    next_key: u64,
    /// Mixed into ids so ids of one world are not valid in another.
    pub salt: u32,
    /// Mail sent to addresses outside the world, for tests to inspect.
    pub outbound_mail: Vec<OutboundMail>,
    /// Every invitation, update and cancellation a real server would have emailed.
    pub invitations: Vec<super::calendar::Invitation>,
    /// Every message a mailbox sent through Graph (sendMail or a draft's send): the ground
    /// truth of how many times something was sent.
    #[serde(default)]
    pub sent_mail: Vec<super::drafts::SentMail>,
    /// Attachments being uploaded in byte ranges, by session id (never saved).
    #[serde(skip)]
    pub upload_sessions: HashMap<String, super::drafts::UploadSession>,
    /// Bumped by a reset: delta tokens of an earlier world answer 410.
    pub epoch: u64,
    /// Changes to report to subscriptions, drained by the notifier (never saved).
    #[serde(skip)]
    pub pending_changes: Vec<Change>,
}

/// A change a subscription may want to hear about.
#[derive(Debug, Clone)]
pub struct Change {
    /// Index of the tenant in [`World::tenants`].
    pub tenant: usize,
    /// Index of the mailbox in its tenant's users.
    pub user: usize,
    /// `Some(folder)` for messages, `None` for events.
    pub folder: Option<usize>,
    /// `created`, `updated` or `deleted`, as in a notification's `changeType`.
    pub change_type: &'static str,
    /// The message's ImmutableId or the event's id.
    pub id: String,
    /// True for a calendar event, false for a message.
    pub is_event: bool,
}

impl World {
    /// An empty world.
    pub fn new(salt: u32) -> Self {
        World {
            tenants: Vec::new(),
            messages: HashMap::new(),
            seq: 0,
            next_key: 1,
            salt,
            outbound_mail: Vec::new(),
            invitations: Vec::new(),
            sent_mail: Vec::new(),
            upload_sessions: HashMap::new(),
            epoch: 0,
            pending_changes: Vec::new(),
        }
    }

    /// The next sequence number.
    pub fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Adds a user with the standard folders and registers its lookup keys.
    pub fn add_user(&mut self, tenant: usize, mut user: User) -> usize {
        let t = &mut self.tenants[tenant];
        let idx = t.users.len();
        if user.folders.is_empty() {
            let mut rng = super::ids::Rng::new(super::ids::mix64(
                (tenant as u64) << 32 | idx as u64 ^ self.salt as u64,
            ));
            // The seven folders first, with the ids they always had; then the root (their
            // parent) and the rest, from the same stream.
            let root = WELL_KNOWN_FOLDERS.len();
            user.folders = WELL_KNOWN_FOLDERS
                .iter()
                .map(|(name, display)| {
                    Folder::new(folder_id(&mut rng), display, Some(root)).well_known(name)
                })
                .collect();
            user.folders.push(
                Folder::new(folder_id(&mut rng), ROOT_FOLDER.1, None).well_known(ROOT_FOLDER.0),
            );
            for (name, display, parent) in MORE_WELL_KNOWN_FOLDERS {
                let parent = match parent {
                    None => root,
                    Some(p) => user.folder_index(p).expect("parents come first"),
                };
                let f = Folder::new(folder_id(&mut rng), display, Some(parent)).well_known(name);
                user.folders.push(f);
            }
        }
        for key in [&user.id, &user.upn, &user.mail] {
            t.user_index.insert(key.to_ascii_lowercase(), idx);
        }
        t.users.push(user);
        idx
    }

    /// Stores a new message in a folder. `logged` is false only while generating the initial
    /// world, when no delta token can exist yet and the log would be dead weight.
    pub fn add_message(
        &mut self,
        tenant: usize,
        user: usize,
        folder: usize,
        content: MessageContent,
        logged: bool,
    ) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        let arrival = self.bump();
        let created = content.received;
        self.messages.insert(
            key,
            Message {
                key,
                tenant,
                user,
                folder,
                arrival,
                moves: 0,
                version: 0,
                created,
                last_modified: created,
                body_preview: preview_of(&content),
                content,
            },
        );
        let f = &mut self.tenants[tenant].users[user].folders[folder];
        f.items.insert(arrival, key);
        if logged {
            self.log_upsert(key, "created");
        }
        key
    }

    fn log_upsert(&mut self, key: u64, change_type: &'static str) {
        let seq = self.bump();
        let m = &self.messages[&key];
        let (tenant, user, folder) = (m.tenant, m.user, m.folder);
        let id = message_id::immutable(key, self.salt);
        let f = &mut self.tenants[tenant].users[user].folders[folder];
        f.log.insert(seq, FolderChange::Upsert { key });
        f.last_change.insert(key, seq);
        self.pending_changes.push(Change {
            tenant,
            user,
            folder: Some(folder),
            change_type,
            id,
            is_event: false,
        });
    }

    fn log_removed(&mut self, key: u64) {
        let seq = self.bump();
        let m = &self.messages[&key];
        let (tenant, user, folder, arrival) = (m.tenant, m.user, m.folder, m.arrival);
        let immutable_id = message_id::immutable(key, self.salt);
        let default_id = message_id::default(key, m.moves, self.salt);
        let received = m.content.received;
        let f = &mut self.tenants[tenant].users[user].folders[folder];
        f.items.remove(&arrival);
        f.log.insert(
            seq,
            FolderChange::Removed {
                key,
                immutable_id: immutable_id.clone(),
                default_id,
                received,
            },
        );
        f.last_change.insert(key, seq);
        self.pending_changes.push(Change {
            tenant,
            user,
            folder: Some(folder),
            change_type: "deleted",
            id: immutable_id,
            is_event: false,
        });
    }

    /// Applies `edit` to a message and records the change.
    pub fn update_message(&mut self, key: u64, edit: impl FnOnce(&mut MessageContent)) {
        if let Some(m) = self.messages.get_mut(&key) {
            edit(&mut m.content);
            m.body_preview = preview_of(&m.content);
            m.version += 1;
            m.last_modified = Utc::now();
            self.log_upsert(key, "updated");
        }
    }

    /// Moves a message; with default ids it gets a new id, as in Exchange.
    pub fn move_message(&mut self, key: u64, dest: usize) {
        let Some(m) = self.messages.get(&key) else {
            return;
        };
        if m.folder == dest {
            return;
        }
        self.log_removed(key);
        let arrival = self.bump();
        let m = self.messages.get_mut(&key).expect("checked above");
        m.folder = dest;
        m.moves += 1;
        m.arrival = arrival;
        m.version += 1;
        m.last_modified = Utc::now();
        let (t, u) = (m.tenant, m.user);
        self.tenants[t].users[u].folders[dest]
            .items
            .insert(arrival, key);
        self.log_upsert(key, "created");
    }

    /// Copies a message into a folder as a new message.
    pub fn copy_message(&mut self, key: u64, dest: usize) -> Option<u64> {
        let m = self.messages.get(&key)?;
        let (t, u, content) = (m.tenant, m.user, m.content.clone());
        Some(self.add_message(t, u, dest, content, true))
    }

    /// Deletes a message.
    pub fn delete_message(&mut self, key: u64) {
        if self.messages.contains_key(&key) {
            self.log_removed(key);
            self.messages.remove(&key);
        }
    }

    /// Finds the tenant a tenant id or verified domain names.
    pub fn tenant_by_key(&self, key: &str) -> Option<usize> {
        self.tenants
            .iter()
            .position(|t| t.id.eq_ignore_ascii_case(key) || t.domain.eq_ignore_ascii_case(key))
    }

    /// Resolves a message id (either form) within one mailbox.
    ///
    /// A default id from before the message's last move no longer resolves, as in Exchange.
    pub fn message_in_mailbox(&self, tenant: usize, user: usize, id: &str) -> Option<u64> {
        let (key, moves) = message_id::parse(id, self.salt)?;
        let m = self.messages.get(&key)?;
        if m.tenant != tenant || m.user != user {
            return None;
        }
        match moves {
            Some(n) if n != m.moves => None,
            _ => Some(key),
        }
    }
}

/// The keys after `start` up to `end` inclusive, for `BTreeMap::range` over sequences.
///
/// Empty, never a panic of `range`, when a cursor has already reached or passed its end: a
/// round with nothing new to read is normal (two delta rounds with no change between them),
/// and `start + 1..=end` panics exactly then.
pub fn after(start: u64, end: u64) -> (std::ops::Bound<u64>, std::ops::Bound<u64>) {
    use std::ops::Bound::{Excluded, Included};
    (Excluded(start), Included(end.max(start)))
}

/// The keys from `start` to `end`, both inclusive; empty (not a panic) when `start > end`.
pub fn from_to(start: u64, end: u64) -> (std::ops::Bound<u64>, std::ops::Bound<u64>) {
    use std::ops::Bound::{Excluded, Included};
    if start > end {
        (Excluded(end), Included(end))
    } else {
        (Included(start), Included(end))
    }
}

/// Graph's `bodyPreview`: the body as plain text with whitespace collapsed, cut at 255
/// characters. One pass that stops early, since every stored message needs one.
pub fn preview_of(content: &MessageContent) -> String {
    const LIMIT: usize = 255;
    let mut out = String::with_capacity(LIMIT + 8);
    let (mut count, mut in_tag, mut in_head, mut pending_space) = (0, false, false, false);
    let mut tag_start = 0;
    let body: &str = &content.body;
    for (i, c) in body.char_indices() {
        if content.body_is_html {
            if in_tag {
                if c == '>' {
                    in_tag = false;
                    let tag = body[tag_start..i].to_ascii_lowercase();
                    if tag.starts_with("head") || tag.starts_with("style") {
                        in_head = true;
                    } else if tag.starts_with("/head") || tag.starts_with("/style") {
                        in_head = false;
                    }
                    pending_space = true;
                }
                continue;
            }
            if c == '<' {
                in_tag = true;
                tag_start = i + 1;
                continue;
            }
            if in_head {
                continue;
            }
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && count > 0 {
            out.push(' ');
            count += 1;
        }
        pending_space = false;
        if count >= LIMIT {
            break;
        }
        out.push(c);
        count += 1;
    }
    if content.body_is_html && out.contains('&') {
        out = out
            .replace("&nbsp;", " ")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
    }
    out.chars().take(LIMIT).collect()
}

/// Plain text of an HTML fragment: tags dropped, block ends become line breaks, common
/// entities decoded. Enough for previews and `outlook.body-content-type="text"`.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    let mut tag = String::new();
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => {
                in_tag = true;
                tag.clear();
            }
            (true, '>') => {
                in_tag = false;
                let name = tag
                    .trim_start_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                if matches!(
                    name.to_ascii_lowercase().as_str(),
                    "br" | "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3"
                ) {
                    out.push('\n');
                }
            }
            (true, c) => tag.push(c),
            (false, c) => out.push(c),
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
