//! Mail: folders, messages (read, change, move, copy, delete), attachments and sendMail
//! (drafts' attachments, upload sessions and send: [`super::drafts`]).
//!
//! Messages are rendered straight from the model through [`MessageView`], which writes only
//! the `$select`ed properties; delta, listings and single reads all share it.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::graph::Ctx;
use super::ids::message_id;
use super::model::{
    html_to_text, Attachment, AttachmentKind, Content, Message, MessageContent, OutboundMail,
    Recipient, World,
};
use super::request::{GraphError, GraphResult, SimResponse};

/// Message properties in the order Graph writes them. The bit of each is its index.
pub const MESSAGE_FIELDS: [&str; 30] = [
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "uniqueBody",
    "internetMessageHeaders",
];

/// Properties sent when no `$select` is given: all but those Graph sends only on request.
pub const DEFAULT_FIELDS: u64 = (1 << 28) - 1;

const fn bit(name_index: usize) -> u64 {
    1 << name_index
}

/// Parses `$select` into a field mask, refusing unknown properties as Graph does.
pub fn parse_select(select: Option<&str>) -> Result<u64, GraphError> {
    let Some(select) = select.filter(|s| !s.trim().is_empty()) else {
        return Ok(DEFAULT_FIELDS);
    };
    let mut mask = 0;
    for name in select.split(',').map(str::trim) {
        if name.eq_ignore_ascii_case("id") {
            continue;
        }
        match MESSAGE_FIELDS
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name))
        {
            Some(i) => mask |= bit(i),
            None => {
                return Err(GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.message'."
                )))
            }
        }
    }
    Ok(mask)
}

/// Renders a message as Graph does, honouring `$select`, the id form and the body type.
pub struct MessageView<'a> {
    /// The message to render.
    pub message: &'a Message,
    /// The id of the folder it is in (`parentFolderId`).
    pub folder_id: &'a str,
    /// The world's salt, which message ids are derived with.
    pub salt: u32,
    /// The properties to send, one bit per [`MESSAGE_FIELDS`] entry (see [`parse_select`]).
    pub mask: u64,
    /// Send ImmutableIds (`Prefer: IdType="ImmutableId"`) rather than default ids.
    pub immutable_ids: bool,
    /// Send the body as text (`Prefer: outlook.body-content-type="text"`).
    pub text_body: bool,
    /// Delta items carry `@odata.type`.
    pub with_type: bool,
}

/// `{"emailAddress":{"name":..,"address":..}}`.
struct Addr<'a>(&'a Recipient);

impl Serialize for Addr<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Inner<'a> {
            name: &'a str,
            address: &'a str,
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(
            "emailAddress",
            &Inner {
                name: &self.0.name,
                address: &self.0.address,
            },
        )?;
        m.end()
    }
}

struct Addrs<'a>(&'a [Recipient]);

impl Serialize for Addrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Addr))
    }
}

/// Graph's date format: `2026-01-01T10:00:00Z`.
pub fn graph_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The change key (and etag) of a version.
pub fn change_key(key: u64, version: u32) -> String {
    STANDARD.encode(format!("CQAAABYAAAD{key:x}v{version}"))
}

/// The id a client sees for a message, in the form it asked for.
pub fn visible_id(m: &Message, salt: u32, immutable: bool) -> String {
    if immutable {
        message_id::immutable(m.key, salt)
    } else {
        message_id::default(m.key, m.moves, salt)
    }
}

