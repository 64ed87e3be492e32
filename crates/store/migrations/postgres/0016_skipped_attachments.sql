-- m365sync schema, version 16: the console's "attachments skipped" page (issue 16) pages
-- through skipped attachments newest email first; this partial index holds only those rows,
-- so a store of millions of stored attachments answers a page without reading them.
-- The SQLite file is the same statement.
CREATE INDEX attachments_skipped ON attachments (email_id, graph_id) WHERE skipped_reason IS NOT NULL;
