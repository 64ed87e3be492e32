//! "Sign in with Microsoft" for a delegated tenant from the console (issue 16, A2): the
//! authorization code flow with PKCE that `m365sync tenant authorize` runs on a loopback
//! listener, with the admin service's own `GET /oauth/callback` receiving the redirect.
//!
//! `POST /api/orgs/{org}/tenants/{t}/authorize` (the service admin or the org's admin) starts
//! it: the state and the PKCE verifier stay in this process ([`SignIns`], 10 minutes, one use),
//! bound to the org and tenant and to the browser that asked, through a cookie
//! (`m365sync_oauth`, a random nonce, `HttpOnly`, `SameSite=Lax` so it comes back on the
//! identity platform's top-level redirect, `Path=/oauth/callback`); it answers the authorize
//! address. The callback is open (the identity platform's redirect carries no token) but
//! checks the state (known, not used, not expired) and the nonce, exchanges the code
//! ([`m365sync_graph::authorize::exchange_web_code`], the code the CLI runs), stores the refresh
//! token sealed ([`crate::credentials::store_refresh_token`], as `tenant authorize` does) and
//! sends the browser back to the setup assistant. A refusal is a plain-text page in words. No
//! token, code or verifier is logged or answered.
//!
//! The redirect URI is `{public_url}/oauth/callback`: `public_url` (`M365SYNC_PUBLIC_URL`) when
//! set, else `http://` and the admin listener's bound address. The app registration must list
//! it (Entra ignores the port of a loopback redirect URI; the simulator does the same).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;

use super::api::Answer;
use super::api_crm::{answer, bad, Handled};
use super::extract::{OrgScope, Q};
use super::Shared;
use crate::credentials::{app_credentials, store_refresh_token};
use m365sync_graph::authorize::{exchange_web_code, start_web};
use m365sync_store::tenants::AuthMode;

/// How long a started sign-in waits for its callback.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(600);
/// The most sign-ins waiting at once in one process (older expired ones are dropped first).
const MAX_PENDING: usize = 256;
/// The cookie binding a sign-in to the browser that started it.
const COOKIE: &str = "m365sync_oauth";
/// The callback's path; the redirect URI is the public URL and this.
pub const CALLBACK: &str = "/oauth/callback";

/// A started sign-in, until its callback. `Debug` is not derived: it holds the verifier.
struct Pending {
    org: String,
    tenant: String,
    tenant_id: i64,
    /// The nonce of the browser's cookie.
    browser: String,
    verifier: String,
    redirect_uri: String,
    expires: Instant,
}

/// The sign-ins this process started, by state.
#[derive(Default)]
pub(crate) struct SignIns(Mutex<HashMap<String, Pending>>);

impl SignIns {
    fn insert(&self, state: String, p: Pending) -> Result<(), String> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, p| p.expires > now);
        if map.len() >= MAX_PENDING {
            return Err(format!(
                "{MAX_PENDING} sign-ins are waiting for Microsoft's answer already; try again in a few minutes"
            ));
        }
        map.insert(state, p);
        Ok(())
    }

    /// Takes the sign-in of `state` out (one use: a replayed answer finds nothing).
    fn take(&self, state: &str) -> Option<Pending> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
    }
}

/// The redirect URI this process's callback answers on.
pub(crate) fn redirect_uri(shared: &Shared) -> Option<String> {
    shared
        .public_url
        .as_deref()
        .map(|base| format!("{}{CALLBACK}", base.trim_end_matches('/')))
}

/// Starts a sign-in for a delegated tenant: its authorize address, and the cookie binding it
/// to this browser.
async fn start(
    shared: &Shared,
    org: &str,
    tenant: &str,
    q: &HashMap<String, String>,
    secure: bool,
) -> Result<(Handled, String), super::access::AccessError> {
    let t = shared.env.store.tenant(org, tenant).await?;
    if t.auth_mode != AuthMode::Delegated {
        return Err(bad(format!(
            "tenant {org}/{tenant} is app-only (client credentials) and needs no sign-in; test its connectivity instead"
        )));
    }
    let Some(redirect) = redirect_uri(shared) else {
        return Err(bad(
            "this process has no admin address to be called back on; set public_url (M365SYNC_PUBLIC_URL)",
        ));
    };
    let app = app_credentials(&shared.env.store, &t).await?;
    let hint = q
        .get("login_hint")
        .map(String::as_str)
        .filter(|h| !h.is_empty());
    let web = start_web(&app, &redirect, hint).map_err(|e| bad(e.to_string()))?;
    let browser: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    shared
        .sign_ins
        .insert(
            web.state.clone(),
            Pending {
                org: org.to_string(),
                tenant: t.name.clone(),
                tenant_id: t.id,
                browser: browser.clone(),
                verifier: web.verifier,
                redirect_uri: redirect.clone(),
                expires: Instant::now() + SIGN_IN_TTL,
            },
        )
        .map_err(bad)?;
    tracing::info!(
        org,
        tenant,
        "console: a Microsoft sign-in started for a delegated tenant"
    );
    let cookie = format!(
        "{COOKIE}={browser}; HttpOnly; SameSite=Lax; Path={CALLBACK}; Max-Age={}{}",
        SIGN_IN_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    Ok((
        Ok((
            StatusCode::OK,
            json!({
                "url": web.url,
                "redirect_uri": redirect,
                "expires_in_secs": SIGN_IN_TTL.as_secs(),
            }),
        )),
        cookie,
    ))
}

/// `POST /api/orgs/{org}/tenants/{tenant}/authorize[?login_hint=UPN]`: [`start`].
pub(super) async fn start_route(
    State(shared): State<Arc<Shared>>,
    scope: OrgScope,
    Path((_, tenant)): Path<(String, String)>,
    Q(q): Q,
    headers: HeaderMap,
) -> Answer {
    let secure = shared.opts.console_secure_cookie || super::console::behind_tls(&headers);
    match start(&shared, &scope.org, &tenant, &q, secure).await {
        Ok((handled, cookie)) => {
            let mut a = answer(handled);
            a.headers_mut()
                .insert("set-cookie", cookie.parse().expect("a hex cookie"));
            a
        }
        Err(e) => answer(Err(e)),
    }
}

/// A refusal page: plain text (nothing in it is markup, whatever the query carried).
fn words(status: StatusCode, text: String) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(text)))
        .expect("static response parts")
}

