-- m365sync schema, version 19: the plugin version a matching failure is owed to (issue 18).
-- A record the matching plugin failed on names the plugin version that failed it
-- (`name version sha256:HEX`), as a failed email names its stage's plugin, so the failures can
-- be listed and counted per plugin version. `first_ms`: when it first failed (`at_ms` is the
-- latest attempt).
ALTER TABLE match_failures ADD COLUMN plugin TEXT NOT NULL DEFAULT '';
ALTER TABLE match_failures ADD COLUMN first_ms BIGINT NOT NULL DEFAULT 0;

-- The backfill: until now the stamp led the error (`STAMP: error`).
UPDATE match_failures
SET plugin = substr(error, 1, strpos(error, 'sha256:') + 70),
    error = substr(error, strpos(error, 'sha256:') + 73)
WHERE strpos(error, 'sha256:') > 0 AND substr(error, strpos(error, 'sha256:') + 71, 2) = ': ';
UPDATE match_failures SET first_ms = at_ms;
