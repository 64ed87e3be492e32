//! Access tokens per tenant through the `oauth2` crate: client credentials for app-only tenants
//! (A1), the refresh-token grant for delegated ones (A2). Client secrets are tried newest first
//! (so rotation needs no downtime); tokens are cached until shortly before expiry and dropped on
//! a 401. A cache belongs to one tenant, so a token never serves another (T2).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, ClientId, ClientSecret, HttpClientError, HttpRequest,
    HttpResponse, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use tokio::sync::Mutex;

use super::error::AuthError;

/// Renew this long before a token expires, so a request never starts with a dying token.
const EARLY_RENEWAL: Duration = Duration::from_secs(120);

/// The scope of every Graph token we ask for: the permissions an admin consented to.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Asked for with delegated tokens, so the identity platform answers with a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// How one tenant's app identifies itself: the same for app-only and delegated tenants.
#[derive(Clone)]
pub struct AppCredentials {
    /// Our name for the tenant, used in errors.
    pub tenant_name: String,
    /// `https://login.microsoftonline.com` or the simulator's base URL.
    pub authority: String,
    /// Entra tenant id or domain.
    pub ms_tenant: String,
    /// The app registration's client (application) id.
    pub client_id: String,
    /// Valid secrets, newest first.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("tenant_name", &self.tenant_name)
            .field("authority", &self.authority)
            .field("ms_tenant", &self.ms_tenant)
            .field("client_id", &self.client_id)
            .field("secrets", &format_args!("[{} hidden]", self.secrets.len()))
            .finish()
    }
}

impl AppCredentials {
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority.trim_end_matches('/'),
            self.ms_tenant
        )
    }

    /// `{authority}/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/authorize",
            self.authority.trim_end_matches('/'),
            self.ms_tenant
        )
    }

    /// An `oauth2` client for one of the secrets (sent in the body, as Entra expects).
    pub(crate) fn oauth_client(
        &self,
        secret: &str,
    ) -> Result<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        AuthError,
    > {
        let token_url =
            TokenUrl::new(self.token_url()).map_err(|e| self.unreachable(e.to_string()))?;
        let auth_url =
            AuthUrl::new(self.authorize_url()).map_err(|e| self.unreachable(e.to_string()))?;
        Ok(BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.to_string()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_auth_type(AuthType::RequestBody))
    }

    pub(crate) fn unreachable(&self, detail: String) -> AuthError {
        AuthError::Unreachable {
            tenant: self.tenant_name.clone(),
            authority: self.authority.clone(),
            detail,
        }
    }

    /// Turns a failed token request into the precise error, or `None` when the secret was wrong
    /// or expired and an older secret may still work (the code is returned for the last resort).
    pub(crate) fn classify(
        &self,
        e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
    ) -> Result<AuthError, u32> {
        match e {
            RequestTokenError::ServerResponse(e) => {
                let code = aadsts_code(e.error_description().map(String::as_str));
                match code {
                    7000215 | 7000222 => Err(code),
                    700016 => Ok(AuthError::UnknownApp {
                        tenant: self.tenant_name.clone(),
                        client_id: self.client_id.clone(),
                    }),
                    90002 => Ok(AuthError::UnknownTenant {
                        tenant: self.tenant_name.clone(),
                    }),
                    _ if e.error().as_ref() == "invalid_grant" => Ok(AuthError::RefreshExpired {
                        tenant: self.tenant_name.clone(),
                        code,
                    }),
                    _ => Ok(AuthError::Refused {
                        tenant: self.tenant_name.clone(),
                        error: e.error().to_string(),
                        code,
                    }),
                }
            }
            RequestTokenError::Request(e) => Ok(self.unreachable(e.to_string())),
            e => Ok(self.unreachable(e.to_string())),
        }
    }
}

/// The identity platform's answers to the secrets of one round, newest first: which were
/// wrong and which expired, so the error says what to do (a new secret in Entra for an
/// expired one, the value instead of the id for a wrong one).
#[derive(Debug, Default)]
pub(crate) struct SecretRefusals {
    expired: usize,
    wrong: usize,
}

impl SecretRefusals {
    /// Notes one secret's refusal (its AADSTS code).
    pub(crate) fn note(&mut self, code: u32) {
        if code == 7000222 {
            self.expired += 1;
        } else {
            self.wrong += 1;
        }
    }

