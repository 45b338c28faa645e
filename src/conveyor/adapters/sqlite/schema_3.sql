-- conveyor's SQLite schema, version 3 (PRAGMA user_version = 3): indexes that list runs
-- (ListsRuns) by keyset on (created_at, run_id), one for every filter the web UI and the
-- CLI use, each ending in that order so that no page is sorted after reading. Applied
-- after version 2's script, to new files and by `conveyor migrate`. Idempotent.

-- Every workflow, newest or oldest first (and filters across workflows).
CREATE INDEX IF NOT EXISTS records_list_all ON records (created_at, run_id);
-- One workflow; by status; by run state; by foreign ID (exact, or a prefix as a range).
CREATE INDEX IF NOT EXISTS records_list_by_workflow
    ON records (workflow_name, created_at, run_id);
CREATE INDEX IF NOT EXISTS records_list_by_status
    ON records (workflow_name, status, created_at, run_id);
CREATE INDEX IF NOT EXISTS records_list_by_run_state
    ON records (workflow_name, run_state, created_at, run_id);
CREATE INDEX IF NOT EXISTS records_list_by_foreign_id
    ON records (workflow_name, foreign_id, created_at, run_id);
-- A foreign ID (exact or prefix) across workflows.
CREATE INDEX IF NOT EXISTS records_list_any_foreign_id
    ON records (foreign_id, created_at, run_id);
