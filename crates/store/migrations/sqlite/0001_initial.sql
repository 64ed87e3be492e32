-- m365sync schema, version 1. The same tables in SQLite and PostgreSQL (see migrations/README.md).
-- Times are epoch milliseconds (BIGINT); flags are 0/1 (BIGINT); lists are JSON text.

CREATE TABLE orgs (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL
);

-- One connected Microsoft 365 tenant of an org (T1). Credentials live in tenant_secrets.
CREATE TABLE tenants (
    id              INTEGER PRIMARY KEY,
    org_id          BIGINT NOT NULL REFERENCES orgs(id),
    name            TEXT NOT NULL,
    ms_tenant       TEXT NOT NULL,
    authority       TEXT NOT NULL,
    graph_url       TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    auth_mode       TEXT NOT NULL CHECK (auth_mode IN ('app', 'delegated')),
    enabled         BIGINT NOT NULL DEFAULT 1,
    activated_ms    BIGINT,
    initial_sync_ms BIGINT,
    created_ms      BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- Client secrets (several at once, for rotation) and refresh tokens, encrypted at rest.
CREATE TABLE tenant_secrets (
    id          INTEGER PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id),
    kind        TEXT NOT NULL CHECK (kind IN ('client_secret', 'refresh_token')),
    label       TEXT NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_ms  BIGINT NOT NULL,
    UNIQUE (tenant_id, kind, label)
);

CREATE TABLE tenant_settings (
    tenant_id            BIGINT PRIMARY KEY REFERENCES tenants(id),
    cadence_minutes      BIGINT NOT NULL DEFAULT 15 CHECK (cadence_minutes BETWEEN 15 AND 10080),
    commencement_ms      BIGINT,
    internal_domains     TEXT NOT NULL DEFAULT '[]',
    skip_internal_only   BIGINT NOT NULL DEFAULT 1,
    attachment_cap_bytes BIGINT NOT NULL DEFAULT 5242880,
    folders              TEXT NOT NULL DEFAULT '["inbox","sentitems"]',
    page_size            BIGINT NOT NULL DEFAULT 100,
    max_concurrency      BIGINT NOT NULL DEFAULT 8
);

-- A CRM user: exactly one tenant (T1).
CREATE TABLE users (
    id                 INTEGER PRIMARY KEY,
    tenant_id          BIGINT NOT NULL REFERENCES tenants(id),
    email              TEXT NOT NULL,
    display_name       TEXT NOT NULL,
    sync_emails        BIGINT NOT NULL DEFAULT 1,
    sync_events        BIGINT NOT NULL DEFAULT 1,
    primary_mailbox_id BIGINT,
    UNIQUE (tenant_id, email)
);

-- A Graph user object synced by the tenant: a person's or a shared mailbox (E14).
CREATE TABLE mailboxes (
    id                   INTEGER PRIMARY KEY,
    tenant_id            BIGINT NOT NULL REFERENCES tenants(id),
    user_id              BIGINT REFERENCES users(id),
    graph_id             TEXT NOT NULL,
    address              TEXT NOT NULL,
    display_name         TEXT NOT NULL,
    kind                 TEXT NOT NULL CHECK (kind IN ('person', 'shared')),
    enabled              BIGINT NOT NULL DEFAULT 1,
    health               TEXT NOT NULL DEFAULT 'healthy',
    health_detail        TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    backoff_until_ms     BIGINT,
    added_ms             BIGINT NOT NULL,
    UNIQUE (tenant_id, address)
);

