//! "Test connectivity" (E11): a token, a directory read and one mailbox read, each reported as
//! passed, failed (with precisely what is wrong and what to do) or skipped; and the mailbox
//! read for every mailbox of a tenant ([`test_mailboxes`]), which activation runs. The checks use the
//! same token cache as a sync run ([`crate::credentials::token_cache_for`]), so a passing test means
//! the sync can authenticate.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;

use super::admin_client;
use crate::credentials::token_cache_for;
use m365sync_graph::{AuthError, GraphClient, GraphError};
use m365sync_store::tenants::{AuthMode, Tenant};
use m365sync_store::{Store, StoreError};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The step worked.
    Passed,
    /// The step failed; its [`Step::failure`] says why.
    Failed,
    /// Not tried because an earlier step failed.
    Skipped,
}

/// What precisely is wrong, named after what the admin has to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// No stored secret is accepted for the app (AADSTS7000215), often a secret's id pasted
    /// for its value.
    #[error("the client secret is wrong (AADSTS7000215): no stored secret is valid for app {client_id}; add the secret's value (not its id) with `m365sync tenant secret add`")]
    WrongSecret {
        /// The app registration's client id.
        client_id: String,
    },
    /// The stored secret has passed its expiry in Entra (AADSTS7000222).
    #[error("the client secret has expired (AADSTS7000222); create a new one in Entra (App registrations > Certificates & secrets) and add it with `m365sync tenant secret add`")]
    ExpiredSecret {
        /// The app registration's client id.
        client_id: String,
    },
    /// The directory has no such app, or no consent for it (AADSTS700016).
    #[error("no app with client id {client_id} in directory {ms_tenant} (AADSTS700016); check the client id, and that an admin granted consent in that tenant")]
    UnknownApp {
        /// The client id the token request named.
        client_id: String,
        /// The Microsoft tenant (id or domain) asked.
        ms_tenant: String,
    },
    /// The Microsoft tenant id or domain names no directory (AADSTS90002).
    #[error(
        "the directory {ms_tenant} does not exist (AADSTS90002); check the tenant id or domain"
    )]
    UnknownTenant {
        /// The Microsoft tenant (id or domain) as configured.
        ms_tenant: String,
    },
    /// An app-only tenant with no client secret stored.
    #[error("no client secret is stored; add one with `m365sync tenant secret add`")]
    NoSecret,
    /// A delegated tenant whose admin has not signed in yet, so there is no refresh token.
    #[error(
        "the tenant is delegated and nobody has authorized it yet; run `m365sync tenant authorize`"
    )]
    NotAuthorized,
    /// A delegated tenant's refresh token expired or was revoked; only a new sign-in helps.
    #[error("the stored refresh token has expired or was revoked (AADSTS{code}); an admin must run `m365sync tenant authorize` again")]
    RefreshExpired {
        /// The AADSTS error number.
        code: u32,
    },
    /// Any other refusal of the token request.
    #[error("the identity platform refused the token request: {error} (AADSTS{code})")]
    TokenRefused {
        /// The OAuth `error` code.
        error: String,
        /// The AADSTS error number.
        code: u32,
    },
    /// The identity platform could not be reached at all (DNS, TLS, network).
    #[error("cannot reach the identity platform at {authority}: {detail}")]
    Unreachable {
        /// The authority URL tried.
        authority: String,
        /// The transport error.
        detail: String,
    },
    /// The token lacks a Graph permission the step needs (read from its claims).
    #[error("the app lacks the {permission} permission ({code}); add it as {permission_type} permission in Entra (API permissions) and grant admin consent")]
    MissingPermission {
        /// The permission to add, e.g. `Mail.Read`.
        permission: String,
        /// "an application" or "a delegated".
        permission_type: String,
        /// Graph's error code from the 403.
        code: String,
    },
    /// App-only access to this mailbox is refused although the permission is granted: an
    /// Exchange application access policy scopes the app to other mailboxes.
    #[error("mailbox {mailbox} is outside the Exchange application access policy (403 {code}); add it to the policy's group, or disable it with `m365sync mailbox disable`")]
    OutsideAccessPolicy {
        /// The mailbox's address.
        mailbox: String,
        /// Graph's error code from the 403.
        code: String,
    },
    /// Any other 403 on the mailbox read.
    #[error("mailbox {mailbox}: access denied (403 {code}: {message}); check the app's permissions and any application access policy")]
    MailboxDenied {
        /// The mailbox's address.
        mailbox: String,
        /// Graph's error code.
        code: String,
        /// Graph's error message.
        message: String,
    },
    /// Graph knows no such mailbox (a wrong address, or a user without an Exchange licence).
    #[error("mailbox {mailbox} was not found (404 {code}); check the address, and that it has an Exchange Online mailbox (a licence)")]
    MailboxNotFound {
        /// The mailbox's address.
        mailbox: String,
        /// Graph's error code from the 404.
        code: String,
    },
    /// Nothing to read: no mailbox given, none stored, and the directory listed no user.
    #[error("no mailbox to read: the tenant has none and the directory listed no user; add one with `m365sync mailbox add` or pass --mailbox")]
    NoMailbox,
    /// Any other Graph failure, as Graph put it.
    #[error("Graph answered {status} {code}: {message}")]
    Graph {
        /// The HTTP status (0 when there was no usable answer).
        status: u16,
        /// Graph's error code, or what went wrong.
        code: String,
        /// Graph's error message.
        message: String,
    },
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `token`, `directory` or `mailbox`.
    pub name: &'static str,
    /// How the step ended.
    pub status: Status,
    /// What was checked, or what passed.
    pub detail: String,
    /// Set when the step failed.
    pub failure: Option<Failure>,
}

