//! A decoded HTTP request and the answer to it, independent of the HTTP server.
//!
//! Handlers see paths already split and percent-decoded (`alice%40firm.com` arrives as
//! `alice@firm.com`) and query names decoded too (`%24top` is `$top`), because real clients
//! send both forms. `$batch` builds these same values from its JSON sub-requests.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use percent_encoding::percent_decode_str;
use serde::Serialize;

/// A request as handlers see it.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// The HTTP method.
    pub method: Method,
    /// Path segments, percent-decoded.
    pub segments: Vec<String>,
    /// Query pairs, names and values percent-decoded (`+` is a space).
    pub query: Vec<(String, String)>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body, possibly empty.
    pub body: Bytes,
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn decode_query_part(s: &str) -> String {
    decode(&s.replace('+', " "))
}

impl SimRequest {
    /// Builds a request from a path-and-query string such as `/v1.0/users?$top=5`.
    pub fn new(method: Method, path_and_query: &str, headers: HeaderMap, body: Bytes) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        SimRequest {
            method,
            segments: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(decode)
                .collect(),
            query: parse_query(query),
            headers,
            body,
        }
    }

    /// A query parameter by name. OData names match with or without their `$` and in any case.
    pub fn query(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The preferences of every `Prefer` header, which may be comma-separated lists.
    pub fn prefer(&self) -> Prefer {
        let mut p = Prefer::default();
        for value in self.headers.get_all("prefer") {
            let Ok(text) = value.to_str() else { continue };
            for item in split_outside_quotes(text) {
                let (name, val) = item.split_once('=').unwrap_or((item, ""));
                let name = name.trim().to_ascii_lowercase();
                let val = val.trim().trim_matches('"').to_string();
                match name.as_str() {
                    "odata.maxpagesize" => p.max_page_size = val.parse().ok(),
                    "idtype" => p.immutable_ids = val.eq_ignore_ascii_case("ImmutableId"),
                    "outlook.timezone" => p.time_zone = Some(val),
                    "outlook.body-content-type" => p.text_body = val.eq_ignore_ascii_case("text"),
                    _ => {}
                }
            }
        }
        p
    }

    /// The body parsed as JSON, or a Graph-shaped 400.
    ///
    /// Property names are matched case-insensitively, as Graph matches them: every name is
    /// first rewritten to its canonical camelCase spelling ([`canonical_keys`]), so
    /// `{"DestinationId":..}` (what msgraph-sdk for Python sends) reads as
    /// `{"destinationId":..}`. Every Graph body the simulator reads comes through here.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, GraphError> {
        let invalid = |e: serde_json::Error| {
            GraphError::new(
                400,
                "BadRequest",
                format!("Invalid JSON in the request body: {e}"),
            )
        };
        let value: serde_json::Value = serde_json::from_slice(&self.body).map_err(invalid)?;
        serde_json::from_value(canonical_keys(value)).map_err(invalid)
    }
}

/// Every property name the simulator reads from a Graph request body, in Graph's spelling.
///
/// Graph matches names in any case; handlers match exact names. [`canonical_keys`] bridges
/// the two with this list, so a name missing here is still read when a client sends it in
/// camelCase or PascalCase (the first letter is lowered), but not in other spellings.
pub const BODY_PROPERTIES: &[&str] = &[
    // Messages, sendMail, move and copy.
    "address",
    "attachments",
    "bccRecipients",
    "body",
    "categories",
    "ccRecipients",
    "comment",
    "content",
    "contentBytes",
    "contentId",
    "contentType",
    "conversationId",
    "destinationId",
    "emailAddress",
    "flag",
    "flagStatus",
    "from",
    "importance",
    "inferenceClassification",
    "internetMessageHeaders",
    "internetMessageId",
    "isDeliveryReceiptRequested",
    "isInline",
    "isRead",
    "isReadReceiptRequested",
    "message",
    "name",
    "replyTo",
    "saveToSentItems",
    "sender",
    "subject",
    "toRecipients",
    "value",
    // Mail folders.
    "displayName",
    "isHidden",
    // `$batch`.
    "dependsOn",
    "headers",
    "id",
    "method",
    "requests",
    "url",
    // Subscriptions.
    "changeType",
    "clientState",
    "expirationDateTime",
    "includeResourceData",
    "latestSupportedTlsVersion",
    "lifecycleNotificationUrl",
    "notificationUrl",
    "resource",
    // Events.
    "allowedOnlineMeetingProviders",
    "attendees",
    "dateTime",
    "dayOfMonth",
    "daysOfWeek",
    "end",
    "endDate",
    "event",
    "firstDayOfWeek",
    "index",
    "interval",
    "isAllDay",
    "isCancelled",
    "isDraft",
    "isOnlineMeeting",
    "isOrganizer",
    "isReminderOn",
    "joinUrl",
    "location",
    "locationEmailAddress",
    "locationType",
    "locationUri",
    "locations",
    "month",
    "numberOfOccurrences",
    "onlineMeeting",
    "onlineMeetingProvider",
    "organizer",
    "pattern",
    "range",
    "recurrence",
    "recurrenceTimeZone",
    "reminderMinutesBeforeStart",
    "response",
    "sensitivity",
    "showAs",
    "start",
    "startDate",
    "status",
    "time",
    "timeZone",
    "transactionId",
    "type",
    "uniqueId",
    "uniqueIdType",
];

