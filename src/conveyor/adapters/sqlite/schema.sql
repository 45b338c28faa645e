-- conveyor's SQLite schema, version 1 (PRAGMA user_version = 1).
--
-- Applied by conveyor.adapters.sqlite.migrate() (`conveyor migrate --store sqlite:///file.db`)
-- and, unless told otherwise, when a backend opens the file. Every statement is idempotent.
-- Timestamps are integer microseconds since 1970-01-01 UTC (lossless round trips);
-- lease expiries are also kept on the machine's monotonic clock (nanoseconds), see leases.

-- Records: the current version of every run.
CREATE TABLE IF NOT EXISTS records (
    seq                 INTEGER PRIMARY KEY,          -- insertion order (ties of created_at)
    run_id              TEXT    NOT NULL UNIQUE,
    workflow_name       TEXT    NOT NULL,
    foreign_id          TEXT    NOT NULL,
    run_state           INTEGER NOT NULL,
    status              INTEGER NOT NULL,
    object              BLOB    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    version             INTEGER NOT NULL,
    run_state_reason    TEXT    NOT NULL DEFAULT '',
    status_description  TEXT    NOT NULL DEFAULT '',
    trace_origin        TEXT    NOT NULL DEFAULT '',
    reached             TEXT    NOT NULL DEFAULT ''   -- statuses reached, comma-separated
);

-- At most one active (Initiated 1, Running 2, Paused 3) run per workflow and foreign ID.
CREATE UNIQUE INDEX IF NOT EXISTS records_one_active_run
    ON records (workflow_name, foreign_id) WHERE run_state IN (1, 2, 3);

-- latest(workflow, foreign_id) and list filtered by foreign ID.
CREATE INDEX IF NOT EXISTS records_by_foreign_id
    ON records (workflow_name, foreign_id, created_at);

-- list(workflow) in creation order, and list() across workflows.
CREATE INDEX IF NOT EXISTS records_by_workflow ON records (workflow_name, created_at);
CREATE INDEX IF NOT EXISTS records_by_created ON records (created_at);

-- The transactional outbox: written with the record, relayed to the events table.
-- AUTOINCREMENT: a seq is never reused, so "rows after seq N" finds every newer row.
CREATE TABLE IF NOT EXISTS outbox (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,
    workflow_name       TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    type                INTEGER NOT NULL,
    headers             TEXT    NOT NULL,             -- JSON object of strings
    created_at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_workflow ON outbox (workflow_name, seq);

-- The event log. AUTOINCREMENT: ids are never reused, so a reader's cursor never points
-- at an id that a later event could take; with one writer at a time, ids commit in order.
CREATE TABLE IF NOT EXISTS events (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    topic               TEXT    NOT NULL,
    foreign_id          TEXT    NOT NULL,
    type                INTEGER NOT NULL,
    headers             TEXT    NOT NULL,             -- JSON object of strings
    created_at          INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, id);

-- Topics ever written or read (what the pruner walks).
CREATE TABLE IF NOT EXISTS topics (
    topic               TEXT    PRIMARY KEY
) WITHOUT ROWID;

-- Receiver cursors: every event of the topic with id <= position was acknowledged by
-- the receivers of that name. A row at position 0 registers a durable name that has
-- acknowledged nothing yet (it keeps the topic's events from being pruned).
CREATE TABLE IF NOT EXISTS cursors (
    topic               TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    position            INTEGER NOT NULL,
    PRIMARY KEY (topic, name)
) WITHOUT ROWID;

-- Timeouts. AUTOINCREMENT: ids count from 1 and are never reused (cancel deletes).
CREATE TABLE IF NOT EXISTS timeouts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_name       TEXT    NOT NULL,
    foreign_id          TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    status              INTEGER NOT NULL,
    expire_at           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    completed           INTEGER NOT NULL DEFAULT 0,
    record_version      INTEGER NOT NULL DEFAULT 0,
    timeout_index       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workflow_name, run_id, status, record_version, timeout_index)
);
CREATE INDEX IF NOT EXISTS timeouts_due
    ON timeouts (workflow_name, status, expire_at) WHERE completed = 0;
CREATE INDEX IF NOT EXISTS timeouts_pending ON timeouts (workflow_name) WHERE completed = 0;

-- Role leases. A lease is expired once the holder's machine's monotonic clock (named by
-- `clock`, the boot id) passes expires_mono; readers on another clock (another boot or
-- machine) compare expires_wall (microseconds since the epoch) with the wall clock.
CREATE TABLE IF NOT EXISTS leases (
    role                TEXT    PRIMARY KEY,
    holder              TEXT    NOT NULL,
    clock               TEXT    NOT NULL,
    expires_mono        INTEGER NOT NULL,
    expires_wall        INTEGER NOT NULL
) WITHOUT ROWID;

-- Role scheduler instances (one per process and file, usually) with a heartbeat, and
-- the roles each wants (waits for or holds): used to spread roles over live members.
CREATE TABLE IF NOT EXISTS members (
    id                  TEXT    PRIMARY KEY,
    clock               TEXT    NOT NULL,
    expires_mono        INTEGER NOT NULL,
    expires_wall        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS wants (
    role                TEXT    NOT NULL,
    member              TEXT    NOT NULL,
    PRIMARY KEY (role, member)
) WITHOUT ROWID;
