//! Graph message JSON to the plugin contract's `email` record, and the mapped CRM record to
//! what the store indexes.

use chrono::DateTime;
use serde_json::Value;

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

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn addresses(v: &Value, role: AddressRole, out: &mut Vec<Address>) {
    let mut push = |a: &Value| {
        let email = a["emailAddress"]["address"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if !email.is_empty() {
            out.push(Address {
                role,
                email,
                name: s(&a["emailAddress"]["name"]),
            });
        }
    };
    match v {
        Value::Array(list) => list.iter().for_each(&mut push),
        Value::Object(_) => push(v),
        _ => {}
    }
}

/// The contract's email for one delta item, or `None` for an `@removed` entry.
pub fn email_from_graph(m: &Value, origin: &Origin<'_>) -> Option<Email> {
    if m.get("@removed").is_some() {
        return None;
    }
    let mut addrs = Vec::new();
    addresses(&m["from"], AddressRole::From, &mut addrs);
    addresses(&m["sender"], AddressRole::Sender, &mut addrs);
    addresses(&m["toRecipients"], AddressRole::To, &mut addrs);
    addresses(&m["ccRecipients"], AddressRole::Cc, &mut addrs);
    addresses(&m["bccRecipients"], AddressRole::Bcc, &mut addrs);
    addresses(&m["replyTo"], AddressRole::ReplyTo, &mut addrs);
    let mailbox = origin.mailbox.to_ascii_lowercase();
    let from_me = addrs
        .iter()
        .any(|a| a.role == AddressRole::From && a.email == mailbox);
    let direction = if from_me || origin.folder.eq_ignore_ascii_case("sentitems") {
        Direction::Sent
    } else {
        Direction::Received
    };
    let html = m["body"]["contentType"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    Some(Email {
        id: s(&m["id"]),
        mailbox,
        user: origin.user.map(str::to_string),
        folder: origin.folder.to_string(),
        direction,
        addresses: addrs,
        subject: s(&m["subject"]),
        body: Body {
            content_type: if html { BodyType::Html } else { BodyType::Text },
            content: s(&m["body"]["content"]),
            truncated: false,
        },
        preview: s(&m["bodyPreview"]),
        sent: m["sentDateTime"].as_str().map(str::to_string),
        received: m["receivedDateTime"].as_str().map(str::to_string),
        categories: m["categories"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        importance: match m["importance"].as_str() {
            Some("high") => Importance::High,
            Some("low") => Importance::Low,
            _ => Importance::Normal,
        },
        headers: m["internetMessageHeaders"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|x| Header {
                        name: s(&x["name"]),
                        value: s(&x["value"]),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        attachments: Vec::new(),
        internet_message_id: m["internetMessageId"].as_str().map(str::to_string),
        conversation_id: m["conversationId"].as_str().map(str::to_string),
        is_draft: m["isDraft"].as_bool().unwrap_or(false),
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
