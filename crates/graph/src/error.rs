//! What can go wrong talking to Microsoft Graph and the identity platform, classified by what
//! the caller should do about it.

/// Why getting a token failed, as precisely as Entra says (E11).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Entra refused every stored client secret as wrong (AADSTS7000215): often a secret's
    /// id pasted where its value belongs.
    #[error("tenant {tenant}: the client secret is wrong (AADSTS{code}): no stored secret is valid for this app; add the secret's value (not its id) with `m365sync tenant secret add --org ORG --tenant TENANT --label LABEL --secret-file FILE`")]
    WrongSecret {
        /// Our name for the tenant.
        tenant: String,
        /// The AADSTS code of the last secret tried (7000215).
        code: u32,
    },
    /// Entra answered that a stored client secret has passed its end date (AADSTS7000222) and
    /// no other stored secret was accepted: only a new secret helps, so this is told apart
    /// from a wrong one, whose fix (the value instead of the id) differs.
    #[error("tenant {tenant}: the client secret has expired (AADSTS7000222){}: create a new one in Entra (App registrations > Certificates & secrets) and add it with `m365sync tenant secret add --org ORG --tenant TENANT --label LABEL --secret-file FILE`", others_wrong_text(*others_wrong))]
    ExpiredSecret {
        /// Our name for the tenant.
        tenant: String,
        /// Other stored secrets Entra refused as wrong (AADSTS7000215) in the same round.
        others_wrong: usize,
    },
    /// The tenant's directory has no app with this client id (AADSTS700016).
    #[error("tenant {tenant}: no app with client id {client_id} in that directory (AADSTS700016); check the client id and that an admin consented to the app")]
    UnknownApp {
        /// Our name for the tenant.
        tenant: String,
        /// The client id asked for.
        client_id: String,
    },
    /// The Entra tenant id or domain does not exist (AADSTS90002).
    #[error("tenant {tenant}: the directory does not exist (AADSTS90002); check the tenant id or domain")]
    UnknownTenant {
        /// Our name for the tenant.
        tenant: String,
    },
    /// The grant was refused as `invalid_grant`: for a delegated tenant, its refresh token has
    /// expired or was revoked, and only a new authorization helps (A2).
    #[error("tenant {tenant}: the refresh token has expired or was revoked (AADSTS{code}); authorize again with `m365sync tenant authorize`")]
    RefreshExpired {
        /// Our name for the tenant.
        tenant: String,
        /// The AADSTS code of the answer (0 when it had none).
        code: u32,
    },
    /// No client secret is stored for the tenant, so no token can be asked for.
    #[error(
        "tenant {tenant}: no client secret is stored; add one with `m365sync tenant secret add`"
    )]
    NoSecret {
        /// Our name for the tenant.
        tenant: String,
    },
    /// A delegated tenant no admin has authorized yet: there is no refresh token
    /// ([`TokenCache::unauthorized`](crate::TokenCache::unauthorized)).
    #[error("tenant {tenant}: delegated, but no admin has authorized it yet; run `m365sync tenant authorize`")]
    NotAuthorized {
        /// Our name for the tenant.
        tenant: String,
    },
    /// Any other refusal of the token request.
    #[error(
        "tenant {tenant}: the identity platform refused the token request: {error} (AADSTS{code})"
    )]
    Refused {
        /// Our name for the tenant.
        tenant: String,
        /// The OAuth error code (`invalid_client`, `unauthorized_client`, ...).
        error: String,
        /// The AADSTS code of the answer (0 when it had none).
        code: u32,
    },
    /// The identity platform could not be reached, or its answer could not be read: the one
    /// error worth retrying later ([`AuthError::is_transient`]).
    #[error("tenant {tenant}: cannot reach the identity platform at {authority}: {detail}")]
    Unreachable {
        /// Our name for the tenant.
        tenant: String,
        /// The authority asked ([`AppCredentials::authority`](crate::AppCredentials::authority)).
        authority: String,
        /// The transport's or the parser's error.
        detail: String,
    },
}

fn others_wrong_text(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => " and the other stored secret is wrong".into(),
        n => format!(" and the {n} other stored secrets are wrong"),
    }
}

impl AuthError {
    /// The AADSTS code Entra answered with, when there was one.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            AuthError::WrongSecret { code, .. }
            | AuthError::RefreshExpired { code, .. }
            | AuthError::Refused { code, .. } => Some(*code),
            AuthError::ExpiredSecret { .. } => Some(7000222),
            AuthError::UnknownApp { .. } => Some(700016),
            AuthError::UnknownTenant { .. } => Some(90002),
            _ => None,
        }
    }

    /// True when retrying later may help (network trouble), false for configuration problems.
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Unreachable { .. })
    }
}

