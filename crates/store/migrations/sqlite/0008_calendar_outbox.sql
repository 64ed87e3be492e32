-- m365sync schema, version 8: the calendar's loose ends and the org-wide timeline.
-- See docs/architecture.md, "The calendar and the outbound side" and "Matching, timelines".

-- Why an event's last CRM change was resolved without reaching Microsoft (past, imported,
-- Inactive, the direction, deletes from the CRM off at the time of the delete); NULL when it
-- was sent or still waits in the outbox. What `events list` and the API show as "not sent".
ALTER TABLE events ADD COLUMN push_note TEXT;

-- Outbox rows now wait (Sync Events off, beyond the outbound range) and are read per event
-- (its push state, the push's resolution) and per tenant (a listing's states).
CREATE INDEX event_outbox_by_event ON event_outbox (event_id, id);
CREATE INDEX event_outbox_by_tenant ON event_outbox (tenant_id, id);

-- A series' pattern as Graph gave it (its `recurrence` JSON); `recurrence` holds the readable
-- English ("Every 2 weeks on Monday and Wednesday, until 30 June 2027") users see.
ALTER TABLE event_series ADD COLUMN pattern TEXT;

-- The copies of one message in several tenants of an org share a correlation key: a contact's
-- timeline shows them once, found through this index.
CREATE INDEX emails_by_org_key ON emails (org_id, correlation_key);
