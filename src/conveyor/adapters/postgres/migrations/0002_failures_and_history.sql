-- conveyor's PostgreSQL schema, version 2: failed attempts and run history. Placeholders as
-- in 0001_initial.sql.

-- Failed attempts of steps, timeouts and hooks, kept beside the run without writing it:
-- `attempt` counts the failures at one version of the run (1 for the first);
-- next_attempt_at is NULL when no next attempt is due (the run was paused).
CREATE TABLE {{failures}} (
    workflow_name   text        NOT NULL,
    run_id          text        NOT NULL,
    version         bigint      NOT NULL,
    attempt         integer     NOT NULL,
    process         text        NOT NULL,
    error_type      text        NOT NULL,
    message         text        NOT NULL,
    failed_at       timestamptz NOT NULL,
    next_attempt_at timestamptz,
    CONSTRAINT "{{prefix}}failures_key" PRIMARY KEY (run_id, version, attempt)
);
-- retries_due(workflow, process): the due failures of one process, earliest first.
CREATE INDEX "{{prefix}}failures_due" ON {{failures}} (workflow_name, process, next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;

-- Every applied write of a run: its version's status, run state and reason (no object),
-- inserted by the write's own statement; `at` is the record's updated_at.
CREATE TABLE {{history}} (
    run_id    text        NOT NULL,
    version   bigint      NOT NULL,
    status    bigint      NOT NULL,
    run_state smallint    NOT NULL,
    reason    text        NOT NULL,
    at        timestamptz NOT NULL,
    CONSTRAINT "{{prefix}}history_key" PRIMARY KEY (run_id, version)
);
