//! What each plugin version decided (issue 16, the console's Plugins page): counters per
//! (tenant, slot, component digest) in `plugin_decisions` (migration 0018), raised in the same
//! transaction as the records they count, so the page reads a handful of rows however large
//! the store is. A `GROUP BY decided_by` over the emails would read every email on every page
//! view; an index on `decided_by` would still read one index entry per email (and each holds
//! two 64-digit stamps). The counters cost one small upsert per page and version instead.
//!
//! They count decisions, not the records a version is the last to have decided: a record
//! decided again (a retry, a delta resend, a re-match) counts again, as a run's figures do.
//! Migration 0018 backfilled them from the records stored before it.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::{Store, StoreError};

/// What one version decided, at one level (a tenant, or summed over an org's tenants).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Decisions {
    /// Exclusion: records it kept.
    pub kept: i64,
    /// Exclusion: records it dropped.
    pub dropped: i64,
    /// Mapping: records it mapped into CRM records.
    pub mapped: i64,
    /// Matching: records it linked to at least one contact.
    pub matched: i64,
    /// Matching: the contact links it made.
    pub linked: i64,
    /// Records still failing whose failure names this version (not a counter: read from
    /// `failed_records.plugin` and `match_failures.plugin`, which hold only what is still
    /// failing).
    pub failed: i64,
}

impl Decisions {
    fn add(&mut self, o: &Decisions) {
        self.kept += o.kept;
        self.dropped += o.dropped;
        self.mapped += o.mapped;
        self.matched += o.matched;
        self.linked += o.linked;
        self.failed += o.failed;
    }
}

