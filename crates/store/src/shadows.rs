//! Shadow runs (issue 18): a candidate plugin that runs beside the version in force on live
//! traffic and decides nothing, until an admin promotes it or stops it.
//!
//! A shadow is set per (org or tenant, slot) like an install. A tenant runs its own shadow, or
//! the org's when the tenant inherits the org's default for that slot (an org-level candidate
//! compared with a tenant's own override would say nothing about promoting it). The service
//! records, per page, how many records the two agreed on and a row for each record they
//! disagreed on or the shadow failed on; `plugin shadow diff` reads them. Promoting makes the
//! shadow the version in force through the same activation and history as an install.

use serde::Serialize;
use sqlx::Row;

use super::plugins::{activate_in, Installed, NewPlugin, PluginScope};
use super::{now_ms, Store, StoreError};

/// A shadow in place, with its counts so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shadow {
    /// The org.
    pub org_id: i64,
    /// The tenant it was set for, 0 for the org's level.
    pub tenant_scope: i64,
    /// `exclusion` or `mapping`.
    pub slot: String,
    /// The candidate's digest.
    pub digest: String,
    /// The candidate's name.
    pub name: String,
    /// The candidate's version.
    pub version: String,
    /// What it was checked against when it was set (as an install's history says it).
    pub cases: String,
    /// The case file it passed, re-run by a promotion; empty for `--no-cases`.
    pub cases_text: String,
    /// When it was set, epoch ms.
    pub started_ms: i64,
    /// Records on which it decided as the version in force did.
    pub agreed: i64,
    /// Records on which it decided otherwise.
    pub disagreed: i64,
    /// Records it failed on (trap, timeout, refusal): counted, never decisive.
    pub failed: i64,
}

/// One record the shadow and the version in force did not agree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowDiff {
    /// `email` or `event`.
    pub record_kind: String,
    /// The record's Graph id.
    pub graph_id: String,
    /// Its subject, to recognise it.
    pub subject: String,
    /// `disagreed`, or `failed` when the shadow had no answer.
    pub outcome: String,
    /// The live verdict (`keep`/`drop`) or mapping (JSON).
    pub live: String,
    /// The rule the live verdict named, empty for none or for a mapping.
    pub live_rule: String,
    /// The shadow's verdict or mapping, or its error when it failed.
    pub shadow: String,
    /// The rule the shadow's verdict named.
    pub shadow_rule: String,
}

/// A stored diff row: the record, whose tenant it is and when it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShadowDiffRow {
    /// The tenant the record belongs to.
    pub tenant_id: i64,
    /// When it was decided, epoch ms.
    pub at_ms: i64,
    /// The record and both answers.
    #[serde(flatten)]
    pub diff: ShadowDiff,
}

/// What one page's shadow comparison came to, for [`Store::record_shadow_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowPage {
    /// The org of the shadow.
    pub org_id: i64,
    /// The level the shadow was set at (0 for the org's).
    pub tenant_scope: i64,
    /// The slot.
    pub slot: String,
    /// The shadow's digest: a page decided by a shadow since replaced or stopped is dropped.
    pub digest: String,
    /// The tenant the page belongs to.
    pub tenant_id: i64,
    /// Records both decided alike.
    pub agreed: i64,
    /// The disagreements and the shadow's failures.
    pub diffs: Vec<ShadowDiff>,
}

fn check_shadow_slot(slot: &str) -> Result<(), StoreError> {
    match slot {
        "exclusion" | "mapping" => Ok(()),
        other => Err(StoreError::Invalid(format!(
            "no shadow runs for the '{other}' slot: shadows run in the exclusion and mapping slots"
        ))),
    }
}

const SHADOW_COLUMNS: &str = "s.org_id, s.tenant_scope, s.slot, s.digest, b.name, b.version, s.cases, s.cases_text, s.started_ms, s.agreed, s.disagreed, s.failed";

fn shadow_from(r: &sqlx::any::AnyRow) -> Result<Shadow, StoreError> {
    Ok(Shadow {
        org_id: r.try_get("org_id")?,
        tenant_scope: r.try_get("tenant_scope")?,
        slot: r.try_get("slot")?,
        digest: r.try_get("digest")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        cases: r.try_get("cases")?,
        cases_text: r.try_get("cases_text")?,
        started_ms: r.try_get("started_ms")?,
        agreed: r.try_get("agreed")?,
        disagreed: r.try_get("disagreed")?,
        failed: r.try_get("failed")?,
    })
}

