//! The console (issue 16): the admin and user web pages, served by the admin listener.
//!
//! The pages are static files embedded in the binary (`crates/m365sync/console/`: one HTML
//! shell, one script, one style sheet; no build step), served at `/` and `/console/...` with a
//! strict Content-Security-Policy (no inline script, nothing from elsewhere). They hold no data:
//! their script calls the JSON API, so every page is scoped exactly as the API is.
//!
//! Sign-in: `POST /session` with an API token (JSON `{"token"}` or a form field `token`) checks
//! it as the API would and answers a cookie holding it (`HttpOnly; SameSite=Strict; Path=/`,
//! `Secure` behind TLS or with `console_secure_cookie`), so the script never holds the token; `GET /session` says who is signed
//! in; `POST /session/logout` clears the cookie. The API then accepts the cookie where no
//! `Authorization` header is sent ([`credential`]). Because a browser sends a cookie with any
//! request to its site, a cookie-signed request that changes something (any method but GET and
//! HEAD) must also carry the console's header `X-M365sync-Console: 1` (which a page of another
//! site cannot set without a CORS preflight this listener never grants) and, if the browser
//! sent an `Origin` or a `Referer`, one naming this host; otherwise 403. Bearer callers are
//! unaffected.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Method, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::access::{authenticate, AccessError, Actor};
use super::api::{access_error, error, respond, Answer};
use super::Shared;

/// The session cookie's name.
pub const COOKIE: &str = "m365sync_session";

/// The header the console's script sends with every request: a request signed by the cookie
/// that changes something must carry it (CSRF).
pub const CONSOLE_HEADER: &str = "x-m365sync-console";

/// What every page and asset is served with: scripts, styles, images and fetches from this
/// origin only, no inline script or style, no framing, no `<base>`, forms posting here only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The most a sign-in body may hold.
const MAX_SIGNIN_BODY: usize = 16 << 10;

/// One embedded file of the console.
struct Asset {
    /// Its path below `/console/`.
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes, embedded at build time.
    body: &'static str,
}

/// The HTML shell, served at `/`.
const INDEX: &str = include_str!("../../console/index.html");

/// The script and style sheet, served at `/console/NAME`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/app.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../console/style.css"),
    },
];

/// `GET /` (and `HEAD`): the console's HTML shell (open: it holds no data).
pub(super) async fn index(method: Method, headers: HeaderMap) -> Answer {
    page(INDEX, "text/html; charset=utf-8", &method, &headers)
}

/// `GET /console/{name}`: the script or the style sheet.
pub(super) async fn asset(method: Method, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => page(a.body, a.content_type, &method, &headers),
        None => error(
            StatusCode::NOT_FOUND,
            format!("the console has no file {name}"),
        ),
    }
}

/// `GET /session`: who is signed in (401 when nobody is).
pub(super) async fn session(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
) -> Answer {
    let token = match credential(&method, &headers) {
        Ok(t) => t,
        Err(refused) => return refused.answer(),
    };
    match authenticate(
        &shared.env.store,
        &shared.opts.admin_token,
        token.as_deref(),
    )
    .await
    {
        Ok(actor) => respond(StatusCode::OK, who(&actor)),
        Err(e) => access_error(e),
    }
}

/// `POST /session/logout` or `DELETE /session`: the cookie cleared.
pub(super) async fn sign_out(headers: HeaderMap) -> Answer {
    if let Err(refused) = same_origin(&headers) {
        return refused.answer();
    }
    let mut answer = respond(StatusCode::OK, json!({ "signed_out": true }));
    answer.headers_mut().insert(
        "set-cookie",
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
            .parse()
            .expect("static cookie"),
    );
    answer
}

/// Who an actor is, for the console's header: never a token, only the role and names.
fn who(actor: &Actor) -> Value {
    match actor {
        Actor::Admin => json!({ "role": "admin" }),
        Actor::OrgAdmin { org, .. } => json!({ "role": "org_admin", "org": org }),
        Actor::User {
            org, tenant, email, ..
        } => json!({ "role": "user", "org": org, "tenant": tenant, "user": email }),
    }
}

/// A page or asset with the console's security headers. Revalidated on every load (`no-cache`
/// with an ETag of its bytes): a new binary's pages are never mixed with an old script.
fn page(body: &'static str, content_type: &str, method: &Method, headers: &HeaderMap) -> Answer {
    let etag = format!("\"{:016x}\"", fnv1a(body.as_bytes()));
    let fresh = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let builder = Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .header("etag", &etag)
        .header("content-security-policy", CSP)
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "same-origin");
    let (status, bytes) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if method == Method::HEAD {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(body.as_bytes()))
    };
    builder
        .status(status)
        .body(Full::new(bytes))
        .expect("static response parts")
}

