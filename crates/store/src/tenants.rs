//! Orgs, tenants, their encrypted credentials and their settings.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// How a tenant authenticates (A1, A2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Client credentials with application permissions.
    App,
    /// Authorization code with refresh tokens, through an admin account.
    Delegated,
}

impl AuthMode {
    fn as_str(self) -> &'static str {
        match self {
            AuthMode::App => "app",
            AuthMode::Delegated => "delegated",
        }
    }

    fn parse(s: &str) -> AuthMode {
        if s == "delegated" {
            AuthMode::Delegated
        } else {
            AuthMode::App
        }
    }
}

/// What declares a tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// The org's name.
    pub org: String,
    /// The tenant's name within the org.
    pub name: String,
    /// Entra tenant id or verified domain.
    pub ms_tenant: String,
    /// Identity authority, `https://login.microsoftonline.com` in production.
    pub authority: String,
    /// Graph base, `https://graph.microsoft.com/v1.0` in production.
    pub graph_url: String,
    /// The Entra application's client id.
    pub client_id: String,
    /// How the tenant authenticates.
    pub auth_mode: AuthMode,
}

/// A stored tenant (no secrets: those are read on purpose through [`Store::secrets`]).
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// m365sync's id of the tenant.
    pub id: i64,
    /// The org's id.
    pub org_id: i64,
    /// The org's name.
    pub org: String,
    /// The tenant's name within the org.
    pub name: String,
    /// Entra tenant id or verified domain.
    pub ms_tenant: String,
    /// Identity authority.
    pub authority: String,
    /// Graph base URL.
    pub graph_url: String,
    /// The Entra application's client id.
    pub client_id: String,
    /// How the tenant authenticates.
    pub auth_mode: AuthMode,
    /// False while the tenant is switched off: nothing of it is synced.
    pub enabled: bool,
    /// When the tenant was activated, epoch ms.
    pub activated_ms: Option<i64>,
    /// When its first sync began, epoch ms.
    pub initial_sync_ms: Option<i64>,
}

/// Per-tenant settings (E3, E4, E5, E7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Minutes between runs: 15 (recommended) to 10,080 (weekly).
    pub cadence_minutes: i64,
    /// The oldest mail to sync; `None` means six months before activation.
    pub commencement_ms: Option<i64>,
    /// Domains whose addresses are the firm's own (E7).
    pub internal_domains: Vec<String>,
    /// E7: do not sync an email whose every address is in the internal domains.
    pub skip_internal_only: bool,
    /// Attachments larger than this are not downloaded (E5).
    pub attachment_cap_bytes: i64,
    /// The folders to sync, each with its subfolders: `*` (every folder, the default),
    /// well-known names (`inbox`, `sentitems`, `archive`, ...) or paths (`Inbox/Clients`).
    pub folders: Vec<String>,
    /// Folders never synced, with their subfolders, by well-known name or path; they win over
    /// `folders`. Default: Junk Email, Deleted Items, Drafts, Outbox, Conversation History
    /// and Sync Issues.
    pub excluded_folders: Vec<String>,
    /// Records per Graph page.
    pub page_size: i64,
    /// Mailboxes synced at once.
    pub max_concurrency: i64,
    /// Attempts after which a record a stage keeps failing on is parked: kept and listed, but
    /// retried only when an admin asks (`m365sync failures retry`).
    pub failure_attempts: i64,
    /// Graph change notifications wake the sync within seconds of a change (issue 17); off,
    /// the cadence alone syncs the tenant and its subscriptions are deleted.
    pub notifications: bool,
    /// Graph requests per mailbox per `mailbox_budget_secs` the client keeps to: Outlook's
    /// budget per app and mailbox is 10,000 per 10 minutes. Lower it when other tools of the
    /// firm's use the same app registration for the same mailboxes.
    #[serde(default = "default_mailbox_budget")]
    pub mailbox_budget: i64,
    /// The window `mailbox_budget` is counted in, seconds (Outlook's: 600).
    #[serde(default = "default_mailbox_budget_secs")]
    pub mailbox_budget_secs: i64,
}

/// Outlook's request budget per app and mailbox per [`OUTLOOK_BUDGET_SECS`].
pub const OUTLOOK_MAILBOX_BUDGET: i64 = 10_000;
/// The window of Outlook's request budget: 10 minutes.
pub const OUTLOOK_BUDGET_SECS: i64 = 600;

