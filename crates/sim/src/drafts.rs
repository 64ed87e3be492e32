//! Sending through a draft, as careful clients do: a draft created with its own
//! `internetMessageId`, file attachments added to it (small ones in one request, large ones
//! through an upload session of byte-range PUTs), then `POST .../messages/{id}/send`.
//!
//! Graph's rules as the simulator enforces them:
//! - `POST .../messages/{id}/attachments` takes a `fileAttachment` of at most 3 MB
//!   ([`INLINE_ATTACHMENT_MAX`]); larger ones answer 413 and must use an upload session.
//! - `POST .../attachments/createUploadSession` (`{"AttachmentItem": {"attachmentType": "file",
//!   "name", "size", "contentType"}}`) answers 201 with an `uploadUrl` for at most 150 MB
//!   ([`UPLOAD_SESSION_MAX`]). The URL carries its own authorization: a PUT that also sends an
//!   `Authorization` header is refused with 401, as Outlook's upload endpoint does.
//! - Each PUT carries `Content-Range: bytes FIRST-LAST/TOTAL`; the ranges come in order, each at
//!   most 4 MiB ([`CHUNK_MAX`]) and a multiple of 320 KiB ([`CHUNK_UNIT`]) except the last. A
//!   chunk answers 200 with `nextExpectedRanges`; the last answers 201 with a `Location` and the
//!   attachment is on the message. A range that does not start where the session stands is 416.
//! - `send` on a draft moves it to Sent Items (its immutable id stays, `isDraft` becomes false)
//!   and delivers a copy to every recipient, as sendMail does; on a message that is no longer a
//!   draft it answers 400 `ErrorInvalidOperation`, so a second send can never deliver twice.
//!
//! Every send (sendMail or a draft's send) is written to the world's sent log
//! (`GET /_sim/sent-mail`), the ground truth a test counts deliveries by.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::graph::Ctx;
use super::ids::Rng;
use super::mail::{graph_time, item_not_found};
use super::model::{Attachment, AttachmentKind, Content, World};
use super::request::{GraphError, GraphResult, SimRequest, SimResponse};
use super::Sim;

/// The largest file attachment one `POST .../attachments` takes (3 MB).
pub const INLINE_ATTACHMENT_MAX: usize = 3 * 1024 * 1024;
/// The largest attachment an upload session takes (150 MB).
pub const UPLOAD_SESSION_MAX: u64 = 150 * 1024 * 1024;
/// The largest byte range one PUT of an upload session may carry (4 MiB).
pub const CHUNK_MAX: usize = 4 * 1024 * 1024;
/// Every byte range but the last is a multiple of this (320 KiB).
pub const CHUNK_UNIT: usize = 320 * 1024;

/// An attachment being uploaded in byte ranges. Sessions are not saved with the world: a
/// restarted simulator has forgotten them, as an expired session is forgotten.
#[derive(Debug, Clone)]
pub struct UploadSession {
    /// The message's tenant index.
    pub tenant: usize,
    /// The message's mailbox index.
    pub user: usize,
    /// The message's key.
    pub key: u64,
    /// The file name.
    pub name: String,
    /// The content type given at creation.
    pub content_type: String,
    /// The size promised at creation.
    pub size: u64,
    /// The bytes received so far, in order.
    pub received: Vec<u8>,
    /// When the session lapses.
    pub expires: chrono::DateTime<Utc>,
}

/// One message a mailbox sent through Graph: the simulator's ground truth of deliveries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentMail {
    /// The sending tenant's id.
    pub tenant: String,
    /// The sender's address.
    pub from: String,
    /// Every recipient (to, cc, bcc).
    pub to: Vec<String>,
    /// The subject line.
    pub subject: String,
    /// The `Message-ID` it went out with.
    pub internet_message_id: String,
    /// `sendMail` or `draft`.
    pub via: String,
    /// The attachments' names and sizes.
    pub attachments: Vec<(String, u64)>,
}

fn too_large(message: impl Into<String>) -> GraphError {
    GraphError::new(413, "ErrorRequestEntityTooLarge", message)
}

