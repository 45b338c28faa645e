-- conveyor's MySQL/MariaDB schema, version 1: records, their outbox, failed attempts,
-- history and definitions (the record store). Placeholders: {{<table>}} (quoted names)
-- and `{{prefix}}name` (index names). MySQL commits each DDL statement on its own, so
-- every statement here can be applied again harmlessly (indexes inside CREATE TABLE).
--
-- Names and IDs (workflow names, foreign IDs, run IDs, outbox IDs) are VARBINARY: their
-- UTF-8 bytes, compared byte by byte. That is code point order, as in the SQLite and
-- memory stores (so a prefix is a plain range), and exact: the utf8mb4_bin collation
-- pads with spaces ('a' = 'a ', and 'a\t' sorts before 'a'), which would make two
-- foreign IDs one. A foreign ID is at most 1,024 bytes (conveyor._ids), so the full
-- column fits every index below within InnoDB's 3,072-byte key limit (255 + 1,024 + 8 +
-- 255 at most): no hash columns, no prefix indexes. Times are DATETIME(6) in UTC (the
-- records' own, to the microsecond).

-- Records: one row per run. `seq` orders runs created at the same instant by insertion
-- (list()); InnoDB ends every secondary index in the primary key, so the records_by_*
-- indexes are (..., created_at, seq). At most one active (Initiated 1, Running 2,
-- Paused 3) run per workflow and foreign ID: `active_foreign_id` is the foreign ID while
-- the run is active and NULL otherwise, and a UNIQUE index allows any number of NULLs.
CREATE TABLE IF NOT EXISTS {{records}} (
    seq                BIGINT          NOT NULL AUTO_INCREMENT,
    run_id             VARBINARY(255)  NOT NULL,
    workflow_name      VARBINARY(255)  NOT NULL,
    foreign_id         VARBINARY(1024) NOT NULL,
    run_state          SMALLINT        NOT NULL,
    status             BIGINT          NOT NULL,
    object             LONGBLOB        NOT NULL,
    created_at         DATETIME(6)     NOT NULL,
    updated_at         DATETIME(6)     NOT NULL,
    version            BIGINT          NOT NULL,
    run_state_reason   MEDIUMTEXT      NOT NULL,
    status_description TEXT            NOT NULL,
    trace_origin       TEXT            NOT NULL,
    reached            TEXT            NOT NULL,  -- statuses reached, comma-separated
    active_foreign_id  VARBINARY(1024)
        GENERATED ALWAYS AS (CASE WHEN run_state IN (1, 2, 3) THEN foreign_id END) VIRTUAL,
    PRIMARY KEY (seq),
    UNIQUE KEY `{{prefix}}records_run_id` (run_id),
    UNIQUE KEY `{{prefix}}records_one_active_run` (workflow_name, active_foreign_id),
    -- list(): by creation, then insertion (the primary key ends each index)
    KEY `{{prefix}}records_by_created` (created_at),
    KEY `{{prefix}}records_by_workflow` (workflow_name, created_at),
    -- list_runs(): by keyset on (created_at, run_id), one index per filter the web UI
    -- and the CLI use; records_list_by_foreign_id also serves latest() and list()'s
    -- foreign ID filter
    KEY `{{prefix}}records_list_all` (created_at, run_id),
    KEY `{{prefix}}records_list_by_workflow` (workflow_name, created_at, run_id),
    KEY `{{prefix}}records_list_by_status` (workflow_name, status, created_at, run_id),
    KEY `{{prefix}}records_list_by_run_state` (workflow_name, run_state, created_at, run_id),
    KEY `{{prefix}}records_list_by_foreign_id` (workflow_name, foreign_id, created_at, run_id),
    KEY `{{prefix}}records_list_any_foreign_id` (foreign_id, created_at, run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The transactional outbox: written with the record, relayed to the event log, deleted.
CREATE TABLE IF NOT EXISTS {{outbox}} (
    seq           BIGINT         NOT NULL AUTO_INCREMENT,
    id            VARBINARY(255) NOT NULL,
    workflow_name VARBINARY(255) NOT NULL,
    run_id        VARBINARY(255) NOT NULL,
    type          BIGINT         NOT NULL,
    headers       MEDIUMBLOB     NOT NULL,  -- JSON object of strings
    created_at    DATETIME(6)    NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY `{{prefix}}outbox_id` (id),
    KEY `{{prefix}}outbox_by_workflow` (workflow_name, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Failed attempts of steps, timeouts and hooks, kept beside the run without writing it:
-- `attempt` counts the failures at one version of the run (1 for the first);
-- next_attempt_at is NULL when no next attempt is due (the run was paused).
CREATE TABLE IF NOT EXISTS {{failures}} (
    workflow_name   VARBINARY(255) NOT NULL,
    run_id          VARBINARY(255) NOT NULL,
    version         BIGINT         NOT NULL,
    attempt         INT            NOT NULL,
    process         VARBINARY(255) NOT NULL,
    error_type      TEXT           NOT NULL,
    message         MEDIUMTEXT     NOT NULL,
    failed_at       DATETIME(6)    NOT NULL,
    next_attempt_at DATETIME(6)    NULL,
    PRIMARY KEY (run_id, version, attempt),
    -- retries_due(workflow, process): the due failures of one process, earliest first
    KEY `{{prefix}}failures_due` (workflow_name, process, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every applied write of a run: its version's status, run state and reason (no object),
-- inserted in the write's own transaction; `at` is the record's updated_at.
CREATE TABLE IF NOT EXISTS {{history}} (
    run_id    VARBINARY(255) NOT NULL,
    version   BIGINT         NOT NULL,
    status    BIGINT         NOT NULL,
    run_state SMALLINT       NOT NULL,
    reason    MEDIUMTEXT     NOT NULL,
    at        DATETIME(6)    NOT NULL,
    PRIMARY KEY (run_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The definitions running workflows registered (KeepsDefinitions): one row per
-- different document of a workflow, `version` counting them from 1. Concurrent
-- registrations of one document insert the same next version: the primary key keeps
-- one, and the others read it.
CREATE TABLE IF NOT EXISTS {{definitions}} (
    workflow_name VARBINARY(255) NOT NULL,
    version       BIGINT         NOT NULL,
    hash          VARCHAR(128)   NOT NULL,
    document      LONGTEXT       NOT NULL,
    registered_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (workflow_name, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