/// The whole checklist for one tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `org/tenant`.
    pub tenant: String,
    /// App-only or delegated: which token the checks used.
    pub auth_mode: AuthMode,
    /// True when every step passed.
    pub ok: bool,
    /// Token, directory and mailbox, in that order.
    pub steps: Vec<Step>,
}

impl Report {
    /// The first failure, if any.
    pub fn failure(&self) -> Option<&Failure> {
        self.steps.iter().find_map(|s| s.failure.as_ref())
    }
}

/// What a token says it may do (read without verifying: only to explain a refusal).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenPermissions {
    /// Application permissions (`roles`) or delegated scopes (`scp`).
    pub permissions: Vec<String>,
    /// The signed-in user of a delegated token.
    pub user: Option<String>,
}

/// Reads the `roles`/`scp` and `upn` claims of a JWT access token. `None` when the token is not
/// a readable JWT (Microsoft does not promise it is; callers then explain less precisely).
pub fn token_permissions(token: &str) -> Option<TokenPermissions> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let mut permissions: Vec<String> = claims["roles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(scp) = claims["scp"].as_str() {
        permissions.extend(scp.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
    }
    Some(TokenPermissions {
        permissions,
        user: claims["upn"].as_str().map(str::to_string),
    })
}

/// True when `granted` includes `wanted` or a permission that implies it (ReadWrite covers
/// Read; Directory.Read.All covers User.Read.All).
fn grants(granted: &[String], wanted: &str) -> bool {
    let has = |p: &str| granted.iter().any(|g| g.eq_ignore_ascii_case(p));
    has(wanted)
        || wanted
            .strip_suffix(".Read")
            .is_some_and(|b| has(&format!("{b}.ReadWrite")))
        || wanted.strip_suffix(".Read.All").is_some_and(|b| {
            has(&format!("{b}.ReadWrite.All"))
                || has("Directory.Read.All")
                || has("Directory.ReadWrite.All")
        })
}