impl Serialize for MessageView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.message;
        let c = &m.content;
        let has = |name: usize| self.mask & bit(name) != 0;
        let mut map = s.serialize_map(None)?;
        if self.with_type {
            map.serialize_entry("@odata.type", "#microsoft.graph.message")?;
        }
        let ck = change_key(m.key, m.version);
        map.serialize_entry("@odata.etag", &format!("W/\"{ck}\""))?;
        map.serialize_entry("id", &visible_id(m, self.salt, self.immutable_ids))?;
        let body = |map: &mut S::SerializeMap, name: &str| -> Result<(), S::Error> {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Body<'a> {
                content_type: &'a str,
                content: &'a str,
            }
            if c.body_is_html && self.text_body {
                let text = html_to_text(&c.body);
                map.serialize_entry(
                    name,
                    &Body {
                        content_type: "text",
                        content: &text,
                    },
                )
            } else {
                map.serialize_entry(
                    name,
                    &Body {
                        content_type: if c.body_is_html { "html" } else { "text" },
                        content: &c.body,
                    },
                )
            }
        };
        for (i, name) in MESSAGE_FIELDS.iter().enumerate() {
            if !has(i) {
                continue;
            }
            match *name {
                "createdDateTime" => map.serialize_entry(name, &graph_time(&m.created))?,
                "lastModifiedDateTime" => map.serialize_entry(name, &graph_time(&m.last_modified))?,
                "changeKey" => map.serialize_entry(name, &ck)?,
                "categories" => map.serialize_entry(name, &c.categories)?,
                "receivedDateTime" => map.serialize_entry(name, &graph_time(&c.received))?,
                "sentDateTime" => map.serialize_entry(name, &graph_time(&c.sent))?,
                "hasAttachments" => map.serialize_entry(
                    name,
                    &c.attachments.iter().any(|a| {
                        !matches!(a.kind, AttachmentKind::File { is_inline: true, .. })
                    }),
                )?,
                "internetMessageId" => map.serialize_entry(name, &c.internet_message_id)?,
                "subject" => map.serialize_entry(name, &c.subject)?,
                "bodyPreview" => map.serialize_entry(name, &m.body_preview)?,
                "importance" => map.serialize_entry(name, c.importance)?,
                "parentFolderId" => map.serialize_entry(name, self.folder_id)?,
                "conversationId" => map.serialize_entry(name, &c.conversation_id)?,
                "conversationIndex" => map.serialize_entry(name, &c.conversation_index)?,
                "isDeliveryReceiptRequested" | "isReadReceiptRequested" => {
                    map.serialize_entry(name, &false)?
                }
                "isRead" => map.serialize_entry(name, &c.is_read)?,
                "isDraft" => map.serialize_entry(name, &c.is_draft)?,
                "webLink" => map.serialize_entry(
                    name,
                    &format!(
                        "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
                        message_id::default(m.key, m.moves, self.salt)
                    ),
                )?,
                "inferenceClassification" => map.serialize_entry(name, c.inference_classification)?,
                "body" | "uniqueBody" => body(&mut map, name)?,
                "sender" | "from" => match &c.from {
                    Some(f) => map.serialize_entry(name, &Addr(f))?,
                    None => map.serialize_entry(name, &Option::<()>::None)?,
                },
                "toRecipients" => map.serialize_entry(name, &Addrs(&c.to))?,
                "ccRecipients" => map.serialize_entry(name, &Addrs(&c.cc))?,
                "bccRecipients" => map.serialize_entry(name, &Addrs(&c.bcc))?,
                "replyTo" => map.serialize_entry(name, &Addrs(&c.reply_to))?,
                "flag" => map.serialize_entry(
                    name,
                    &serde_json::json!({"flagStatus": if c.flagged { "flagged" } else { "notFlagged" }}),
                )?,
                "internetMessageHeaders" => {
                    let headers: Vec<_> = c
                        .headers
                        .iter()
                        .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
                        .collect();
                    map.serialize_entry(name, &headers)?
                }
                _ => {}
            }
        }
        map.end()
    }
}

/// Routes `/users/{u}/mailFolders...`, `/users/{u}/messages...` and `/users/{u}/sendMail`.
pub fn handle(ctx: &Ctx, world: &mut World, t: usize, u: usize, rest: &[String]) -> GraphResult {
    let method = ctx.req.method.as_str();
    let seg = |i: usize| rest.get(i).map(String::as_str);
    match (method, seg(0), rest.len()) {
        (_, Some("mailFolders"), _) => super::folders::handle(ctx, world, t, u, rest),
        ("GET", Some("messages"), 1) => {
            ctx.require("Mail.Read")?;
            list_messages(ctx, world, t, u, None)
        }
        ("GET", Some("messages"), 2) if seg(1) == Some("$count") => {
            ctx.require("Mail.Read")?;
            let n = count_messages(ctx, world, t, u, None)?;
            Ok(SimResponse::bytes(
                200,
                "text/plain",
                n.to_string().into_bytes(),
            ))
        }
        ("POST", Some("messages"), 1) => {
            ctx.require("Mail.ReadWrite")?;
            let drafts = world.tenants[t].users[u]
                .folder_index("drafts")
                .expect("every mailbox has drafts");
            create_draft(ctx, world, t, u, drafts)
        }
        (_, Some("messages"), n) if n >= 2 => {
            let id = seg(1).unwrap_or_default().to_string();
            message_routes(ctx, world, t, u, &id, &rest[2..])
        }
        ("POST", Some("sendMail"), 1) => {
            ctx.require("Mail.Send")?;
            send_mail(ctx, world, t, u)
        }
        _ => Err(unsupported(ctx)),
    }
}

