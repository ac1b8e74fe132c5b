-- Restore (owned by shared/registry, restore.go): a row whose object
-- geoblob restore wrote back to the primary carries restored_at, so the
-- ObjectCreated event of that very PUT (same ETag and version) finds the row
-- already synced and changes nothing: no replication loop.

-- +goose Up
ALTER TABLE blob_registry ADD COLUMN restored_at timestamptz;
-- restore by deletion window: tombstones by deletion time
CREATE INDEX blob_registry_deleted_at_idx ON blob_registry (deleted_at) WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP INDEX blob_registry_deleted_at_idx;
ALTER TABLE blob_registry DROP COLUMN restored_at;