fn auth_failure(e: &AuthError, tenant: &Tenant) -> Failure {
    match e {
        AuthError::ExpiredSecret { .. } => Failure::ExpiredSecret {
            client_id: tenant.client_id.clone(),
        },
        AuthError::WrongSecret { .. } => Failure::WrongSecret {
            client_id: tenant.client_id.clone(),
        },
        AuthError::UnknownApp { client_id, .. } => Failure::UnknownApp {
            client_id: client_id.clone(),
            ms_tenant: tenant.ms_tenant.clone(),
        },
        AuthError::UnknownTenant { .. } => Failure::UnknownTenant {
            ms_tenant: tenant.ms_tenant.clone(),
        },
        AuthError::NoSecret { .. } => Failure::NoSecret,
        AuthError::NotAuthorized { .. } => Failure::NotAuthorized,
        AuthError::RefreshExpired { code, .. } => Failure::RefreshExpired { code: *code },
        AuthError::Refused { error, code, .. } => Failure::TokenRefused {
            error: error.clone(),
            code: *code,
        },
        AuthError::Unreachable {
            authority, detail, ..
        } => Failure::Unreachable {
            authority: authority.clone(),
            detail: detail.clone(),
        },
    }
}

fn graph_failure(e: GraphError, tenant: &Tenant) -> Failure {
    // The request's ids end the message, for a support case.
    let ids = e
        .request_ids()
        .map(|i| format!(" ({i})"))
        .unwrap_or_default();
    let graph = |status, code, message: String| Failure::Graph {
        status,
        code,
        message: message + &ids,
    };
    match e {
        GraphError::Auth(a) => auth_failure(&a, tenant),
        GraphError::AccessDenied { code, message, .. } => graph(403, code, message),
        GraphError::NotFound { code, message, .. } => graph(404, code, message),
        GraphError::Other {
            status,
            code,
            message,
            ..
        } => graph(status, code, message),
        GraphError::Exhausted {
            status,
            attempts,
            message,
            ..
        } => graph(
            status,
            format!("still failing after {attempts} attempts"),
            message,
        ),
        other => graph(0, "unexpected answer".into(), other.to_string()),
    }
}

fn passed(name: &'static str, detail: String) -> Step {
    Step {
        name,
        status: Status::Passed,
        detail,
        failure: None,
    }
}

fn failed(name: &'static str, detail: &str, failure: Failure) -> Step {
    Step {
        name,
        status: Status::Failed,
        detail: detail.to_string(),
        failure: Some(failure),
    }
}

fn skipped(name: &'static str, detail: &str) -> Step {
    Step {
        name,
        status: Status::Skipped,
        detail: format!("{detail} (not tried: an earlier step failed)"),
        failure: None,
    }
}

const TOKEN: &str = "get an access token";
const DIRECTORY: &str = "read the directory (GET /users)";
const MAILBOX: &str = "read a mailbox (GET /users/{id}/mailFolders/inbox/messages)";

