//! The delegated authorization (A2): the authorization code flow with PKCE through the `oauth2`
//! crate, received on a loopback listener (`http://127.0.0.1:{port}/callback`, the form RFC 8252
//! and Entra allow for tools that cannot know their port in advance). The admin opens the
//! printed address, signs in and consents; the identity platform redirects the browser to the
//! listener with a code, which is exchanged for tokens. Where the browser runs on another
//! machine than the listener, the address the browser ended on can be pasted instead.

use std::time::Duration;

use oauth2::url::Url;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

use super::auth::{AppCredentials, GRAPH_SCOPE, OFFLINE_ACCESS};
use super::error::AuthError;

/// The path the listener answers on; registered in the app as `http://127.0.0.1/callback`.
pub const CALLBACK_PATH: &str = "/callback";

/// Why an authorization did not produce a refresh token.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// No loopback port could be bound to receive the redirect.
    #[error("tenant {tenant}: cannot listen on the loopback interface for the redirect: {error}")]
    Listen {
        /// Our name for the tenant.
        tenant: String,
        /// The OS's error.
        error: std::io::Error,
    },
    /// Neither the browser's redirect nor a pasted address came within the wait.
    #[error("tenant {tenant}: no answer from the browser within {secs} s; run `m365sync tenant authorize` again and open the address it prints")]
    Timeout {
        /// Our name for the tenant.
        tenant: String,
        /// The wait, seconds.
        secs: u64,
    },
    /// The identity platform sent the browser back with an error instead of a code: the
    /// sign-in or the consent was refused, or the redirect URI is not registered.
    #[error("tenant {tenant}: the sign-in was refused: {error}: {description}; check the app's redirect URI (http://127.0.0.1{CALLBACK_PATH}) and that the admin may consent")]
    Denied {
        /// Our name for the tenant.
        tenant: String,
        /// The redirect's OAuth `error` (`access_denied`, ...).
        error: String,
        /// Its `error_description` (AADSTS code and text), empty when it had none.
        description: String,
    },
    /// The redirect's `state` is not this authorization's: an earlier attempt's answer, or a
    /// forged one, so its code is not used.
    #[error("tenant {tenant}: the answer belongs to another authorization (state mismatch); start again")]
    StateMismatch {
        /// Our name for the tenant.
        tenant: String,
    },
    /// The pasted line is not an address carrying `code=` (or `error=`), or the redirect came
    /// back without a code.
    #[error("tenant {tenant}: the pasted text is not the address the browser was sent to (it needs code= and state=)")]
    BadPaste {
        /// Our name for the tenant.
        tenant: String,
    },
    /// The code was exchanged, but without a refresh token: the app does not allow
    /// `offline_access`.
    #[error("tenant {tenant}: the identity platform gave no refresh token; the app must allow offline_access")]
    NoRefreshToken {
        /// Our name for the tenant.
        tenant: String,
    },
    /// The redirect URI to send the browser back to is not an absolute URL.
    #[error("tenant {tenant}: the redirect URI '{uri}' is not an absolute http(s) address")]
    BadRedirect {
        /// Our name for the tenant.
        tenant: String,
        /// The URI as given.
        uri: String,
    },
    /// The code exchange was refused: see the [`AuthError`].
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// The tokens an authorization produced. `Debug` hides them.
pub struct Authorized {
    /// The refresh token to store (sealed) for the tenant; its
    /// [`DelegatedCredentials`](crate::DelegatedCredentials) are built from it.
    pub refresh_token: String,
    /// The access token the exchange answered with (short-lived, unlike the refresh token).
    pub access_token: String,
    /// The delegated permissions granted, as the identity platform reports them.
    pub scope: Option<String>,
}

impl std::fmt::Debug for Authorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An authorization waiting for the browser: the listener is bound and the address built.
pub struct PendingAuthorization {
    app: AppCredentials,
    listener: TcpListener,
    redirect: RedirectUrl,
    url: Url,
    state: CsrfToken,
    verifier: PkceCodeVerifier,
}

