-- m365sync schema, version 4: calendar sync (C1-C9). See docs/architecture.md, "Calendar sync".

-- Calendar settings of an org (tenant_scope 0, the default of its tenants) or of one tenant
-- (tenant_scope = the tenant's id), which wins over the org's. Defaults: C3 and C4.
CREATE TABLE calendar_settings (
    org_id                 BIGINT NOT NULL REFERENCES orgs(id),
    tenant_scope           BIGINT NOT NULL,
    direction              TEXT NOT NULL DEFAULT 'to_crm' CHECK (direction IN ('to_crm', 'to_microsoft', 'two_way')),
    sync_internal_events   BIGINT NOT NULL DEFAULT 0,
    delete_from_microsoft  BIGINT NOT NULL DEFAULT 1,
    delete_from_crm        BIGINT NOT NULL DEFAULT 0,
    sync_private_events    BIGINT NOT NULL DEFAULT 1,
    -- Applied by the matching job: events related to no CRM record are kept only when set.
    sync_unmatched_events  BIGINT NOT NULL DEFAULT 0,
    commencement_ms        BIGINT,
    inbound_years          BIGINT NOT NULL DEFAULT 10 CHECK (inbound_years BETWEEN 0 AND 50),
    outbound_months        BIGINT NOT NULL DEFAULT 24 CHECK (outbound_months BETWEEN 0 AND 600),
    PRIMARY KEY (org_id, tenant_scope)
);

-- Resource calendars (rooms) by their unique address (C6): from the tenant's room list and
-- from the locations of synced events.
CREATE TABLE resource_calendars (
    id          INTEGER PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id),
    address     TEXT NOT NULL,
    name        TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    UNIQUE (tenant_id, address)
);

-- A CRM event: pulled from a user's primary calendar (origin 'microsoft') or created in the
-- CRM (origin 'crm'). Occurrences and exceptions of a series are events of their own, linked
-- to their series by series_graph_id. Times are UTC epoch ms; an all-day event also keeps its
-- dates (start_date, end_date), which are never shifted by a zone.
-- crm_version counts CRM edits, synced_version the one Microsoft last agreed with: an event
-- with crm_version > synced_version has a CRM change not yet pushed.
CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    tenant_id        BIGINT NOT NULL REFERENCES tenants(id),
    user_id          BIGINT REFERENCES users(id),
    mailbox_id       BIGINT REFERENCES mailboxes(id),
    graph_id         TEXT,
    series_graph_id  TEXT,
    kind             TEXT NOT NULL,
    ical_uid         TEXT,
    subject          TEXT NOT NULL,
    start_ms         BIGINT NOT NULL,
    end_ms           BIGINT NOT NULL,
    all_day          BIGINT NOT NULL DEFAULT 0,
    start_date       TEXT,
    end_date         TEXT,
    record           TEXT NOT NULL,
    origin           TEXT NOT NULL CHECK (origin IN ('microsoft', 'crm')),
    imported         BIGINT NOT NULL DEFAULT 0,
    send_invitations BIGINT NOT NULL DEFAULT 0,
    sync_status      TEXT NOT NULL DEFAULT 'never' CHECK (sync_status IN ('never', 'active', 'inactive')),
    change_key       TEXT,
    transaction_id   TEXT,
    crm_version      BIGINT NOT NULL DEFAULT 0,
    synced_version   BIGINT NOT NULL DEFAULT 0,
    cancelled        BIGINT NOT NULL DEFAULT 0,
    deleted          BIGINT NOT NULL DEFAULT 0,
    decided_by       TEXT NOT NULL DEFAULT '',
    created_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_by_graph_id ON events (mailbox_id, graph_id);
CREATE INDEX events_by_start ON events (tenant_id, start_ms);
CREATE INDEX events_by_user ON events (user_id, start_ms);
CREATE INDEX events_by_series ON events (mailbox_id, series_graph_id);
CREATE INDEX events_by_transaction ON events (mailbox_id, transaction_id);

-- An event's organizer, attendees and resources, lower-case, for matching.
CREATE TABLE event_addresses (
    event_id  BIGINT NOT NULL REFERENCES events(id),
    role      TEXT NOT NULL CHECK (role IN ('organizer', 'required', 'optional', 'resource')),
    address   TEXT NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (event_id, role, address)
);
CREATE INDEX event_addresses_by_address ON event_addresses (address);

-- The series masters of a mailbox's recurring events: their pattern ("Recurring in M365").
CREATE TABLE event_series (
    mailbox_id  BIGINT NOT NULL REFERENCES mailboxes(id),
    graph_id    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    recurrence  TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, graph_id)
);

-- CRM changes owed to Microsoft (C5), written in the change's transaction. `fields` lists what
-- an update changed (JSON), so a PATCH sends only that.
CREATE TABLE event_outbox (
    id          INTEGER PRIMARY KEY,
    event_id    BIGINT NOT NULL REFERENCES events(id),
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id),
    user_id     BIGINT NOT NULL REFERENCES users(id),
    op          TEXT NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    fields      TEXT NOT NULL DEFAULT '[]',
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_ms  BIGINT NOT NULL
);
CREATE INDEX event_outbox_by_user ON event_outbox (user_id, id);
