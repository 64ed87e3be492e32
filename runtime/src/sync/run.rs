//! A sync run of one tenant: its credentials and plugins loaded, each enabled mailbox's folders
//! synced, per-mailbox failures kept to that mailbox (A3), and the run recorded (E10).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::graph::{token_cache_for, ClientConfig, GraphClient};
use crate::plugin::bindings::types::{Effect as PEffect, Level, Rule, RuleTarget};
use crate::plugin::call::CallContext;
use crate::plugin::engine::PluginEngine;
use crate::plugin::host::{RuleDef, TenantData};
use crate::plugin::{builtin, Kind, Plugin};
use crate::store::rules::{Effect, RuleScope, Target};
use crate::store::tenants::Tenant;
use crate::store::Store;

use super::pipeline::{sync_folder, Counts, FolderJob, Stages, SyncError};

/// What a run needs that outlives it.
pub struct SyncEnv {
    pub store: Store,
    pub engine: PluginEngine,
    pub http: reqwest::Client,
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub pages: u64,
    pub processed: u64,
    pub synced: u64,
    pub excluded: u64,
    pub removed: u64,
    pub failed: u64,
    /// (mailbox, error) for mailboxes that could not be synced.
    pub mailbox_errors: Vec<(String, String)>,
}

/// Six months, the default reach of a first sync (E4).
const DEFAULT_REACH_DAYS: i64 = 182;

async fn load_plugin(env: &SyncEnv, tenant: &Tenant, kind: Kind) -> Result<Arc<Plugin>, SyncError> {
    let bytes = match env
        .store
        .active_plugin(tenant.org_id, tenant.id, kind.world())
        .await?
    {
        Some(active) => env.store.plugin_wasm(&active.digest).await?,
        None => builtin::builtin(kind).wasm.to_vec(),
    };
    let plugin = Plugin::load(&env.engine, kind, &bytes).map_err(|e| {
        SyncError::Plugin(format!(
            "tenant {}: the {kind} plugin cannot be loaded: {e}",
            tenant.name
        ))
    })?;
    Ok(Arc::new(plugin))
}

async fn tenant_data(
    store: &Store,
    tenant: &Tenant,
    internal_domains: Vec<String>,
    users: &[(i64, String)],
    sync_users: Vec<String>,
) -> Result<TenantData, SyncError> {
    let convert = |r: crate::store::rules::Rule, level: Level, user: Option<String>| RuleDef {
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

/// Runs one sync of `tenant` (or of one mailbox of it).
pub async fn run_tenant(
    env: &SyncEnv,
    tenant: &Tenant,
    only_mailbox: Option<&str>,
    trigger: &str,
) -> Result<RunReport, SyncError> {
    let store = &env.store;
    let settings = store.settings(tenant.id).await?;
    let tokens = token_cache_for(store, tenant, env.http.clone()).await?;
    let client = Arc::new(GraphClient::new(
        env.http.clone(),
        tokens,
        ClientConfig {
            graph_url: tenant.graph_url.clone(),
            per_tenant: settings.max_concurrency as usize,
            ..ClientConfig::default()
        },
    ));
    let mailboxes: Vec<_> = store
        .mailboxes(tenant.id)
        .await?
        .into_iter()
        .filter(|m| m.enabled && only_mailbox.is_none_or(|o| o.eq_ignore_ascii_case(&m.address)))
        .collect();
    if let Some(o) = only_mailbox {
        if mailboxes.is_empty() {
            return Err(SyncError::Plugin(format!(
                "tenant {}: no enabled mailbox '{o}'; `m365sync mailbox list` shows them",
                tenant.name
            )));
        }
    }
    let users = store.users(tenant.id).await?;
    let user_email: HashMap<i64, String> = users.iter().cloned().collect();
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
    let stages = Arc::new(Stages {
        exclusion: load_plugin(env, tenant, Kind::Exclusion).await?,
        mapping: load_plugin(env, tenant, Kind::Mapping).await?,
        ctx: CallContext::new(data, config),
    });
    let anchor = tenant
        .initial_sync_ms
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or_else(Utc::now);
    let since = settings
        .commencement_ms
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .unwrap_or(anchor - Duration::days(DEFAULT_REACH_DAYS));
    store.mark_initial_sync(tenant.id).await?;
    let run_id = store.begin_run(tenant.id, None, trigger).await?;
    let mut set = JoinSet::new();
    for m in mailboxes {
        let (store, client, stages, folders) = (
            store.clone(),
            Arc::clone(&client),
            Arc::clone(&stages),
            settings.folders.clone(),
        );
        let user = m.user_id.and_then(|u| user_email.get(&u).cloned());
        let (org_id, tenant_id, page_size) =
            (tenant.org_id, tenant.id, settings.page_size as usize);
        set.spawn(async move {
            let mut counts = Counts::default();
            for folder in &folders {
                let job = FolderJob {
                    store: &store,
                    client: &client,
                    stages: &stages,
                    org_id,
                    tenant_id,
                    mailbox_id: m.id,
                    mailbox_graph_id: &m.graph_id,
                    mailbox_address: &m.address,
                    user: user.as_deref(),
                    folder,
                    page_size,
                    since: Some(since),
                };
                match sync_folder(&job).await {
                    Ok(c) => counts += c,
                    Err(e) => return (m, counts, Some(e.to_string())),
                }
            }
            (m, counts, None)
        });
    }
    let mut total = Counts::default();
    let mut mailbox_errors = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (m, counts, error) =
            joined.map_err(|e| SyncError::Plugin(format!("a mailbox task panicked: {e}")))?;
        total += counts;
        match error {
            None => store.set_mailbox_health(m.id, "healthy", None, 0).await?,
            Some(e) => {
                store
                    .log(run_id, tenant.id, Some(m.id), "error", &e)
                    .await?;
                store
                    .set_mailbox_health(m.id, "failing", Some(&e), m.consecutive_failures + 1)
                    .await?;
                mailbox_errors.push((m.address.clone(), e));
            }
        }
    }
    let errors = total.failed + mailbox_errors.len() as u64;
    let status = if mailbox_errors.is_empty() && total.failed == 0 {
        "succeeded"
    } else {
        "completed_with_errors"
    };
    store
        .finish_run(
            run_id,
            status,
            total.processed as i64,
            total.synced as i64,
            errors as i64,
        )
        .await?;
    Ok(RunReport {
        run_id,
        pages: total.pages,
        processed: total.processed,
        synced: total.synced,
        excluded: total.excluded,
        removed: total.removed,
        failed: total.failed,
        mailbox_errors,
    })
}
