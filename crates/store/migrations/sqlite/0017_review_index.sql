-- m365sync schema, version 17: a user's review list of unmatched emails (issue 16) is a range
-- read. The list pages through one mailbox's live copies newest first; the sent time lived only
-- on `emails`, so every page joined all of the user's mail and sorted it (160 ms for a user
-- with 50,000 emails). Each copy now carries its email's sent time (an email's sent time never
-- changes: it is part of its correlation key), and this partial index holds the live copies by
-- mailbox and time, so a page reads about as many rows as it shows and a date filter reads
-- only its range. The PostgreSQL file is the same statements.
ALTER TABLE email_mailboxes ADD COLUMN sent_ms BIGINT NOT NULL DEFAULT 0;
UPDATE email_mailboxes SET sent_ms = (SELECT e.sent_ms FROM emails e WHERE e.id = email_mailboxes.email_id);
CREATE INDEX email_mailboxes_review ON email_mailboxes (mailbox_id, sent_ms, email_id) WHERE removed = 0;