/// The digest in a stamp `name version sha256:HEX` (the part after `sha256:` up to a space or
/// `;`); none for a product rule's stamp, which names no plugin.
pub fn stamp_digest(stamp: &str) -> Option<&str> {
    let at = stamp.find("sha256:")? + "sha256:".len();
    let rest = &stamp[at..];
    let end = rest.find([' ', ';']).unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// A page's counts being gathered before they are written: (slot, digest) -> counts, ordered so
/// concurrent transactions upsert the rows in one order (no lock-order deadlock on PostgreSQL).
#[derive(Debug, Default)]
pub(crate) struct Tally(BTreeMap<(&'static str, String), Decisions>);

impl Tally {
    fn at(&mut self, slot: &'static str, stamp: &str) -> Option<&mut Decisions> {
        let digest = stamp_digest(stamp)?;
        Some(self.0.entry((slot, digest.to_string())).or_default())
    }

    /// A stored email or event: `decided_by` is `EXCLUSION_STAMP; MAPPING_STAMP`, kept by the
    /// first and mapped by the second.
    pub(crate) fn stored(&mut self, decided_by: &str) {
        let (exclusion, mapping) = decided_by.split_once("; ").unwrap_or((decided_by, ""));
        if let Some(d) = self.at("exclusion", exclusion) {
            d.kept += 1;
        }
        if let Some(d) = self.at("mapping", mapping) {
            d.mapped += 1;
        }
    }

    /// A record the exclusion plugin of `stamp` dropped.
    pub(crate) fn dropped(&mut self, stamp: &str) {
        if let Some(d) = self.at("exclusion", stamp) {
            d.dropped += 1;
        }
    }

    /// A matching batch: `matched` records linked by `stamp`'s plugin with `linked` links.
    pub(crate) fn matched(&mut self, stamp: &str, matched: i64, linked: i64) {
        if let Some(d) = self.at("matching", stamp) {
            d.matched += matched;
            d.linked += linked;
        }
    }

    /// Adds the counts to `tenant_id`'s rows, inside the caller's transaction.
    pub(crate) async fn write(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant_id: i64,
    ) -> Result<(), StoreError> {
        for ((slot, digest), d) in self.0 {
            if d == Decisions::default() {
                continue;
            }
            sqlx::query(
                "INSERT INTO plugin_decisions (tenant_id, slot, digest, kept, dropped, mapped, matched, linked)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (tenant_id, slot, digest) DO UPDATE SET
                     kept = plugin_decisions.kept + excluded.kept,
                     dropped = plugin_decisions.dropped + excluded.dropped,
                     mapped = plugin_decisions.mapped + excluded.mapped,
                     matched = plugin_decisions.matched + excluded.matched,
                     linked = plugin_decisions.linked + excluded.linked",
            )
            .bind(tenant_id)
            .bind(slot)
            .bind(digest)
            .bind(d.kept)
            .bind(d.dropped)
            .bind(d.mapped)
            .bind(d.matched)
            .bind(d.linked)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

impl Store {
    /// What every version decided in the org's tenants, by (tenant id, slot, digest), with the
    /// failed records naming each version. Reads the counters (a few rows per tenant) and the
    /// org's failed records (what is still failing, not the mail).
    pub async fn plugin_decisions(
        &self,
        org_id: i64,
    ) -> Result<BTreeMap<(i64, String, String), Decisions>, StoreError> {
        let mut out: BTreeMap<(i64, String, String), Decisions> = BTreeMap::new();
        let rows = sqlx::query(
            "SELECT d.tenant_id, d.slot, d.digest, d.kept, d.dropped, d.mapped, d.matched, d.linked
             FROM plugin_decisions d JOIN tenants t ON t.id = d.tenant_id WHERE t.org_id = $1",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        for r in rows {
            let d = Decisions {
                kept: r.try_get("kept")?,
                dropped: r.try_get("dropped")?,
                mapped: r.try_get("mapped")?,
                matched: r.try_get("matched")?,
                linked: r.try_get("linked")?,
                failed: 0,
            };
            out.entry((
                r.try_get("tenant_id")?,
                r.try_get("slot")?,
                r.try_get("digest")?,
            ))
            .or_default()
            .add(&d);
        }
        // A failure's stage says the slot: the exclusion's or the mapping's (the product's own
        // stages, `convert` and `series`, name no plugin), or the matching plugin's (its
        // failures are kept apart, in `match_failures`).
        let failed = sqlx::query(
            "SELECT m.tenant_id, f.stage, f.plugin, COUNT(*) AS n
             FROM failed_records f JOIN mailboxes m ON m.id = f.mailbox_id JOIN tenants t ON t.id = m.tenant_id
             WHERE t.org_id = $1 AND f.plugin <> '' GROUP BY m.tenant_id, f.stage, f.plugin
             UNION ALL
             SELECT f.tenant_id, 'match' AS stage, f.plugin, COUNT(*) AS n
             FROM match_failures f JOIN tenants t ON t.id = f.tenant_id
             WHERE t.org_id = $1 AND f.plugin <> '' GROUP BY f.tenant_id, f.plugin",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        for r in failed {
            let stage: String = r.try_get("stage")?;
            let slot = match stage.as_str() {
                "exclude" => "exclusion",
                "map" => "mapping",
                "match" => "matching",
                _ => continue,
            };
            let plugin: String = r.try_get("plugin")?;
            let Some(digest) = stamp_digest(&plugin) else {
                continue;
            };
            out.entry((
                r.try_get("tenant_id")?,
                slot.to_string(),
                digest.to_string(),
            ))
            .or_default()
            .failed += r.try_get::<i64, _>("n")?;
        }
        Ok(out)
    }
}

/// Sums `all` (from [`Store::plugin_decisions`]) for one slot and digest over `tenants` (one
/// tenant's level, or the org's tenants for its default).
pub fn sum_for(
    all: &BTreeMap<(i64, String, String), Decisions>,
    tenants: &[i64],
    slot: &str,
    digest: &str,
) -> Decisions {
    let mut d = Decisions::default();
    for t in tenants {
        if let Some(c) = all.get(&(*t, slot.to_string(), digest.to_string())) {
            d.add(c);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_names_its_digest() {
        assert_eq!(
            stamp_digest("default-exclusion 0.1.0 sha256:abc123"),
            Some("abc123")
        );
        assert_eq!(stamp_digest("x 1 sha256:ab; y 2 sha256:cd"), Some("ab"));
        assert_eq!(stamp_digest("m365sync calendar rules (C7)"), None);
        assert_eq!(stamp_digest("crm"), None);
        let mut t = Tally::default();
        t.stored("x 1 sha256:ab; y 2 sha256:cd");
        t.dropped("x 1 sha256:ab");
        t.dropped("draft rule");
        let ab = t.0[&("exclusion", "ab".to_string())];
        assert_eq!((ab.kept, ab.dropped), (1, 1));
        assert_eq!(t.0[&("mapping", "cd".to_string())].mapped, 1);
        assert_eq!(t.0.len(), 2);
    }
}