/// Runs the checklist for `tenant`: token, directory, then one mailbox: `mailbox` if given,
/// else the tenant's first enabled mailbox, else the first user the directory listed.
pub async fn test_connectivity(
    store: &Store,
    tenant: &Tenant,
    http: reqwest::Client,
    mailbox: Option<&str>,
) -> Result<Report, StoreError> {
    let tokens = token_cache_for(store, tenant, http.clone()).await?;
    let mut steps = Vec::new();
    let delegated = tenant.auth_mode == AuthMode::Delegated;
    let kind = if delegated {
        "a delegated"
    } else {
        "an application"
    };
    let perms = match tokens.token().await {
        Ok(token) => {
            let perms = token_permissions(&token);
            let mut detail = if delegated {
                "delegated token (refresh token grant)".to_string()
            } else {
                "app-only token (client credentials)".to_string()
            };
            if let Some(p) = &perms {
                if let Some(u) = &p.user {
                    detail.push_str(&format!(" for {u}"));
                }
                detail.push_str(&format!("; permissions: {}", p.permissions.join(", ")));
            }
            steps.push(passed("token", detail));
            perms
        }
        Err(e) => {
            steps.push(failed("token", TOKEN, auth_failure(&e, tenant)));
            steps.push(skipped("directory", DIRECTORY));
            steps.push(skipped("mailbox", MAILBOX));
            return Ok(finish(tenant, steps));
        }
    };
    let client = admin_client(tenant, tokens, http);
    let lacks = |p: &str| perms.as_ref().is_some_and(|t| !grants(&t.permissions, p));
    let first_user = match client
        .get(
            "directory",
            "users?$top=1&$select=id,userPrincipalName,mail",
            None,
        )
        .await
    {
        Ok(v) => {
            let first = v["value"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|u| u["userPrincipalName"].as_str())
                .map(str::to_string);
            steps.push(passed(
                "directory",
                format!(
                    "listed users{}",
                    first
                        .as_deref()
                        .map(|u| format!(" (first: {u})"))
                        .unwrap_or_default()
                ),
            ));
            first
        }
        Err(GraphError::AccessDenied { code, .. }) => {
            steps.push(failed(
                "directory",
                DIRECTORY,
                Failure::MissingPermission {
                    permission: "User.Read.All".into(),
                    permission_type: kind.into(),
                    code,
                },
            ));
            None
        }
        Err(e) => {
            steps.push(failed("directory", DIRECTORY, graph_failure(e, tenant)));
            None
        }
    };
    let target = match mailbox {
        Some(m) => Some(
            store
                .mailbox_by_address(tenant.id, m)
                .await?
                .map(|mb| (mb.address, mb.graph_id))
                .unwrap_or_else(|| (m.to_string(), m.to_string())),
        ),
        None => store
            .mailboxes(tenant.id)
            .await?
            .into_iter()
            .find(|m| m.enabled)
            .map(|m| (m.address, m.graph_id))
            .or_else(|| first_user.map(|u| (u.clone(), u))),
    };
    let Some((address, graph_id)) = target else {
        steps.push(failed("mailbox", MAILBOX, Failure::NoMailbox));
        return Ok(finish(tenant, steps));
    };
    let probe = Probe {
        delegated,
        kind,
        lacks_mail_read: lacks("Mail.Read"),
        permissions_known: perms.is_some(),
    };
    steps.push(probe.mailbox(&client, tenant, &address, &graph_id).await);
    Ok(finish(tenant, steps))
}

/// What the mailbox step needs to know of the token to name a refusal precisely.
#[derive(Debug, Clone, Copy)]
struct Probe {
    delegated: bool,
    kind: &'static str,
    lacks_mail_read: bool,
    permissions_known: bool,
}

impl Probe {
    /// Reads one message id of `address`'s inbox: the mailbox step of the checklist.
    async fn mailbox(
        self,
        client: &GraphClient,
        tenant: &Tenant,
        address: &str,
        graph_id: &str,
    ) -> Step {
        let url = format!(
            "users/{}/mailFolders/inbox/messages?$top=1&$select=id",
            utf8_percent_encode(graph_id, NON_ALPHANUMERIC)
        );
        let what = format!("read mailbox {address}");
        match client.get(address, &url, None).await {
            Ok(_) => passed("mailbox", format!("read the inbox of {address}")),
            Err(GraphError::AccessDenied { code, message, .. }) => {
                let failure = if self.lacks_mail_read {
                    Failure::MissingPermission {
                        permission: "Mail.Read".into(),
                        permission_type: self.kind.into(),
                        code,
                    }
                } else if !self.delegated
                    && (self.permissions_known || message.contains("AccessPolicy"))
                {
                    // App-only, the permission is granted, yet this mailbox refuses: the policy.
                    Failure::OutsideAccessPolicy {
                        mailbox: address.to_string(),
                        code,
                    }
                } else {
                    Failure::MailboxDenied {
                        mailbox: address.to_string(),
                        code,
                        message,
                    }
                };
                failed("mailbox", &what, failure)
            }
            Err(GraphError::NotFound { code, .. }) => failed(
                "mailbox",
                &what,
                Failure::MailboxNotFound {
                    mailbox: address.to_string(),
                    code,
                },
            ),
            Err(e) => failed("mailbox", &what, graph_failure(e, tenant)),
        }
    }
}