fn default_mailbox_budget() -> i64 {
    OUTLOOK_MAILBOX_BUDGET
}

fn default_mailbox_budget_secs() -> i64 {
    OUTLOOK_BUDGET_SECS
}

/// The folders a tenant syncs by default: all of them (`folders = ["*"]`).
pub const ALL_FOLDERS: &str = "*";

/// The folders excluded by default, by well-known name (with their subfolders).
pub const DEFAULT_EXCLUDED_FOLDERS: [&str; 6] = [
    "junkemail",
    "deleteditems",
    "drafts",
    "outbox",
    "conversationhistory",
    "syncissues",
];

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            cadence_minutes: 15,
            commencement_ms: None,
            internal_domains: Vec::new(),
            skip_internal_only: true,
            attachment_cap_bytes: 5 * 1024 * 1024,
            folders: vec![ALL_FOLDERS.into()],
            excluded_folders: DEFAULT_EXCLUDED_FOLDERS
                .iter()
                .map(|f| f.to_string())
                .collect(),
            page_size: 100,
            max_concurrency: 8,
            failure_attempts: 5,
            notifications: true,
            mailbox_budget: OUTLOOK_MAILBOX_BUDGET,
            mailbox_budget_secs: OUTLOOK_BUDGET_SECS,
        }
    }
}

impl TenantSettings {
    /// Refuses values the product does not allow, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(15..=10_080).contains(&self.cadence_minutes) {
            return Err(format!(
                "cadence_minutes must be between 15 and 10080 (weekly), got {}",
                self.cadence_minutes
            ));
        }
        if !(0..=128 * 1024 * 1024).contains(&self.attachment_cap_bytes) {
            return Err(format!(
                "attachment_cap_bytes must be between 0 and 128 MB, got {}",
                self.attachment_cap_bytes
            ));
        }
        if self.folders.is_empty() {
            return Err("folders must name at least one folder (\"*\" for all)".into());
        }
        for f in self.folders.iter().chain(&self.excluded_folders) {
            if f.trim().is_empty() || f.trim_matches('/').is_empty() && f != ALL_FOLDERS {
                return Err(format!(
                    "folder {f:?} names nothing: use a well-known name such as inbox, a path such as Inbox/Clients, or * for all"
                ));
            }
        }
        if !(1..=100).contains(&self.failure_attempts) {
            return Err(format!(
                "failure_attempts must be between 1 and 100, got {}",
                self.failure_attempts
            ));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(format!(
                "page_size must be between 1 and 1000, got {}",
                self.page_size
            ));
        }
        if !(10..=1_000_000).contains(&self.mailbox_budget) {
            return Err(format!(
                "mailbox_budget must be between 10 and 1000000 requests (Outlook allows 10000 per 600 seconds), got {}",
                self.mailbox_budget
            ));
        }
        if !(1..=86_400).contains(&self.mailbox_budget_secs) {
            return Err(format!(
                "mailbox_budget_secs must be between 1 and 86400 seconds (Outlook's window is 600), got {}",
                self.mailbox_budget_secs
            ));
        }
        if !(1..=256).contains(&self.max_concurrency) {
            return Err(format!(
                "max_concurrency must be between 1 and 256, got {}",
                self.max_concurrency
            ));
        }
        Ok(())
    }
}

const TENANT_COLUMNS: &str = "t.id, t.org_id, o.name AS org, t.name, t.ms_tenant, t.authority, t.graph_url, t.client_id, t.auth_mode, t.enabled, t.activated_ms, t.initial_sync_ms";

fn tenant_from(row: &sqlx::any::AnyRow) -> Result<Tenant, sqlx::Error> {
    Ok(Tenant {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        org: row.try_get("org")?,
        name: row.try_get("name")?,
        ms_tenant: row.try_get("ms_tenant")?,
        authority: row.try_get("authority")?,
        graph_url: row.try_get("graph_url")?,
        client_id: row.try_get("client_id")?,
        auth_mode: AuthMode::parse(&row.try_get::<String, _>("auth_mode")?),
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        activated_ms: row.try_get("activated_ms")?,
        initial_sync_ms: row.try_get("initial_sync_ms")?,
    })
}

