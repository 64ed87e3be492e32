//! The plugin registry: component blobs by digest, the active version per (org or tenant,
//! slot), and the history of installs and rollbacks (P1, P3, P5).
//!
//! An org-level plugin is the default for its tenants; a tenant-level one overrides it. The
//! history is a stack: an install pushes, a rollback pops, so rolling back twice after two
//! installs returns to the version before both; an uninstall empties the stack of its level (the
//! tenant is back on the org default, the org's default back on the built-in plugin).
//!
//! Installing the digest already in force at a level changes nothing (no history line, no new
//! activation time), so a running service does not reload or count a swap for it. Each install
//! records what it was checked against (`cases`): the case file that passed, the builtin's own
//! cases, or an explicit `--no-cases`.

use serde::Serialize;
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Where a plugin is active: the org's default (`tenant_id` None) or one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PluginScope {
    /// The org.
    pub org_id: i64,
    /// The tenant, or `None` for the org's default.
    pub tenant_id: Option<i64>,
}

impl PluginScope {
    fn tenant_scope(self) -> i64 {
        self.tenant_id.unwrap_or(0)
    }
}

/// A validated component to install.
#[derive(Debug, Clone)]
pub struct NewPlugin<'a> {
    /// The slot: `exclusion`, `mapping` or `matching`.
    pub slot: &'a str,
    /// The SHA-256 of the component's bytes (`sha256:...`), its key.
    pub digest: &'a str,
    /// The name the component's `describe()` gave.
    pub name: &'a str,
    /// The version the component's `describe()` gave.
    pub version: &'a str,
    /// The component's bytes.
    pub wasm: &'a [u8],
}

/// The plugin active for a slot, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivePlugin {
    /// The slot: `exclusion`, `mapping` or `matching`.
    pub slot: String,
    /// The component's digest.
    pub digest: String,
    /// The component's name.
    pub name: String,
    /// The component's version.
    pub version: String,
    /// True when set for the tenant, false when it is the org's default.
    pub tenant_level: bool,
    /// When it was activated, epoch ms.
    pub activated_ms: i64,
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Installed {
    /// The component is now the active one at that level (a history line was written).
    Activated,
    /// The same digest was already in force at that level: nothing was written.
    AlreadyActive,
}

/// One line of a slot's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// What happened: an `install`, a `rollback` or an `uninstall` (then `digest` is the
    /// component removed).
    pub action: String,
    /// The digest of the component it made active.
    pub digest: String,
    /// The component's name.
    pub name: String,
    /// The component's version.
    pub version: String,
    /// When, epoch ms.
    pub at_ms: i64,
    /// For an install, what it was checked against (see [`Store::install_plugin_checked`]);
    /// empty otherwise.
    pub cases: String,
}

fn check_slot(slot: &str) -> Result<(), StoreError> {
    match slot {
        "exclusion" | "mapping" | "matching" => Ok(()),
        other => Err(StoreError::Invalid(format!(
            "unknown plugin slot '{other}': use exclusion, mapping or matching"
        ))),
    }
}

impl Store {
    /// [`Store::install_plugin_checked`] without a record of the checks (tools and tests that
    /// install components they built themselves).
    pub async fn install_plugin(
        &self,
        scope: PluginScope,
        p: &NewPlugin<'_>,
    ) -> Result<Installed, StoreError> {
        self.install_plugin_checked(scope, p, "").await
    }

    /// Stores the blob (once per digest), makes it active at `scope`, and records the install
    /// with `cases` (what it was checked against, shown by `plugin history`), all in one
    /// transaction: a running service sees the old version or the new, never a mix. When `p`'s
    /// digest is already in force at `scope`, nothing is written ([`Installed::AlreadyActive`]).
    pub async fn install_plugin_checked(
        &self,
        scope: PluginScope,
        p: &NewPlugin<'_>,
        cases: &str,
    ) -> Result<Installed, StoreError> {
        check_slot(p.slot)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // The write first: on SQLite a transaction that read and then writes while a running
        // service commits pages fails at once (its snapshot is stale) instead of waiting out
        // the busy timeout; one that writes first waits its turn. The blob is stored once per
        // digest, so writing it is harmless when the digest turns out to be in force already
        // (the transaction is then dropped, writing nothing).
        sqlx::query("INSERT INTO plugin_blobs (digest, name, version, kind, wasm, created_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING")
            .bind(p.digest)
            .bind(p.name)
            .bind(p.version)
            .bind(p.slot)
            .bind(p.wasm)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM plugin_active WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(scope.org_id)
        .bind(scope.tenant_scope())
        .bind(p.slot)
        .fetch_optional(&mut *tx)
        .await?;
        if current.as_deref() == Some(p.digest) {
            tx.rollback().await?;
            return Ok(Installed::AlreadyActive);
        }
        activate_in(&mut tx, scope, p.slot, p.digest, "install", cases, now).await?;
        tx.commit().await?;
        Ok(Installed::Activated)
    }

