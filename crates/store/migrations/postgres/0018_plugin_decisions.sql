-- m365sync schema, version 18: what each plugin version decided (issue 16, the Plugins page).
-- PostgreSQL: the SQLite file with strpos for instr.
-- One row per (tenant, slot, component digest), its counts raised in the same transaction as
-- the records it decided (a page commit, a matching batch), so a page reads a few rows instead
-- of counting a million emails. `kept`/`dropped`: the exclusion plugin's verdicts; `mapped`:
-- records the mapping plugin mapped; `matched`: records the matching plugin linked to at least
-- one contact, `linked`: the contact links it made. Decisions, not current records: a record
-- decided again (a retry, a re-match) counts again, as a run's figures do.
CREATE TABLE plugin_decisions (
    tenant_id  BIGINT NOT NULL REFERENCES tenants(id),
    slot       TEXT NOT NULL CHECK (slot IN ('exclusion', 'mapping', 'matching')),
    digest     TEXT NOT NULL,
    kept       BIGINT NOT NULL DEFAULT 0,
    dropped    BIGINT NOT NULL DEFAULT 0,
    mapped     BIGINT NOT NULL DEFAULT 0,
    matched    BIGINT NOT NULL DEFAULT 0,
    linked     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, slot, digest)
);

-- The backfill, from the stamps (`name version sha256:HEX`) already on the records: a stored
-- email or event carries `EXCLUSION_STAMP; MAPPING_STAMP` (kept by the first, mapped by the
-- second), an exclusion the stamp that dropped it, a plugin's contact link the matching
-- plugin's. Stamps without a digest (product rules, the CRM's own events) are not plugins.
INSERT INTO plugin_decisions (tenant_id, slot, digest, kept, dropped, mapped, matched, linked)
SELECT tenant_id, slot, digest, sum(kept), sum(dropped), sum(mapped), sum(matched), sum(linked)
FROM (
    SELECT tenant_id, 'exclusion' AS slot,
           substr(decided_by, strpos(decided_by, 'sha256:') + 7, 64) AS digest,
           count(*) AS kept, 0 AS dropped, 0 AS mapped, 0 AS matched, 0 AS linked
    FROM (SELECT tenant_id, decided_by FROM emails UNION ALL SELECT tenant_id, decided_by FROM events) AS stored
    WHERE strpos(decided_by, 'sha256:') > 0
    GROUP BY tenant_id, digest
    UNION ALL
    SELECT tenant_id, 'mapping',
           substr(mapping_stamp, strpos(mapping_stamp, 'sha256:') + 7, 64),
           0, 0, count(*), 0, 0
    FROM (SELECT tenant_id, substr(decided_by, strpos(decided_by, '; ') + 2) AS mapping_stamp
          FROM (SELECT tenant_id, decided_by FROM emails UNION ALL SELECT tenant_id, decided_by FROM events) AS stored
          WHERE strpos(decided_by, '; ') > 0) AS mapped_records
    WHERE strpos(mapping_stamp, 'sha256:') > 0
    GROUP BY tenant_id, 3
    UNION ALL
    SELECT m.tenant_id, 'exclusion',
           substr(x.decided_by, strpos(x.decided_by, 'sha256:') + 7, 64),
           0, count(*), 0, 0, 0
    FROM exclusions x JOIN mailboxes m ON m.id = x.mailbox_id
    WHERE strpos(x.decided_by, 'sha256:') > 0
    GROUP BY m.tenant_id, 3
    UNION ALL
    SELECT tenant_id, 'matching',
           substr(decided_by, strpos(decided_by, 'sha256:') + 7, 64),
           0, 0, 0, count(DISTINCT kind || ':' || record_id), count(*)
    FROM activity_matches
    WHERE source = 'plugin' AND strpos(decided_by, 'sha256:') > 0
    GROUP BY tenant_id, 3
) AS counted
GROUP BY tenant_id, slot, digest;
