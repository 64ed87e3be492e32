//! Who is calling the admin API, and what they may reach (E12).
//!
//! Three kinds of bearer token: the service's admin token (everything), an org admin token
//! (everything of one org), and a user token (that user's review list, their personal exclusion
//! rules, their own calendar's events, and read access to their org's contacts to map mail to). Scope is checked before any
//! read, and a record outside the caller's scope answers 404 exactly as a missing one does, so
//! ids of other orgs cannot even be probed.

use m365sync_store::tokens::TokenRole;
use m365sync_store::{Store, StoreError};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The service's own admin token.
    Admin,
    /// An org's admin token.
    OrgAdmin { org_id: i64, org: String },
    /// A CRM user's token.
    User {
        org_id: i64,
        org: String,
        tenant_id: i64,
        tenant: String,
        user_id: i64,
        email: String,
    },
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("send a token as 'Authorization: Bearer TOKEN': the service admin token (admin_token_file in m365sync.toml), an org admin token or a user token (`m365sync token create`)")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Resolves a bearer token to its actor.
pub async fn authenticate(
    store: &Store,
    admin_token: &str,
    bearer: Option<&str>,
) -> Result<Actor, AccessError> {
    let token = bearer
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AccessError::Unauthenticated)?;
    if same_secret(token, admin_token) {
        return Ok(Actor::Admin);
    }
    match store.token_role(token).await? {
        Some(TokenRole::OrgAdmin { org_id, org }) => Ok(Actor::OrgAdmin { org_id, org }),
        Some(TokenRole::User {
            org_id,
            org,
            tenant_id,
            tenant,
            user_id,
            email,
        }) => Ok(Actor::User {
            org_id,
            org,
            tenant_id,
            tenant,
            user_id,
            email,
        }),
        None => Err(AccessError::Unauthenticated),
    }
}

impl Actor {
    /// The service admin only: process-wide views (metrics, leases, every org's retries).
    pub fn require_service_admin(&self) -> Result<(), AccessError> {
        match self {
            Actor::Admin => Ok(()),
            _ => Err(AccessError::Forbidden(
                "this endpoint needs the service's admin token".into(),
            )),
        }
    }

    /// An admin's role (the service's or an org's), whatever the org: a user token is refused
    /// for its role (403) before any record is looked up, so every admin route refuses a user
    /// the same way, whether or not the record it names exists.
    pub fn require_admin_role(&self) -> Result<(), AccessError> {
        match self {
            Actor::Admin | Actor::OrgAdmin { .. } => Ok(()),
            Actor::User { .. } => Err(AccessError::Forbidden(
                "a user token reaches only /api/me (the user's review list, personal rules and events)"
                    .into(),
            )),
        }
    }

    /// Admin rights over the org named `org`. Another org's admin is answered as if the org
    /// did not exist (404 with the store's own words), so a token never learns which other
    /// orgs the service holds; a user token is refused for its role (403).
    pub fn require_org_admin(&self, org: &str) -> Result<(), AccessError> {
        match self {
            Actor::Admin => Ok(()),
            Actor::OrgAdmin { org: mine, .. } if mine == org => Ok(()),
            Actor::OrgAdmin { .. } => Err(AccessError::Store(no_org(org))),
            Actor::User { .. } => self.require_admin_role(),
        }
    }

    /// Admin rights over the org with id `org_id` (for records found by id). Outside an org
    /// admin's org this is `missing`: the store's own words for a record that does not exist,
    /// so the answers cannot be told apart; a user token is refused for its role (403), as on
    /// every admin route.
    pub fn require_org_admin_id(
        &self,
        org_id: i64,
        missing: impl FnOnce() -> StoreError,
    ) -> Result<(), AccessError> {
        match self {
            Actor::Admin => Ok(()),
            Actor::OrgAdmin { org_id: mine, .. } if *mine == org_id => Ok(()),
            Actor::OrgAdmin { .. } => Err(AccessError::Store(missing())),
            Actor::User { .. } => self.require_admin_role(),
        }
    }

    /// The org an org admin is confined to (none for the service admin).
    pub fn org_filter(&self) -> Option<&str> {
        match self {
            Actor::OrgAdmin { org, .. } | Actor::User { org, .. } => Some(org),
            Actor::Admin => None,
        }
    }

    /// The org a listing is narrowed to: the one the query names (`?org=`), which must be the
    /// caller's own if the caller is confined to one (another answers 404, as a missing org
    /// does, never silently the caller's own), else the caller's org, else none.
    pub fn listing_org<'a>(
        &'a self,
        asked: Option<&'a str>,
    ) -> Result<Option<&'a str>, AccessError> {
        match (self.org_filter(), asked) {
            (Some(mine), Some(asked)) if mine != asked => Err(AccessError::Store(no_org(asked))),
            (Some(mine), _) => Ok(Some(mine)),
            (None, asked) => Ok(asked),
        }
    }
}

/// The answer for an org a caller may not see: word for word what the store says of an org
/// that does not exist.
fn no_org(org: &str) -> StoreError {
    StoreError::NotFound(format!("no org '{org}'; declare it with `m365sync apply`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_admins_are_confined_to_their_org() {
        let a = Actor::OrgAdmin {
            org_id: 1,
            org: "acme".into(),
        };
        assert!(a.require_org_admin("acme").is_ok());
        assert!(matches!(
            a.require_org_admin("globex"),
            Err(AccessError::Store(StoreError::NotFound(_)))
        ));
        assert_eq!(a.listing_org(None).unwrap(), Some("acme"));
        assert_eq!(a.listing_org(Some("acme")).unwrap(), Some("acme"));
        assert!(a.listing_org(Some("globex")).is_err());
        assert_eq!(
            Actor::Admin.listing_org(Some("globex")).unwrap(),
            Some("globex")
        );
        let missing = || StoreError::NotFound("no run 5".into());
        assert!(a.require_org_admin_id(1, missing).is_ok());
        assert!(matches!(
            a.require_org_admin_id(2, missing),
            Err(AccessError::Store(StoreError::NotFound(_)))
        ));
        assert!(a.require_service_admin().is_err());
        assert!(Actor::Admin.require_org_admin("globex").is_ok());
    }

    #[test]
    fn users_reach_no_admin_endpoint() {
        let u = Actor::User {
            org_id: 1,
            org: "acme".into(),
            tenant_id: 1,
            tenant: "eu".into(),
            user_id: 3,
            email: "alice@acme.example".into(),
        };
        assert!(matches!(
            u.require_org_admin("acme"),
            Err(AccessError::Forbidden(_))
        ));
        assert!(matches!(
            u.require_org_admin_id(1, || StoreError::NotFound("no run 1".into())),
            Err(AccessError::Forbidden(_))
        ));
        assert!(matches!(
            u.require_admin_role(),
            Err(AccessError::Forbidden(_))
        ));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
