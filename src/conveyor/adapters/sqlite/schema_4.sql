-- conveyor's SQLite schema, version 4 (PRAGMA user_version = 4): the definitions the
-- running workflows registered (KeepsDefinitions), so that tools with only the file know
-- status names and graphs. Applied after version 3's script. Idempotent.

-- One row per different document registered for a workflow: `version` counts them from
-- 1; a registration whose hash equals the latest version's writes nothing. Registrations
-- are write transactions (BEGIN IMMEDIATE), so concurrent ones of one document keep one
-- version; the primary key refuses a second row of a version whatever happens.
CREATE TABLE IF NOT EXISTS definitions (
    workflow_name       TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    hash                TEXT    NOT NULL,
    document            TEXT    NOT NULL,
    registered_at       INTEGER NOT NULL,
    PRIMARY KEY (workflow_name, version)
) WITHOUT ROWID;