    /// The error once every secret was refused: expired when any was (only a new secret
    /// helps then), wrong otherwise.
    pub(crate) fn into_error(self, tenant: &str) -> AuthError {
        if self.expired > 0 {
            AuthError::ExpiredSecret {
                tenant: tenant.to_string(),
                others_wrong: self.wrong,
            }
        } else {
            AuthError::WrongSecret {
                tenant: tenant.to_string(),
                code: 7000215,
            }
        }
    }
}

/// The HTTP client of token requests: `reqwest`, with a fresh `client-request-id` on each
/// request (as MSAL sends one) and, when the identity platform refuses, that id and the
/// answer's `x-ms-request-id` logged with the tenant, for a support case. Never logs the
/// request's body (it carries the secret) nor the answer's (it may carry a token).
pub(crate) struct TokenHttp<'a> {
    /// The shared client.
    pub(crate) http: &'a reqwest::Client,
    /// Our name for the tenant, for the log line.
    pub(crate) tenant: &'a str,
}

impl<'c> AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let client_request_id = crate::new_client_request_id();
            let mut request: reqwest::Request = request.try_into().map_err(Box::new)?;
            let headers = request.headers_mut();
            if let Ok(v) = client_request_id.parse() {
                headers.insert("client-request-id", v);
            }
            if let Ok(v) = "true".parse() {
                headers.insert("return-client-request-id", v);
            }
            let response = self.http.execute(request).await.map_err(|e| {
                tracing::warn!(tenant = %self.tenant, client_request_id = %client_request_id, "token request got no answer: {e}");
                Box::new(e)
            })?;
            let status = response.status();
            if !status.is_success() {
                let request_id = response
                    .headers()
                    .get("x-ms-request-id")
                    .or_else(|| response.headers().get("request-id"))
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none");
                tracing::warn!(
                    tenant = %self.tenant,
                    status = status.as_u16(),
                    request_id,
                    client_request_id = %client_request_id,
                    "the identity platform refused a token request"
                );
            }
            let mut builder = oauth2::http::Response::builder()
                .status(status)
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            builder
                .body(response.bytes().await.map_err(Box::new)?.to_vec())
                .map_err(HttpClientError::Http)
        })
    }
}

/// Where a delegated tenant's rotated refresh token goes (the store, sealed). Called before the
/// new token is used, so a process that stops right after still finds the newest one stored.
pub type RotationSink =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A delegated tenant: its app plus the refresh token an admin's authorization produced (A2).
#[derive(Clone)]
pub struct DelegatedCredentials {
    /// The app the admin authorized, with its secrets.
    pub app: AppCredentials,
    /// The newest refresh token stored for the tenant; the cache replaces it with each one
    /// the identity platform hands out.
    pub refresh_token: String,
    /// Told about every new refresh token the identity platform hands out.
    pub on_rotate: Option<RotationSink>,
}

impl std::fmt::Debug for DelegatedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedCredentials")
            .field("app", &self.app)
            .field("refresh_token", &"[hidden]")
            .finish()
    }
}

struct Cached {
    token: String,
    renew_at: Instant,
}

enum Grant {
    App(AppCredentials),
    Delegated {
        app: AppCredentials,
        /// The newest refresh token; only touched while `cached` is locked.
        refresh_token: std::sync::Mutex<String>,
        on_rotate: Option<RotationSink>,
    },
    /// A delegated tenant nobody has authorized yet: every request says so.
    Unauthorized {
        tenant: String,
    },
}

/// A tenant's token cache.
pub struct TokenCache {
    grant: Grant,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
}

