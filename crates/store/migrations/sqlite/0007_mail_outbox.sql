-- m365sync schema, version 7: email sent from the CRM through a linked mailbox (E15). The
-- PostgreSQL file is the same statements but for the identity column and the byte type.

-- One email the CRM asked to send. `idempotency_key` is the caller's (or one made for it): a
-- request repeated with the same key finds this row and sends nothing more. The message goes
-- to Graph as a draft carrying `internet_message_id` (derived from the row, stored before any
-- Graph call), so a send interrupted between Graph's answer and our commit is found again in
-- the mailbox instead of sent twice. `state`: queued, sending (a worker holds it until
-- `claimed_until_ms`), sent, failed (`error` says why and what to do). `email_id` is the
-- synced email the sent copy became; `regarding_contact_id` the contact the sender linked it to.
CREATE TABLE mail_outbox (
    id                   INTEGER PRIMARY KEY,
    org_id               BIGINT NOT NULL REFERENCES orgs(id),
    tenant_id            BIGINT NOT NULL REFERENCES tenants(id),
    mailbox_id           BIGINT NOT NULL REFERENCES mailboxes(id),
    user_id              BIGINT REFERENCES users(id),
    idempotency_key      TEXT NOT NULL,
    internet_message_id  TEXT NOT NULL,
    request_digest       TEXT NOT NULL,
    subject              TEXT NOT NULL,
    body                 TEXT NOT NULL,
    body_type            TEXT NOT NULL CHECK (body_type IN ('text', 'html')),
    recipients           TEXT NOT NULL,
    regarding_contact_id BIGINT REFERENCES contacts(id),
    attachment_bytes     BIGINT NOT NULL DEFAULT 0,
    state                TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts             BIGINT NOT NULL DEFAULT 0,
    error                TEXT,
    graph_id             TEXT,
    claimed_by           TEXT,
    claimed_until_ms     BIGINT,
    not_before_ms        BIGINT,
    email_id             BIGINT REFERENCES emails(id),
    requested_by         TEXT NOT NULL,
    created_ms           BIGINT NOT NULL,
    started_ms           BIGINT,
    sent_ms              BIGINT,
    updated_ms           BIGINT NOT NULL,
    UNIQUE (tenant_id, idempotency_key),
    UNIQUE (internet_message_id)
);
CREATE INDEX mail_outbox_by_state ON mail_outbox (state, id);
CREATE INDEX mail_outbox_awaiting_copy ON mail_outbox (tenant_id, email_id);

-- The files of an outbox email, in order; the bytes are kept until the row is sent.
CREATE TABLE mail_outbox_attachments (
    outbox_id    BIGINT NOT NULL REFERENCES mail_outbox(id),
    position     BIGINT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content      BLOB,
    PRIMARY KEY (outbox_id, position)
);