impl Store {
    /// Sets `p` as the shadow of `scope`'s slot, replacing any shadow there (and its diff),
    /// after the caller validated it as an install is validated. `cases` says what it was
    /// checked against; `cases_text` is the case file, kept for the promotion to re-run.
    pub async fn start_shadow(
        &self,
        scope: PluginScope,
        p: &NewPlugin<'_>,
        cases: &str,
        cases_text: &str,
    ) -> Result<(), StoreError> {
        check_shadow_slot(p.slot)?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO plugin_blobs (digest, name, version, kind, wasm, created_ms) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING")
            .bind(p.digest)
            .bind(p.name)
            .bind(p.version)
            .bind(p.slot)
            .bind(p.wasm)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let level = scope.tenant_id.unwrap_or(0);
        sqlx::query(
            "DELETE FROM plugin_shadow_diffs WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(scope.org_id)
        .bind(level)
        .bind(p.slot)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO plugin_shadows (org_id, tenant_scope, slot, digest, cases, cases_text, started_ms, agreed, disagreed, failed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, 0)
             ON CONFLICT (org_id, tenant_scope, slot) DO UPDATE SET digest = excluded.digest, cases = excluded.cases,
                cases_text = excluded.cases_text, started_ms = excluded.started_ms, agreed = 0, disagreed = 0, failed = 0",
        )
        .bind(scope.org_id)
        .bind(level)
        .bind(p.slot)
        .bind(p.digest)
        .bind(cases)
        .bind(cases_text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        super::plugins::record(&mut tx, scope, p.slot, p.digest, "shadow", cases, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The shadow set at `scope` for `slot`, if any.
    pub async fn shadow(
        &self,
        scope: PluginScope,
        slot: &str,
    ) -> Result<Option<Shadow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SHADOW_COLUMNS} FROM plugin_shadows s JOIN plugin_blobs b ON b.digest = s.digest
             WHERE s.org_id = $1 AND s.tenant_scope = $2 AND s.slot = $3"
        ))
        .bind(scope.org_id)
        .bind(scope.tenant_id.unwrap_or(0))
        .bind(slot)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| shadow_from(&r)).transpose()
    }

    /// The shadow a tenant runs in `slot`: its own, else its org's when the tenant inherits
    /// the org's default there (no plugin of its own in that slot).
    pub async fn shadow_for_tenant(
        &self,
        org_id: i64,
        tenant_id: i64,
        slot: &str,
    ) -> Result<Option<Shadow>, StoreError> {
        let own = PluginScope {
            org_id,
            tenant_id: Some(tenant_id),
        };
        if let Some(s) = self.shadow(own, slot).await? {
            return Ok(Some(s));
        }
        let overridden: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM plugin_active WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(org_id)
        .bind(tenant_id)
        .bind(slot)
        .fetch_optional(self.pool())
        .await?;
        if overridden.is_some() {
            return Ok(None);
        }
        self.shadow(
            PluginScope {
                org_id,
                tenant_id: None,
            },
            slot,
        )
        .await
    }

    /// Drops the shadow of `scope`'s slot and its diff; returns what was dropped.
    pub async fn stop_shadow(&self, scope: PluginScope, slot: &str) -> Result<Shadow, StoreError> {
        check_shadow_slot(slot)?;
        let Some(shadow) = self.shadow(scope, slot).await? else {
            return Err(StoreError::NotFound(format!(
                "no {slot} shadow runs at this level: nothing to stop"
            )));
        };
        let mut tx = self.pool().begin().await?;
        delete_shadow(&mut tx, scope, slot).await?;
        let summary = format!(
            "{} agreed, {} disagreed, {} failed",
            shadow.agreed, shadow.disagreed, shadow.failed
        );
        super::plugins::record(
            &mut tx,
            scope,
            slot,
            &shadow.digest,
            "shadow stop",
            &summary,
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(shadow)
    }

    /// Makes the shadow of `scope`'s slot the version in force, in one transaction: the
    /// activation and its history line (action `promote`, with `cases`, what the promotion
    /// re-checked) as an install writes them, and the shadow and its diff dropped. `digest`
    /// is the shadow the caller validated: a shadow replaced meanwhile is refused.
    pub async fn promote_shadow(
        &self,
        scope: PluginScope,
        slot: &str,
        digest: &str,
        cases: &str,
    ) -> Result<Installed, StoreError> {
        check_shadow_slot(slot)?;
        let level = scope.tenant_id.unwrap_or(0);
        let mut tx = self.pool().begin().await?;
        // A write first (a no-op on the shadow it must still be): SQLite then takes the write
        // lock under its busy timeout, where a read upgraded to a write while a running service
        // commits pages could fail at once.
        let still_there = sqlx::query(
            "UPDATE plugin_shadows SET started_ms = started_ms WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3 AND digest = $4",
        )
        .bind(scope.org_id)
        .bind(level)
        .bind(slot)
        .bind(digest)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if still_there == 0 {
            tx.rollback().await?;
            return Err(StoreError::Invalid(format!(
                "the {slot} shadow changed while it was being validated: promote again"
            )));
        }
        let current: Option<String> = sqlx::query_scalar(
            "SELECT digest FROM plugin_active WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3",
        )
        .bind(scope.org_id)
        .bind(level)
        .bind(slot)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = if current.as_deref() == Some(digest) {
            Installed::AlreadyActive
        } else {
            activate_in(&mut tx, scope, slot, digest, "promote", cases, now_ms()).await?;
            Installed::Activated
        };
        delete_shadow(&mut tx, scope, slot).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Adds one page's comparison to its shadow's counts and diff, in one transaction. A page
    /// decided by a shadow that was since stopped, promoted or replaced changes nothing (false).
    pub async fn record_shadow_page(&self, page: &ShadowPage) -> Result<bool, StoreError> {
        let disagreed = page
            .diffs
            .iter()
            .filter(|d| d.outcome == "disagreed")
            .count() as i64;
        let failed = page.diffs.len() as i64 - disagreed;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE plugin_shadows SET agreed = agreed + $1, disagreed = disagreed + $2, failed = failed + $3
             WHERE org_id = $4 AND tenant_scope = $5 AND slot = $6 AND digest = $7",
        )
        .bind(page.agreed)
        .bind(disagreed)
        .bind(failed)
        .bind(page.org_id)
        .bind(page.tenant_scope)
        .bind(&page.slot)
        .bind(&page.digest)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        for d in &page.diffs {
            sqlx::query(
                "INSERT INTO plugin_shadow_diffs (org_id, tenant_scope, slot, digest, tenant_id, record_kind, graph_id, subject, outcome, live, live_rule, shadow, shadow_rule, at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (org_id, tenant_scope, slot, digest, tenant_id, graph_id) DO UPDATE SET
                    subject = excluded.subject, outcome = excluded.outcome, live = excluded.live, live_rule = excluded.live_rule,
                    shadow = excluded.shadow, shadow_rule = excluded.shadow_rule, at_ms = excluded.at_ms",
            )
            .bind(page.org_id)
            .bind(page.tenant_scope)
            .bind(&page.slot)
            .bind(&page.digest)
            .bind(page.tenant_id)
            .bind(&d.record_kind)
            .bind(&d.graph_id)
            .bind(&d.subject)
            .bind(&d.outcome)
            .bind(&d.live)
            .bind(&d.live_rule)
            .bind(&d.shadow)
            .bind(&d.shadow_rule)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The diff of the shadow at `scope`'s slot, oldest first, at most `limit` rows.
    pub async fn shadow_diffs(
        &self,
        scope: PluginScope,
        slot: &str,
        limit: i64,
    ) -> Result<Vec<ShadowDiffRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.tenant_id, d.at_ms, d.record_kind, d.graph_id, d.subject, d.outcome, d.live, d.live_rule, d.shadow, d.shadow_rule
             FROM plugin_shadow_diffs d JOIN plugin_shadows s
               ON s.org_id = d.org_id AND s.tenant_scope = d.tenant_scope AND s.slot = d.slot AND s.digest = d.digest
             WHERE d.org_id = $1 AND d.tenant_scope = $2 AND d.slot = $3 ORDER BY d.id LIMIT $4",
        )
        .bind(scope.org_id)
        .bind(scope.tenant_id.unwrap_or(0))
        .bind(slot)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ShadowDiffRow {
                    tenant_id: r.try_get("tenant_id")?,
                    at_ms: r.try_get("at_ms")?,
                    diff: ShadowDiff {
                        record_kind: r.try_get("record_kind")?,
                        graph_id: r.try_get("graph_id")?,
                        subject: r.try_get("subject")?,
                        outcome: r.try_get("outcome")?,
                        live: r.try_get("live")?,
                        live_rule: r.try_get("live_rule")?,
                        shadow: r.try_get("shadow")?,
                        shadow_rule: r.try_get("shadow_rule")?,
                    },
                })
            })
            .collect()
    }
}

