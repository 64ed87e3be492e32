//! The identity platform: OIDC discovery, the token endpoint (client credentials, authorization
//! code with PKCE, refresh tokens), the authorize endpoint, and access-token checks for Graph.
//!
//! Errors carry Entra's exact shape and AADSTS codes, because clients and our own connectivity
//! test tell problems apart by them.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::request::{parse_query, SimRequest, SimResponse};
use super::Sim;

/// The scope an app-only token is asked for.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Claims of the access tokens the simulator issues (a subset of Entra's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Audience: always `https://graph.microsoft.com`.
    pub aud: String,
    /// Issuer: `https://sts.windows.net/{tenant id}/`.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not valid before, Unix seconds.
    pub nbf: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// The tenant id.
    pub tid: String,
    /// The client id of the app the token was issued to.
    pub appid: String,
    /// Application permissions (app-only tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Delegated scopes, space-separated (delegated tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// The signed-in user's object id (delegated tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// The signed-in user's UPN (delegated tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Unique token id: the world sequence at issue, which expiry lines are drawn against.
    pub uti: String,
    /// The token format version, `1.0`.
    pub ver: String,
}

/// An authorization code: everything the token request must match, sealed.
#[derive(Debug, Serialize, Deserialize)]
struct AuthCode {
    tid: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
    challenge: Option<String>,
    upn: String,
    exp: i64,
    nonce: u64,
}

/// A refresh token, sealed.
#[derive(Debug, Serialize, Deserialize)]
struct RefreshToken {
    tid: String,
    client_id: String,
    scope: String,
    upn: String,
    iat: i64,
    nonce: u64,
}

/// The caller of a Graph request, established from its bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Index of the caller's tenant in the world.
    pub tenant: usize,
    /// The client id of the calling app.
    pub client_id: String,
    /// Application permissions the token carries (app-only tokens).
    pub roles: Vec<String>,
    /// Delegated scopes the token carries (delegated tokens).
    pub scopes: Vec<String>,
    /// The signed-in user for delegated tokens.
    pub user: Option<usize>,
}

impl Caller {
    /// True when the token carries `permission` or a broader one (ReadWrite covers Read,
    /// `.All` application roles cover the signed-in user's own).
    pub fn has(&self, permission: &str) -> bool {
        let granted = |p: &str| {
            self.roles.iter().any(|r| r.eq_ignore_ascii_case(p))
                || self.scopes.iter().any(|s| s.eq_ignore_ascii_case(p))
        };
        if granted(permission) {
            return true;
        }
        if let Some(base) = permission.strip_suffix(".Read") {
            return granted(&format!("{base}.ReadWrite"));
        }
        if let Some(base) = permission.strip_suffix(".Read.All") {
            return granted(&format!("{base}.ReadWrite.All")) || granted("Directory.Read.All");
        }
        false
    }
}

