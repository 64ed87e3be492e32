//! Declaring a tenant (the setup's first step): its app registration and client secret, as
//! `m365sync tenant add` and the console's setup assistant (`POST /api/orgs/{org}/tenants`)
//! both do it. The secret is sealed in the store at once and never returned, logged or put in
//! an error: nothing here formats it.

use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, Tenant};
use m365sync_store::{Store, StoreError};
use serde::Serialize;

/// Microsoft's identity platform, the authority unless another cloud is named.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Microsoft Graph's base URL unless another cloud is named.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// What a new tenant is declared with. `Debug` leaves the secret out, so a stray `{:?}` in a
/// log line cannot leak it.
pub struct Declaration {
    /// The org (the firm); created if it does not exist yet.
    pub org: String,
    /// Our name for the tenant, unique within the org.
    pub name: String,
    /// The Entra tenant id (GUID) or a verified domain.
    pub ms_tenant: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The client secret's value (not its id).
    pub secret: String,
    /// A name for the secret, to tell it apart when rotating.
    pub secret_label: String,
    /// The identity platform ([`DEFAULT_AUTHORITY`] unless another cloud).
    pub authority: String,
    /// Microsoft Graph's base URL ([`DEFAULT_GRAPH_URL`] unless another cloud).
    pub graph_url: String,
    /// Delegated (an admin account's refresh token, `tenant authorize`) instead of app-only.
    pub delegated: bool,
}

impl std::fmt::Debug for Declaration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declaration")
            .field("org", &self.org)
            .field("name", &self.name)
            .field("ms_tenant", &self.ms_tenant)
            .field("client_id", &self.client_id)
            .field("secret", &"<sealed>")
            .field("secret_label", &self.secret_label)
            .field("authority", &self.authority)
            .field("graph_url", &self.graph_url)
            .field("delegated", &self.delegated)
            .finish()
    }
}

/// Why a tenant was not declared.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The name is taken in the org: declaring again would silently replace its app.
    #[error("tenant {name} already exists in org {org}; `m365sync tenant secret add` adds a secret, `m365sync apply` changes a declaration")]
    Exists {
        /// The org.
        org: String,
        /// The tenant's name.
        name: String,
    },
    /// A field is missing or malformed; the message names it and says what to give.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What declaring did.
#[derive(Debug, Clone, Serialize)]
pub struct Declared {
    /// The tenant as stored (no secret in it).
    pub tenant: Tenant,
    /// The label the secret was stored under.
    pub secret_label: String,
    /// The internal domains taken from the tenant's verified domains (E7), when they could be
    /// read and the tenant had none.
    pub internal_domains: Option<Vec<String>>,
    /// Why the verified domains could not be read (credentials not consented yet, a wrong
    /// secret): not an error, `activate` takes them later.
    pub internal_domains_note: Option<String>,
    /// The command that comes next (`tenant test`, or `tenant authorize` when delegated).
    pub next: String,
}

fn required(field: &str, value: &str, what: &str) -> Result<String, DeclareError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DeclareError::Invalid(format!(
            "{field} is empty: give {what}"
        )));
    }
    Ok(v.to_string())
}

fn base_url(field: &str, value: &str) -> Result<String, DeclareError> {
    let v = value.trim().trim_end_matches('/');
    match reqwest::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(v.to_string()),
        _ => Err(DeclareError::Invalid(format!(
            "{field} '{v}' is not an http(s) address; leave it out for Microsoft's public cloud"
        ))),
    }
}

/// Declares a new tenant in `d.org` (created if needed), seals its client secret, and, for an
/// app-only tenant, takes its verified domains as its internal domains when Microsoft answers
/// (best effort: the app may not be consented yet). A name already used in the org is refused:
/// rotating a secret or changing the app are other commands, never a second declaration.
/// Syncing starts only after activation.
pub async fn declare_tenant(
    store: &Store,
    http: reqwest::Client,
    d: &Declaration,
) -> Result<Declared, DeclareError> {
    let org = required("org", &d.org, "the org's name")?;
    let name = required(
        "name",
        &d.name,
        "a name for the tenant, unique within the org",
    )?;
    if name.contains('/') {
        return Err(DeclareError::Invalid(format!(
            "name '{name}' has a '/'; a tenant's name is one word of the org's paths (like eu or main)"
        )));
    }
    let ms_tenant = required(
        "ms_tenant",
        &d.ms_tenant,
        "the Microsoft (Entra) tenant id, a GUID, or a verified domain",
    )?;
    let client_id = required(
        "client_id",
        &d.client_id,
        "the app registration's application (client) id",
    )?;
    if d.secret.trim().is_empty() {
        return Err(DeclareError::Invalid(
            "the client secret is empty; copy the secret's value (not its id) from Entra".into(),
        ));
    }
    let secret_label = required(
        "secret_label",
        &d.secret_label,
        "a name for the secret (e.g. its expiry month)",
    )?;
    let authority = base_url("authority", &d.authority)?;
    let graph_url = base_url("graph_url", &d.graph_url)?;
    if store.tenant(&org, &name).await.is_ok() {
        return Err(DeclareError::Exists { org, name });
    }
    let t = store
        .upsert_tenant(&NewTenant {
            org: org.clone(),
            name: name.clone(),
            ms_tenant,
            authority,
            graph_url,
            client_id,
            auth_mode: if d.delegated {
                AuthMode::Delegated
            } else {
                AuthMode::App
            },
        })
        .await?;
    store
        .put_secret(
            t.id,
            SecretKind::ClientSecret,
            &secret_label,
            d.secret.trim(),
        )
        .await?;
    let (mut internal_domains, mut internal_domains_note) = (None, None);
    if !d.delegated {
        // E7 for every tenant: its verified domains are its internal domains until an admin
        // says otherwise.
        match super::settings::fill_internal_domains(store, &t, http).await {
            Ok(found) => internal_domains = found,
            Err(e) => {
                internal_domains_note = Some(format!(
                    "the tenant's verified domains could not be read yet ({e}); activation takes them, or set them with `m365sync tenant settings --internal-domains`"
                ))
            }
        }
    }
    let next = if d.delegated {
        "tenant authorize"
    } else {
        "tenant test"
    };
    Ok(Declared {
        tenant: store.tenant_by_id(t.id).await?,
        secret_label,
        internal_domains,
        internal_domains_note,
        next: format!("m365sync {next} --org {org} --tenant {name}"),
    })
}
