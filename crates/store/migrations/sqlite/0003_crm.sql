-- m365sync schema, version 3: the CRM side (contacts, entities), matching (E8, E9), and the
-- admin API's per-org and per-user tokens (E12). See docs/architecture.md, "Matching".

-- A CRM's own id for a contact or entity, so an import updates what an earlier one created.
ALTER TABLE contacts ADD COLUMN external_id TEXT;
ALTER TABLE contacts ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE contacts ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX contacts_by_external_id ON contacts (org_id, external_id);
CREATE INDEX contacts_by_email ON contacts (org_id, email);
CREATE INDEX contacts_by_alt_email ON contacts (org_id, alt_email);
CREATE INDEX contact_emails_by_contact ON contact_emails (contact_id);

ALTER TABLE entities ADD COLUMN external_id TEXT;
ALTER TABLE entities ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE entities ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX entities_by_external_id ON entities (org_id, external_id);
CREATE INDEX entities_by_name ON entities (org_id, name);

-- Addresses whose contacts changed (added, edited, removed): the matching job re-matches the
-- stored activities carrying them, and only those. Written in the change's transaction.
CREATE TABLE contact_changes (
    org_id   BIGINT NOT NULL REFERENCES orgs(id),
    address  TEXT NOT NULL,
    at_ms    BIGINT NOT NULL,
    PRIMARY KEY (org_id, address)
);

-- Activities the matching job has not looked at yet. The sync writes a row in the page's
-- transaction for every new email (and event); the job deletes it once the record's matches
-- are stored, so nothing is skipped however commits interleave between processes.
CREATE TABLE match_queue (
    tenant_id  BIGINT NOT NULL REFERENCES tenants(id),
    kind       TEXT NOT NULL CHECK (kind IN ('email', 'event')),
    record_id  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, record_id)
);
INSERT INTO match_queue (tenant_id, kind, record_id) SELECT tenant_id, 'email', id FROM emails;

-- Who runs an org's matching job now (a lease that runs out can be taken over), so two
-- processes never match the same org's records at once.
CREATE TABLE match_leases (
    org_id      BIGINT PRIMARY KEY REFERENCES orgs(id),
    holder      TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- A record the matching plugin failed on: kept out of the review list and retried by the next
-- job.
CREATE TABLE match_failures (
    tenant_id  BIGINT NOT NULL REFERENCES tenants(id),
    kind       TEXT NOT NULL CHECK (kind IN ('email', 'event')),
    record_id  BIGINT NOT NULL,
    error      TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 1,
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, record_id)
);

-- Which contacts an activity (email or event) is linked to: by the matching plugin (with the
-- plugin's digest), or by a person mapping it from the review list (`manual`, never replaced
-- by a re-match). `occurred_ms` is the activity's time, so a timeline pages on the index.
CREATE TABLE activity_matches (
    kind         TEXT NOT NULL CHECK (kind IN ('email', 'event')),
    record_id    BIGINT NOT NULL,
    tenant_id    BIGINT NOT NULL REFERENCES tenants(id),
    contact_id   BIGINT NOT NULL REFERENCES contacts(id),
    entity_id    BIGINT,
    address      TEXT NOT NULL,
    field        TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('plugin', 'manual')),
    reason       TEXT NOT NULL,
    decided_by   TEXT NOT NULL,
    occurred_ms  BIGINT NOT NULL,
    at_ms        BIGINT NOT NULL,
    PRIMARY KEY (kind, record_id, contact_id)
);
CREATE INDEX activity_matches_timeline ON activity_matches (contact_id, occurred_ms);
CREATE INDEX activity_matches_by_entity ON activity_matches (entity_id, occurred_ms);
CREATE INDEX emails_by_conversation ON emails (tenant_id, conversation_id);
CREATE INDEX email_mailboxes_by_mailbox ON email_mailboxes (mailbox_id, email_id);

-- Admin API tokens below the service's own admin token: an org's admin token (user_id NULL)
-- or a user's token (their review list and personal exclusions only). Only a SHA-256 of the
-- token is kept; the token itself is shown once, when it is made.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    token_sha256  TEXT NOT NULL UNIQUE,
    org_id        BIGINT NOT NULL REFERENCES orgs(id),
    user_id       BIGINT REFERENCES users(id),
    label         TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    revoked_ms    BIGINT
);