/// An Entra error answer: `{"error","error_description":"AADSTSnnnn: ...","error_codes",...}`.
pub fn aad_error(status: u16, error: &str, code: u32, description: &str) -> SimResponse {
    let now = Utc::now();
    let trace = format!("{:032x}", now.timestamp_nanos_opt().unwrap_or_default());
    let body = serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {trace} Timestamp: {}", now.format("%Y-%m-%d %H:%M:%SZ")),
        "error_codes": [code],
        "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": trace,
        "correlation_id": trace,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut resp = SimResponse::json(status, &body);
    resp.headers[0].1 = hyper::header::HeaderValue::from_static("application/json; charset=utf-8");
    resp.with_header("cache-control", "no-store, no-cache")
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub fn discovery(sim: &Sim, tenant_key: &str) -> SimResponse {
    let world = sim.world();
    let tid = match world.tenant_by_key(tenant_key) {
        Some(t) => world.tenants[t].id.clone(),
        None if is_multi_tenant_alias(tenant_key) => "{tenantid}".to_string(),
        None => return unknown_tenant(tenant_key),
    };
    drop(world);
    let base = sim.public_base();
    let body = serde_json::json!({
        "issuer": format!("{base}/{tid}/v2.0"),
        "authorization_endpoint": format!("{base}/{tenant_key}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant_key}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/{tenant_key}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{tenant_key}/oauth2/v2.0/logout"),
        "jwks_uri": format!("{base}/{tenant_key}/discovery/v2.0/keys"),
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "oid", "name", "preferred_username"],
        "request_uri_parameter_supported": false,
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    SimResponse::json(200, &body)
}

fn is_multi_tenant_alias(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "common" | "organizations"
    )
}

fn unknown_tenant(tenant_key: &str) -> SimResponse {
    aad_error(
        400,
        "invalid_request",
        90002,
        &format!("Tenant '{tenant_key}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
}

/// `GET /{tenant}/discovery/v2.0/keys`. The simulator signs with HMAC, so the set is empty;
/// clients never verify access tokens meant for Graph.
pub fn jwks() -> SimResponse {
    SimResponse::json(200, &serde_json::json!({"keys": []}))
}

/// `POST /{tenant}/oauth2/v2.0/token`. The query string (MSAL adds `client-request-id`) and
/// unknown form fields (`claims`, `client_info`, `x-client-*`) are ignored, as Entra does.
pub fn token(sim: &Sim, tenant_key: &str, req: &SimRequest) -> SimResponse {
    let form: Vec<(String, String)> = parse_query(&String::from_utf8_lossy(&req.body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (mut client_id, mut client_secret) = (field("client_id"), field("client_secret"));
    if let Some((id, secret)) = basic_credentials(req) {
        client_id = client_id.or(Some(id));
        client_secret = client_secret.or(Some(secret));
    }
    let mut world = sim.world();
    let Some(t) = world.tenant_by_key(tenant_key) else {
        return unknown_tenant(tenant_key);
    };
    let tenant = &world.tenants[t];
    let Some(client_id) = client_id else {
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(app) = tenant.app(&client_id) else {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", tenant.display_name),
        );
    };
    let Some(secret) = client_secret else {
        return aad_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    };
    let now = Utc::now().timestamp();
    match app.secrets.iter().find(|s| s.value == secret) {
        None => {
            return aad_error(
                401,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            )
        }
        Some(s) if s.expires_at.is_some_and(|e| e <= now) => {
            return aad_error(
                401,
                "invalid_client",
                7000222,
                &format!("The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app."),
            )
        }
        Some(_) => {}
    }
    let grant = field("grant_type").unwrap_or_default();
    let scope = field("scope").unwrap_or_default();
    let tid = tenant.id.clone();
    let roles = app.roles.clone();
    let refresh_min_seq = tenant.refresh_tokens_min_seq;
    let nonce = world.bump();
    drop(world);
    match grant.as_str() {
        "client_credentials" => {
            if !scope.split(' ').any(|s| s.ends_with("/.default")) {
                return aad_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                );
            }
            issue(sim, &tid, &client_id, roles, None, None, nonce)
        }
        "authorization_code" => {
            let Some(code) = field("code").and_then(|c| sim.sealer.open::<AuthCode>(&c)) else {
                return aad_error(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if code.tid != tid || !code.client_id.eq_ignore_ascii_case(&client_id) {
                return aad_error(400, "invalid_grant", 70000, "The provided authorization code or refresh token was issued to another client or tenant.");
            }
            if code.exp < now {
                return aad_error(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.");
            }
            if field("redirect_uri").as_deref() != Some(code.redirect_uri.as_str()) {
                return aad_error(400, "invalid_grant", 50148, "The redirect_uri does not match the redirect URI used in the authorization request.");
            }
            if let Some(challenge) = &code.challenge {
                let verifier = field("code_verifier").unwrap_or_default();
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if &computed != challenge {
                    return aad_error(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.");
                }
            }
            if !sim
                .redeemed_codes
                .lock()
                .expect("codes lock")
                .insert(code.nonce)
            {
                return aad_error(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.");
            }
            delegated(sim, &tid, &client_id, &code.scope, &code.upn, nonce)
        }
        "refresh_token" => {
            let Some(rt) = field("refresh_token").and_then(|r| sim.sealer.open::<RefreshToken>(&r))
            else {
                return aad_error(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if rt.tid != tid || !rt.client_id.eq_ignore_ascii_case(&client_id) {
                return aad_error(400, "invalid_grant", 70000, "The provided authorization code or refresh token was issued to another client or tenant.");
            }
            let idle = sim.protocol().refresh_token_idle_secs;
            if rt.nonce < refresh_min_seq || rt.iat + idle < now {
                return aad_error(400, "invalid_grant", 700082, &format!("The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {} days.", chrono::DateTime::from_timestamp(rt.iat, 0).unwrap_or_default().to_rfc3339(), idle / 86400));
            }
            delegated(sim, &tid, &client_id, &rt.scope, &rt.upn, nonce)
        }
        "" => aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
        other => aad_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
    }
}

fn basic_credentials(req: &SimRequest) -> Option<(String, String)> {
    let value = req.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((dec(id), dec(secret)))
}

fn issue(
    sim: &Sim,
    tid: &str,
    client_id: &str,
    roles: Vec<String>,
    delegated: Option<(&str, &str, String)>,
    refresh: Option<String>,
    nonce: u64,
) -> SimResponse {
    let now = Utc::now().timestamp();
    let lifetime = sim.protocol().access_token_secs;
    let (scp, oid, upn) = match delegated {
        Some((scope, oid, upn)) => (Some(scope.to_string()), Some(oid.to_string()), Some(upn)),
        None => (None, None, None),
    };
    let claims = AccessClaims {
        aud: "https://graph.microsoft.com".into(),
        iss: format!("https://sts.windows.net/{tid}/"),
        iat: now,
        nbf: now,
        exp: now + lifetime,
        tid: tid.to_string(),
        appid: client_id.to_string(),
        roles: if scp.is_some() { Vec::new() } else { roles },
        scp: scp.clone(),
        oid,
        upn,
        uti: nonce.to_string(),
        ver: "1.0".into(),
    };
    let mut body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": sim.sealer.jwt(&claims),
    });
    if let Some(scope) = scp {
        body["scope"] = scope.into();
    }
    if let Some(rt) = refresh {
        body["refresh_token"] = rt.into();
    }
    let mut resp = SimResponse::json(200, &body);
    resp.headers[0].1 = hyper::header::HeaderValue::from_static("application/json; charset=utf-8");
    resp.with_header("cache-control", "no-store, no-cache")
}

fn delegated(
    sim: &Sim,
    tid: &str,
    client_id: &str,
    scope: &str,
    upn: &str,
    nonce: u64,
) -> SimResponse {
    let world = sim.world();
    let Some(t) = world.tenant_by_key(tid) else {
        return unknown_tenant(tid);
    };
    let Some(u) = world.tenants[t].user_by_key(upn) else {
        return aad_error(
            400,
            "invalid_grant",
            50034,
            &format!("The user account {upn} does not exist in the directory."),
        );
    };
    let oid = world.tenants[t].users[u].id.clone();
    drop(world);
    // Delegated tokens carry the Graph permissions the admin consented to, by scope name.
    let scopes: Vec<&str> = scope
        .split(' ')
        .filter(|s| {
            !s.is_empty() && !matches!(*s, "openid" | "profile" | "email" | "offline_access")
        })
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .collect();
    let granted = if scopes.contains(&".default") {
        "Mail.ReadWrite Mail.Send Calendars.ReadWrite User.Read.All".to_string()
    } else {
        scopes.join(" ")
    };
    let refresh = scope.split(' ').any(|s| s == "offline_access").then(|| {
        sim.sealer.seal(&RefreshToken {
            tid: tid.to_string(),
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            upn: upn.to_string(),
            iat: Utc::now().timestamp(),
            nonce,
        })
    });
    issue(
        sim,
        tid,
        client_id,
        Vec::new(),
        Some((&granted, &oid, upn.to_string())),
        refresh,
        nonce,
    )
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the configured admin consents at once and the browser
/// is sent back to `redirect_uri` with a code (or with Entra's error parameters).
pub fn authorize(sim: &Sim, tenant_key: &str, req: &SimRequest) -> SimResponse {
    let q = |n: &str| req.query(n).map(str::to_string);
    let world = sim.world();
    let Some(t) = world.tenant_by_key(tenant_key) else {
        return unknown_tenant(tenant_key);
    };
    let tenant = &world.tenants[t];
    let client_id = q("client_id").unwrap_or_default();
    let Some(app) = tenant.app(&client_id) else {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                tenant.display_name
            ),
        );
    };
    let Some(redirect_uri) = q("redirect_uri") else {
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    if !app.redirect_uris.is_empty()
        && !app
            .redirect_uris
            .iter()
            .any(|r| redirect_matches(r, &redirect_uri))
    {
        return aad_error(400, "invalid_request", 50011, &format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."));
    }
    let state = q("state");
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    if q("response_type").as_deref() != Some("code") {
        let loc = format!(
            "{redirect_uri}{sep}error=unsupported_response_type&error_description=AADSTS700054"
        );
        return SimResponse::empty(302).with_header("location", &loc);
    }
    let challenge = q("code_challenge");
    if challenge.is_some() && q("code_challenge_method").is_some_and(|m| m != "S256") {
        let loc = format!("{redirect_uri}{sep}error=invalid_request&error_description=AADSTS501491%3A+only+S256+is+supported");
        return SimResponse::empty(302).with_header("location", &loc);
    }
    let upn = q("login_hint")
        .filter(|h| tenant.user_by_key(h).is_some())
        .unwrap_or_else(|| tenant.admin_upn.clone());
    let tid = tenant.id.clone();
    drop(world);
    let nonce = sim.world().bump();
    let code = sim.sealer.seal(&AuthCode {
        tid,
        client_id,
        redirect_uri: redirect_uri.clone(),
        scope: q("scope").unwrap_or_default(),
        challenge,
        upn,
        exp: Utc::now().timestamp() + 600,
        nonce,
    });
    let mut loc = format!("{redirect_uri}{sep}code={code}");
    if let Some(state) = state {
        loc.push_str("&state=");
        loc.push_str(
            &percent_encoding::utf8_percent_encode(&state, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    SimResponse::empty(302).with_header("location", &loc)
}

/// Whether `requested` matches the registered redirect URI. Entra ignores the port of a
/// loopback redirect URI (`http://localhost`, `http://127.0.0.1`, `http://[::1]`), as RFC 8252
/// asks, because native apps and CLIs listen on whatever port the system gives them; scheme,
/// host and path must still match. Every other URI must match exactly.
fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let loopback = |uri: &str| -> Option<(String, String)> {
        let rest = uri.strip_prefix("http://")?;
        let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let host = match authority.strip_prefix('[') {
            Some(v6) => format!("[{}]", v6.split(']').next()?),
            None => authority.split(':').next()?.to_string(),
        };
        matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        )
        .then(|| (host.to_ascii_lowercase(), path.to_string()))
    };
    let path = |p: &str| p.trim_end_matches('/').to_string();
    match (loopback(registered), loopback(requested)) {
        (Some((h1, p1)), Some((h2, p2))) => h1 == h2 && path(&p1) == path(&p2),
        _ => false,
    }
}

/// Checks a Graph request's bearer token and returns who is calling, or Graph's 401.
pub fn authenticate(sim: &Sim, req: &SimRequest) -> Result<Caller, super::request::GraphError> {
    use super::request::GraphError;
    let unauthorized = |msg: &str| {
        GraphError::new(401, "InvalidAuthenticationToken", msg).with_header(
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    };
    let token = req
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("Access token is empty."))?;
    let claims: AccessClaims = sim
        .sealer
        .open_jwt(token)
        .ok_or_else(|| unauthorized("Invalid signature."))?;
    let world = sim.world();
    let tenant = world
        .tenant_by_key(&claims.tid)
        .ok_or_else(|| unauthorized("Access token validation failure. Invalid audience."))?;
    let now = Utc::now().timestamp();
    let issued_at_seq: u64 = claims.uti.parse().unwrap_or(0);
    if claims.exp <= now || issued_at_seq < world.tenants[tenant].access_tokens_min_seq {
        return Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    let user = match &claims.oid {
        Some(oid) => Some(
            world.tenants[tenant]
                .user_by_key(oid)
                .ok_or_else(|| unauthorized("The user of this token no longer exists."))?,
        ),
        None => None,
    };
    Ok(Caller {
        tenant,
        client_id: claims.appid,
        roles: claims.roles,
        scopes: claims
            .scp
            .map(|s| s.split(' ').map(str::to_string).collect())
            .unwrap_or_default(),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::redirect_matches;

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_does() {
        let r = "http://127.0.0.1/callback";
        assert!(redirect_matches(r, "http://127.0.0.1:53123/callback"));
        assert!(redirect_matches(r, r));
        assert!(!redirect_matches(r, "http://127.0.0.1:53123/other"));
        assert!(!redirect_matches(r, "http://localhost:53123/callback"));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:9/cb"));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(!redirect_matches(
            r,
            "http://127.0.0.1.evil.example:80/callback"
        ));
    }
}
