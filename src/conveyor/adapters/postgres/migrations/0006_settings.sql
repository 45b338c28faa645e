-- conveyor's PostgreSQL schema, version 6: the installation's settings, so far where its
-- events go (PinsEventLocation), so that connect refuses a process configured to send
-- them elsewhere. Placeholders as in 0001_initial.sql.

-- One row per setting (key `event_location`: the pinned location). A pin is one
-- statement, an insert that on a conflict with the recorded row (committed, or waited
-- for) locks it and returns its value, so of concurrent first pins one is recorded.
CREATE TABLE {{settings}} (
    key   text NOT NULL,
    value text NOT NULL,
    CONSTRAINT "{{prefix}}settings_key" PRIMARY KEY (key)
);
