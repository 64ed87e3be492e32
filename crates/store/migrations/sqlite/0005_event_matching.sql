-- m365sync schema, version 5: events take part in matching (E8, C3).

-- Set by the matching job when an event relates to no CRM record while the tenant's "sync
-- unmatched events" setting is off: the event is kept (a later contact may match it) but not
-- shown in the CRM. Cleared as soon as it matches.
ALTER TABLE events ADD COLUMN unmatched BIGINT NOT NULL DEFAULT 0;