-- Exclusion rules at org, tenant (instance) or user (personal) level (E6); the level is
-- which of tenant_id / user_id is set. Same vocabulary as the plugin contract (wit/).
CREATE TABLE rules (
    id          INTEGER PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES orgs(id),
    tenant_id   BIGINT REFERENCES tenants(id),
    user_id     BIGINT REFERENCES users(id),
    effect      TEXT NOT NULL CHECK (effect IN ('exclude', 'include')),
    target      TEXT NOT NULL CHECK (target IN ('any_address', 'sender', 'recipient', 'subject')),
    pattern     TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- Where each mailbox folder's delta stands: a nextLink mid-round or the deltaLink.
CREATE TABLE sync_cursors (
    mailbox_id       BIGINT NOT NULL REFERENCES mailboxes(id),
    folder           TEXT NOT NULL,
    link             TEXT NOT NULL,
    complete         BIGINT NOT NULL,
    round_started_ms BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, folder)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    tenant_id    BIGINT NOT NULL REFERENCES tenants(id),
    mailbox_id   BIGINT REFERENCES mailboxes(id),
    trigger_kind TEXT NOT NULL,
    started_ms   BIGINT NOT NULL,
    finished_ms  BIGINT,
    status       TEXT NOT NULL DEFAULT 'running',
    processed    BIGINT NOT NULL DEFAULT 0,
    synced       BIGINT NOT NULL DEFAULT 0,
    errors       BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE run_log (
    id          INTEGER PRIMARY KEY,
    run_id      BIGINT NOT NULL REFERENCES runs(id),
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id),
    mailbox_id  BIGINT REFERENCES mailboxes(id),
    level       TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error')),
    message     TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX run_log_by_tenant ON run_log (tenant_id, at_ms);

-- One email however many linked mailboxes saw it; correlated by internetMessageId + sender +
-- sent time, because internetMessageId alone is not unique.
CREATE TABLE emails (
    id                  INTEGER PRIMARY KEY,
    org_id              BIGINT NOT NULL REFERENCES orgs(id),
    tenant_id           BIGINT NOT NULL REFERENCES tenants(id),
    correlation_key     TEXT NOT NULL,
    internet_message_id TEXT NOT NULL,
    conversation_id     TEXT NOT NULL,
    subject             TEXT NOT NULL,
    sender              TEXT NOT NULL,
    sent_ms             BIGINT NOT NULL,
    received_ms         BIGINT NOT NULL,
    record              TEXT NOT NULL,
    decided_by          TEXT NOT NULL,
    created_ms          BIGINT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    UNIQUE (tenant_id, correlation_key)
);

CREATE TABLE email_recipients (
    email_id  BIGINT NOT NULL REFERENCES emails(id),
    role      TEXT NOT NULL,
    address   TEXT NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (email_id, role, address)
);
CREATE INDEX email_recipients_by_address ON email_recipients (address);

-- Each mailbox's copy of an email, keyed by its Graph immutable id.
CREATE TABLE email_mailboxes (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id),
    graph_id    TEXT NOT NULL,
    email_id    BIGINT NOT NULL REFERENCES emails(id),
    folder      TEXT NOT NULL,
    removed     BIGINT NOT NULL DEFAULT 0,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, graph_id)
);
CREATE INDEX email_mailboxes_by_email ON email_mailboxes (email_id);

-- What the exclusion stage decided for items it dropped, and by which plugin (P5).
CREATE TABLE exclusions (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id),
    graph_id    TEXT NOT NULL,
    rule        TEXT NOT NULL,
    decided_by  TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, graph_id)
);

-- Records a stage could not process: kept with the error and retried (never lost).
CREATE TABLE failed_records (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id),
    graph_id    TEXT NOT NULL,
    folder      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    error       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 1,
    first_ms    BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, graph_id)
);

-- Attachment bytes, content-addressed (SHA-256), stored once however often they recur.
CREATE TABLE blobs (
    digest   TEXT PRIMARY KEY,
    size     BIGINT NOT NULL,
    content  BLOB NOT NULL
);

CREATE TABLE attachments (
    email_id       BIGINT NOT NULL REFERENCES emails(id),
    graph_id       TEXT NOT NULL,
    name           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           BIGINT NOT NULL,
    digest         TEXT REFERENCES blobs(digest),
    skipped_reason TEXT,
    PRIMARY KEY (email_id, graph_id)
);

CREATE TABLE entities (
    id       INTEGER PRIMARY KEY,
    org_id   BIGINT NOT NULL REFERENCES orgs(id),
    name     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    domains  TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    org_id      BIGINT NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    email       TEXT,
    alt_email   TEXT,
    entity_id   BIGINT REFERENCES entities(id)
);

CREATE TABLE contact_emails (
    contact_id  BIGINT NOT NULL REFERENCES contacts(id),
    address     TEXT NOT NULL,
    PRIMARY KEY (contact_id, address)
);
CREATE INDEX contact_emails_by_address ON contact_emails (address);

-- Who works on a mailbox now; a lease that runs out can be taken over.
CREATE TABLE leases (
    mailbox_id  BIGINT PRIMARY KEY REFERENCES mailboxes(id),
    holder      TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- Plugin registry: blobs by digest, the active version per (org or tenant, slot), history.
CREATE TABLE plugin_blobs (
    digest      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    wasm        BLOB NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE plugin_active (
    org_id        BIGINT NOT NULL REFERENCES orgs(id),
    tenant_scope  BIGINT NOT NULL,
    slot          TEXT NOT NULL CHECK (slot IN ('exclusion', 'mapping', 'matching')),
    digest        TEXT NOT NULL REFERENCES plugin_blobs(digest),
    activated_ms  BIGINT NOT NULL,
    PRIMARY KEY (org_id, tenant_scope, slot)
);

CREATE TABLE plugin_history (
    id            INTEGER PRIMARY KEY,
    org_id        BIGINT NOT NULL REFERENCES orgs(id),
    tenant_scope  BIGINT NOT NULL,
    slot          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    action        TEXT NOT NULL,
    at_ms         BIGINT NOT NULL
);
