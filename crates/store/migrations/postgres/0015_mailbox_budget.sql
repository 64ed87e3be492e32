-- m365sync schema, version 15: the request budget the Graph client paces each mailbox to
-- (issue 15). Outlook allows an app 10,000 requests per mailbox per 10 minutes; the client
-- spreads its requests so no window of Graph's goes over, instead of spending the budget and
-- drawing 429s. A tenant lowers it when other tools of the firm's use the same app registration
-- for the same mailboxes; the window is Outlook's 10 minutes unless Microsoft changes it.
ALTER TABLE tenant_settings ADD COLUMN mailbox_budget BIGINT NOT NULL DEFAULT 10000;
ALTER TABLE tenant_settings ADD COLUMN mailbox_budget_secs BIGINT NOT NULL DEFAULT 600;
