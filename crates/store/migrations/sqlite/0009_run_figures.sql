-- m365sync schema, version 9: a run's figures by kind, committed with the work they count
-- (issues 19 and 20). The PostgreSQL file is the same statements.
--
-- Every page commit adds its records to its run in the page's own transaction: emails (mail
-- folders) and events (calendar items as the calendarView returns them: each occurrence of a
-- series is one event; series masters and removals are not records read). For each kind,
-- processed = kept + excluded + failed. `processed`, `synced` and `errors` stay the totals:
-- processed = emails_processed + events_processed, synced = emails_kept + events_kept, and
-- errors = failed records + mailbox-level errors. Runs recorded before this version have
-- only the totals (their by-kind figures read 0).
ALTER TABLE runs ADD COLUMN emails_processed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN emails_kept BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN emails_excluded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN emails_failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events_processed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events_kept BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events_excluded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN events_failed BIGINT NOT NULL DEFAULT 0;
-- Records Graph reported removed (mail and calendar), and CRM events written to Microsoft.
ALTER TABLE runs ADD COLUMN removed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN pushed BIGINT NOT NULL DEFAULT 0;
-- Times a mailbox's share of the run stopped before it finished (the process was killed or
-- stopped, or its lease ran out) and was taken up again: the run is the same row, resumed.
ALTER TABLE runs ADD COLUMN interruptions BIGINT NOT NULL DEFAULT 0;
