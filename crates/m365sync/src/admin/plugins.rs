//! What runs in each plugin slot of an org and its tenants, and why: the one answer that
//! `m365sync plugin list` prints and `GET /api/orgs/{org}/plugins` (the console's Plugins page)
//! serves, so the two can never disagree about which version decides a tenant's mail.

use m365sync_plugin::{builtin, Kind};
use m365sync_store::decisions::{sum_for, Decisions};
use m365sync_store::plugins::{ActivePlugin, HistoryEntry, PluginScope};
use m365sync_store::shadows::Shadow;
use m365sync_store::{Store, StoreError};

/// What runs in a slot at one level, and where it comes from (one line of `plugin list`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InForce {
    /// `org default` or `tenant NAME`.
    pub level: String,
    /// The tenant's name for a tenant's row, none for the org default's.
    pub tenant: Option<String>,
    /// `exclusion`, `mapping` or `matching`.
    pub slot: String,
    /// What the component's `describe()` answered.
    pub name: String,
    /// What `describe()` answered; `-` for a built-in plugin, versioned with the binary.
    pub version: String,
    /// `installed` (set at this level), `org default` (a tenant inheriting it) or `built-in`.
    pub source: &'static str,
    /// `sha256:...` of the component.
    pub digest: String,
    /// When the version in force was activated where it was set, epoch ms; none for a
    /// built-in plugin, which was never installed.
    pub installed_ms: Option<i64>,
    /// The candidate running beside it in shadow, if any (`plugin shadow`).
    pub shadow: Option<ShadowInForce>,
    /// What this version decided at this level: in this tenant for a tenant's row, in all the
    /// org's tenants for the org default's ([`m365sync_store::decisions`]).
    pub decided: Decisions,
}

/// A shadow as `plugin list` shows it: which candidate, set where, and its counts so far.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShadowInForce {
    /// What the candidate's `describe()` answered.
    pub name: String,
    /// What the candidate's `describe()` answered.
    pub version: String,
    /// `sha256:...` of the candidate.
    pub digest: String,
    /// `set here`, or `org's` for a tenant running its org's shadow.
    pub source: &'static str,
    /// Records on which the candidate decided as the live plugin did.
    pub agreed: i64,
    /// Records on which it decided otherwise (`plugin shadow diff` lists them).
    pub disagreed: i64,
    /// Records on which the candidate failed (a trap, a timeout).
    pub failed: i64,
}

impl ShadowInForce {
    fn new(s: Shadow, tenant_level: bool) -> ShadowInForce {
        ShadowInForce {
            source: if tenant_level && s.tenant_scope == 0 {
                "org's"
            } else {
                "set here"
            },
            name: s.name,
            version: s.version,
            digest: s.digest,
            agreed: s.agreed,
            disagreed: s.disagreed,
            failed: s.failed,
        }
    }
}

/// The first 16 hex digits of a digest, as the commands and pages print it.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(16)]
}

/// One row: `own` set at this level wins, then `inherited` from the org, then the built-in.
fn row(
    level: &str,
    tenant: Option<&str>,
    slot: Kind,
    own: Option<&ActivePlugin>,
    inherited: Option<&ActivePlugin>,
) -> InForce {
    let (p, source) = match (own, inherited) {
        (Some(p), _) => (Some(p), "installed"),
        (None, Some(p)) => (Some(p), "org default"),
        (None, None) => (None, "built-in"),
    };
    let (name, version, digest, installed_ms) = match p {
        Some(p) => (
            p.name.clone(),
            p.version.clone(),
            p.digest.clone(),
            Some(p.activated_ms),
        ),
        None => {
            let b = builtin::builtin(slot);
            (
                b.name.to_string(),
                // The built-in plugins are versioned with the binary that carries them.
                "-".to_string(),
                m365sync_plugin::cache::digest(b.wasm),
                None,
            )
        }
    };
    InForce {
        level: level.to_string(),
        tenant: tenant.map(str::to_string),
        slot: slot.to_string(),
        name,
        version,
        source,
        digest,
        installed_ms,
        shadow: None,
        decided: Decisions::default(),
    }
}

