-- What an install was checked against before it became active (issue 18, safer installs):
-- the case file that passed (its digest and count), the builtin's own cases, or an explicit
-- `--no-cases`. Empty for rows older than this column, rollbacks and uninstalls.
ALTER TABLE plugin_history ADD COLUMN cases TEXT NOT NULL DEFAULT '';
