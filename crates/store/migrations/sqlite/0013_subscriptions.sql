-- Change notifications (issue 17): Graph subscriptions per synced mailbox, the wake-up a
-- notification leaves on its mailbox, and the tenant switch that turns them off.

-- A tenant may turn notifications off: the cadence poll alone then syncs it.
ALTER TABLE tenant_settings ADD COLUMN notifications BIGINT NOT NULL DEFAULT 1;

-- When a notification (or a `missed` lifecycle event) asked for a look at the mailbox and no
-- round has been started for it yet; the earliest such time, so a burst is one round.
ALTER TABLE mailboxes ADD COLUMN notified_ms BIGINT;
-- The notified_ms of the round started for it, kept until that round ends (the lag metric).
ALTER TABLE mailboxes ADD COLUMN woken_ms BIGINT;

-- One subscription per mailbox and resource: its mail, and the events of a user's primary
-- mailbox when Sync Events is on. client_state is the per-subscription secret Graph echoes in
-- every notification, sealed like the tenants' secrets.
CREATE TABLE subscriptions (
    id                   INTEGER PRIMARY KEY,
    tenant_id            BIGINT NOT NULL REFERENCES tenants(id),
    mailbox_id           BIGINT NOT NULL REFERENCES mailboxes(id),
    resource_kind        TEXT NOT NULL CHECK (resource_kind IN ('mail', 'events')),
    -- Graph's id; NULL until Graph has created it.
    graph_id             TEXT,
    client_state         BLOB NOT NULL,
    -- 'creating', 'active' or 'failing' (detail says why; next_attempt_ms says when again).
    status               TEXT NOT NULL DEFAULT 'creating',
    detail               TEXT,
    expires_ms           BIGINT,
    -- When to renew: well before expires_ms, computed from the expiry Graph granted.
    renew_after_ms       BIGINT,
    next_attempt_ms      BIGINT,
    created_ms           BIGINT NOT NULL,
    renewed_ms           BIGINT,
    notifications        BIGINT NOT NULL DEFAULT 0,
    last_notification_ms BIGINT,
    lifecycle_events     BIGINT NOT NULL DEFAULT 0,
    last_lifecycle       TEXT,
    last_lifecycle_ms    BIGINT,
    -- What a lifecycle event asks of the maintainer: 'reauthorize' or 'recreate'.
    pending_action       TEXT,
    -- Failed Graph calls in a row (the retry waits 1 min, doubling up to an hour); 0 once one
    -- succeeds.
    failures             BIGINT NOT NULL DEFAULT 0,
    -- The notification URL Graph was given: a subscription made for another URL (the
    -- service's notification_url changed) is made again for the new one.
    notification_url     TEXT,
    -- A maintainer's claim (one process at a time works on a subscription).
    claim_until_ms       BIGINT,
    UNIQUE (mailbox_id, resource_kind)
);
CREATE UNIQUE INDEX subscriptions_graph_id ON subscriptions (graph_id);