/// What runs for every slot: the org's default, then each tenant of the org (by name), each
/// with the shadow beside it.
pub async fn in_force(store: &Store, org: &str, org_id: i64) -> Result<Vec<InForce>, StoreError> {
    let active = store.active_plugins(org_id).await?;
    let find = |tenant: Option<i64>, slot: Kind| {
        active
            .iter()
            .find(|(t, p)| *t == tenant && p.slot == slot.world())
            .map(|(_, p)| p)
    };
    let tenants = store.tenants(Some(org)).await?;
    let ids: Vec<i64> = tenants.iter().map(|t| t.id).collect();
    let decided = store.plugin_decisions(org_id).await?;
    let mut rows = Vec::new();
    for slot in Kind::ALL {
        let mut r = row("org default", None, slot, find(None, slot), None);
        r.decided = sum_for(&decided, &ids, slot.world(), &r.digest);
        let org_level = PluginScope {
            org_id,
            tenant_id: None,
        };
        r.shadow = store
            .shadow(org_level, slot.world())
            .await?
            .map(|s| ShadowInForce::new(s, false));
        rows.push(r);
    }
    for t in &tenants {
        for slot in Kind::ALL {
            let mut r = row(
                &format!("tenant {}", t.name),
                Some(&t.name),
                slot,
                find(Some(t.id), slot),
                find(None, slot),
            );
            r.decided = sum_for(&decided, &[t.id], slot.world(), &r.digest);
            r.shadow = store
                .shadow_for_tenant(org_id, t.id, slot.world())
                .await?
                .map(|s| ShadowInForce::new(s, true));
            rows.push(r);
        }
    }
    Ok(rows)
}

/// Where a plugin is set, as the commands and pages say it: `org acme` or `tenant eu of org
/// acme`.
pub fn place(org: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("tenant {t} of org {org}"),
        None => format!("org {org}"),
    }
}

/// A rollback done: the history line it wrote and the sentence that says so.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolledBack {
    /// The history's new last line: the version now in force at that level.
    pub now: HistoryEntry,
    /// `rolled back the exclusion plugin of org acme: now NAME VERSION (sha256 ...)`.
    pub summary: String,
}

/// Returns `slot` at `scope` to the version active before the current one (`plugin rollback`
/// and the console's Rollback button). With nothing to roll back to, the store's refusal
/// (`StoreError::Invalid`, saying how many installs the level has had) and nothing changes.
/// Running services pick the change up as they do an install.
pub async fn rollback(
    store: &Store,
    org: &str,
    tenant: Option<&str>,
    scope: PluginScope,
    slot: Kind,
) -> Result<RolledBack, StoreError> {
    let now = store.rollback_plugin(scope, slot.world()).await?;
    let summary = format!(
        "rolled back the {slot} plugin of {}: now {} {} (sha256 {})",
        place(org, tenant),
        now.name,
        now.version,
        short(&now.digest)
    );
    Ok(RolledBack { now, summary })
}

/// One line of a slot's history at one level with what its version decided there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryWithCounts {
    /// The history line as `plugin history` prints it.
    #[serde(flatten)]
    pub entry: HistoryEntry,
    /// What the line's version (by digest) decided at this level, as [`InForce::decided`].
    pub decided: Decisions,
}

/// The built-in plugin of a slot and what it decided at a level: it has no history line (it
/// was never installed), yet it decided every record before the first install.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuiltinWithCounts {
    /// What the built-in's `describe()` answers.
    pub name: String,
    /// The built-in component's digest.
    pub digest: String,
    /// What it decided at this level.
    pub decided: Decisions,
}

/// A slot's history at one level (`scope`) with each version's counts, and the built-in's:
/// the console's History (issue 16, "what each version decided").
pub async fn history_with_counts(
    store: &Store,
    org: &str,
    scope: PluginScope,
    slot: Kind,
) -> Result<(Vec<HistoryWithCounts>, BuiltinWithCounts), StoreError> {
    let tenants: Vec<i64> = match scope.tenant_id {
        Some(t) => vec![t],
        None => store
            .tenants(Some(org))
            .await?
            .iter()
            .map(|t| t.id)
            .collect(),
    };
    let decided = store.plugin_decisions(scope.org_id).await?;
    let history = store
        .plugin_history(scope, slot.world())
        .await?
        .into_iter()
        .map(|entry| HistoryWithCounts {
            decided: sum_for(&decided, &tenants, slot.world(), &entry.digest),
            entry,
        })
        .collect();
    let b = builtin::builtin(slot);
    let digest = m365sync_plugin::cache::digest(b.wasm);
    let builtin = BuiltinWithCounts {
        name: b.name.to_string(),
        decided: sum_for(&decided, &tenants, slot.world(), &digest),
        digest,
    };
    Ok((history, builtin))
}