impl PendingAuthorization {
    /// Binds `127.0.0.1:0` and builds the authorize address (PKCE S256, a random state,
    /// `offline_access` so a refresh token comes back, `login_hint` when given).
    pub async fn start(
        app: AppCredentials,
        login_hint: Option<&str>,
    ) -> Result<PendingAuthorization, AuthorizeError> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|error| AuthorizeError::Listen {
                    tenant: app.tenant_name.clone(),
                    error,
                })?;
        let port = listener
            .local_addr()
            .map_err(|error| AuthorizeError::Listen {
                tenant: app.tenant_name.clone(),
                error,
            })?
            .port();
        let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}{CALLBACK_PATH}"))
            .expect("a loopback URL parses");
        let (url, state, verifier) = authorize_url(&app, &redirect, login_hint)?;
        Ok(PendingAuthorization {
            app,
            listener,
            redirect,
            url,
            state,
            verifier,
        })
    }

    /// The address to open in a browser.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Where the browser will be sent back to.
    pub fn redirect_uri(&self) -> &str {
        self.redirect.as_str()
    }

    /// Waits for the browser's redirect (or a pasted copy of its address from `pasted`), then
    /// exchanges the code, trying the app's client secrets newest first.
    pub async fn finish(
        self,
        http: &reqwest::Client,
        mut pasted: Option<UnboundedReceiver<String>>,
        timeout: Duration,
    ) -> Result<Authorized, AuthorizeError> {
        let tenant = self.app.tenant_name.clone();
        let answer = tokio::time::timeout(timeout, async {
            loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        if let Some(q) = serve_callback(stream).await {
                            return Ok(q);
                        }
                    }
                    line = recv(&mut pasted) => match line {
                        Some(line) if line.trim().is_empty() => {}
                        Some(line) => return parse_pasted(&line).ok_or(AuthorizeError::BadPaste { tenant: tenant.clone() }),
                        None => pasted = None,
                    },
                }
            }
        })
        .await
        .map_err(|_| AuthorizeError::Timeout {
            tenant: tenant.clone(),
            secs: timeout.as_secs(),
        })??;
        if let Some(error) = answer.error {
            return Err(AuthorizeError::Denied {
                tenant,
                error,
                description: answer.error_description.unwrap_or_default(),
            });
        }
        if answer.state.as_deref() != Some(self.state.secret().as_str()) {
            return Err(AuthorizeError::StateMismatch { tenant });
        }
        let code = answer.code.ok_or(AuthorizeError::BadPaste {
            tenant: tenant.clone(),
        })?;
        self.exchange(http, code).await
    }

    async fn exchange(
        &self,
        http: &reqwest::Client,
        code: String,
    ) -> Result<Authorized, AuthorizeError> {
        exchange_code(
            &self.app,
            http,
            &self.redirect,
            self.verifier.secret(),
            code,
        )
        .await
    }
}

/// The authorize address for `app` with its redirect (PKCE S256, a random state,
/// `offline_access` so a refresh token comes back, `login_hint` when given), the state and the
/// PKCE verifier the code exchange needs.
fn authorize_url(
    app: &AppCredentials,
    redirect: &RedirectUrl,
    login_hint: Option<&str>,
) -> Result<(Url, CsrfToken, PkceCodeVerifier), AuthorizeError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    // The secret is not part of the address; any placeholder builds the client.
    let client = app.oauth_client("")?.set_redirect_uri(redirect.clone());
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new(GRAPH_SCOPE.into()))
        .add_scope(Scope::new(OFFLINE_ACCESS.into()))
        .set_pkce_challenge(challenge);
    if let Some(hint) = login_hint {
        request = request.add_extra_param("login_hint", hint.to_string());
    }
    let (url, state) = request.url();
    Ok((url, state, verifier))
}

/// An authorization whose redirect another server receives (the admin service's
/// `/oauth/callback`, for the console): the address to send the browser to, and the state and
/// PKCE verifier that server keeps until the redirect comes back. `Debug` hides the latter two.
pub struct WebAuthorization {
    /// The identity platform's authorize address.
    pub url: String,
    /// The `state` the redirect must carry back.
    pub state: String,
    /// The PKCE verifier for [`exchange_web_code`].
    pub verifier: String,
}