/// Rewrites every property name of a JSON body to Graph's spelling: a name in
/// [`BODY_PROPERTIES`] in any case becomes that entry; any other name gets its first letter
/// lowered (PascalCase to camelCase); annotations (`@odata.type`) stay as they are.
pub fn canonical_keys(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    static BY_LOWERCASE: std::sync::OnceLock<std::collections::HashMap<String, &'static str>> =
        std::sync::OnceLock::new();
    let names = BY_LOWERCASE.get_or_init(|| {
        BODY_PROPERTIES
            .iter()
            .map(|n| (n.to_ascii_lowercase(), *n))
            .collect()
    });
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let key = if key.starts_with('@') {
                        key
                    } else if let Some(name) = names.get(&key.to_ascii_lowercase()) {
                        name.to_string()
                    } else {
                        let mut chars = key.chars();
                        match chars.next() {
                            Some(first) => first.to_lowercase().chain(chars).collect(),
                            None => key,
                        }
                    };
                    (key, canonical_keys(v))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(canonical_keys).collect()),
        other => other,
    }
}

/// Splits `a=1, b="x, y"` on commas that are not inside quotes.
fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' | ';' if !quoted => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.retain(|s| !s.is_empty());
    parts
}

/// Parses a query string into decoded pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query_part(k), decode_query_part(v))
        })
        .collect()
}

/// The `Prefer` header preferences Graph honours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prefer {
    /// `odata.maxpagesize`: the page size the client asks for.
    pub max_page_size: Option<usize>,
    /// `IdType="ImmutableId"`: send ImmutableIds instead of default ids.
    pub immutable_ids: bool,
    /// `outlook.timezone`: the zone event times are written in.
    pub time_zone: Option<String>,
    /// `outlook.body-content-type="text"`: send bodies as plain text.
    pub text_body: bool,
}

/// An answer to a request.
#[derive(Debug, Clone)]
pub struct SimResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The response body, possibly empty.
    pub body: Bytes,
    /// Drop the connection instead of answering (fault injection).
    pub reset: bool,
}

/// The content type Graph uses for JSON.
pub const GRAPH_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

impl SimResponse {
    /// A JSON answer with Graph's content type.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        let body = serde_json::to_vec(value).expect("responses serialise");
        Self::raw_json(status, body)
    }

    /// A JSON answer from bytes already serialised.
    pub fn raw_json(status: u16, body: Vec<u8>) -> Self {
        SimResponse {
            status,
            headers: vec![(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static(GRAPH_JSON),
            )],
            body: Bytes::from(body),
            reset: false,
        }
    }

    /// An answer with no body.
    pub fn empty(status: u16) -> Self {
        SimResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            reset: false,
        }
    }

    /// An answer with a body of the given content type.
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        let ct = HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        SimResponse {
            status,
            headers: vec![(hyper::header::CONTENT_TYPE, ct)],
            body: Bytes::from(body),
            reset: false,
        }
    }

    /// Adds a header (values that are not valid header text are skipped).
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// A header's value, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }
}

/// A Graph error: `{"error":{"code","message","innerError":{...}}}` with a status.
#[derive(Debug, Clone)]
pub struct GraphError {
    /// The HTTP status code.
    pub status: u16,
    /// Graph's error code, such as `ErrorItemNotFound`.
    pub code: String,
    /// The human-readable message.
    pub message: String,
    /// Extra headers to send with the error, such as `Retry-After`.
    pub headers: Vec<(&'static str, String)>,
}

impl GraphError {
    /// An error with Graph's code and message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the error answer (`Retry-After`, `Location`).
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The same error with another Graph error code.
    pub fn with_code(mut self, code: &str) -> Self {
        self.code = code.to_string();
        self
    }

    /// 404 for a resource that does not exist.
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    /// 400 for a request Graph would refuse.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// The answer, with `innerError` naming the request ids as Graph does.
    pub fn into_response(self, request_id: &str, client_request_id: Option<&str>) -> SimResponse {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut inner = serde_json::json!({"date": now, "request-id": request_id});
        if let Some(c) = client_request_id {
            inner["client-request-id"] = c.into();
        }
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message, "innerError": inner}});
        let mut resp = SimResponse::json(self.status, &body);
        for (name, value) in &self.headers {
            resp = resp.with_header(name, value);
        }
        resp
    }
}

/// What a Graph handler returns.
pub type GraphResult = Result<SimResponse, GraphError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_prefer_header_is_parsed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "prefer",
            HeaderValue::from_static(r#"odata.maxpagesize=100, IdType="ImmutableId""#),
        );
        headers.append(
            "prefer",
            HeaderValue::from_static(r#"outlook.timezone="Pacific Standard Time""#),
        );
        let req = SimRequest::new(Method::GET, "/", headers, Bytes::new());
        let p = req.prefer();
        assert_eq!(p.max_page_size, Some(100));
        assert!(p.immutable_ids);
        assert_eq!(p.time_zone.as_deref(), Some("Pacific Standard Time"));
    }

    #[test]
    fn body_property_names_match_in_any_case() {
        let req = SimRequest::new(
            Method::POST,
            "/v1.0/me/sendMail",
            HeaderMap::new(),
            Bytes::from_static(
                br##"{"Message":{"SUBJECT":"x","ToRecipients":[{"EmailAddress":{"Address":"a@b"}}],"@odata.type":"#m"},"SaveToSentItems":false,"UnknownThing":1}"##,
            ),
        );
        let v: serde_json::Value = req.json().unwrap();
        assert_eq!(
            v,
            serde_json::json!({"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": "a@b"}}], "@odata.type": "#m"}, "saveToSentItems": false, "unknownThing": 1})
        );
    }

    #[test]
    fn path_segments_and_query_names_are_decoded() {
        let req = SimRequest::new(
            Method::GET,
            "/v1.0/users/alice%40firm.com/mailFolders/Inbox/messages?%24top=50&$select=id,subject",
            HeaderMap::new(),
            Bytes::new(),
        );
        assert_eq!(req.segments[2], "alice@firm.com");
        assert_eq!(req.query("$top"), Some("50"));
        assert_eq!(req.query("select"), Some("id,subject"));
    }
}