/// The mailbox step for each of `mailboxes` (address, Graph id), with one token and at most
/// [`MAILBOX_PROBES_AT_ONCE`] reads in flight: what `activate` runs over every enabled mailbox,
/// so a mailbox outside the access policy or gone from the directory is named before the
/// first run rather than found by it. A token that cannot be had fails every mailbox alike.
pub async fn test_mailboxes(
    store: &Store,
    tenant: &Tenant,
    http: reqwest::Client,
    mailboxes: Vec<(String, String)>,
) -> Result<Vec<(String, Step)>, StoreError> {
    let tokens = token_cache_for(store, tenant, http.clone()).await?;
    let perms = match tokens.token().await {
        Ok(token) => token_permissions(&token),
        Err(e) => {
            let failure = auth_failure(&e, tenant);
            return Ok(mailboxes
                .into_iter()
                .map(|(address, _)| (address, failed("token", TOKEN, failure.clone())))
                .collect());
        }
    };
    let delegated = tenant.auth_mode == AuthMode::Delegated;
    let probe = Probe {
        delegated,
        kind: if delegated {
            "a delegated"
        } else {
            "an application"
        },
        lacks_mail_read: perms
            .as_ref()
            .is_some_and(|t| !grants(&t.permissions, "Mail.Read")),
        permissions_known: perms.is_some(),
    };
    let client = Arc::new(admin_client(tenant, tokens, http));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAILBOX_PROBES_AT_ONCE));
    let mut probes = tokio::task::JoinSet::new();
    for (i, (address, graph_id)) in mailboxes.into_iter().enumerate() {
        let (client, slots, tenant) = (Arc::clone(&client), Arc::clone(&slots), tenant.clone());
        probes.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let step = probe.mailbox(&client, &tenant, &address, &graph_id).await;
            (i, address, step)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = probes.join_next().await {
        if let Ok(r) = done {
            results.push(r);
        }
    }
    results.sort_by_key(|r| r.0);
    Ok(results.into_iter().map(|(_, a, s)| (a, s)).collect())
}

/// Mailbox reads `test_mailboxes` keeps in flight: enough to test hundreds of mailboxes in
/// seconds, well under Graph's per-app limits.
pub const MAILBOX_PROBES_AT_ONCE: usize = 8;

fn finish(tenant: &Tenant, steps: Vec<Step>) -> Report {
    Report {
        tenant: format!("{}/{}", tenant.org, tenant.name),
        auth_mode: tenant.auth_mode,
        ok: steps.iter().all(|s| s.status == Status::Passed),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broader_permissions_imply_narrower_ones() {
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(grants(&g(&["Mail.ReadWrite"]), "Mail.Read"));
        assert!(grants(&g(&["Directory.Read.All"]), "User.Read.All"));
        assert!(!grants(&g(&["Mail.Send"]), "Mail.Read"));
        assert!(!grants(&g(&["Calendars.ReadWrite"]), "User.Read.All"));
    }

    #[test]
    fn token_permissions_reads_roles_and_scopes() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"roles":["Mail.Read"],"scp":"User.Read.All","upn":"a@b.example"}"#);
        let p = token_permissions(&format!("h.{payload}.s")).unwrap();
        assert_eq!(p.permissions, ["Mail.Read", "User.Read.All"]);
        assert_eq!(p.user.as_deref(), Some("a@b.example"));
        assert!(token_permissions("opaque").is_none());
    }
}
