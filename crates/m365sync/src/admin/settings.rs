//! A tenant's settings one at a time (issue 14): what `m365sync tenant settings` and the admin
//! API show and change, each change validated with the rest and written alone, so changing the
//! cadence never resets the internal domains. Also the tenant's internal domains (E7) taken
//! from its verified domains when none were set, so every tenant added by hand excludes its
//! own internal mail as one declared in a file does.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use m365sync_graph::GraphClient;
use m365sync_store::tenants::{Tenant, TenantSettings};
use m365sync_store::{Store, StoreError};

use super::admin_client;
use crate::credentials::token_cache_for;
use crate::sync::tenant::commencement;

/// A change to some of a tenant's settings: the fields given change, the rest keep their
/// value. `commencement_ms: Some(None)` clears the commencement date (six months before
/// activation again).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// Minutes between runs (15 to 10,080).
    pub cadence_minutes: Option<i64>,
    /// The oldest mail to sync (epoch ms), or `null` for six months before activation.
    #[serde(default, with = "double_option")]
    pub commencement_ms: Option<Option<i64>>,
    /// The org's internal domains (E7).
    pub internal_domains: Option<Vec<String>>,
    /// Skip an email whose every address is internal (E7).
    pub skip_internal_only: Option<bool>,
    /// The attachment size cap in bytes (E5; at most 128 MB).
    pub attachment_cap_bytes: Option<i64>,
    /// The folders to sync (`*`, well-known names, paths), with their subfolders.
    pub folders: Option<Vec<String>>,
    /// The folders never synced, with their subfolders.
    pub excluded_folders: Option<Vec<String>>,
    /// Messages per Graph page (1 to 1,000).
    pub page_size: Option<i64>,
    /// Graph requests in flight per tenant.
    pub max_concurrency: Option<i64>,
    /// Attempts before a failing record is parked.
    pub failure_attempts: Option<i64>,
    /// Graph requests per mailbox per window the client keeps to (10 to 1,000,000; Outlook
    /// allows 10,000 per 600 seconds).
    pub mailbox_budget: Option<i64>,
    /// The window of `mailbox_budget`, seconds (1 to 86,400; Outlook's is 600).
    pub mailbox_budget_secs: Option<i64>,
    /// Graph change notifications on or off (off: the cadence alone syncs).
    pub notifications: Option<bool>,
}

/// `Option<Option<T>>` from JSON: absent is `None`, `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<i64>>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }
}

impl SettingsChange {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }

    /// `settings` with this change applied.
    pub fn applied_to(&self, mut s: TenantSettings) -> TenantSettings {
        if let Some(v) = self.cadence_minutes {
            s.cadence_minutes = v;
        }
        if let Some(v) = self.commencement_ms {
            s.commencement_ms = v;
        }
        if let Some(v) = &self.internal_domains {
            s.internal_domains = v.iter().map(|d| d.trim().to_ascii_lowercase()).collect();
        }
        if let Some(v) = self.skip_internal_only {
            s.skip_internal_only = v;
        }
        if let Some(v) = self.attachment_cap_bytes {
            s.attachment_cap_bytes = v;
        }
        if let Some(v) = &self.folders {
            s.folders = v.clone();
        }
        if let Some(v) = &self.excluded_folders {
            s.excluded_folders = v.clone();
        }
        if let Some(v) = self.page_size {
            s.page_size = v;
        }
        if let Some(v) = self.max_concurrency {
            s.max_concurrency = v;
        }
        if let Some(v) = self.failure_attempts {
            s.failure_attempts = v;
        }
        if let Some(v) = self.mailbox_budget {
            s.mailbox_budget = v;
        }
        if let Some(v) = self.mailbox_budget_secs {
            s.mailbox_budget_secs = v;
        }
        if let Some(v) = self.notifications {
            s.notifications = v;
        }
        s
    }
}

/// Applies `change` to the tenant's stored settings (validated as a whole, naming the setting
/// that is wrong) and returns the settings now in force.
pub async fn change_settings(
    store: &Store,
    tenant: &Tenant,
    change: &SettingsChange,
) -> Result<TenantSettings, StoreError> {
    let before = store.settings(tenant.id).await?;
    let next = change.applied_to(before.clone());
    next.validate()
        .map_err(|e| StoreError::Invalid(format!("tenant {}/{}: {e}", tenant.org, tenant.name)))?;
    store.set_settings(tenant.id, &next).await?;
    // Graph seals a round's `$filter` into its links: a commencement moved earlier takes
    // effect only if the folders begin new rounds. The calendars follow the tenant's date
    // unless their own settings name one. A later date narrows nothing already stored.
    if commencement(tenant, &next) < commencement(tenant, &before) {
        let calendar_own_date = store
            .calendar_settings(tenant.org_id, tenant.id)
            .await?
            .commencement_ms
            .is_some();
        let dropped = store
            .rewind_cursors(tenant.id, true, !calendar_own_date)
            .await?;
        tracing::info!(tenant = %format!("{}/{}", tenant.org, tenant.name), cursors = dropped,
            "commencement moved earlier: every folder begins a new round at its next run");
    }
    Ok(next)
}

/// The tenant's verified domains (`GET /organization`), lower-cased.
pub async fn verified_domains(
    client: &GraphClient,
) -> Result<Vec<String>, m365sync_graph::GraphError> {
    let v = client
        .get("directory", "organization?$select=verifiedDomains", None)
        .await?;
    let mut domains: Vec<String> = v["value"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|org| {
            org["verifiedDomains"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|d| {
            d.get("name")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
        })
        .collect();
    domains.sort();
    domains.dedup();
    Ok(domains)
}

/// When the tenant has no internal domains yet, takes its verified domains as them (E7) and
/// returns what was set; `Ok(None)` when it had some already. Fails when the directory
/// cannot be read (credentials not working yet): the caller says so and goes on.
pub async fn fill_internal_domains(
    store: &Store,
    tenant: &Tenant,
    http: reqwest::Client,
) -> Result<Option<Vec<String>>, String> {
    let settings = store.settings(tenant.id).await.map_err(|e| e.to_string())?;
    if !settings.internal_domains.is_empty() {
        return Ok(None);
    }
    let tokens = token_cache_for(store, tenant, http.clone())
        .await
        .map_err(|e| e.to_string())?;
    let client = admin_client(tenant, tokens, http);
    let domains = verified_domains(&client).await.map_err(|e| e.to_string())?;
    if domains.is_empty() {
        return Ok(None);
    }
    let change = SettingsChange {
        internal_domains: Some(domains.clone()),
        ..SettingsChange::default()
    };
    change_settings(store, tenant, &change)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(domains))
}
