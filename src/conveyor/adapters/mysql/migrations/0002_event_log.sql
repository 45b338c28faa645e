-- conveyor's MySQL schema, version 2: the event log (MySQLEventStreamer). Placeholders:
-- {{<table>}} (quoted, prefixed) and `{{prefix}}name` (an index name). Every statement can
-- run again harmlessly (DDL is not transactional in MySQL).

-- A topic's row is its ID counter: a sender takes a block of IDs by updating it, which
-- locks the row until the sender commits, so a topic's IDs become visible in order and a
-- reader at `id > position` never skips an event that commits late. Rows are never
-- deleted (an ID must never be given out twice, even after its events are pruned).
CREATE TABLE IF NOT EXISTS {{topics}} (
    topic   VARCHAR(512) NOT NULL,
    last_id BIGINT       NOT NULL,
    PRIMARY KEY (topic)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The events, read by (topic, id). `dedupe` identifies an engine event (a hash of its run
-- ID and record version): the outbox relay sends at least once, and a second copy of one
-- write's event is dropped by the unique index (NULLs, other events, never collide).
-- `created_at` (UTC) drives pruning.
CREATE TABLE IF NOT EXISTS {{events}} (
    topic      VARCHAR(512) NOT NULL,
    id         BIGINT       NOT NULL,
    foreign_id TEXT         NOT NULL,
    type       BIGINT       NOT NULL,
    headers    MEDIUMBLOB   NOT NULL,
    created_at DATETIME(6)  NOT NULL,
    dedupe     BINARY(16)   NULL,
    PRIMARY KEY (topic, id),
    UNIQUE KEY `{{prefix}}events_once` (topic, dedupe),
    KEY `{{prefix}}events_by_created` (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A receiver's position: every event of the topic up to `position` is acknowledged.
-- `updated_at` (UTC) is refreshed while a receiver of the name is open; a cursor not
-- written for `cursor_retention` is dead and pruned.
CREATE TABLE IF NOT EXISTS {{cursors}} (
    topic      VARCHAR(512) NOT NULL,
    name       VARCHAR(255) NOT NULL,
    position   BIGINT       NOT NULL,
    updated_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (topic, name),
    KEY `{{prefix}}cursors_by_updated` (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