/// FNV-1a, 64 bits: an ETag needs to change with the bytes, not to resist anyone.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `POST /session`: checks the token as the API does, and on success sets the cookie. A JSON
/// caller (the console's script) gets JSON; a plain form post is sent back to `/` (with
/// `?signin=refused` when the token was not accepted, which the page words).
pub(super) async fn sign_in(State(shared): State<Arc<Shared>>, req: Request) -> Answer {
    if let Err(refused) = same_origin(req.headers()) {
        return refused.answer();
    }
    let secure = shared.opts.console_secure_cookie || behind_tls(req.headers());
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = {
        use http_body_util::BodyExt;
        match http_body_util::Limited::new(req.into_body(), MAX_SIGNIN_BODY)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the sign-in is over 16 KiB; send only the token",
                )
            }
        }
    };
    let token = if form {
        form_field(&body, "token")
    } else {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_string))
    };
    let token = token.map(|t| t.trim().to_string()).unwrap_or_default();
    let store = &shared.env.store;
    match authenticate(store, &shared.opts.admin_token, Some(&token)).await {
        Ok(actor) => {
            tracing::info!(who = %who(&actor), "console: signed in");
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{}",
                utf8_percent_encode(&token, NON_ALPHANUMERIC),
                if secure { "; Secure" } else { "" }
            );
            let mut answer = if form {
                redirect("/")
            } else {
                respond(StatusCode::OK, who(&actor))
            };
            answer.headers_mut().insert(
                "set-cookie",
                cookie.parse().expect("percent-encoded cookie"),
            );
            answer
        }
        Err(AccessError::Unauthenticated) => {
            tracing::info!("console: a sign-in with an unknown token was refused");
            if form {
                redirect("/?signin=refused")
            } else {
                error(
                    StatusCode::UNAUTHORIZED,
                    "this token is not valid: paste the service admin token (admin_token_file, \
                     in the sandbox sandbox/admin.token), an org admin token or a user token \
                     (`m365sync token create`); a revoked token no longer signs in",
                )
            }
        }
        Err(e) => access_error(e),
    }
}

fn redirect(to: &str) -> Answer {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("location", to)
        .body(Full::new(Bytes::new()))
        .expect("static response parts")
}

/// One field of a form-encoded body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    super::api::form_pairs(std::str::from_utf8(body).ok()?).remove(name)
}

/// Whether the browser reached this listener over https: through a TLS-terminating proxy
/// that says so (`X-Forwarded-Proto: https`), the listener itself speaking plain http. Then
/// the cookie is `Secure` and never sent over http (as it always is with
/// `console_secure_cookie`).
pub(super) fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A request refused as a possible forgery from another site (403), in words.
#[derive(Debug)]
pub struct Refused(String);

impl Refused {
    /// The 403 answer saying why.
    pub fn answer(self) -> Answer {
        error(StatusCode::FORBIDDEN, self.0)
    }
}

/// The token of a request to the API: the bearer token when an `Authorization` header is
/// sent, else the console's cookie, which for a method that changes something must come with
/// the console's header and from this host's pages (403 otherwise: a forged cross-site
/// request). `None` when neither is sent (the API then answers 401).
pub fn credential(method: &Method, headers: &HeaderMap) -> Result<Option<String>, Refused> {
    if let Some(auth) = headers.get("authorization") {
        return Ok(auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string));
    }
    let Some(token) = cookie(headers) else {
        return Ok(None);
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        let marked = headers
            .get(CONSOLE_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "1");
        if !marked {
            return Err(Refused(format!(
                    "a {} signed in by the console's cookie must come from the console (header \
                     X-M365sync-Console: 1); scripts and tools send 'Authorization: Bearer TOKEN' instead",
                method
            )));
        }
        same_origin(headers)?;
    }
    Ok(Some(token))
}

/// The session cookie's token, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty())
                .then(|| percent_decode_str(value).decode_utf8_lossy().into_owned())
        })
}

/// Refuses a request whose `Origin` (or, without one, `Referer`) names another host than the
/// one it was sent to. Neither sent: allowed (the console's header, or the cookie's
/// `SameSite=Strict`, already keeps other sites out).
fn same_origin(headers: &HeaderMap) -> Result<(), Refused> {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let from = headers
        .get("origin")
        .or_else(|| headers.get("referer"))
        .and_then(|v| v.to_str().ok());
    let Some(from) = from else {
        return Ok(());
    };
    let authority = from
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .unwrap_or("");
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Refused(format!(
            "this request came from a page of another site ({}), not from this console; it was refused",
            if authority.is_empty() { "no host" } else { authority }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_must_name_this_host() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&ok).is_ok());
        let referer = headers(&[
            ("host", "127.0.0.1:8080"),
            ("referer", "http://127.0.0.1:8080/#/review"),
        ]);
        assert!(same_origin(&referer).is_ok());
        let other = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(same_origin(&other).is_err());
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(same_origin(&null).is_err());
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
    }

    #[test]
    fn the_cookie_is_read_back_as_written() {
        let token = "a b;c=d%e";
        let value = utf8_percent_encode(token, NON_ALPHANUMERIC).to_string();
        let h = headers(&[("cookie", &format!("other=1; {COOKIE}={value}; x=y"))]);
        assert_eq!(cookie(&h).as_deref(), Some(token));
        assert_eq!(cookie(&headers(&[("cookie", "other=1")])), None);
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_field(b"a=1&token=abc%2Bd+e", "token").as_deref(),
            Some("abc+d e")
        );
        assert_eq!(form_field(b"a=1", "token"), None);
    }
}
