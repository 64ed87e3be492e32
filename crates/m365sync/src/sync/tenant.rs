//! What a tenant's sync work needs, built once per run: its Graph client (with the tenant's
//! own token cache, T2), its settings, its plugins with the rules and directory facts they read
//! (the [`CallContext`]), and the commencement date its mailboxes reach back to (E4).
//!
//! The plugins sit in a [`StageSlot`] so the service can swap them under running work
//! ([`TenantContext::reload_plugins`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::credentials::token_cache_for;
use m365sync_graph::{ClientConfig, GraphClient};
use m365sync_plugin::bindings::types::{Effect as PEffect, Level, Rule, RuleTarget};
use m365sync_plugin::call::CallContext;
use m365sync_plugin::host::{RuleDef, TenantData};
use m365sync_plugin::{builtin, Kind};
use m365sync_store::mailboxes::Mailbox;
use m365sync_store::rules::{Effect, RuleScope, Target};
use m365sync_store::tenants::{Tenant, TenantSettings};
use m365sync_store::Store;

use super::env::SyncEnv;
use super::error::SyncError;
use super::shadow::ShadowRun;
use super::stages::{load_plugin, StageSlot, Stages};

/// Six months, the default reach of a first sync (E4).
const DEFAULT_REACH_DAYS: i64 = 182;

/// The instant a tenant's mail reaches back to (E4): its commencement date, else six months
/// before its first sync (before one, before now). The one place this is computed: the sync,
/// activation's report and a settings change that may widen the window all ask here.
pub fn commencement(tenant: &Tenant, settings: &TenantSettings) -> DateTime<Utc> {
    let anchor = tenant
        .initial_sync_ms
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_else(Utc::now);
    settings
        .commencement_ms
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or(anchor - Duration::days(DEFAULT_REACH_DAYS))
}

async fn tenant_data(
    store: &Store,
    tenant: &Tenant,
    internal_domains: Vec<String>,
    users: &[(i64, String)],
    sync_users: Vec<String>,
) -> Result<TenantData, SyncError> {
    let convert = |r: m365sync_store::rules::Rule, level: Level, user: Option<String>| RuleDef {
        rule: Rule {
            id: format!(
                "{}-{}",
                match level {
                    Level::Org => "org",
                    Level::Tenant => "tenant",
                    Level::User => "user",
                },
                r.id
            ),
            level,
            effect: match r.spec.effect {
                Effect::Exclude => PEffect::Exclude,
                Effect::Include => PEffect::Include,
            },
            target: match r.spec.target {
                Target::AnyAddress => RuleTarget::AnyAddress,
                Target::Sender => RuleTarget::Sender,
                Target::Recipient => RuleTarget::Recipient,
                Target::Subject => RuleTarget::Subject,
            },
            pattern: r.spec.pattern,
        },
        user,
    };
    let mut rules = Vec::new();
    for r in store
        .rules_at(RuleScope::Org {
            org_id: tenant.org_id,
        })
        .await?
    {
        rules.push(convert(r, Level::Org, None));
    }
    for r in store
        .rules_at(RuleScope::Tenant {
            org_id: tenant.org_id,
            tenant_id: tenant.id,
        })
        .await?
    {
        rules.push(convert(r, Level::Tenant, None));
    }
    for (user_id, email) in users {
        for r in store
            .rules_at(RuleScope::User {
                org_id: tenant.org_id,
                tenant_id: tenant.id,
                user_id: *user_id,
            })
            .await?
        {
            rules.push(convert(r, Level::User, Some(email.clone())));
        }
    }
    Ok(TenantData {
        org: tenant.org.clone(),
        tenant: tenant.name.clone(),
        internal_domains,
        rules,
        contacts: Vec::new(),
        entities: Vec::new(),
        sync_users,
    })
}

/// A tenant ready to sync: built at the start of each run, so rule, setting and credential
/// changes apply from the next run (E6: rules act on later syncs, not retroactively).
pub struct TenantContext {
    /// The tenant as stored when the run began.
    pub tenant: Tenant,
    /// Its settings as stored when the run began (cadence, folders, page size, caps).
    pub settings: TenantSettings,
    /// Its Graph client, shared by the run's mailboxes so the per-tenant limit holds.
    pub client: Arc<GraphClient>,
    /// Its exclusion and mapping plugins, swappable mid-run ([`TenantContext::reload_plugins`]).
    pub stages: StageSlot,
    /// The oldest mail any of its mailboxes syncs (E4).
    pub since: DateTime<Utc>,
    /// CRM user id to address, for records' owning user.
    pub user_email: HashMap<i64, String>,
}

impl TenantContext {
    /// Loads everything a run of `tenant` needs.
    pub async fn build(env: &SyncEnv, tenant: Tenant) -> Result<TenantContext, SyncError> {
        let store = &env.store;
        let settings = store.settings(tenant.id).await?;
        let tokens = token_cache_for(store, &tenant, env.http.clone()).await?;
        let client = Arc::new(GraphClient::new(
            env.http.clone(),
            tokens,
            ClientConfig {
                graph_url: tenant.graph_url.clone(),
                per_tenant: settings.max_concurrency as usize,
                mailbox_budget: Some(m365sync_graph::Budget {
                    requests: settings.mailbox_budget.clamp(1, u32::MAX as i64) as u32,
                    window: std::time::Duration::from_secs(
                        settings.mailbox_budget_secs.max(1) as u64
                    ),
                }),
                observer: Some(m365sync_graph::Observer(env.observer.clone())),
                ..ClientConfig::default()
            },
        ));
        let users = store.users(tenant.id).await?;
        let user_email: HashMap<i64, String> = users.iter().cloned().collect();
        let stages = load_stages(env, &tenant, &settings).await?;
        let since = commencement(&tenant, &settings);
        Ok(TenantContext {
            tenant,
            settings,
            client,
            stages: StageSlot::new(stages),
            since,
            user_email,
        })
    }

