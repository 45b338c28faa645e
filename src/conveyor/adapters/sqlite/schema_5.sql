-- conveyor's SQLite schema, version 5 (PRAGMA user_version = 5): the deployment's settings,
-- so far where its events go (PinsEventLocation), so that connect refuses a process
-- configured to send them elsewhere. Applied after version 4's script. Idempotent.

-- One row per setting (key `event_location`: the pinned location). A pin inserts its row
-- unless one exists (ON CONFLICT DO NOTHING) and reads the row back, in one write
-- transaction (BEGIN IMMEDIATE), so of concurrent first pins one is recorded.
CREATE TABLE IF NOT EXISTS settings (
    key                 TEXT    PRIMARY KEY,
    value               TEXT    NOT NULL
) WITHOUT ROWID;