/// The AADSTS code at the start of an Entra error description.
fn aadsts_code(description: Option<&str>) -> u32 {
    description
        .and_then(|d| d.strip_prefix("AADSTS"))
        .and_then(|d| d.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl TokenCache {
    /// A client-credentials cache for one tenant. `http` must not follow redirects (token
    /// endpoints never need to).
    pub fn new(creds: AppCredentials, http: reqwest::Client) -> TokenCache {
        Self::with_grant(Grant::App(creds), http)
    }

    /// A refresh-token cache for one delegated tenant.
    pub fn delegated(creds: DelegatedCredentials, http: reqwest::Client) -> TokenCache {
        Self::with_grant(
            Grant::Delegated {
                app: creds.app,
                refresh_token: std::sync::Mutex::new(creds.refresh_token),
                on_rotate: creds.on_rotate,
            },
            http,
        )
    }

    /// A cache for a delegated tenant without a refresh token: every token request fails with
    /// [`AuthError::NotAuthorized`], so a sync run reports what to do instead of crashing.
    pub fn unauthorized(tenant_name: String, http: reqwest::Client) -> TokenCache {
        Self::with_grant(
            Grant::Unauthorized {
                tenant: tenant_name,
            },
            http,
        )
    }

    fn with_grant(grant: Grant, http: reqwest::Client) -> TokenCache {
        TokenCache {
            grant,
            http,
            cached: Mutex::new(None),
        }
    }

    /// True for a delegated tenant's cache.
    pub fn is_delegated(&self) -> bool {
        !matches!(self.grant, Grant::App(_))
    }

    /// A valid access token, from the cache or freshly requested.
    pub async fn token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = match &self.grant {
            Grant::App(c) => self.client_credentials(c).await?,
            Grant::Delegated {
                app,
                refresh_token,
                on_rotate,
            } => self.refresh(app, refresh_token, on_rotate.as_ref()).await?,
            Grant::Unauthorized { tenant } => {
                return Err(AuthError::NotAuthorized {
                    tenant: tenant.clone(),
                })
            }
        };
        *cached = Some(Cached {
            token: token.clone(),
            renew_at: Instant::now()
                + lifetime
                    .saturating_sub(EARLY_RENEWAL)
                    .max(Duration::from_secs(1)),
        });
        Ok(token)
    }

    /// Forgets the cached token (after Graph answered 401 with it).
    pub async fn invalidate(&self, token: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == token) {
            *cached = None;
        }
    }

    async fn client_credentials(
        &self,
        c: &AppCredentials,
    ) -> Result<(String, Duration), AuthError> {
        if c.secrets.is_empty() {
            return Err(AuthError::NoSecret {
                tenant: c.tenant_name.clone(),
            });
        }
        let mut refusals = SecretRefusals::default();
        let http = TokenHttp {
            http: &self.http,
            tenant: &c.tenant_name,
        };
        for secret in &c.secrets {
            let result = c
                .oauth_client(secret)?
                .exchange_client_credentials()
                .add_scope(Scope::new(GRAPH_SCOPE.into()))
                .request_async(&http)
                .await;
            match result {
                Ok(answer) => return Ok(access(&answer)),
                Err(e) => match c.classify(e) {
                    Ok(err) => return Err(err),
                    // This secret is wrong or expired: an older one may still work.
                    Err(code) => refusals.note(code),
                },
            }
        }
        Err(refusals.into_error(&c.tenant_name))
    }

    async fn refresh(
        &self,
        c: &AppCredentials,
        refresh_token: &std::sync::Mutex<String>,
        on_rotate: Option<&RotationSink>,
    ) -> Result<(String, Duration), AuthError> {
        if c.secrets.is_empty() {
            return Err(AuthError::NoSecret {
                tenant: c.tenant_name.clone(),
            });
        }
        let current = RefreshToken::new(refresh_token.lock().expect("token lock").clone());
        let mut refusals = SecretRefusals::default();
        let http = TokenHttp {
            http: &self.http,
            tenant: &c.tenant_name,
        };
        for secret in &c.secrets {
            let result = c
                .oauth_client(secret)?
                .exchange_refresh_token(&current)
                .add_scope(Scope::new(GRAPH_SCOPE.into()))
                .add_scope(Scope::new(OFFLINE_ACCESS.into()))
                .request_async(&http)
                .await;
            match result {
                Ok(answer) => {
                    if let Some(new) = answer.refresh_token() {
                        let new = new.secret().clone();
                        if new != *current.secret() {
                            if let Some(sink) = on_rotate {
                                // The old token stays valid a while, so a failed save is a
                                // warning: this process goes on, the next one uses the old one.
                                if let Err(e) = sink(new.clone()).await {
                                    tracing::warn!(tenant = %c.tenant_name, "the rotated refresh token could not be stored: {e}");
                                }
                            }
                            *refresh_token.lock().expect("token lock") = new;
                        }
                    }
                    return Ok(access(&answer));
                }
                Err(e) => match c.classify(e) {
                    Ok(err) => return Err(err),
                    Err(code) => refusals.note(code),
                },
            }
        }
        Err(refusals.into_error(&c.tenant_name))
    }
}

fn access(answer: &BasicTokenResponse) -> (String, Duration) {
    let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3599));
    (answer.access_token().secret().clone(), lifetime)
}
