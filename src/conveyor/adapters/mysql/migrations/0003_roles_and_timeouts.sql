-- Timeouts, and the role scheduler's leases and members.
--
-- Times are DATETIME(6) in UTC. Each statement can run again harmlessly (MySQL commits
-- DDL statement by statement): CREATE TABLE IF NOT EXISTS with the indexes inside.

-- Timeouts: `id` counts from 1; a create is idempotent through timeouts_key. Uncompleted
-- timeouts have completed_at NULL, which the indexes use as an equality (no partial
-- indexes here): timeouts_pending serves list_valid and next_expiry, the
-- (workflow_name, completed_at) index, with the primary key InnoDB appends, serves list
-- in ID order, and timeouts_completed the pruning of completed timeouts.
CREATE TABLE IF NOT EXISTS {{timeouts}} (
    id             BIGINT        NOT NULL AUTO_INCREMENT,
    workflow_name  VARCHAR(255)  NOT NULL,
    foreign_id     VARCHAR(1024) NOT NULL,
    run_id         VARCHAR(255)  NOT NULL,
    status         BIGINT        NOT NULL,
    expire_at      DATETIME(6)   NOT NULL,
    created_at     DATETIME(6)   NOT NULL,
    record_version BIGINT        NOT NULL,
    idx            INT           NOT NULL,
    completed_at   DATETIME(6)   NULL,
    PRIMARY KEY (id),
    UNIQUE KEY `{{prefix}}timeouts_key` (workflow_name, run_id, status, record_version, idx),
    KEY `{{prefix}}timeouts_pending` (workflow_name, status, completed_at, expire_at),
    KEY `{{prefix}}timeouts_pending_by_id` (workflow_name, completed_at),
    KEY `{{prefix}}timeouts_completed` (completed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Roles: one lease per role, with its expiry by the database's clock. `holder` is the
-- member holding it (NULL once released); `epoch` counts acquisitions (a fencing token).
CREATE TABLE IF NOT EXISTS {{roles}} (
    role       VARCHAR(512) NOT NULL,
    holder     VARCHAR(64)  NULL,
    expires_at DATETIME(6)  NOT NULL DEFAULT '1970-01-01 00:00:00.000000',
    epoch      BIGINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (role),
    KEY `{{prefix}}roles_by_expiry` (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Live role schedulers (one per process) with the roles each wants (a JSON array of
-- names): roles are spread over them.
CREATE TABLE IF NOT EXISTS {{members}} (
    id         VARCHAR(64) NOT NULL,
    wanted     MEDIUMTEXT  NOT NULL,
    joined_at  DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY `{{prefix}}members_by_expiry` (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
