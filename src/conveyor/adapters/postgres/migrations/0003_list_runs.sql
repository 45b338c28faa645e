-- conveyor's PostgreSQL schema, version 3: indexes that list runs (ListsRuns) by keyset on
-- (created_at, run_id), one for every filter the web UI and the CLI use, each ending in
-- that order so that no page is sorted after reading. Run IDs and foreign IDs are indexed
-- (and compared) in the "C" collation: code point order whatever the database's collation,
-- as in the SQLite and memory stores, and a foreign ID prefix is a plain range of it.
-- Placeholders as in 0001_initial.sql.

-- Every workflow, newest or oldest first (and filters across workflows).
CREATE INDEX "{{prefix}}records_list_all" ON {{records}} (created_at, run_id COLLATE "C");
-- One workflow; by status; by run state; by foreign ID (exact, or a prefix as a range).
CREATE INDEX "{{prefix}}records_list_by_workflow"
    ON {{records}} (workflow_name, created_at, run_id COLLATE "C");
CREATE INDEX "{{prefix}}records_list_by_status"
    ON {{records}} (workflow_name, status, created_at, run_id COLLATE "C");
CREATE INDEX "{{prefix}}records_list_by_run_state"
    ON {{records}} (workflow_name, run_state, created_at, run_id COLLATE "C");
CREATE INDEX "{{prefix}}records_list_by_foreign_id"
    ON {{records}} (workflow_name, foreign_id COLLATE "C", created_at, run_id COLLATE "C");
-- A foreign ID (exact or prefix) across workflows.
CREATE INDEX "{{prefix}}records_list_any_foreign_id"
    ON {{records}} (foreign_id COLLATE "C", created_at, run_id COLLATE "C");
