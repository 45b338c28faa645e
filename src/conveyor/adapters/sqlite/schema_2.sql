-- conveyor's SQLite schema, version 2 (PRAGMA user_version = 2): failed attempts and run
-- history. Applied after version 1's script (schema.sql), to new files and by
-- `conveyor migrate` to version-1 files. Every statement is idempotent.

-- Failed attempts of steps, timeouts and hooks, kept beside the run without writing it:
-- `attempt` counts the failures at one version of the run (1 for the first).
-- next_attempt_at is NULL when no next attempt is due (the run was paused).
CREATE TABLE IF NOT EXISTS failures (
    workflow_name       TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    attempt             INTEGER NOT NULL,
    process             TEXT    NOT NULL,
    error_type          TEXT    NOT NULL,
    message             TEXT    NOT NULL,
    failed_at           INTEGER NOT NULL,
    next_attempt_at     INTEGER,
    PRIMARY KEY (run_id, version, attempt)
) WITHOUT ROWID;

-- retries_due(workflow, process): the due failures of one process, earliest first.
CREATE INDEX IF NOT EXISTS failures_due
    ON failures (workflow_name, process, next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- Every applied write of a run: its version's status, run state and reason (no object).
-- Written in the write's transaction; `at` is the record's updated_at.
CREATE TABLE IF NOT EXISTS history (
    run_id              TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    run_state           INTEGER NOT NULL,
    reason              TEXT    NOT NULL,
    at                  INTEGER NOT NULL,
    PRIMARY KEY (run_id, version)
) WITHOUT ROWID;
