-- Registry list at 10M rows (issue #8): "missing on primary" combined with
-- a replication state (state=failed&missing_on_primary=true) walked the
-- type's whole missing-on-primary index filtering on the state, 0.1-0.9 s
-- when few or none of those rows are in that state. With the state in the
-- key, the combination is a range scan; missing on primary alone is a
-- merge of per-state ranges, like the unfiltered list (registry.ListPage).
-- A partial index over ~1 % of the rows: built in seconds at 10M rows.

-- +goose Up
CREATE INDEX blob_registry_list_missing_state_idx ON blob_registry (data_type, state, id)
    WHERE missing_on_primary;
DROP INDEX blob_registry_list_missing_idx;

-- +goose Down
CREATE INDEX blob_registry_list_missing_idx ON blob_registry (data_type, id) WHERE missing_on_primary;
DROP INDEX blob_registry_list_missing_state_idx;