async fn delete_shadow(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: PluginScope,
    slot: &str,
) -> Result<(), StoreError> {
    let level = scope.tenant_id.unwrap_or(0);
    for table in ["plugin_shadow_diffs", "plugin_shadows"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE org_id = $1 AND tenant_scope = $2 AND slot = $3"
        ))
        .bind(scope.org_id)
        .bind(level)
        .bind(slot)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One mailbox's copy of a stored email, as `plugin replay` rebuilds the record the plugins
/// received from it. What the store does not keep is missing: the body (the CRM record's
/// description stands in for the preview), headers, attachments' names and sizes, the
/// draft flag, and every email the exclusion dropped (only its Graph id and rule are kept).
#[derive(Debug, Clone)]
pub struct StoredEmail {
    /// The Graph id of this mailbox's copy.
    pub graph_id: String,
    /// The mailbox's address.
    pub mailbox: String,
    /// The CRM user the mailbox is linked to.
    pub user_id: Option<i64>,
    /// The folder's key.
    pub folder: String,
    /// The email's subject.
    pub subject: String,
    /// The CRM record the mapping plugin made (JSON of the contract's `crm-email`).
    pub record: String,
    /// (role, address, display name), as stored.
    pub recipients: Vec<(String, String, String)>,
}

/// A stored event as `plugin replay` reads it: the event a mailbox's calendar holds (from
/// Microsoft, not deleted) with the CRM record its mapping made, from which the contract's
/// `event` is rebuilt.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The Graph id of the event in this mailbox's calendar.
    pub graph_id: String,
    /// The mailbox's address.
    pub mailbox: String,
    /// The CRM user the mailbox is linked to.
    pub user_id: Option<i64>,
    /// Cancelled by its organizer.
    pub cancelled: bool,
    /// The CRM record the mapping plugin made (JSON of the contract's `crm-event`).
    pub record: String,
}

