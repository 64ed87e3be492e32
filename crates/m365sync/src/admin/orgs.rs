//! Creating an org (a firm) before its first tenant: the console's setup assistant ("New org",
//! `POST /api/orgs`, the service admin only). `apply` and `tenant add` create an org on the
//! way, as a side effect of declaring a tenant in it; a page needs the org first, because every
//! other setup route is under `/api/orgs/{org}/` and refuses an org that does not exist.

use m365sync_store::{Store, StoreError};
use serde::Serialize;

/// The longest org name: it is part of every path and every `--org` argument.
pub const MAX_ORG_NAME: usize = 64;

/// Why an org was not created.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// The name is taken: the org exists already (its tenants are declared under it).
    #[error("org {0} already exists; declare its tenants under it")]
    Exists(String),
    /// The name cannot be an org's: the message says what a name may hold.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new org.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// Its id.
    pub id: i64,
    /// Its name, as stored (trimmed).
    pub name: String,
    /// What comes next.
    pub next: String,
}

/// Checks an org's name: one word of letters, digits, `-`, `_` or `.`, starting with a letter
/// or digit, at most [`MAX_ORG_NAME`] characters, because it is a path segment of the API and
/// the console and an argument of every command.
pub fn check_org_name(name: &str) -> Result<String, OrgError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(OrgError::Invalid(
            "name is empty: give the org's (the firm's) name, like acme".into(),
        ));
    }
    if n.chars().count() > MAX_ORG_NAME {
        return Err(OrgError::Invalid(format!(
            "name is longer than {MAX_ORG_NAME} characters: give a short name, like acme"
        )));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !n.chars().all(ok_char) || !n.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(OrgError::Invalid(format!(
            "name '{n}' is not one word of letters, digits, '-', '_' or '.' starting with a letter or digit: an org's name is part of its paths (like acme or acme-eu)"
        )));
    }
    Ok(n.to_string())
}

/// Creates org `name`, refusing a name taken already (creating it twice would look like
/// success while another firm's org is meant).
pub async fn create_org(store: &Store, name: &str) -> Result<Created, OrgError> {
    let name = check_org_name(name)?;
    match store.create_org(&name).await? {
        Some(id) => Ok(Created {
            id,
            next: format!("declare the org's first tenant (`m365sync tenant add --org {name}` or the setup assistant)"),
            name,
        }),
        None => Err(OrgError::Exists(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_word() {
        assert_eq!(check_org_name(" acme ").unwrap(), "acme");
        assert_eq!(check_org_name("acme-eu.2").unwrap(), "acme-eu.2");
        for bad in ["", "  ", "a/b", "a b", "-acme", "acmé", &"x".repeat(65)] {
            assert!(
                matches!(check_org_name(bad), Err(OrgError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