/// The 400 Graph gives for a path it has no resource for.
pub fn unsupported(ctx: &Ctx) -> GraphError {
    GraphError::bad_request(format!(
        "Resource not found for the segment '{}'.",
        ctx.req.segments.last().map(String::as_str).unwrap_or("")
    ))
}

/// Graph's 404 for an item or folder that does not exist.
pub fn item_not_found() -> GraphError {
    GraphError::not_found(
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

/// One clause of a listing's `$filter`.
#[derive(Debug, Clone, PartialEq)]
enum Clause {
    /// `receivedDateTime {op} {instant}` (unix seconds).
    Received(Cmp, i64),
    /// `isRead eq|ne true|false`: wanted value of isRead.
    IsRead(bool),
    /// `internetMessageId eq '<...>'`: how a client finds a message it created.
    InternetMessageId(String),
}

/// A comparison operator of `$filter`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Cmp::Ge => a >= b,
            Cmp::Gt => a > b,
            Cmp::Le => a <= b,
            Cmp::Lt => a < b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// Parses a listing's `$filter`: clauses on `receivedDateTime` (ge, gt, le, lt, eq, ne),
/// `isRead` (eq, ne) and `internetMessageId` (eq), joined by `and`, e.g. `receivedDateTime ge 2026-01-01T00:00:00Z and
/// receivedDateTime lt 2026-02-01T00:00:00Z`. Anything else is refused rather than ignored.
fn listing_filter(filter: Option<&str>) -> Result<Vec<Clause>, GraphError> {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(Vec::new());
    };
    let words: Vec<&str> = filter.split_whitespace().collect();
    let mut clauses = Vec::new();
    for clause in words.split(|w| w.eq_ignore_ascii_case("and")) {
        let [field, op, value] = clause else {
            return Err(GraphError::bad_request(format!(
                "Invalid filter clause: '{}' in '{filter}' (the simulator reads 'field op value' clauses joined by 'and').",
                clause.join(" ")
            )));
        };
        let cmp = match op.to_ascii_lowercase().as_str() {
            "ge" => Cmp::Ge,
            "gt" => Cmp::Gt,
            "le" => Cmp::Le,
            "lt" => Cmp::Lt,
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            other => {
                return Err(GraphError::bad_request(format!(
                    "Invalid filter operator '{other}'."
                )))
            }
        };
        let value = value.trim_matches('\'');
        if field.eq_ignore_ascii_case("receivedDateTime") {
            let at = DateTime::parse_from_rfc3339(value)
                .map_err(|_| {
                    GraphError::bad_request(format!("Invalid filter clause: bad date '{value}'"))
                })?
                .with_timezone(&Utc);
            clauses.push(Clause::Received(cmp, at.timestamp()));
        } else if field.eq_ignore_ascii_case("internetMessageId") && cmp == Cmp::Eq {
            clauses.push(Clause::InternetMessageId(value.to_string()));
        } else if field.eq_ignore_ascii_case("isRead") && matches!(cmp, Cmp::Eq | Cmp::Ne) {
            let want = value.eq_ignore_ascii_case("true");
            clauses.push(Clause::IsRead(if cmp == Cmp::Eq { want } else { !want }));
        } else {
            return Err(GraphError::bad_request(format!(
                "The query filter contains one or more invalid nodes: {field} {op}"
            )));
        }
    }
    Ok(clauses)
}

fn passes(clauses: &[Clause], m: &Message) -> bool {
    clauses.iter().all(|c| match c {
        Clause::Received(cmp, at) => cmp.holds(m.content.received.timestamp(), *at),
        Clause::IsRead(want) => m.content.is_read == *want,
        Clause::InternetMessageId(id) => m.content.internet_message_id == *id,
    })
}

/// The messages of a folder (or of the whole mailbox) that pass the listing's `$filter`.
fn filtered<'w>(
    ctx: &Ctx,
    world: &'w World,
    t: usize,
    u: usize,
    folder: Option<usize>,
) -> Result<Vec<&'w Message>, GraphError> {
    let clauses = listing_filter(ctx.req.query("$filter"))?;
    let user = &world.tenants[t].users[u];
    let keys: Box<dyn Iterator<Item = &u64>> = match folder {
        Some(f) => Box::new(user.folders[f].items.values()),
        None => Box::new(
            user.folders
                .iter()
                .filter(|f| !f.deleted)
                .flat_map(|f| f.items.values()),
        ),
    };
    Ok(keys
        .filter_map(|k| world.messages.get(k))
        .filter(|m| passes(&clauses, m))
        .collect())
}

