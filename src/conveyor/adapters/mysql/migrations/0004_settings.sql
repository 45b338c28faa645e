-- conveyor's MySQL/MariaDB schema, version 4: the installation's settings, so far where
-- its events go (PinsEventLocation), so that connect refuses a process configured to send
-- them elsewhere. Placeholders as in 0001_records.sql; the statement can run again
-- harmlessly (CREATE TABLE IF NOT EXISTS).

-- One row per setting (key `event_location`: the pinned location). A pin is one
-- transaction: INSERT IGNORE of its row (which waits for a concurrent first pin's commit
-- on the primary key, then inserts nothing) and a read of the recorded row, so of
-- concurrent first pins one is recorded. `value` is LONGTEXT so that no location is cut
-- (IGNORE would make a value too long a warning instead of an error).
CREATE TABLE IF NOT EXISTS {{settings}} (
    `key`  VARCHAR(64) NOT NULL,
    value  LONGTEXT    NOT NULL,
    PRIMARY KEY (`key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
