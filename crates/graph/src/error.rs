//! What can go wrong talking to Microsoft Graph and the identity platform, classified by what
//! the caller should do about it.

/// Why getting a token failed, as precisely as Entra says (E11).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("tenant {tenant}: {} (AADSTS{code}); add a current secret with `m365sync tenant secret add`", wrong_secret(code))]
    WrongSecret { tenant: String, code: u32 },
    #[error("tenant {tenant}: no app with client id {client_id} in that directory (AADSTS700016); check the client id and that an admin consented to the app")]
    UnknownApp { tenant: String, client_id: String },
    #[error("tenant {tenant}: the directory does not exist (AADSTS90002); check the tenant id or domain")]
    UnknownTenant { tenant: String },
    #[error("tenant {tenant}: the refresh token has expired or was revoked (AADSTS{code}); authorize again with `m365sync tenant authorize`")]
    RefreshExpired { tenant: String, code: u32 },
    #[error(
        "tenant {tenant}: no client secret is stored; add one with `m365sync tenant secret add`"
    )]
    NoSecret { tenant: String },
    #[error("tenant {tenant}: delegated, but no admin has authorized it yet; run `m365sync tenant authorize`")]
    NotAuthorized { tenant: String },
    #[error(
        "tenant {tenant}: the identity platform refused the token request: {error} (AADSTS{code})"
    )]
    Refused {
        tenant: String,
        error: String,
        code: u32,
    },
    #[error("tenant {tenant}: cannot reach the identity platform at {authority}: {detail}")]
    Unreachable {
        tenant: String,
        authority: String,
        detail: String,
    },
}

fn wrong_secret(code: &u32) -> &'static str {
    if *code == 7000222 {
        "every stored client secret has expired"
    } else {
        "the client secret is wrong (no stored secret is valid for this app)"
    }
}

impl AuthError {
    /// The AADSTS code Entra answered with, when there was one.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            AuthError::WrongSecret { code, .. }
            | AuthError::RefreshExpired { code, .. }
            | AuthError::Refused { code, .. } => Some(*code),
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

/// A Graph request that did not succeed after the client's retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 403: the app may not read this mailbox (application access policy, A3) or lacks a permission.
    #[error("mailbox {mailbox}: access denied ({code}): {message}; check the app's permissions and any Exchange application access policy")]
    AccessDenied {
        mailbox: String,
        code: String,
        message: String,
    },
    /// 404 of a user or item.
    #[error("mailbox {mailbox}: not found ({code}): {message}")]
    NotFound {
        mailbox: String,
        code: String,
        message: String,
    },
    /// 410: the delta state is gone; restart the folder's round.
    #[error("mailbox {mailbox}: the delta state expired (SyncStateNotFound); the folder restarts with a full round")]
    SyncStateNotFound {
        mailbox: String,
        location: Option<String>,
    },
    /// Still throttled or failing after every retry.
    #[error(
        "mailbox {mailbox}: Graph kept answering {status} after {attempts} attempts: {message}"
    )]
    Exhausted {
        mailbox: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    /// Any other refusal.
    #[error("mailbox {mailbox}: Graph answered {status} {code}: {message}")]
    Other {
        mailbox: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The answer was not the JSON Graph promises.
    #[error("mailbox {mailbox}: Graph's answer could not be read: {detail}")]
    Malformed { mailbox: String, detail: String },
}

impl GraphError {
    /// True for errors that are this mailbox's alone (the tenant's other mailboxes go on).
    pub fn is_mailbox_scoped(&self) -> bool {
        matches!(
            self,
            GraphError::AccessDenied { .. } | GraphError::NotFound { .. }
        )
    }
}
