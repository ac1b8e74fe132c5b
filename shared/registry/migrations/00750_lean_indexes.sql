-- Fewer index entries per resynced row (issue #8, bulk resync of 1M rows).
-- A resync or reverify changes indexed columns (state, verification_state,
-- updated_at), so every changed row is a non-HOT update that inserts an
-- entry into EVERY index whose predicate matches the new row version: with
-- the indexes of 00001-00710 about 12 per row, which bound the bulk at
-- ~4,000 rows/s per core at 10M rows. This migration removes six of them:
--
-- * object_key becomes COLLATE "C" (byte order, the order S3 lists keys
--   in; the same in AWS, whose database collation is en_US, as in tests on
--   C databases). The unique (data_type, object_key) index then serves the
--   key-prefix filter and every ordered key walk, so the two extra key
--   indexes (data_type, key C) and (key C) WHERE live go. Equality lookups
--   and ON CONFLICT (data_type, object_key) use the same unique index.
-- * (data_type, id) goes: a type's list in id order without a state filter
--   is a merge of per-state range scans on (data_type, state, id) (00700),
--   and bulk batches walk an id span of the primary key.
-- * the sort indexes of "last synced" and "verified at" become partial:
--   WHERE state = 2 (synced) and WHERE verification_state = 2 (succeeded).
--   A resync (state 0, verification disabled) inserts into neither. Those
--   sorts list the rows whose time is current: synced rows, verified rows.
--
-- Upgrading takes an ACCESS EXCLUSIVE lock on blob_registry (writers and
-- readers wait) while the unique key index, the at-risk index and the two
-- sort indexes are rebuilt: 2 min 42 s for 11.7M rows on a 2-core machine
-- at load average 4-13 (docs/BENCHMARKS.md; docs/operations.md,
-- "Upgrading"); plan a maintenance window of a few minutes per 10M rows.
-- The table itself is not rewritten (a collation change of text is binary
-- compatible).

-- +goose Up
SET LOCAL maintenance_work_mem = '512MB';
-- Fail (and fail the deploy, to be retried) rather than queue behind a
-- long transaction (a bulk batch, a reconcile) with every writer queued
-- behind this ALTER.
SET LOCAL lock_timeout = '10s';
DROP INDEX blob_registry_list_key_c_idx;
DROP INDEX blob_registry_live_key_c_idx;
DROP INDEX blob_registry_type_id_idx;
DROP INDEX blob_registry_list_synced_at_idx;
DROP INDEX blob_registry_list_verified_at_idx;
-- an expression index on (object_key COLLATE "C"): rebuilt below on the
-- column itself, which is now byte-ordered
DROP INDEX blob_registry_at_risk_idx;
ALTER TABLE blob_registry ALTER COLUMN object_key TYPE text COLLATE "C";
CREATE INDEX blob_registry_at_risk_idx ON blob_registry (data_type, object_key) WHERE state <> 2;
CREATE INDEX blob_registry_list_synced_at_idx ON blob_registry
    (data_type, (coalesce(last_synced_at, '-infinity'::timestamptz)), id) WHERE state = 2;
CREATE INDEX blob_registry_list_verified_at_idx ON blob_registry
    (data_type, (coalesce(verified_at, '-infinity'::timestamptz)), id) WHERE verification_state = 2;

-- +goose Down
SET LOCAL maintenance_work_mem = '512MB';
DROP INDEX blob_registry_list_verified_at_idx;
DROP INDEX blob_registry_list_synced_at_idx;
DROP INDEX blob_registry_at_risk_idx;
ALTER TABLE blob_registry ALTER COLUMN object_key TYPE text COLLATE "default";
CREATE INDEX blob_registry_at_risk_idx ON blob_registry (data_type, (object_key COLLATE "C"))
    WHERE state <> 2;
CREATE INDEX blob_registry_list_verified_at_idx ON blob_registry
    (data_type, (coalesce(verified_at, '-infinity'::timestamptz)), id);
CREATE INDEX blob_registry_list_synced_at_idx ON blob_registry
    (data_type, (coalesce(last_synced_at, '-infinity'::timestamptz)), id);
CREATE INDEX blob_registry_type_id_idx ON blob_registry (data_type, id);
CREATE INDEX blob_registry_live_key_c_idx ON blob_registry ((object_key COLLATE "C"))
    WHERE deleted_at IS NULL;
CREATE INDEX blob_registry_list_key_c_idx ON blob_registry (data_type, (object_key COLLATE "C"));
