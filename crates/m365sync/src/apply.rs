//! `m365sync apply FILE`: declares orgs, tenants, their secrets and settings, users, mailboxes
//! and rules. Applying the same file twice changes nothing; a new tenant in the file is synced
//! by a running service without a restart (T4), because the service reads tenants from the
//! database.
//!
//! ```toml
//! [[org]]
//! name = "acme"
//! rules = [{ effect = "exclude", target = "any_address", pattern = "*@salesforce.com" }]
//!
//! [[org.tenant]]
//! name = "main"
//! ms_tenant = "contoso.example"            # Entra tenant id or domain
//! client_id = "11111111-2222-4333-8444-555555555555"
//! secrets = [{ label = "2026-06", env = "ACME_MAIN_SECRET" }]   # or file = "...", or value = "..."
//! settings = { cadence_minutes = 15, internal_domains = ["contoso.example"] }
//!
//! [[org.tenant.user]]
//! email = "alice@contoso.example"
//! name = "Alice Adams"
//! mailboxes = ["alice@contoso.example"]
//! shared_mailboxes = ["info@contoso.example"]
//! rules = [{ effect = "include", target = "sender", pattern = "*@salesforce.com" }]
//! ```

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::admin::settings::SettingsChange;
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::rules::{RuleScope, RuleSpec};
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, TenantSettings};
use m365sync_store::{Store, StoreError};