/// `POST .../messages/{id}/attachments`: one file attachment in the request.
pub fn add_attachment(ctx: &Ctx, world: &mut World, key: u64) -> GraphResult {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Incoming {
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
    let a: Incoming = ctx.req.json()?;
    if !a.odata_type.ends_with("fileAttachment") {
        return Err(GraphError::bad_request(format!(
            "The simulator adds file attachments only, got '{}'.",
            a.odata_type
        )));
    }
    let bytes = crate::mail::decode_content_bytes(&a.name, a.content_bytes.unwrap_or_default())?;
    if bytes.len() > INLINE_ATTACHMENT_MAX {
        return Err(too_large(format!(
            "The attachment '{}' is {} bytes; attachments over 3 MB must be uploaded through an upload session (createUploadSession).",
            a.name,
            bytes.len()
        )));
    }
    let attachment = attach(
        world,
        key,
        a.name,
        a.content_type
            .unwrap_or_else(|| "application/octet-stream".into()),
        bytes,
        a.is_inline,
        a.content_id,
    )?;
    let limit = ctx.sim.protocol().inline_attachment_limit;
    let mut v = serde_json::json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": attachment.id,
        "name": attachment.name,
        "size": attachment.size(),
        "lastModifiedDateTime": graph_time(&attachment.last_modified),
    });
    if let AttachmentKind::File {
        content_type,
        content,
        ..
    } = &attachment.kind
    {
        v["contentType"] = content_type.as_str().into();
        if content.len() <= limit {
            v["contentBytes"] = STANDARD.encode(content.bytes()).into();
        }
    }
    Ok(SimResponse::json(201, &v))
}

/// Adds a file attachment to a message and answers it.
fn attach(
    world: &mut World,
    key: u64,
    name: String,
    content_type: String,
    bytes: Vec<u8>,
    is_inline: bool,
    content_id: Option<String>,
) -> Result<Attachment, GraphError> {
    let seq = world.bump();
    let now = Utc::now();
    let attachment = Attachment {
        id: format!("AAMkAtt{seq:x}_d"),
        name,
        kind: AttachmentKind::File {
            content_type,
            content: Content::Bytes(Arc::from(bytes)),
            is_inline,
            content_id,
        },
        last_modified: now,
    };
    if !world.messages.contains_key(&key) {
        return Err(item_not_found());
    }
    let a = attachment.clone();
    world.update_message(key, move |c| c.attachments.push(a));
    Ok(attachment)
}

/// `POST .../messages/{id}/attachments/createUploadSession`.
pub fn create_upload_session(
    ctx: &Ctx,
    world: &mut World,
    t: usize,
    u: usize,
    key: u64,
) -> GraphResult {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Item {
        #[serde(default)]
        attachment_type: Option<String>,
        name: String,
        size: u64,
        #[serde(default)]
        content_type: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        attachment_item: Item,
    }
    let body: Body = ctx.req.json()?;
    let item = body.attachment_item;
    if item
        .attachment_type
        .as_deref()
        .is_some_and(|k| !k.eq_ignore_ascii_case("file"))
    {
        return Err(GraphError::bad_request(
            "Only attachmentType 'file' can be uploaded.",
        ));
    }
    if item.size == 0 {
        return Err(GraphError::bad_request(
            "The attachment size must be greater than zero.",
        ));
    }
    if item.size > UPLOAD_SESSION_MAX {
        return Err(too_large(format!(
            "The attachment '{}' is {} bytes; an upload session takes at most 150 MB.",
            item.name, item.size
        )));
    }
    let seq = world.bump();
    let id = Rng::new(seq ^ (Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64)).guid();
    let expires = Utc::now() + Duration::hours(6);
    world.upload_sessions.insert(
        id.clone(),
        UploadSession {
            tenant: t,
            user: u,
            key,
            name: item.name,
            content_type: item
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: item.size,
            received: Vec::new(),
            expires,
        },
    );
    let url = format!("{}/upload/AttachmentSessions/{id}", ctx.sim.public_base());
    Ok(SimResponse::json(
        201,
        &serde_json::json!({
            "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", ctx.graph_base),
            "uploadUrl": url,
            "expirationDateTime": graph_time(&expires),
            "nextExpectedRanges": ["0-"],
        }),
    ))
}

fn upload_error(status: u16, code: &str, message: impl Into<String>) -> SimResponse {
    SimResponse::json(
        status,
        &serde_json::json!({"error": {"code": code, "message": message.into()}}),
    )
}

