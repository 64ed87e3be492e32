//! "Confirm settings and activate" (E13): checks the tenant can be synced (connectivity, enabled,
//! every enabled mailbox readable, exclusion rules), then marks it activated so its first sync is due now and its
//! schedule starts. The first sync reaches back to the commencement date: six months before
//! activation unless a date is set.

use serde::Serialize;

use super::connectivity::{test_connectivity, test_mailboxes, Failure, Report};
use m365sync_store::rules::RuleScope;
use m365sync_store::tenants::Tenant;
use m365sync_store::{Store, StoreError};

/// Why a tenant was not activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The tenant is disabled; activating it would schedule syncs that never run.
    #[error("tenant {tenant} is disabled; enable it with `m365sync tenant enable` first")]
    Disabled {
        /// `org/tenant`.
        tenant: String,
    },
    /// The connectivity test (E11) failed and `force` was not given.
    #[error("tenant {tenant} failed its connectivity test: {reason}; fix it and run `m365sync tenant test` (or activate with --force)")]
    Connectivity {
        /// `org/tenant`.
        tenant: String,
        /// The first failure of the checklist, as the admin should read it.
        reason: String,
        /// The whole checklist, for the CLI and API to show.
        report: Box<Report>,
    },
    /// No enabled mailbox, so there would be nothing to sync, and `force` was not given.
    #[error("tenant {tenant} has no enabled mailbox; import them with `m365sync mailbox import --csv` first (or activate with --force)")]
    NoMailbox {
        /// `org/tenant`.
        tenant: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What activation did.
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    /// `org/tenant`.
    pub tenant: String,
    /// False when the tenant was already activated (nothing changed).
    pub newly_activated: bool,
    /// When the tenant was (first) activated, Unix milliseconds.
    pub activated_ms: i64,
    /// Mail from this instant on is synced (E4).
    pub commencement_ms: i64,
    /// Minutes between the tenant's scheduled syncs.
    pub cadence_minutes: i64,
    /// Enabled mailboxes the first sync will cover.
    pub mailboxes: usize,
    /// Rules at org and tenant level; E13 asks for them before activation.
    pub rules: usize,
    /// Things the admin should know but that did not stop activation.
    pub warnings: Vec<String>,
    /// Enabled mailboxes whose inbox could not be read at activation, each with what to fix;
    /// the others sync. Empty when every mailbox passed (or the checklist itself failed).
    pub failing_mailboxes: Vec<MailboxProblem>,
    /// The internal domains taken from the tenant's verified domains because none were set
    /// (E7); empty when the tenant had some.
    pub internal_domains_set: Vec<String>,
}

/// A mailbox activation found it cannot sync, and why.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxProblem {
    /// The mailbox's address.
    pub mailbox: String,
    /// What is wrong, named after what to fix.
    pub failure: Failure,
}

/// Activates `tenant` after its checks; `force` activates despite a failed connectivity test
/// or no mailboxes. `http` is used for the connectivity test.
pub async fn activate(
    store: &Store,
    tenant: &Tenant,
    http: reqwest::Client,
    force: bool,
) -> Result<Activation, ActivateError> {
    let name = format!("{}/{}", tenant.org, tenant.name);
    if !tenant.enabled {
        return Err(ActivateError::Disabled { tenant: name });
    }
    let mut warnings = Vec::new();
    let report = test_connectivity(store, tenant, http.clone(), None).await?;
    if let Some(f) = report.failure() {
        if !force {
            return Err(ActivateError::Connectivity {
                tenant: name,
                reason: f.to_string(),
                report: Box::new(report.clone()),
            });
        }
        warnings.push(format!("connectivity test failed (activated anyway): {f}"));
    }
    let enabled: Vec<(String, String)> = store
        .mailboxes(tenant.id)
        .await?
        .into_iter()
        .filter(|m| m.enabled)
        .map(|m| (m.address, m.graph_id))
        .collect();
    let mailboxes = enabled.len();
    // Every mailbox, not only the checklist's one: a mailbox outside the application access
    // policy, or gone from the directory, is named now rather than found by the first run.
    let mut failing_mailboxes = Vec::new();
    if report.failure().is_none() {
        for (address, step) in test_mailboxes(store, tenant, http.clone(), enabled).await? {
            if let Some(f) = step.failure {
                warnings.push(format!("mailbox {address} will not sync: {f}"));
                failing_mailboxes.push(MailboxProblem {
                    mailbox: address,
                    failure: f,
                });
            }
        }
    }
    if mailboxes == 0 {
        if !force {
            return Err(ActivateError::NoMailbox { tenant: name });
        }
        warnings.push("no enabled mailbox yet: nothing will be synced until one is added".into());
    }
    let rules = store
        .rules_at(RuleScope::Org {
            org_id: tenant.org_id,
        })
        .await?
        .len()
        + store
            .rules_at(RuleScope::Tenant {
                org_id: tenant.org_id,
                tenant_id: tenant.id,
            })
            .await?
            .len();
    if rules == 0 {
        warnings.push("no exclusion rules at org or tenant level: rules act only on syncs after they are created, so add them now if the firm has any (`m365sync rules add`)".into());
    }
    // C9: writing events to Microsoft can email the firm's clients.
    let calendar = store.calendar_settings(tenant.org_id, tenant.id).await?;
    if let Some(w) = crate::outbound::invitation_warning(calendar.direction) {
        warnings.push(format!("{w} (`m365sync events settings`)"));
    }
    // E7 for every tenant: one added by hand gets its verified domains as internal domains.
    let internal_domains_set = if report.failure().is_none() {
        match super::settings::fill_internal_domains(store, tenant, http).await {
            Ok(set) => set.unwrap_or_default(),
            Err(e) => {
                warnings.push(format!("the tenant's verified domains could not be read ({e}); set its internal domains with `m365sync tenant settings --internal-domains`"));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let newly_activated = store.activate_tenant(tenant.id).await?;
    store.mark_initial_sync(tenant.id).await?;
    let t = store.tenant_by_id(tenant.id).await?;
    let settings = store.settings(tenant.id).await?;
    let activated_ms = t.activated_ms.unwrap_or_default();
    // The first sync is marked above, so this is six months before it unless a date is set.
    let commencement_ms = crate::sync::tenant::commencement(&t, &settings).timestamp_millis();
    Ok(Activation {
        tenant: name,
        newly_activated,
        activated_ms,
        commencement_ms,
        cadence_minutes: settings.cadence_minutes,
        mailboxes,
        rules,
        warnings,
        failing_mailboxes,
        internal_domains_set,
    })
}
