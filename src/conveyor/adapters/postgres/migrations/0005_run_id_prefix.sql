-- conveyor's PostgreSQL schema, version 5: an index of run IDs in the "C" collation, so
-- that a run ID prefix (RunQuery.run_id_prefix, what resolves a short run ID such as
-- 312a28fe) is a range of it, compared as in the other stores. The primary key's index is
-- in the database's collation, which serves no "C" range unless that collation is "C";
-- the records_list_* indexes hold run_id only after created_at. Placeholders as in
-- 0001_initial.sql.

-- A prefix's runs (of any workflow: run IDs are unique), read as a range and then put in
-- creation order: a sort of the prefix's matches, not of the table. (Not "..._by_run_id":
-- cut after a long table prefix, that would be "records_list_by_run_state"'s name.)
CREATE INDEX "{{prefix}}records_list_run_id" ON {{records}} (run_id COLLATE "C");
