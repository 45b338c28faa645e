-- conveyor's PostgreSQL schema, version 4: the definitions the running workflows
-- registered (KeepsDefinitions), so that tools with only a store URL know status names and
-- graphs. Placeholders as in 0001_initial.sql.

-- One row per different document registered for a workflow: `version` counts them from
-- 1; a registration whose hash equals the latest version's writes nothing. Concurrent
-- registrations insert the same next version: the primary key keeps one (ON CONFLICT DO
-- NOTHING), and the others read it.
CREATE TABLE {{definitions}} (
    workflow_name text        NOT NULL,
    version       bigint      NOT NULL,
    hash          text        NOT NULL,
    document      text        NOT NULL,
    registered_at timestamptz NOT NULL,
    CONSTRAINT "{{prefix}}definitions_key" PRIMARY KEY (workflow_name, version)
);