    /// Removes what was installed for `slot` at `scope` and records it: a tenant is back on its
    /// org's default, an org's default back on the built-in plugin. The level's history stack
    /// is emptied (a rollback after it has nothing to return to). Returns the line written,
    /// naming the component removed.
    pub async fn uninstall_plugin(
        &self,
        scope: PluginScope,
        slot: &str,
    ) -> Result<HistoryEntry, StoreError> {
        check_slot(slot)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // A write first (a no-op), so SQLite waits its turn behind a running service's page
        // commits instead of failing a read-then-write (see `install_plugin_checked`).
        sqlx::query(
            "UPDATE plugin_active SET digest = digest WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(scope.org_id)
        .bind(scope.tenant_scope())
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM plugin_active WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(scope.org_id)
        .bind(scope.tenant_scope())
        .bind(slot)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(digest) = current else {
            return Err(StoreError::NotFound(format!(
                "no {slot} plugin is installed at this level: nothing to uninstall"
            )));
        };
        sqlx::query(
            "DELETE FROM plugin_active WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(scope.org_id)
        .bind(scope.tenant_scope())
        .bind(slot)
        .execute(&mut *tx)
        .await?;
        record(&mut tx, scope, slot, &digest, "uninstall", "", now).await?;
        tx.commit().await?;
        self.plugin_history(scope, slot)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound("history vanished".into()))
    }

    /// Returns `scope`'s slot to the version before the current one.
    pub async fn rollback_plugin(
        &self,
        scope: PluginScope,
        slot: &str,
    ) -> Result<HistoryEntry, StoreError> {
        check_slot(slot)?;
        let stack = self.activation_stack(scope, slot).await?;
        if stack.len() < 2 {
            return Err(StoreError::Invalid(format!(
                "nothing to roll back to: the {slot} slot has had {} install(s) at this level",
                stack.len()
            )));
        }
        let previous = stack[stack.len() - 2].clone();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        activate_in(&mut tx, scope, slot, &previous, "rollback", "", now).await?;
        tx.commit().await?;
        self.plugin_history(scope, slot)
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound("history vanished".into()))
    }

    async fn activation_stack(
        &self,
        scope: PluginScope,
        slot: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut stack = Vec::new();
        for h in self.plugin_history(scope, slot).await? {
            match h.action.as_str() {
                "rollback" => {
                    stack.pop();
                }
                "uninstall" => stack.clear(),
                // A shadow set or stopped decided nothing: not a version that was in force.
                "shadow" | "shadow stop" => {}
                _ => stack.push(h.digest),
            }
        }
        Ok(stack)
    }

    /// A slot's history at `scope`, oldest first.
    pub async fn plugin_history(
        &self,
        scope: PluginScope,
        slot: &str,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.action, h.digest, b.name, b.version, h.at_ms, h.cases FROM plugin_history h JOIN plugin_blobs b ON b.digest = h.digest
             WHERE h.org_id = $1 AND h.tenant_scope = $2 AND h.slot = $3 ORDER BY h.id",
        )
        .bind(scope.org_id)
        .bind(scope.tenant_scope())
        .bind(slot)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryEntry {
                    action: r.try_get("action")?,
                    digest: r.try_get("digest")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    at_ms: r.try_get("at_ms")?,
                    cases: r.try_get("cases")?,
                })
            })
            .collect()
    }

    /// The plugin a tenant uses for `slot`: its own, else the org's default.
    pub async fn active_plugin(
        &self,
        org_id: i64,
        tenant_id: i64,
        slot: &str,
    ) -> Result<Option<ActivePlugin>, StoreError> {
        let row = sqlx::query(
            "SELECT a.slot, a.digest, b.name, b.version, a.tenant_scope, a.activated_ms FROM plugin_active a JOIN plugin_blobs b ON b.digest = a.digest
             WHERE a.org_id = $1 AND a.slot = $2 AND (a.tenant_scope = $3 OR a.tenant_scope = 0) ORDER BY a.tenant_scope DESC LIMIT 1",
        )
        .bind(org_id)
        .bind(slot)
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| active_from(&r)).transpose()
    }

    /// Everything active in an org: (tenant id or None for the org default, plugin).
    pub async fn active_plugins(
        &self,
        org_id: i64,
    ) -> Result<Vec<(Option<i64>, ActivePlugin)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.slot, a.digest, b.name, b.version, a.tenant_scope, a.activated_ms FROM plugin_active a JOIN plugin_blobs b ON b.digest = a.digest
             WHERE a.org_id = $1 ORDER BY a.tenant_scope, a.slot",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let scope: i64 = r.try_get("tenant_scope")?;
                Ok(((scope != 0).then_some(scope), active_from(r)?))
            })
            .collect()
    }

    /// A stored component's bytes.
    pub async fn plugin_wasm(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let row = sqlx::query("SELECT wasm FROM plugin_blobs WHERE digest = $1")
            .bind(digest)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(format!("no stored plugin with digest {digest}"))
            })?;
        Ok(row.try_get("wasm")?)
    }
}