impl Store {
    /// The id of org `name`, creating it if needed.
    pub async fn ensure_org(&self, name: &str) -> Result<i64, StoreError> {
        sqlx::query(
            "INSERT INTO orgs (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(sqlx::query("SELECT id FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?
            .try_get("id")?)
    }

    /// Creates org `name`; its id, or `None` when the name is taken (nothing changes then).
    pub async fn create_org(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO orgs (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("id")?),
            None => None,
        })
    }

    /// The id of an existing org.
    pub async fn org_id(&self, name: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT id FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("no org '{name}'; declare it with `m365sync apply`"))
            })?;
        Ok(row.try_get("id")?)
    }

    /// Creates or updates a tenant, idempotently (what `apply` relies on). Settings get their
    /// defaults the first time.
    pub async fn upsert_tenant(&self, t: &NewTenant) -> Result<Tenant, StoreError> {
        let org_id = self.ensure_org(&t.org).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO tenants (org_id, name, ms_tenant, authority, graph_url, client_id, auth_mode, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (org_id, name) DO UPDATE SET ms_tenant = excluded.ms_tenant, authority = excluded.authority,
                 graph_url = excluded.graph_url, client_id = excluded.client_id, auth_mode = excluded.auth_mode
             RETURNING id",
        )
        .bind(org_id)
        .bind(&t.name)
        .bind(&t.ms_tenant)
        .bind(&t.authority)
        .bind(&t.graph_url)
        .bind(&t.client_id)
        .bind(t.auth_mode.as_str())
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
        .try_get("id")?;
        // The folders column's default predates folder trees (Inbox and Sent Items only); a new
        // tenant syncs every folder.
        sqlx::query("INSERT INTO tenant_settings (tenant_id, folders) VALUES ($1, $2) ON CONFLICT (tenant_id) DO NOTHING")
            .bind(id)
            .bind(format!("[\"{ALL_FOLDERS}\"]"))
            .execute(self.pool())
            .await?;
        self.tenant_by_id(id).await
    }

    /// A tenant by id.
    pub async fn tenant_by_id(&self, id: i64) -> Result<Tenant, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants t JOIN orgs o ON o.id = t.org_id WHERE t.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no tenant with id {id}")))?;
        Ok(tenant_from(&row)?)
    }

    /// A tenant by org and name.
    pub async fn tenant(&self, org: &str, name: &str) -> Result<Tenant, StoreError> {
        let row = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants t JOIN orgs o ON o.id = t.org_id WHERE o.name = $1 AND t.name = $2"))
            .bind(org)
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no tenant '{name}' in org '{org}'; `m365sync tenant list` shows the tenants")))?;
        Ok(tenant_from(&row)?)
    }

    /// All tenants, or those of one org.
    pub async fn tenants(&self, org: Option<&str>) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants t JOIN orgs o ON o.id = t.org_id WHERE ($1 = '' OR o.name = $1) ORDER BY o.name, t.name"))
            .bind(org.unwrap_or(""))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(tenant_from).collect::<Result<_, _>>()?)
    }

    /// Remembers when the tenant first synced, so mailboxes added later reach back as far (E4).
    pub async fn mark_initial_sync(&self, tenant_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tenants SET initial_sync_ms = $1 WHERE id = $2 AND initial_sync_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Enables or disables a tenant's sync (T4: only that tenant stops).
    pub async fn set_tenant_enabled(
        &self,
        tenant_id: i64,
        enabled: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET enabled = $1 WHERE id = $2")
            .bind(enabled as i64)
            .bind(tenant_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a tenant activated (E13): its first sync is due now and its schedule starts.
    /// Returns false when it already was (activation is idempotent).
    pub async fn activate_tenant(&self, tenant_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE tenants SET activated_ms = $1, next_run_ms = NULL WHERE id = $2 AND activated_ms IS NULL",
        )
        .bind(now_ms())
        .bind(tenant_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The labels and creation times of a tenant's secrets of one kind, newest first, without
    /// opening them: what an admin may see.
    pub async fn secret_labels(
        &self,
        tenant_id: i64,
        kind: SecretKind,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT label, created_ms FROM tenant_secrets WHERE tenant_id = $1 AND kind = $2 ORDER BY created_ms DESC, id DESC")
            .bind(tenant_id)
            .bind(kind.as_str())
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("label")?, r.try_get("created_ms")?)))
            .collect::<Result<_, _>>()?)
    }

    /// Stores a client secret under `label`, encrypted; several may be valid at once (A1).
    pub async fn put_secret(
        &self,
        tenant_id: i64,
        kind: SecretKind,
        label: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_secrets (tenant_id, kind, label, ciphertext, created_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, kind, label) DO UPDATE SET ciphertext = excluded.ciphertext, created_ms = excluded.created_ms",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(label)
        .bind(self.key().seal(value))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes a secret (for example a rotated-out client secret).
    pub async fn remove_secret(
        &self,
        tenant_id: i64,
        kind: SecretKind,
        label: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM tenant_secrets WHERE tenant_id = $1 AND kind = $2 AND label = $3",
        )
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(label)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The tenant's secrets of one kind, decrypted, newest first: (label, value).
    pub async fn secrets(
        &self,
        tenant_id: i64,
        kind: SecretKind,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT label, ciphertext FROM tenant_secrets WHERE tenant_id = $1 AND kind = $2 ORDER BY created_ms DESC, id DESC")
            .bind(tenant_id)
            .bind(kind.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("label")?,
                    self.key().open(&r.try_get::<Vec<u8>, _>("ciphertext")?)?,
                ))
            })
            .collect()
    }

    /// A tenant's settings.
    pub async fn settings(&self, tenant_id: i64) -> Result<TenantSettings, StoreError> {
        let r = sqlx::query("SELECT * FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no settings for tenant {tenant_id}")))?;
        let list = |col: &str| -> Result<Vec<String>, StoreError> {
            let text: String = r.try_get(col)?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Invalid(format!("stored {col} is not a JSON list: {e}")))
        };
        Ok(TenantSettings {
            cadence_minutes: r.try_get("cadence_minutes")?,
            commencement_ms: r.try_get("commencement_ms")?,
            internal_domains: list("internal_domains")?,
            skip_internal_only: r.try_get::<i64, _>("skip_internal_only")? != 0,
            attachment_cap_bytes: r.try_get("attachment_cap_bytes")?,
            folders: list("folders")?,
            excluded_folders: list("excluded_folders")?,
            page_size: r.try_get("page_size")?,
            max_concurrency: r.try_get("max_concurrency")?,
            failure_attempts: r.try_get("failure_attempts")?,
            notifications: r.try_get::<i64, _>("notifications")? != 0,
            mailbox_budget: r.try_get("mailbox_budget")?,
            mailbox_budget_secs: r.try_get("mailbox_budget_secs")?,
        })
    }

    /// Replaces a tenant's settings after validating them.
    pub async fn set_settings(&self, tenant_id: i64, s: &TenantSettings) -> Result<(), StoreError> {
        s.validate().map_err(StoreError::Invalid)?;
        let domains: Vec<String> = s
            .internal_domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        sqlx::query(
            "UPDATE tenant_settings SET cadence_minutes = $1, commencement_ms = $2, internal_domains = $3,
                 attachment_cap_bytes = $4, folders = $5, page_size = $6, max_concurrency = $7, skip_internal_only = $8,
                 excluded_folders = $10, failure_attempts = $11, notifications = $12, mailbox_budget = $13, mailbox_budget_secs = $14
             WHERE tenant_id = $9",
        )
        .bind(s.cadence_minutes)
        .bind(s.commencement_ms)
        .bind(serde_json::to_string(&domains).expect("strings serialise"))
        .bind(s.attachment_cap_bytes)
        .bind(serde_json::to_string(&s.folders).expect("strings serialise"))
        .bind(s.page_size)
        .bind(s.max_concurrency)
        .bind(s.skip_internal_only as i64)
        .bind(tenant_id)
        .bind(serde_json::to_string(&s.excluded_folders).expect("strings serialise"))
        .bind(s.failure_attempts)
        .bind(s.notifications as i64)
        .bind(s.mailbox_budget)
        .bind(s.mailbox_budget_secs)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The kinds of stored secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// An application's client secret.
    ClientSecret,
    /// A delegated refresh token.
    RefreshToken,
}

impl SecretKind {
    fn as_str(self) -> &'static str {
        match self {
            SecretKind::ClientSecret => "client_secret",
            SecretKind::RefreshToken => "refresh_token",
        }
    }
}