/// A PUT of one byte range to an upload session's URL (`/upload/AttachmentSessions/{id}`),
/// or a DELETE that cancels the session.
pub fn upload(sim: &Sim, req: &SimRequest, id: &str) -> SimResponse {
    if req.header("authorization").is_some() {
        return upload_error(
            401,
            "InvalidAuthenticationToken",
            "The upload URL carries its own authorization; do not send an Authorization header.",
        );
    }
    let mut world = sim.world();
    let now = Utc::now();
    world.upload_sessions.retain(|_, s| s.expires > now);
    if req.method == hyper::Method::DELETE {
        return match world.upload_sessions.remove(id) {
            Some(_) => SimResponse::empty(204),
            None => upload_error(404, "ErrorItemNotFound", "No such upload session."),
        };
    }
    if req.method != hyper::Method::PUT {
        return upload_error(405, "MethodNotAllowed", "Upload sessions take PUT.");
    }
    let Some(session) = world.upload_sessions.get(id).cloned() else {
        return upload_error(
            404,
            "ErrorItemNotFound",
            "The upload session does not exist or has expired.",
        );
    };
    let Some((first, last, total)) = req.header("content-range").and_then(parse_range) else {
        return upload_error(
            400,
            "InvalidContentRange",
            "A Content-Range header 'bytes FIRST-LAST/TOTAL' is required.",
        );
    };
    let len = req.body.len();
    if total != session.size {
        return upload_error(
            400,
            "InvalidContentRange",
            format!(
                "The range's total {total} is not the session's size {}.",
                session.size
            ),
        );
    }
    if first != session.received.len() as u64 {
        return upload_error(
            416,
            "InvalidRange",
            format!(
                "Expected the range starting at {}, got {first}.",
                session.received.len()
            ),
        );
    }
    if last < first || last - first + 1 != len as u64 || last >= total {
        return upload_error(
            400,
            "InvalidContentRange",
            format!("The range {first}-{last} does not match the {len} bytes sent."),
        );
    }
    let is_last = last + 1 == total;
    if len > CHUNK_MAX || (!is_last && !len.is_multiple_of(CHUNK_UNIT)) {
        return upload_error(
            400,
            "InvalidChunkSize",
            format!("A range is at most 4 MiB and, but for the last, a multiple of 320 KiB; got {len} bytes."),
        );
    }
    let session = world
        .upload_sessions
        .get_mut(id)
        .expect("the session was just read");
    session.received.extend_from_slice(&req.body);
    if !is_last {
        let next = session.received.len();
        let expires = session.expires;
        return SimResponse::json(
            200,
            &serde_json::json!({
                "expirationDateTime": graph_time(&expires),
                "nextExpectedRanges": [format!("{next}-")],
            }),
        );
    }
    let session = world
        .upload_sessions
        .remove(id)
        .expect("the session was just read");
    match attach(
        &mut world,
        session.key,
        session.name,
        session.content_type,
        session.received,
        false,
        None,
    ) {
        Ok(a) => {
            let user = &world.tenants[session.tenant].users[session.user];
            let location = format!(
                "{}/v1.0/users('{}')/messages/attachments('{}')",
                sim.public_base(),
                user.id,
                a.id
            );
            SimResponse::empty(201).with_header("location", &location)
        }
        Err(_) => upload_error(
            404,
            "ErrorItemNotFound",
            "The message of this upload session no longer exists.",
        ),
    }
}

/// `bytes FIRST-LAST/TOTAL`.
fn parse_range(h: &str) -> Option<(u64, u64, u64)> {
    let rest = h.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// `POST .../messages/{id}/send`: the draft goes to Sent Items and to its recipients.
pub fn send_draft(ctx: &Ctx, world: &mut World, t: usize, u: usize, key: u64) -> GraphResult {
    let m = world.messages.get(&key).ok_or_else(item_not_found)?;
    if !m.content.is_draft {
        return Err(GraphError::bad_request(
            "The message has already been sent; only a draft can be sent.",
        )
        .with_code("ErrorInvalidOperation"));
    }
    let c = &m.content;
    if c.to.is_empty() && c.cc.is_empty() && c.bcc.is_empty() {
        return Err(GraphError::bad_request(
            "At least one recipient is required, but none were found.",
        )
        .with_code("ErrorInvalidRecipients"));
    }
    ctx.require("Mail.Send")?;
    let now = Utc::now();
    world.update_message(key, |c| {
        c.is_draft = false;
        c.is_read = true;
        c.sent = now;
        c.received = now;
    });
    let sent = world.tenants[t].users[u]
        .folder_index("sentitems")
        .expect("every mailbox has sentitems");
    world.move_message(key, sent);
    let content = world.messages[&key].content.clone();
    let log = SentMail {
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
        via: "draft".into(),
        attachments: content
            .attachments
            .iter()
            .map(|a| (a.name.clone(), a.size()))
            .collect(),
    };
    super::mail::deliver_everywhere(world, Some((t, u)), content, false, None)
        .map_err(GraphError::bad_request)?;
    world.sent_mail.push(log);
    Ok(SimResponse::empty(202))
}
