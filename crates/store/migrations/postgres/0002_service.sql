-- m365sync schema, version 2: what the long-running service needs to share work between
-- processes (see docs/architecture.md, "The service").

-- When the scheduler next starts a run of the tenant; NULL means now (a new tenant, or a
-- retry asked for). Claimed with a conditional UPDATE so one process starts each run.
ALTER TABLE tenants ADD COLUMN next_run_ms BIGINT;

-- The run a mailbox still owes work to; cleared when a worker finishes the mailbox. A worker
-- of any process may take it, through a lease in `leases`.
ALTER TABLE mailboxes ADD COLUMN pending_run_id BIGINT;

-- The run in which a record last failed, so `m365sync retry RUN` finds it.
ALTER TABLE failed_records ADD COLUMN run_id BIGINT;
