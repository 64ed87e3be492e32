//! Graph message JSON to the plugin contract's `email` record, and the mapped CRM record to
//! what the store indexes.

use std::borrow::Cow;

use chrono::DateTime;
use serde::de::IgnoredAny;
use serde::Deserialize;

use m365sync_plugin::bindings::types::{
    Address, AddressRole, Body, BodyType, CrmEmail, Direction, Email, Header, Importance,
};
use m365sync_store::attachments::AttachmentSet;
use m365sync_store::sync::EmailRecord;

/// Where a message was read: the mailbox, its CRM user, and the folder.
pub struct Origin<'a> {
    /// The mailbox's address; a message from it is sent mail.
    pub mailbox: &'a str,
    /// The CRM user owning the mailbox's records, if linked.
    pub user: Option<&'a str>,
    /// The folder's key; `sentitems` makes every message sent mail.
    pub folder: &'a str,
}

/// A Graph message as a delta page carries it, read straight from the page's text: strings
/// borrow from it where they hold no escapes. Only the fields the contract's record needs are
/// read; the rest of the JSON is skipped without being built.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphMessage<'a> {
    /// Set on an `@removed` entry: the message left the folder.
    #[serde(rename = "@removed", default)]
    removed: Option<IgnoredAny>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from: Option<Recipient<'a>>,
    #[serde(borrow, default)]
    sender: Option<Recipient<'a>>,
    #[serde(borrow, default)]
    to_recipients: Option<Vec<Recipient<'a>>>,
    #[serde(borrow, default)]
    cc_recipients: Option<Vec<Recipient<'a>>>,
    #[serde(borrow, default)]
    bcc_recipients: Option<Vec<Recipient<'a>>>,
    #[serde(borrow, default)]
    reply_to: Option<Vec<Recipient<'a>>>,
    #[serde(borrow, default)]
    body: Option<ItemBody<'a>>,
    #[serde(borrow, default)]
    body_preview: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sent_date_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    received_date_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    categories: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    importance: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    internet_message_headers: Option<Vec<MessageHeader<'a>>>,
    #[serde(borrow, default)]
    internet_message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(default)]
    is_draft: Option<bool>,
    /// Graph reports `false` for a message whose only attachments are inline images; those
    /// are not fetched.
    #[serde(default)]
    has_attachments: Option<bool>,
}

impl GraphMessage<'_> {
    /// The message's Graph id (`""` when Graph sent none).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// True for an `@removed` entry.
    pub fn is_removed(&self) -> bool {
        self.removed.is_some()
    }

    /// True when Graph says the message has attachments (inline images alone do not count).
    pub fn has_attachments(&self) -> bool {
        self.has_attachments.unwrap_or(false)
    }

    /// When the message arrived, as Graph wrote it.
    pub fn received(&self) -> Option<&str> {
        self.received_date_time.as_deref()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient<'a> {
    #[serde(borrow, default)]
    email_address: Option<EmailAddress<'a>>,
}

#[derive(Deserialize)]
struct EmailAddress<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    address: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody<'a> {
    #[serde(borrow, default)]
    content_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageHeader<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<Cow<'a, str>>,
}

fn owned(v: &Option<Cow<'_, str>>) -> String {
    v.as_deref().unwrap_or_default().to_string()
}

fn addresses<'r, 'a: 'r>(
    list: impl IntoIterator<Item = &'r Recipient<'a>>,
    role: AddressRole,
    out: &mut Vec<Address>,
) {
    for r in list {
        let Some(a) = &r.email_address else { continue };
        let email = a
            .address
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !email.is_empty() {
            out.push(Address {
                role,
                email,
                name: owned(&a.name),
            });
        }
    }
}