    /// The CRM user that owns a mailbox's records, if it is linked.
    pub fn mailbox_user(&self, m: &Mailbox) -> Option<&str> {
        m.user_id
            .and_then(|u| self.user_email.get(&u))
            .map(String::as_str)
    }

    /// Reloads the tenant's plugins if the active versions changed; true when they did. Pages
    /// already running finish on the plugins they started with.
    pub async fn reload_plugins(&self, env: &SyncEnv) -> Result<bool, SyncError> {
        let mut digests = Vec::new();
        for kind in [Kind::Exclusion, Kind::Mapping] {
            digests.push(active_digest(env, &self.tenant, kind).await?);
        }
        for kind in [Kind::Exclusion, Kind::Mapping] {
            if let Some(s) = env
                .store
                .shadow_for_tenant(self.tenant.org_id, self.tenant.id, kind.world())
                .await?
            {
                digests.push(format!("shadow {kind} {}", s.digest));
            }
        }
        let current: Vec<String> = {
            let s = self.stages.current();
            let mut d = vec![
                s.exclusion.digest().to_string(),
                s.mapping.digest().to_string(),
            ];
            d.extend(
                s.shadows
                    .iter()
                    .map(|r| format!("shadow {} {}", r.slot, r.plugin.digest())),
            );
            d
        };
        if digests == current {
            return Ok(false);
        }
        let stages = load_stages(env, &self.tenant, &self.settings).await?;
        self.stages.replace(stages);
        Ok(true)
    }
}

/// The digest of the plugin a tenant uses in a slot (`builtin` for the default one).
async fn active_digest(env: &SyncEnv, tenant: &Tenant, kind: Kind) -> Result<String, SyncError> {
    Ok(
        match env
            .store
            .active_plugin(tenant.org_id, tenant.id, kind.world())
            .await?
        {
            Some(active) => active.digest,
            None => m365sync_plugin::cache::digest(builtin::builtin(kind).wasm),
        },
    )
}

/// The plugins a tenant runs now, with the call context they see (its rules, internal
/// domains, sync users and configuration), and its shadows.
pub(crate) async fn load_stages(
    env: &SyncEnv,
    tenant: &Tenant,
    settings: &TenantSettings,
) -> Result<Stages, SyncError> {
    let store = &env.store;
    let users = store.users(tenant.id).await?;
    let sync_users = store
        .mailboxes(tenant.id)
        .await?
        .into_iter()
        .filter(|m| m.user_id.is_some())
        .map(|m| m.address)
        .collect();
    let data = tenant_data(
        store,
        tenant,
        settings.internal_domains.clone(),
        &users,
        sync_users,
    )
    .await?;
    let config = BTreeMap::from([(
        "internal-only".to_string(),
        settings.skip_internal_only.to_string(),
    )]);
    let exclusion = load_plugin(env, tenant, Kind::Exclusion).await?;
    let mapping = load_plugin(env, tenant, Kind::Mapping).await?;
    let mut shadows = Vec::new();
    for kind in [Kind::Exclusion, Kind::Mapping] {
        if let Some(shadow) = load_shadow(env, tenant, kind).await {
            shadows.push(shadow);
        }
    }
    Ok(Stages {
        exclusion,
        mapping,
        ctx: CallContext::new(data, config),
        bypass: false,
        shadows,
        observer: env.observer.clone(),
    })
}

/// The shadow a tenant runs in `kind`'s slot, loaded. A shadow that cannot be read or loaded
/// is logged and left out: it must never stop the tenant's sync (nor is it retried until the
/// registry changes again).
async fn load_shadow(env: &SyncEnv, tenant: &Tenant, kind: Kind) -> Option<ShadowRun> {
    match find_shadow(env, tenant, kind).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(
                tenant = %tenant.name,
                slot = %kind,
                error = %e,
                "the shadow plugin is left out; the tenant syncs with its plugins as before"
            );
            None
        }
    }
}

async fn find_shadow(
    env: &SyncEnv,
    tenant: &Tenant,
    kind: Kind,
) -> Result<Option<ShadowRun>, SyncError> {
    let Some(shadow) = env
        .store
        .shadow_for_tenant(tenant.org_id, tenant.id, kind.world())
        .await?
    else {
        return Ok(None);
    };
    let bytes = env.store.plugin_wasm(&shadow.digest).await?;
    let engine = env.engine.clone();
    let plugin = tokio::task::spawn_blocking(move || engine.load_shared(kind, &bytes))
        .await
        .map_err(|e| SyncError::Plugin(format!("loading a shadow plugin panicked: {e}")))?
        .map_err(|e| SyncError::Plugin(format!("the shadow cannot be loaded: {e}")))?;
    Ok(Some(ShadowRun {
        slot: kind,
        plugin,
        org_id: shadow.org_id,
        tenant_scope: shadow.tenant_scope,
        tenant_id: tenant.id,
    }))
}