/// Why a declaration could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The declaration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not TOML of the declaration's shape (unknown fields are refused).
    #[error("{path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message, with its position.
        message: String,
    },
    /// A tenant's entry cannot be applied (a secret's variable unset or file unreadable, a
    /// bad setting); found before anything is written, so a bad file changes nothing.
    #[error("{path}: org {org}, tenant {tenant}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The org's name.
        org: String,
        /// The tenant's name.
        tenant: String,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declaration {
    #[serde(rename = "org")]
    orgs: Vec<OrgDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgDecl {
    name: String,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    #[serde(default, rename = "tenant")]
    tenants: Vec<TenantDecl>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantDecl {
    name: String,
    ms_tenant: String,
    client_id: String,
    #[serde(default = "default_authority")]
    authority: String,
    #[serde(default = "default_graph")]
    graph_url: String,
    #[serde(default = "app")]
    auth: AuthMode,
    #[serde(default)]
    secrets: Vec<SecretDecl>,
    #[serde(default)]
    settings: Option<SettingsDecl>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    #[serde(default, rename = "user")]
    users: Vec<UserDecl>,
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}

fn default_graph() -> String {
    "https://graph.microsoft.com/v1.0".into()
}

fn app() -> AuthMode {
    AuthMode::App
}

/// A secret comes from the environment or a file, so the declaration can live in git; a
/// literal `value` is accepted for sandboxes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretDecl {
    label: String,
    env: Option<String>,
    file: Option<PathBuf>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsDecl {
    cadence_minutes: Option<i64>,
    /// `YYYY-MM-DD`; absent means six months before activation.
    commencement: Option<NaiveDate>,
    internal_domains: Option<Vec<String>>,
    skip_internal_only: Option<bool>,
    attachment_cap_bytes: Option<i64>,
    folders: Option<Vec<String>>,
    excluded_folders: Option<Vec<String>>,
    page_size: Option<i64>,
    max_concurrency: Option<i64>,
    failure_attempts: Option<i64>,
    mailbox_budget: Option<i64>,
    mailbox_budget_secs: Option<i64>,
    notifications: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDecl {
    email: String,
    name: String,
    #[serde(default)]
    mailboxes: Vec<String>,
    #[serde(default)]
    shared_mailboxes: Vec<String>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

/// What an apply changed.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ApplyReport {
    /// Orgs declared (created or already there).
    pub orgs: usize,
    /// Tenants declared (created or updated).
    pub tenants: usize,
    /// Client secrets stored.
    pub secrets: usize,
    /// CRM users declared.
    pub users: usize,
    /// Mailboxes declared, own and shared.
    pub mailboxes: usize,
    /// Exclusion rules new at some scope.
    pub rules_added: usize,
    /// Exclusion rules gone from the file and so removed.
    pub rules_removed: usize,
}

/// Reads and applies a declaration file.
pub async fn apply_file(store: &Store, path: &Path) -> Result<ApplyReport, ApplyError> {
    let text = std::fs::read_to_string(path).map_err(|source| ApplyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    apply_text(store, &text, path).await
}

/// Applies declaration text; `path` names it in errors and anchors relative secret files.
pub async fn apply_text(store: &Store, text: &str, path: &Path) -> Result<ApplyReport, ApplyError> {
    let decl: Declaration = toml::from_str(text).map_err(|e| ApplyError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // Check everything that can be checked before writing anything, so a bad file changes nothing.
    let mut resolved = Vec::new();
    for org in &decl.orgs {
        for t in &org.tenants {
            let invalid = |message: String| ApplyError::Invalid {
                path: path.to_path_buf(),
                org: org.name.clone(),
                tenant: t.name.clone(),
                message,
            };
            let mut secrets = Vec::new();
            for s in &t.secrets {
                let value = match (&s.env, &s.file, &s.value) {
                    (Some(var), None, None) => std::env::var(var).map_err(|_| {
                        invalid(format!(
                            "secret '{}': environment variable {var} is not set",
                            s.label
                        ))
                    })?,
                    (None, Some(file), None) => {
                        let file = path.parent().unwrap_or(Path::new(".")).join(file);
                        std::fs::read_to_string(&file)
                            .map_err(|e| {
                                invalid(format!(
                                    "secret '{}': cannot read {}: {e}",
                                    s.label,
                                    file.display()
                                ))
                            })?
                            .trim()
                            .to_string()
                    }
                    (None, None, Some(v)) => v.clone(),
                    _ => {
                        return Err(invalid(format!(
                            "secret '{}' needs exactly one of env, file or value",
                            s.label
                        )))
                    }
                };
                secrets.push((s.label.clone(), value));
            }
            // Only the settings the file names change; the others keep their stored value.
            let settings = match &t.settings {
                None => SettingsChange::default(),
                Some(s) => SettingsChange {
                    cadence_minutes: s.cadence_minutes,
                    commencement_ms: s.commencement.map(|d| {
                        Some(
                            Utc.from_utc_datetime(
                                &d.and_hms_opt(0, 0, 0).expect("midnight exists"),
                            )
                            .timestamp_millis(),
                        )
                    }),
                    internal_domains: s.internal_domains.clone(),
                    skip_internal_only: s.skip_internal_only,
                    attachment_cap_bytes: s.attachment_cap_bytes,
                    folders: s.folders.clone(),
                    excluded_folders: s.excluded_folders.clone(),
                    page_size: s.page_size,
                    max_concurrency: s.max_concurrency,
                    failure_attempts: s.failure_attempts,
                    mailbox_budget: s.mailbox_budget,
                    mailbox_budget_secs: s.mailbox_budget_secs,
                    notifications: s.notifications,
                },
            };
            settings
                .applied_to(TenantSettings::default())
                .validate()
                .map_err(invalid)?;
            for u in &t.users {
                for m in u
                    .mailboxes
                    .iter()
                    .chain(&u.shared_mailboxes)
                    .chain(std::iter::once(&u.email))
                {
                    if !m.contains('@') {
                        return Err(invalid(format!(
                            "user {}: '{m}' is not an email address",
                            u.email
                        )));
                    }
                }
            }
            resolved.push((secrets, settings));
        }
    }
    let mut report = ApplyReport::default();
    let mut resolved = resolved.into_iter();
    for org in &decl.orgs {
        let org_id = store.ensure_org(&org.name).await?;
        report.orgs += 1;
        let (a, r) = store
            .replace_rules(RuleScope::Org { org_id }, &org.rules)
            .await?;
        (report.rules_added, report.rules_removed) =
            (report.rules_added + a, report.rules_removed + r);
        for t in &org.tenants {
            let (secrets, settings) = resolved.next().expect("one resolved entry per tenant");
            let tenant = store
                .upsert_tenant(&NewTenant {
                    org: org.name.clone(),
                    name: t.name.clone(),
                    ms_tenant: t.ms_tenant.clone(),
                    authority: t.authority.clone(),
                    graph_url: t.graph_url.clone(),
                    client_id: t.client_id.clone(),
                    auth_mode: t.auth,
                })
                .await?;
            report.tenants += 1;
            for (label, value) in &secrets {
                store
                    .put_secret(tenant.id, SecretKind::ClientSecret, label, value)
                    .await?;
                report.secrets += 1;
            }
            crate::admin::settings::change_settings(store, &tenant, &settings).await?;
            let scope = RuleScope::Tenant {
                org_id,
                tenant_id: tenant.id,
            };
            let (a, r) = store.replace_rules(scope, &t.rules).await?;
            (report.rules_added, report.rules_removed) =
                (report.rules_added + a, report.rules_removed + r);
            for u in &t.users {
                let user_id = store.upsert_user(tenant.id, &u.email, &u.name).await?;
                report.users += 1;
                let own = u.mailboxes.iter().map(|m| (m, MailboxKind::Person));
                for (address, kind) in
                    own.chain(u.shared_mailboxes.iter().map(|m| (m, MailboxKind::Shared)))
                {
                    // The address serves as the Graph id until the first sync resolves the object id.
                    let mailbox_id = store
                        .upsert_mailbox(&NewMailbox {
                            tenant_id: tenant.id,
                            graph_id: address.to_ascii_lowercase(),
                            address: address.clone(),
                            display_name: address.clone(),
                            kind,
                        })
                        .await?;
                    store.link_mailbox(mailbox_id, user_id).await?;
                    report.mailboxes += 1;
                }
                let scope = RuleScope::User {
                    org_id,
                    tenant_id: tenant.id,
                    user_id,
                };
                let (a, r) = store.replace_rules(scope, &u.rules).await?;
                (report.rules_added, report.rules_removed) =
                    (report.rules_added + a, report.rules_removed + r);
            }
        }
    }
    Ok(report)
}