/// The contract's email for one delta item, or `None` for an `@removed` entry.
pub fn email_from_graph(m: &GraphMessage<'_>, origin: &Origin<'_>) -> Option<Email> {
    if m.is_removed() {
        return None;
    }
    let mut addrs = Vec::new();
    addresses(&m.from, AddressRole::From, &mut addrs);
    addresses(&m.sender, AddressRole::Sender, &mut addrs);
    addresses(
        m.to_recipients.iter().flatten(),
        AddressRole::To,
        &mut addrs,
    );
    addresses(
        m.cc_recipients.iter().flatten(),
        AddressRole::Cc,
        &mut addrs,
    );
    addresses(
        m.bcc_recipients.iter().flatten(),
        AddressRole::Bcc,
        &mut addrs,
    );
    addresses(
        m.reply_to.iter().flatten(),
        AddressRole::ReplyTo,
        &mut addrs,
    );
    let mailbox = origin.mailbox.to_ascii_lowercase();
    let from_me = addrs
        .iter()
        .any(|a| a.role == AddressRole::From && a.email == mailbox);
    let direction = if from_me || origin.folder.eq_ignore_ascii_case("sentitems") {
        Direction::Sent
    } else {
        Direction::Received
    };
    let body = m.body.as_ref();
    let html = body
        .and_then(|b| b.content_type.as_deref())
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    Some(Email {
        id: owned(&m.id),
        mailbox,
        user: origin.user.map(str::to_string),
        folder: origin.folder.to_string(),
        direction,
        addresses: addrs,
        subject: owned(&m.subject),
        body: Body {
            content_type: if html { BodyType::Html } else { BodyType::Text },
            content: body.map(|b| owned(&b.content)).unwrap_or_default(),
            truncated: false,
        },
        preview: owned(&m.body_preview),
        sent: m.sent_date_time.as_deref().map(str::to_string),
        received: m.received_date_time.as_deref().map(str::to_string),
        categories: m
            .categories
            .iter()
            .flatten()
            .map(|c| c.to_string())
            .collect(),
        importance: match m.importance.as_deref() {
            Some("high") => Importance::High,
            Some("low") => Importance::Low,
            _ => Importance::Normal,
        },
        headers: m
            .internet_message_headers
            .iter()
            .flatten()
            .map(|h| Header {
                name: owned(&h.name),
                value: owned(&h.value),
            })
            .collect(),
        attachments: Vec::new(),
        internet_message_id: m.internet_message_id.as_deref().map(str::to_string),
        conversation_id: m.conversation_id.as_deref().map(str::to_string),
        is_draft: m.is_draft.unwrap_or(false),
    })
}

fn millis(t: Option<&str>) -> i64 {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// What the store keeps for a mapped email.
pub fn record_for_store(email: &Email, crm: &CrmEmail, decided_by: &str) -> EmailRecord {
    let sender = email
        .addresses
        .iter()
        .find(|a| a.role == AddressRole::From)
        .or_else(|| {
            email
                .addresses
                .iter()
                .find(|a| a.role == AddressRole::Sender)
        })
        .map(|a| a.email.clone())
        .unwrap_or_default();
    let role = |r: AddressRole| match r {
        AddressRole::From => "from",
        AddressRole::Sender => "sender",
        AddressRole::To => "to",
        AddressRole::Cc => "cc",
        AddressRole::Bcc => "bcc",
        AddressRole::ReplyTo => "reply_to",
    };
    EmailRecord {
        graph_id: email.id.clone(),
        // Without an internetMessageId the message can only be itself.
        internet_message_id: email
            .internet_message_id
            .clone()
            .unwrap_or_else(|| format!("<graph:{}>", email.id)),
        conversation_id: email.conversation_id.clone().unwrap_or_default(),
        subject: email.subject.clone(),
        sender,
        sent_ms: millis(email.sent.as_deref()),
        received_ms: millis(email.received.as_deref()),
        recipients: email
            .addresses
            .iter()
            .map(|a| (role(a.role).to_string(), a.email.clone(), a.name.clone()))
            .collect(),
        record: serde_json::to_string(crm).expect("CRM records serialise"),
        decided_by: decided_by.to_string(),
        // Fetched after mapping, for kept emails only (sync::mail::attachments).
        attachments: AttachmentSet::Untouched,
    }
}

/// The CRM record built natively, without the mapping plugin: the baseline the benchmark
/// compares the plugin stages against (`m365sync sync bench`), never used by a tenant.
pub fn crm_email_native(email: &Email) -> CrmEmail {
    let of = |role: AddressRole| -> Vec<String> {
        email
            .addresses
            .iter()
            .filter(|a| a.role == role)
            .map(|a| a.email.clone())
            .collect()
    };
    CrmEmail {
        external_id: email.id.clone(),
        internet_message_id: email.internet_message_id.clone(),
        conversation_id: email.conversation_id.clone(),
        mailbox: email.mailbox.clone(),
        direction: email.direction,
        from: of(AddressRole::From).into_iter().next(),
        to: of(AddressRole::To),
        cc: of(AddressRole::Cc),
        bcc: of(AddressRole::Bcc),
        subject: email.subject.clone(),
        description: email.preview.clone(),
        sent: email.sent.clone(),
        received: email.received.clone(),
        importance: email.importance,
        categories: email.categories.clone(),
        attachment_count: email.attachments.len() as u32,
        attachment_bytes: email.attachments.iter().map(|a| a.size).sum(),
    }
}
