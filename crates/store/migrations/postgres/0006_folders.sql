-- m365sync schema, version 6: every folder of a mailbox, backfills of any size, and nothing
-- silent (issue 14). The SQLite file is the same statements.

-- A mailbox's folder tree as Graph's folder delta reports it. `folder_key` is what cursors,
-- links, exclusions and failed records name the folder by: the well-known name for Graph's
-- well-known folders (so keys written before this version keep their meaning), else the
-- folder's Graph id. `path` is built from display names ("Inbox/Clients/Acme"); `synced` says
-- whether the last discovery put the folder in the synced set (settings `folders` and
-- `excluded_folders`); `removed` that Graph reported the folder deleted.
CREATE TABLE mail_folders (
    mailbox_id      BIGINT NOT NULL REFERENCES mailboxes(id),
    graph_id        TEXT NOT NULL,
    folder_key      TEXT NOT NULL,
    parent_graph_id TEXT,
    display_name    TEXT NOT NULL,
    well_known      TEXT,
    path            TEXT NOT NULL,
    total_items     BIGINT NOT NULL DEFAULT 0,
    hidden          BIGINT NOT NULL DEFAULT 0,
    synced          BIGINT NOT NULL DEFAULT 0,
    removed         BIGINT NOT NULL DEFAULT 0,
    updated_ms      BIGINT NOT NULL,
    PRIMARY KEY (mailbox_id, graph_id)
);
CREATE INDEX mail_folders_by_key ON mail_folders (mailbox_id, folder_key);

-- Folders excluded with their subfolders, by well-known name or path (issue 14: Junk Email,
-- Deleted Items, Drafts, Outbox, Conversation History, Sync Issues by default).
ALTER TABLE tenant_settings ADD COLUMN excluded_folders TEXT NOT NULL DEFAULT '["junkemail","deleteditems","drafts","outbox","conversationhistory","syncissues"]';
-- Attempts after which a record a plugin keeps failing on is parked (retried only on request).
ALTER TABLE tenant_settings ADD COLUMN failure_attempts BIGINT NOT NULL DEFAULT 5;
-- All folders by default: tenants still on the old default (Inbox and Sent Items) get it; a
-- list an admin chose stays.
UPDATE tenant_settings SET folders = '["*"]' WHERE folders = '["inbox","sentitems"]';

-- What a failed record is and who failed it, so it can be named without reading its JSON, and
-- whether it is parked.
ALTER TABLE failed_records ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE failed_records ADD COLUMN plugin TEXT NOT NULL DEFAULT '';
ALTER TABLE failed_records ADD COLUMN parked BIGINT NOT NULL DEFAULT 0;

-- Whether a round of a folder (or calendar) began from its first URL (an initial round, or a
-- restart after 410): such a round returns everything, so what it did not return is gone
-- (the store is reconciled at its end), and a filtered one may have stopped at Graph's cap.
ALTER TABLE sync_cursors ADD COLUMN full_round BIGINT NOT NULL DEFAULT 0;

-- The folder an exclusion was decided in, so `mailbox verify` can count a folder's records.
ALTER TABLE exclusions ADD COLUMN folder TEXT NOT NULL DEFAULT '';

-- When a mailbox last completed its share of a run: errors logged before it are healed (a
-- retry of "every error since" skips them), and health shows it.
ALTER TABLE mailboxes ADD COLUMN last_success_ms BIGINT;
-- When the mailbox's current streak of counted failures began: a transient streak disables
-- the mailbox only after both enough failures and enough time (Dynamics: 10 tries, 5 minutes
-- apart), so a short outage never does.
ALTER TABLE mailboxes ADD COLUMN failing_since_ms BIGINT;

-- Mailboxes that never completed their share of a run (an outage that outlasted the back-off,
-- a permanent failure, a gap `mailbox verify` found): such a run ends `incomplete`.
ALTER TABLE runs ADD COLUMN incomplete BIGINT NOT NULL DEFAULT 0;