/// `GET .../messages/$count`: how many messages a listing with the same `$filter` has.
pub fn count_messages(
    ctx: &Ctx,
    world: &World,
    t: usize,
    u: usize,
    folder: Option<usize>,
) -> Result<usize, GraphError> {
    Ok(filtered(ctx, world, t, u, folder)?.len())
}

/// `$orderby` of a listing: `receivedDateTime` ascending or descending; Graph's default
/// order is newest first.
fn listing_order(ctx: &Ctx) -> Result<bool, GraphError> {
    let Some(order) = ctx
        .req
        .query("$orderby")
        .map(str::trim)
        .filter(|o| !o.is_empty())
    else {
        return Ok(false);
    };
    let words: Vec<&str> = order.split_whitespace().collect();
    match words.as_slice() {
        [field] if field.eq_ignore_ascii_case("receivedDateTime") => Ok(true),
        [field, dir] if field.eq_ignore_ascii_case("receivedDateTime") => {
            match dir.to_ascii_lowercase().as_str() {
                "asc" => Ok(true),
                "desc" => Ok(false),
                _ => Err(GraphError::bad_request(format!(
                    "Invalid $orderby '{order}'."
                ))),
            }
        }
        _ => Err(GraphError::bad_request(format!(
            "The simulator orders messages by receivedDateTime only, got '{order}'."
        ))),
    }
}

/// `GET .../messages` (a folder's or the whole mailbox's): `$filter`, `$orderby`, `$top` (up
/// to 1,000), `$skip`, `$select`, `$count=true`.
pub fn list_messages(
    ctx: &Ctx,
    world: &World,
    t: usize,
    u: usize,
    folder: Option<usize>,
) -> GraphResult {
    let mask = parse_select(ctx.req.query("$select"))?;
    let top: usize = match ctx.req.query("$top") {
        Some(v) => v
            .parse()
            .map_err(|_| GraphError::bad_request(format!("Invalid $top value '{v}'.")))?,
        None => 10,
    };
    let top = top.clamp(1, 1000);
    let skip: usize = ctx
        .req
        .query("$skip")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ascending = listing_order(ctx)?;
    let mut found = filtered(ctx, world, t, u, folder)?;
    let user = &world.tenants[t].users[u];
    found.sort_by_key(|m| (m.content.received, m.arrival));
    if !ascending {
        found.reverse();
    }
    let page: Vec<_> = found
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| MessageView {
            message: m,
            folder_id: &user.folders[m.folder].id,
            salt: world.salt,
            mask,
            immutable_ids: ctx.prefer.immutable_ids,
            text_body: ctx.prefer.text_body,
            with_type: false,
        })
        .collect();
    let context = match folder {
        Some(f) => format!(
            "{}/$metadata#users('{}')/mailFolders('{}')/messages",
            ctx.graph_base, user.id, user.folders[f].id
        ),
        None => format!("{}/$metadata#users('{}')/messages", ctx.graph_base, user.id),
    };
    let mut body = serde_json::Map::new();
    body.insert("@odata.context".into(), context.into());
    if ctx
        .req
        .query("$count")
        .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        body.insert("@odata.count".into(), found.len().into());
    }
    if skip + top < found.len() {
        body.insert(
            "@odata.nextLink".into(),
            ctx.same_url_with("$skip", &(skip + top).to_string()).into(),
        );
    }
    body.insert(
        "value".into(),
        serde_json::to_value(&page).expect("messages serialise"),
    );
    Ok(SimResponse::json(200, &body))
}