impl std::fmt::Debug for WebAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebAuthorization")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Starts an authorization that comes back to `redirect_uri` (which the app registration must
/// list): what the console's "Sign in with Microsoft" does where the CLI binds a loopback port.
pub fn start_web(
    app: &AppCredentials,
    redirect_uri: &str,
    login_hint: Option<&str>,
) -> Result<WebAuthorization, AuthorizeError> {
    let redirect =
        RedirectUrl::new(redirect_uri.to_string()).map_err(|_| AuthorizeError::BadRedirect {
            tenant: app.tenant_name.clone(),
            uri: redirect_uri.to_string(),
        })?;
    let (url, state, verifier) = authorize_url(app, &redirect, login_hint)?;
    Ok(WebAuthorization {
        url: url.to_string(),
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
    })
}

/// Exchanges an authorization's `code` for tokens (the same `redirect_uri` and PKCE `verifier`
/// as its start), trying the app's client secrets newest first: the end of both the CLI's
/// loopback flow and the service's callback.
async fn exchange_code(
    app: &AppCredentials,
    http: &reqwest::Client,
    redirect: &RedirectUrl,
    verifier: &str,
    code: String,
) -> Result<Authorized, AuthorizeError> {
    let c = app;
    if c.secrets.is_empty() {
        return Err(AuthError::NoSecret {
            tenant: c.tenant_name.clone(),
        }
        .into());
    }
    let mut refusals = crate::auth::SecretRefusals::default();
    let token_http = crate::auth::TokenHttp {
        http,
        tenant: &c.tenant_name,
    };
    for secret in &c.secrets {
        let result = c
            .oauth_client(secret)?
            .set_redirect_uri(redirect.clone())
            .exchange_code(AuthorizationCode::new(code.clone()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&token_http)
            .await;
        match result {
            Ok(answer) => {
                let refresh_token = answer
                    .refresh_token()
                    .ok_or_else(|| AuthorizeError::NoRefreshToken {
                        tenant: c.tenant_name.clone(),
                    })?
                    .secret()
                    .clone();
                return Ok(Authorized {
                    refresh_token,
                    access_token: answer.access_token().secret().clone(),
                    scope: answer
                        .scopes()
                        .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
                });
            }
            Err(e) => match c.classify(e) {
                Ok(err) => return Err(err.into()),
                Err(code) => refusals.note(code),
            },
        }
    }
    Err(refusals.into_error(&c.tenant_name).into())
}

/// Exchanges a [`start_web`] authorization's `code` (the same `redirect_uri` and `verifier`) for
/// tokens, as the CLI's loopback flow does (the client secrets tried newest first).
pub async fn exchange_web_code(
    app: &AppCredentials,
    http: &reqwest::Client,
    redirect_uri: &str,
    verifier: &str,
    code: String,
) -> Result<Authorized, AuthorizeError> {
    let redirect =
        RedirectUrl::new(redirect_uri.to_string()).map_err(|_| AuthorizeError::BadRedirect {
            tenant: app.tenant_name.clone(),
            uri: redirect_uri.to_string(),
        })?;
    exchange_code(app, http, &redirect, verifier, code).await
}

async fn recv(rx: &mut Option<UnboundedReceiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the redirect carried.
#[derive(Debug, Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn parse_query(url: &Url) -> CallbackQuery {
    let mut q = CallbackQuery::default();
    for (k, v) in url.query_pairs() {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "code" => q.code = v,
            "state" => q.state = v,
            "error" => q.error = v,
            "error_description" => q.error_description = v,
            _ => {}
        }
    }
    q
}

fn parse_pasted(line: &str) -> Option<CallbackQuery> {
    let q = parse_query(&Url::parse(line.trim()).ok()?);
    (q.code.is_some() || q.error.is_some()).then_some(q)
}

/// Answers one HTTP request on the listener. Returns the query when it was the callback; other
/// requests (a browser's favicon) get a 404 and the wait goes on.
async fn serve_callback(mut stream: tokio::net::TcpStream) -> Option<CallbackQuery> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.lines().next()?.split(' ').nth(1)?.to_string();
    let url = Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    let (status, body, query) = if url.path() == CALLBACK_PATH {
        let q = parse_query(&url);
        let body = if q.error.is_some() {
            "m365sync: the authorization was refused; see the terminal."
        } else {
            "m365sync: authorized. You can close this window."
        };
        ("200 OK", body, Some(q))
    } else {
        ("404 Not Found", "not found", None)
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    query
}
