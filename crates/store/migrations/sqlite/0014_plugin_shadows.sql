-- Shadow runs (issue 18, item 2): a candidate plugin that runs beside the version in force on
-- live traffic and decides nothing. One shadow per (org or tenant, slot), with the counts of
-- its comparisons; it is dropped by `plugin shadow stop` or made the version in force by
-- `plugin promote` (which re-runs `cases_text`, the case file it was installed with).
CREATE TABLE plugin_shadows (
    org_id        BIGINT NOT NULL REFERENCES orgs(id),
    tenant_scope  BIGINT NOT NULL,
    slot          TEXT NOT NULL CHECK (slot IN ('exclusion', 'mapping')),
    digest        TEXT NOT NULL REFERENCES plugin_blobs(digest),
    cases         TEXT NOT NULL,
    cases_text    TEXT NOT NULL,
    started_ms    BIGINT NOT NULL,
    agreed        BIGINT NOT NULL DEFAULT 0,
    disagreed     BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, tenant_scope, slot)
);

-- The records on which a shadow and the version in force disagreed, or on which the shadow
-- failed: both verdicts (or both mappings, as JSON) and the rule each named. Agreements are
-- only counted. One row per record and shadow version (a record decided again replaces it).
CREATE TABLE plugin_shadow_diffs (
    id            INTEGER PRIMARY KEY,
    org_id        BIGINT NOT NULL REFERENCES orgs(id),
    tenant_scope  BIGINT NOT NULL,
    slot          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    tenant_id     BIGINT NOT NULL REFERENCES tenants(id),
    record_kind   TEXT NOT NULL,
    graph_id      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('disagreed', 'failed')),
    live          TEXT NOT NULL,
    live_rule     TEXT NOT NULL,
    shadow        TEXT NOT NULL,
    shadow_rule   TEXT NOT NULL,
    at_ms         BIGINT NOT NULL,
    UNIQUE (org_id, tenant_scope, slot, digest, tenant_id, graph_id)
);