fn active_from(r: &sqlx::any::AnyRow) -> Result<ActivePlugin, StoreError> {
    Ok(ActivePlugin {
        slot: r.try_get("slot")?,
        digest: r.try_get("digest")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        tenant_level: r.try_get::<i64, _>("tenant_scope")? != 0,
        activated_ms: r.try_get("activated_ms")?,
    })
}

/// Makes `digest` active at `scope` and records `action` in the history, inside `tx` (an
/// install, a rollback, or a shadow's promotion).
pub(crate) async fn activate_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: PluginScope,
    slot: &str,
    digest: &str,
    action: &str,
    cases: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plugin_active (org_id, tenant_scope, slot, digest, activated_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id, tenant_scope, slot) DO UPDATE SET digest = excluded.digest, activated_ms = excluded.activated_ms",
    )
    .bind(scope.org_id)
    .bind(scope.tenant_scope())
    .bind(slot)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    record(tx, scope, slot, digest, action, cases, now).await
}

/// Adds a line to a slot's history at `scope` (the actions that change what is in force, and
/// `shadow` / `shadow stop`, which change only what runs beside it).
pub(crate) async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: PluginScope,
    slot: &str,
    digest: &str,
    action: &str,
    cases: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO plugin_history (org_id, tenant_scope, slot, digest, action, cases, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(scope.org_id)
        .bind(scope.tenant_scope())
        .bind(slot)
        .bind(digest)
        .bind(action)
        .bind(cases)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One active plugin choice with the component's name and version (what a live swap changed
/// to), for the service's swap counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The org.
    pub org_id: i64,
    /// The tenant, or 0 for the org's default.
    pub tenant_scope: i64,
    /// The slot.
    pub slot: String,
    /// The component's digest.
    pub digest: String,
    /// The component's name.
    pub name: String,
    /// The component's version.
    pub version: String,
    /// When it was activated, epoch ms (a reinstall of an earlier digest changes it).
    pub activated_ms: i64,
}

impl Store {
    /// Every active plugin choice of every org, with names and versions: what the service
    /// compares when the fingerprint changed, to count each swap under the version swapped to.
    pub async fn plugin_activations(&self) -> Result<Vec<Activation>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.org_id, a.tenant_scope, a.slot, a.digest, b.name, b.version, a.activated_ms FROM plugin_active a JOIN plugin_blobs b ON b.digest = a.digest ORDER BY a.org_id, a.tenant_scope, a.slot",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Activation {
                    org_id: r.try_get("org_id")?,
                    tenant_scope: r.try_get("tenant_scope")?,
                    slot: r.try_get("slot")?,
                    digest: r.try_get("digest")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    activated_ms: r.try_get("activated_ms")?,
                })
            })
            .collect()
    }

    /// Records failing now, by stage and by the stamp of the plugin that failed them
    /// (`name version sha256:digest`), across every tenant: the service's per-version failure
    /// gauge. The matching plugin's failures count under stage `match`. Records failed before
    /// stamps were kept (empty stamp) are left out.
    pub async fn failing_records_by_plugin(
        &self,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT stage, plugin, COUNT(*) AS n FROM failed_records WHERE plugin <> '' GROUP BY stage, plugin
             UNION ALL SELECT 'match' AS stage, plugin, COUNT(*) AS n FROM match_failures WHERE plugin <> '' GROUP BY plugin
             ORDER BY stage, plugin",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("stage")?, r.try_get("plugin")?, r.try_get("n")?)))
            .collect()
    }

    /// A digest of every active plugin choice and shadow, cheap to poll: it changes exactly
    /// when an install, rollback, promotion or shadow changed what some tenant runs, which is how a running service
    /// notices a swap within its poll interval.
    pub async fn plugin_fingerprint(&self) -> Result<String, StoreError> {
        let mut text = self
            .fingerprint_of(
                "SELECT org_id, tenant_scope, slot, digest, activated_ms AS at_ms FROM plugin_active ORDER BY org_id, tenant_scope, slot",
                "",
            )
            .await?;
        // A shadow set, replaced or dropped changes what tenants run beside their plugins.
        text.push_str(
            &self
                .fingerprint_of(
                    "SELECT org_id, tenant_scope, slot, digest, started_ms AS at_ms FROM plugin_shadows ORDER BY org_id, tenant_scope, slot",
                    "shadow ",
                )
                .await?,
        );
        Ok(text)
    }

    /// One line per row of `sql` (org, tenant scope, slot, digest and a time `at_ms`), each
    /// starting with `prefix`: what the fingerprint compares.
    async fn fingerprint_of(&self, sql: &str, prefix: &str) -> Result<String, StoreError> {
        let rows = sqlx::query(sql).fetch_all(self.pool()).await?;
        let mut text = String::new();
        for r in rows {
            let (org, scope, slot, digest, at): (i64, i64, String, String, i64) = (
                r.try_get("org_id")?,
                r.try_get("tenant_scope")?,
                r.try_get("slot")?,
                r.try_get("digest")?,
                r.try_get("at_ms")?,
            );
            text.push_str(&format!("{prefix}{org}/{scope}/{slot}={digest}@{at};"));
        }
        Ok(text)
    }
}
