//! Access tokens per tenant: client credentials through the `oauth2` crate, several secrets
//! tried newest first (so rotation needs no downtime), cached until shortly before expiry and
//! dropped on a 401. A cache belongs to one tenant, so a token never serves another (T2).

use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use tokio::sync::Mutex;

use super::error::AuthError;

/// Renew this long before a token expires, so a request never starts with a dying token.
const EARLY_RENEWAL: Duration = Duration::from_secs(120);

/// How one tenant authenticates with client credentials.
#[derive(Clone)]
pub struct AppCredentials {
    /// Our name for the tenant, used in errors.
    pub tenant_name: String,
    /// `https://login.microsoftonline.com` or the simulator's base URL.
    pub authority: String,
    /// Entra tenant id or domain.
    pub ms_tenant: String,
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

struct Cached {
    token: String,
    renew_at: Instant,
}

/// A tenant's token cache.
pub struct TokenCache {
    creds: AppCredentials,
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
    /// A cache for one tenant. `http` must not follow redirects (token endpoints never need to).
    pub fn new(creds: AppCredentials, http: reqwest::Client) -> TokenCache {
        TokenCache {
            creds,
            http,
            cached: Mutex::new(None),
        }
    }

    /// A valid access token, from the cache or freshly requested.
    pub async fn token(&self) -> Result<String, AuthError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.request().await?;
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

    async fn request(&self) -> Result<(String, Duration), AuthError> {
        let c = &self.creds;
        if c.secrets.is_empty() {
            return Err(AuthError::NoSecret {
                tenant: c.tenant_name.clone(),
            });
        }
        let base = c.authority.trim_end_matches('/');
        let token_url = TokenUrl::new(format!("{base}/{}/oauth2/v2.0/token", c.ms_tenant))
            .map_err(|e| self.unreachable(e.to_string()))?;
        let auth_url = AuthUrl::new(format!("{base}/{}/oauth2/v2.0/authorize", c.ms_tenant))
            .map_err(|e| self.unreachable(e.to_string()))?;
        let mut last_wrong_secret = None;
        for secret in &c.secrets {
            let client = BasicClient::new(ClientId::new(c.client_id.clone()))
                .set_client_secret(ClientSecret::new(secret.clone()))
                .set_auth_uri(auth_url.clone())
                .set_token_uri(token_url.clone())
                .set_auth_type(AuthType::RequestBody);
            let result = client
                .exchange_client_credentials()
                .add_scope(Scope::new("https://graph.microsoft.com/.default".into()))
                .request_async(&self.http)
                .await;
            match result {
                Ok(answer) => {
                    let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3599));
                    return Ok((answer.access_token().secret().clone(), lifetime));
                }
                Err(RequestTokenError::ServerResponse(e)) => {
                    let code = aadsts_code(e.error_description().map(String::as_str));
                    match code {
                        7000215 | 7000222 => {
                            // This secret is wrong or expired: an older one may still work.
                            last_wrong_secret = Some(code);
                            continue;
                        }
                        700016 => {
                            return Err(AuthError::UnknownApp {
                                tenant: c.tenant_name.clone(),
                                client_id: c.client_id.clone(),
                            })
                        }
                        90002 => {
                            return Err(AuthError::UnknownTenant {
                                tenant: c.tenant_name.clone(),
                            })
                        }
                        _ => {
                            return Err(AuthError::Refused {
                                tenant: c.tenant_name.clone(),
                                error: e.error().to_string(),
                                code,
                            })
                        }
                    }
                }
                Err(RequestTokenError::Request(e)) => return Err(self.unreachable(e.to_string())),
                Err(e) => return Err(self.unreachable(e.to_string())),
            }
        }
        Err(AuthError::WrongSecret {
            tenant: c.tenant_name.clone(),
            code: last_wrong_secret.unwrap_or(7000215),
        })
    }

    fn unreachable(&self, detail: String) -> AuthError {
        AuthError::Unreachable {
            tenant: self.creds.tenant_name.clone(),
            authority: self.creds.authority.clone(),
            detail,
        }
    }
}