/// Routes `.../messages/{id}...` of one mailbox: read, change, delete, move, copy and
/// attachments.
pub fn message_routes(
    ctx: &Ctx,
    world: &mut World,
    t: usize,
    u: usize,
    id: &str,
    rest: &[String],
) -> GraphResult {
    let key = world.message_in_mailbox(t, u, id).ok_or_else(|| {
        if id.starts_with("AA") {
            item_not_found()
        } else {
            GraphError::bad_request("Id is malformed.").with_code("ErrorInvalidIdMalformed")
        }
    })?;
    let method = ctx.req.method.as_str();
    let seg = |i: usize| rest.get(i).map(String::as_str);
    match (method, seg(0), seg(1), seg(2)) {
        ("GET", None, _, _) => {
            ctx.require("Mail.Read")?;
            let mask = parse_select(ctx.req.query("$select"))?;
            Ok(render_one(ctx, world, key, mask))
        }
        ("PATCH", None, _, _) => {
            ctx.require("Mail.ReadWrite")?;
            patch_message(ctx, world, key)
        }
        ("DELETE", None, _, _) => {
            ctx.require("Mail.ReadWrite")?;
            world.delete_message(key);
            Ok(SimResponse::empty(204))
        }
        ("POST", Some(action @ ("move" | "copy")), None, _) => {
            ctx.require("Mail.ReadWrite")?;
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Dest {
                destination_id: String,
            }
            let dest: Dest = ctx.req.json()?;
            let f = super::folders::graph_folder(world, t, u, &dest.destination_id)?;
            let key = if action == "move" {
                world.move_message(key, f);
                key
            } else {
                world.copy_message(key, f).ok_or_else(item_not_found)?
            };
            let mut resp = render_one(ctx, world, key, DEFAULT_FIELDS);
            resp.status = 201;
            Ok(resp)
        }
        ("POST", Some("attachments"), None, _) => {
            ctx.require("Mail.ReadWrite")?;
            super::drafts::add_attachment(ctx, world, key)
        }
        ("POST", Some("attachments"), Some("createUploadSession"), None) => {
            ctx.require("Mail.ReadWrite")?;
            super::drafts::create_upload_session(ctx, world, t, u, key)
        }
        ("POST", Some("send"), None, _) => super::drafts::send_draft(ctx, world, t, u, key),
        ("GET", Some("attachments"), None, _) => {
            ctx.require("Mail.Read")?;
            let m = &world.messages[&key];
            let limit = ctx.sim.protocol().inline_attachment_limit;
            let value: Vec<_> = m
                .content
                .attachments
                .iter()
                .map(|a| attachment_json(a, limit, ctx.req.query("$expand").is_some()))
                .collect();
            Ok(SimResponse::json(
                200,
                &serde_json::json!({
                    "@odata.context": format!("{}/$metadata#users('{}')/messages('{}')/attachments", ctx.graph_base, world.tenants[t].users[u].id, id),
                    "value": value,
                }),
            ))
        }
        ("GET", Some("attachments"), Some(aid), value) => {
            ctx.require("Mail.Read")?;
            let m = &world.messages[&key];
            let a = m
                .content
                .attachments
                .iter()
                .find(|a| a.id == aid)
                .ok_or_else(item_not_found)?;
            match value {
                None => {
                    let limit = ctx.sim.protocol().inline_attachment_limit;
                    Ok(SimResponse::json(200, &attachment_json(a, limit, true)))
                }
                Some("$value") => Ok(attachment_value(a)),
                Some(_) => Err(unsupported(ctx)),
            }
        }
        _ => Err(unsupported(ctx)),
    }
}

fn render_one(ctx: &Ctx, world: &World, key: u64, mask: u64) -> SimResponse {
    let m = &world.messages[&key];
    let user = &world.tenants[m.tenant].users[m.user];
    let view = MessageView {
        message: m,
        folder_id: &user.folders[m.folder].id,
        salt: world.salt,
        mask,
        immutable_ids: ctx.prefer.immutable_ids,
        text_body: ctx.prefer.text_body,
        with_type: false,
    };
    let mut value = serde_json::to_value(&view).expect("message serialises");
    if let Some(o) = value.as_object_mut() {
        let ctx_url = format!(
            "{}/$metadata#users('{}')/messages/$entity",
            ctx.graph_base, user.id
        );
        o.insert("@odata.context".into(), ctx_url.into());
    }
    SimResponse::json(200, &value)
}

fn attachment_json(a: &Attachment, inline_limit: u64, with_item: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": a.id,
        "lastModifiedDateTime": graph_time(&a.last_modified),
        "name": a.name,
        "size": a.size(),
    });
    match &a.kind {
        AttachmentKind::File {
            content_type,
            content,
            is_inline,
            content_id,
        } => {
            v["@odata.type"] = "#microsoft.graph.fileAttachment".into();
            v["contentType"] = content_type.as_str().into();
            v["isInline"] = (*is_inline).into();
            v["contentId"] = content_id.clone().into();
            v["contentLocation"] = serde_json::Value::Null;
            if content.len() <= inline_limit {
                v["contentBytes"] = STANDARD.encode(content.bytes()).into();
            }
        }
        AttachmentKind::Item { subject, body } => {
            v["@odata.type"] = "#microsoft.graph.itemAttachment".into();
            v["contentType"] = serde_json::Value::Null;
            v["isInline"] = false.into();
            if with_item {
                v["item"] = serde_json::json!({
                    "@odata.type": "#microsoft.graph.message",
                    "subject": subject,
                    "body": {"contentType": "html", "content": body},
                });
            }
        }
        AttachmentKind::Reference { source_url } => {
            v["@odata.type"] = "#microsoft.graph.referenceAttachment".into();
            v["contentType"] = serde_json::Value::Null;
            v["isInline"] = false.into();
            v["sourceUrl"] = source_url.as_str().into();
            v["providerType"] = "oneDriveBusiness".into();
            v["permission"] = "view".into();
            v["isFolder"] = false.into();
        }
    }
    v
}