impl Store {
    /// A tenant's stored events from Microsoft starting since `since_ms`, oldest first, at
    /// most `limit` (deleted ones and those the CRM created left out): the events of
    /// `plugin replay`.
    pub async fn events_for_replay(
        &self,
        tenant_id: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT ev.graph_id, m.address, m.user_id, ev.cancelled, ev.record FROM events ev
             JOIN mailboxes m ON m.id = ev.mailbox_id
             WHERE ev.tenant_id = $1 AND ev.origin = 'microsoft' AND ev.deleted = 0
                 AND ev.graph_id IS NOT NULL AND ev.start_ms >= $2
             ORDER BY ev.start_ms, ev.id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    graph_id: r.try_get("graph_id")?,
                    mailbox: r.try_get("address")?,
                    user_id: r.try_get("user_id")?,
                    cancelled: r.try_get::<i64, _>("cancelled")? != 0,
                    record: r.try_get("record")?,
                })
            })
            .collect()
    }

    /// A tenant's stored emails received since `since_ms`, oldest first, at most `limit`
    /// mailbox copies (removed copies left out): the input of `plugin replay`.
    pub async fn emails_for_replay(
        &self,
        tenant_id: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<StoredEmail>, StoreError> {
        let rows = sqlx::query(
            "SELECT em.graph_id, m.address, m.user_id, em.folder, e.id, e.subject, e.record FROM email_mailboxes em
             JOIN emails e ON e.id = em.email_id JOIN mailboxes m ON m.id = em.mailbox_id
             WHERE e.tenant_id = $1 AND em.removed = 0 AND e.received_ms >= $2
             ORDER BY e.received_ms, em.graph_id LIMIT $3",
        )
        .bind(tenant_id)
        .bind(since_ms)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let recipients = sqlx::query(
            "SELECT r.email_id, r.role, r.address, r.name FROM email_recipients r JOIN emails e ON e.id = r.email_id
             WHERE e.tenant_id = $1 AND e.received_ms >= $2 ORDER BY r.email_id, r.role, r.address",
        )
        .bind(tenant_id)
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        let mut by_email: std::collections::HashMap<i64, Vec<(String, String, String)>> =
            std::collections::HashMap::new();
        for r in &recipients {
            by_email.entry(r.try_get("email_id")?).or_default().push((
                r.try_get("role")?,
                r.try_get("address")?,
                r.try_get("name")?,
            ));
        }
        rows.iter()
            .map(|r| {
                let email_id: i64 = r.try_get("id")?;
                Ok(StoredEmail {
                    graph_id: r.try_get("graph_id")?,
                    mailbox: r.try_get("address")?,
                    user_id: r.try_get("user_id")?,
                    folder: r.try_get("folder")?,
                    subject: r.try_get("subject")?,
                    record: r.try_get("record")?,
                    recipients: by_email.get(&email_id).cloned().unwrap_or_default(),
                })
            })
            .collect()
    }
}