/// The two ids that name one Graph request: ours (`client-request-id`, sent with it) and
/// Graph's (`request-id`, in its answer). Microsoft support asks for both (with the time) to
/// find a request in its logs, so every error of a request that got this far carries them,
/// and its message ends with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// The `client-request-id` this client sent: a fresh UUID per attempt.
    pub client_request_id: String,
    /// The `request-id` Graph answered with; `None` when no answer came (network error).
    pub request_id: Option<String>,
}

impl std::fmt::Display for RequestIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.client_request_id.is_empty() {
            // The last attempt never got as far as Graph (no token could be had).
            return f.write_str("no Graph request was sent");
        }
        match &self.request_id {
            Some(r) => write!(
                f,
                "request-id {r}, client-request-id {}",
                self.client_request_id
            ),
            None => write!(f, "no answer; client-request-id {}", self.client_request_id),
        }
    }
}

/// A Graph request that did not succeed after the client's retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// No token could be had for the request: see the [`AuthError`].
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 403: the app may not read this mailbox (application access policy, A3) or lacks a permission.
    #[error("mailbox {mailbox}: access denied ({code}): {message}; check the app's permissions and any Exchange application access policy ({ids})")]
    AccessDenied {
        /// The mailbox the request was for.
        mailbox: String,
        /// Graph's `error.code` (`ErrorAccessDenied`, ...).
        code: String,
        /// Graph's `error.message`, at most 300 characters.
        message: String,
        /// The request's ids, for a support case (boxed: errors travel in `Result`s).
        ids: Box<RequestIds>,
    },
    /// 404 of a user or item.
    #[error("mailbox {mailbox}: not found ({code}): {message} ({ids})")]
    NotFound {
        /// The mailbox the request was for.
        mailbox: String,
        /// Graph's `error.code` (`ErrorItemNotFound`, ...).
        code: String,
        /// Graph's `error.message`, at most 300 characters.
        message: String,
        /// The request's ids, for a support case (boxed: errors travel in `Result`s).
        ids: Box<RequestIds>,
    },
    /// 410: the delta state is gone; restart the folder's round.
    #[error("mailbox {mailbox}: the delta state expired (SyncStateNotFound); the folder restarts with a full round")]
    SyncStateNotFound {
        /// The mailbox the request was for.
        mailbox: String,
        /// The answer's `Location` header, when Graph sent one.
        location: Option<String>,
    },
    /// Still throttled or failing after every retry.
    #[error(
        "mailbox {mailbox}: Graph kept answering {status} after {attempts} attempts: {message} (last attempt: {ids})"
    )]
    Exhausted {
        /// The mailbox the request was for.
        mailbox: String,
        /// The last attempt's status (0: it got no answer, or no token).
        status: u16,
        /// Attempts made ([`ClientConfig::max_attempts`](crate::ClientConfig::max_attempts)).
        attempts: u32,
        /// Why the last attempt failed.
        message: String,
        /// The request's ids, for a support case (boxed: errors travel in `Result`s).
        ids: Box<RequestIds>,
    },
    /// Any other refusal.
    #[error("mailbox {mailbox}: Graph answered {status} {code}: {message} ({ids})")]
    Other {
        /// The mailbox the request was for.
        mailbox: String,
        /// The answer's HTTP status.
        status: u16,
        /// Graph's `error.code` (`unknown` when the body had none).
        code: String,
        /// Graph's `error.message` (else the body), at most 300 characters.
        message: String,
        /// The request's ids, for a support case (boxed: errors travel in `Result`s).
        ids: Box<RequestIds>,
    },
    /// The answer was not the JSON Graph promises.
    #[error("mailbox {mailbox}: Graph's answer could not be read: {detail}")]
    Malformed {
        /// The mailbox the request was for.
        mailbox: String,
        /// What is wrong with the answer.
        detail: String,
    },
}

impl GraphError {
    /// The ids of the request that failed, when it was sent (not for a token failure or an
    /// answer found unusable after it was accepted).
    pub fn request_ids(&self) -> Option<&RequestIds> {
        match self {
            GraphError::AccessDenied { ids, .. }
            | GraphError::NotFound { ids, .. }
            | GraphError::Exhausted { ids, .. }
            | GraphError::Other { ids, .. } => Some(ids.as_ref()),
            _ => None,
        }
    }

    /// True for errors that are this mailbox's alone (the tenant's other mailboxes go on).
    pub fn is_mailbox_scoped(&self) -> bool {
        matches!(
            self,
            GraphError::AccessDenied { .. } | GraphError::NotFound { .. }
        )
    }
}
