-- Registry list at 10M rows (issue #8): a filter on a replication or
-- verification state must be an index range scan within the type whatever
-- the state holds. The partial list indexes of 00210 covered only pending,
-- failed and verification-failed rows, so a filter such as state=synced or
-- state=started on a type with few such rows walked the whole type in id
-- order (6.5 s p99 at 10M rows). One (data_type, state, id) index serves
-- every replication state and one (data_type, verification_state, id)
-- every verification state, replacing the three partial ones (same number
-- of indexes to maintain); failed_only (sync OR verification failed) gets a
-- partial index whose predicate is exactly Filter.apply's condition, so
-- ORDER BY id LIMIT is a range scan instead of sorting a bitmap OR.

-- +goose Up
CREATE INDEX blob_registry_list_state_idx ON blob_registry (data_type, state, id);
CREATE INDEX blob_registry_list_vstate_idx ON blob_registry (data_type, verification_state, id);
CREATE INDEX blob_registry_list_failed_any_idx ON blob_registry (data_type, id)
    WHERE (state = 3 OR verification_state = 3);
DROP INDEX blob_registry_list_pending_idx;
DROP INDEX blob_registry_list_failed_idx;
DROP INDEX blob_registry_list_vfailed_idx;

-- +goose Down
CREATE INDEX blob_registry_list_pending_idx ON blob_registry (data_type, id) WHERE state = 0;
CREATE INDEX blob_registry_list_failed_idx ON blob_registry (data_type, id) WHERE state = 3;
CREATE INDEX blob_registry_list_vfailed_idx ON blob_registry (data_type, id) WHERE verification_state = 3;
DROP INDEX blob_registry_list_failed_any_idx;
DROP INDEX blob_registry_list_vstate_idx;
DROP INDEX blob_registry_list_state_idx;