fn attachment_value(a: &Attachment) -> SimResponse {
    match &a.kind {
        AttachmentKind::File {
            content_type,
            content,
            ..
        } => SimResponse::bytes(200, content_type, content.bytes()),
        AttachmentKind::Item { subject, body } => SimResponse::bytes(
            200,
            "message/rfc822",
            format!("Subject: {subject}\r\nContent-Type: text/html\r\n\r\n{body}").into_bytes(),
        ),
        AttachmentKind::Reference { source_url } => {
            SimResponse::bytes(200, "text/plain", source_url.clone().into_bytes())
        }
    }
}

/// Properties a client may change with PATCH.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagePatch {
    subject: Option<String>,
    is_read: Option<bool>,
    categories: Option<Vec<String>>,
    importance: Option<String>,
    flag: Option<serde_json::Value>,
    body: Option<IncomingBody>,
}

fn patch_message(ctx: &Ctx, world: &mut World, key: u64) -> GraphResult {
    let p: MessagePatch = ctx.req.json()?;
    let importance = match p.importance.as_deref() {
        None => None,
        Some(i) => Some(importance_of(i)?),
    };
    world.update_message(key, |c| {
        if let Some(s) = p.subject {
            c.subject = s;
        }
        if let Some(r) = p.is_read {
            c.is_read = r;
        }
        if let Some(cats) = p.categories {
            c.categories = cats;
        }
        if let Some(i) = importance {
            c.importance = i;
        }
        if let Some(f) = p.flag {
            c.flagged = f["flagStatus"] == "flagged";
        }
        if let Some(b) = p.body {
            c.body_is_html = !b.content_type.eq_ignore_ascii_case("text");
            c.body = Arc::from(b.content);
        }
    });
    Ok(render_one(ctx, world, key, DEFAULT_FIELDS))
}

fn importance_of(i: &str) -> Result<&'static str, GraphError> {
    match i.to_ascii_lowercase().as_str() {
        "low" => Ok("low"),
        "normal" => Ok("normal"),
        "high" => Ok("high"),
        _ => Err(GraphError::bad_request(format!(
            "Invalid importance '{i}'."
        ))),
    }
}

/// A body as clients send it.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct IncomingBody {
    /// `html` (the default) or `text`.
    #[serde(default = "html")]
    pub content_type: String,
    /// The body itself.
    #[serde(default)]
    pub content: String,
}

fn html() -> String {
    "html".into()
}

#[derive(Deserialize, Debug)]
struct IncomingAddr {
    #[serde(rename = "emailAddress")]
    email_address: IncomingAddrInner,
}

#[derive(Deserialize, Debug)]
struct IncomingAddrInner {
    #[serde(default)]
    name: Option<String>,
    address: String,
}