/// The browser's sign-in nonce, if it sent one.
fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        })
}

const START_AGAIN: &str =
    "Start again with \"Sign in with Microsoft\" in the console's setup assistant.";

/// `GET /oauth/callback?code=..&state=..` (or `error=..`): the identity platform's redirect.
pub(super) async fn callback(
    State(shared): State<Arc<Shared>>,
    Q(q): Q,
    headers: HeaderMap,
) -> Answer {
    let Some(state) = q.get("state").filter(|s| !s.is_empty()) else {
        return words(
            StatusCode::BAD_REQUEST,
            format!("This is not a sign-in answer: it carries no state. {START_AGAIN}"),
        );
    };
    let Some(p) = shared.sign_ins.take(state) else {
        tracing::info!("console: a Microsoft sign-in answer with an unknown state was refused");
        return words(
            StatusCode::BAD_REQUEST,
            format!("This sign-in answer is not valid here: its state is unknown to this service, already used, or from a sign-in started by another process. {START_AGAIN}"),
        );
    };
    let back = format!(
        "/#/setup/{}/{}",
        utf8_percent_encode(&p.org, NON_ALPHANUMERIC),
        utf8_percent_encode(&p.tenant, NON_ALPHANUMERIC)
    );
    if p.expires <= Instant::now() {
        return words(
            StatusCode::BAD_REQUEST,
            format!(
                "This sign-in answer came after {} minutes and has expired. {START_AGAIN} ({back})",
                SIGN_IN_TTL.as_secs() / 60
            ),
        );
    }
    if browser_cookie(&headers).as_deref() != Some(p.browser.as_str()) {
        tracing::info!(org = %p.org, tenant = %p.tenant, "console: a Microsoft sign-in answer from another browser was refused");
        return words(
            StatusCode::BAD_REQUEST,
            format!("This sign-in answer reached another browser than the one that started the sign-in. {START_AGAIN} ({back})"),
        );
    }
    if let Some(error) = q.get("error") {
        let description = q.get("error_description").cloned().unwrap_or_default();
        return words(
            StatusCode::BAD_REQUEST,
            format!(
                "Microsoft refused the sign-in for tenant {}/{}: {error}: {description}. Check that the app registration lists the redirect URI {} and that the account may consent. {START_AGAIN} ({back})",
                p.org, p.tenant, p.redirect_uri
            ),
        );
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return words(
            StatusCode::BAD_REQUEST,
            format!("This sign-in answer carries no code. {START_AGAIN} ({back})"),
        );
    };
    let store = &shared.env.store;
    let result = async {
        let t = store
            .tenant(&p.org, &p.tenant)
            .await
            .map_err(|e| e.to_string())?;
        if t.id != p.tenant_id {
            return Err(format!(
                "tenant {}/{} was declared again meanwhile",
                p.org, p.tenant
            ));
        }
        let app = app_credentials(store, &t)
            .await
            .map_err(|e| e.to_string())?;
        let done = exchange_web_code(
            &app,
            &shared.env.http,
            &p.redirect_uri,
            &p.verifier,
            code.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        store_refresh_token(store, t.id, &done.refresh_token)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(()) => {
            tracing::info!(org = %p.org, tenant = %p.tenant, "console: tenant authorized by a Microsoft sign-in; refresh token stored sealed");
            let mut a = Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header("location", format!("/?oauth=authorized{}", &back[1..]))
                .header("cache-control", "no-store")
                .body(Full::new(Bytes::new()))
                .expect("static response parts");
            a.headers_mut().insert(
                "set-cookie",
                format!("{COOKIE}=; HttpOnly; SameSite=Lax; Path={CALLBACK}; Max-Age=0")
                    .parse()
                    .expect("a static cookie"),
            );
            a
        }
        Err(why) => {
            tracing::warn!(org = %p.org, tenant = %p.tenant, "console: a Microsoft sign-in's code was not exchanged: {why}");
            words(
                StatusCode::BAD_GATEWAY,
                format!("The sign-in came back, but its code was not exchanged for a token: {why}. {START_AGAIN} ({back})"),
            )
        }
    }
}