impl From<IncomingAddr> for Recipient {
    fn from(a: IncomingAddr) -> Self {
        Recipient {
            name: a
                .email_address
                .name
                .unwrap_or_else(|| a.email_address.address.clone()),
            address: a.email_address.address,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct IncomingAttachment {
    #[serde(rename = "@odata.type", default)]
    odata_type: String,
    name: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    content_bytes: Option<String>,
    #[serde(default)]
    is_inline: bool,
    #[serde(default)]
    content_id: Option<String>,
}

/// A message as clients send it to `sendMail` or to create a draft.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct IncomingMessage {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: Option<IncomingBody>,
    #[serde(default)]
    to_recipients: Vec<IncomingAddr>,
    #[serde(default)]
    cc_recipients: Vec<IncomingAddr>,
    #[serde(default)]
    bcc_recipients: Vec<IncomingAddr>,
    #[serde(default)]
    reply_to: Vec<IncomingAddr>,
    #[serde(default)]
    importance: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    attachments: Vec<IncomingAttachment>,
    #[serde(default)]
    internet_message_headers: Vec<serde_json::Value>,
    #[serde(default)]
    conversation_id: Option<String>,
    /// Writable when a message is created (a draft, or sendMail's message): what a client
    /// finds its message by afterwards (`$filter=internetMessageId eq '...'`).
    #[serde(default)]
    internet_message_id: Option<String>,
}

fn build_content(
    world: &mut World,
    t: usize,
    u: usize,
    msg: IncomingMessage,
) -> Result<MessageContent, GraphError> {
    let now = Utc::now();
    let seq = world.bump();
    let user = &world.tenants[t].users[u];
    let body = msg.body.unwrap_or(IncomingBody {
        content_type: "html".into(),
        content: String::new(),
    });
    let mut attachments = Vec::new();
    for (i, a) in msg.attachments.into_iter().enumerate() {
        if !a.odata_type.is_empty() && !a.odata_type.ends_with("fileAttachment") {
            return Err(GraphError::bad_request(format!(
                "Unsupported attachment type '{}'.",
                a.odata_type
            )));
        }
        let bytes = decode_content_bytes(&a.name, a.content_bytes.unwrap_or_default())?;
        attachments.push(Attachment {
            id: format!("AAMkAtt{seq:x}_{i}"),
            name: a.name,
            kind: AttachmentKind::File {
                content_type: a
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
                content: Content::Bytes(Arc::from(bytes)),
                is_inline: a.is_inline,
                content_id: a.content_id,
            },
            last_modified: now,
        });
    }
    let headers = msg
        .internet_message_headers
        .iter()
        .filter_map(|h| {
            Some((
                h["name"].as_str()?.to_string(),
                h["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let internet_message_id = match msg.internet_message_id {
        Some(id) => {
            let id = id.trim().to_string();
            let inner = id.strip_prefix('<').and_then(|i| i.strip_suffix('>'));
            if !inner.is_some_and(|i| i.contains('@') && !i.contains(char::is_whitespace)) {
                return Err(GraphError::bad_request(format!(
                    "The internetMessageId '{id}' is not a valid Message-ID ('<local@domain>')."
                ))
                .with_code("ErrorInvalidInternetMessageHeader"));
            }
            id
        }
        None => format!(
            "<{}{:x}@{}>",
            now.format("%Y%m%d%H%M%S"),
            seq,
            world.tenants[t].domain.to_ascii_uppercase()
        ),
    };
    Ok(MessageContent {
        internet_message_id,
        conversation_id: msg
            .conversation_id
            .unwrap_or_else(|| format!("AAQkAD{seq:016x}")),
        conversation_index: STANDARD.encode(seq.to_be_bytes()),
        subject: msg.subject,
        body_is_html: !body.content_type.eq_ignore_ascii_case("text"),
        body: Arc::from(body.content),
        from: Some(Recipient {
            name: user.display_name.clone(),
            address: user.mail.clone(),
        }),
        to: msg.to_recipients.into_iter().map(Into::into).collect(),
        cc: msg.cc_recipients.into_iter().map(Into::into).collect(),
        bcc: msg.bcc_recipients.into_iter().map(Into::into).collect(),
        reply_to: msg.reply_to.into_iter().map(Into::into).collect(),
        received: now,
        sent: now,
        is_draft: false,
        is_read: true,
        importance: match msg.importance.as_deref() {
            Some(i) => importance_of(i)?,
            None => "normal",
        },
        inference_classification: "focused",
        categories: msg.categories,
        flagged: false,
        headers,
        attachments,
    })
}

/// `POST .../messages` (into Drafts) and `POST .../mailFolders/{id}/messages`: a new draft.
pub fn create_draft(
    ctx: &Ctx,
    world: &mut World,
    t: usize,
    u: usize,
    folder: usize,
) -> GraphResult {
    let msg: IncomingMessage = ctx.req.json()?;
    let mut content = build_content(world, t, u, msg)?;
    content.is_draft = true;
    let key = world.add_message(t, u, folder, content, true);
    let mut resp = render_one(ctx, world, key, DEFAULT_FIELDS);
    resp.status = 201;
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMailRequest {
    message: IncomingMessage,
    #[serde(default = "yes")]
    save_to_sent_items: bool,
}

fn yes() -> bool {
    true
}

/// `POST /users/{u}/sendMail`: the sent copy in the sender's sentitems, a received copy in the
/// inbox of every recipient with a simulated mailbox (in any tenant), all under one
/// internetMessageId; mail for addresses outside the tenant is logged.
fn send_mail(ctx: &Ctx, world: &mut World, t: usize, u: usize) -> GraphResult {
    let req: SendMailRequest = ctx.req.json()?;
    if req.message.to_recipients.is_empty()
        && req.message.cc_recipients.is_empty()
        && req.message.bcc_recipients.is_empty()
    {
        return Err(GraphError::bad_request(
            "At least one recipient is required, but none were found.",
        ));
    }
    let content = build_content(world, t, u, req.message)?;
    let log = super::drafts::SentMail {
        tenant: world.tenants[t].id.clone(),
        from: world.tenants[t].users[u].mail.clone(),
        to: content
            .to
            .iter()
            .chain(&content.cc)
            .chain(&content.bcc)
            .map(|r| r.address.clone())
            .collect(),
        subject: content.subject.clone(),
        internet_message_id: content.internet_message_id.clone(),
        via: "sendMail".into(),
        attachments: content
            .attachments
            .iter()
            .map(|a| (a.name.clone(), a.size()))
            .collect(),
    };
    deliver_everywhere(world, Some((t, u)), content, req.save_to_sent_items, None)
        .map_err(GraphError::bad_request)?;
    world.sent_mail.push(log);
    Ok(SimResponse::empty(202))
}

/// Finds the mailbox an address (or object id) belongs to, in any simulated tenant.
pub fn mailbox_of(world: &World, address: &str) -> Option<(usize, usize)> {
    world
        .tenants
        .iter()
        .enumerate()
        .find_map(|(t, tenant)| tenant.user_by_key(address).map(|u| (t, u)))
}

/// Delivers a message: a copy in the sender's sentitems (when `sender` is a simulated mailbox
/// and `save_sent`), a copy for every recipient who is a mailbox of any simulated tenant (mail
/// between tenants arrives as it would over the internet), and the outbound log for addresses
/// outside the sender's tenant. Each recipient's copy lands in `folder` (an id, well-known name
/// or path, as an inbox rule files it) or in the inbox. Nothing changes when a recipient has no
/// such folder. Returns (tenant, user, key) of every copy, the sender's first.
pub fn deliver_everywhere(
    world: &mut World,
    sender: Option<(usize, usize)>,
    content: MessageContent,
    save_sent: bool,
    folder: Option<&str>,
) -> Result<Vec<(usize, usize, u64)>, String> {
    let mut recipients = Vec::new();
    let mut external = Vec::new();
    for r in content.to.iter().chain(&content.cc).chain(&content.bcc) {
        match mailbox_of(world, &r.address) {
            Some(box_) => {
                if !recipients.iter().any(|(b, _)| *b == box_) {
                    let (t, u) = box_;
                    let user = &world.tenants[t].users[u];
                    let f = match folder {
                        None => user
                            .folder_index("inbox")
                            .expect("every mailbox has an inbox"),
                        Some(name) => user
                            .resolve_folder(name)
                            .ok_or_else(|| format!("{} has no folder '{name}'", user.upn))?,
                    };
                    recipients.push((box_, f));
                }
                if sender.is_some_and(|(st, _)| st != box_.0) {
                    external.push(r.address.clone());
                }
            }
            None => external.push(r.address.clone()),
        }
    }
    let mut copies = Vec::new();
    if let Some((t, s)) = sender.filter(|_| save_sent) {
        let sent = world.tenants[t].users[s]
            .folder_index("sentitems")
            .expect("every mailbox has sentitems");
        let mut c = content.clone();
        c.is_read = true;
        copies.push((t, s, world.add_message(t, s, sent, c, true)));
    }
    for ((t, u), f) in recipients {
        let mut c = content.clone();
        c.is_read = false;
        c.bcc.clear();
        copies.push((t, u, world.add_message(t, u, f, c, true)));
    }
    if let (Some((t, s)), false) = (sender, external.is_empty()) {
        let from = world.tenants[t].users[s].mail.clone();
        world.outbound_mail.push(OutboundMail {
            tenant: world.tenants[t].id.clone(),
            from,
            to: external,
            subject: content.subject.clone(),
            internet_message_id: content.internet_message_id.clone(),
        });
    }
    Ok(copies)
}

/// An attachment's `contentBytes` (base64) as bytes, or Graph's 400 naming the attachment:
/// shared by sendMail's inline attachments and a draft's added ones.
pub(crate) fn decode_content_bytes(name: &str, base64: String) -> Result<Vec<u8>, GraphError> {
    STANDARD.decode(base64).map_err(|_| {
        GraphError::bad_request(format!(
            "Attachment '{name}' has contentBytes that are not base64."
        ))
    })
}
