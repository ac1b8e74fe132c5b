-- Operator surface (issue #8): indexes behind the registry list's filters
-- and sorts (keyset pagination by (sort key, id) within a data type stays an
-- index range scan on any page), the bulk-operation table (resumable,
-- batched resync/reverify) and the audit trail of every operator action.

-- +goose Up
-- list: all rows of a type by id
CREATE INDEX blob_registry_type_id_idx ON blob_registry (data_type, id);
-- list filters that select few rows: one partial index each
CREATE INDEX blob_registry_list_pending_idx ON blob_registry (data_type, id) WHERE state = 0;
CREATE INDEX blob_registry_list_failed_idx ON blob_registry (data_type, id) WHERE state = 3;
CREATE INDEX blob_registry_list_vfailed_idx ON blob_registry (data_type, id) WHERE verification_state = 3;
CREATE INDEX blob_registry_list_missing_idx ON blob_registry (data_type, id) WHERE missing_on_primary;
CREATE INDEX blob_registry_list_quarantined_idx ON blob_registry (data_type, id) WHERE quarantined_at IS NOT NULL;
CREATE INDEX blob_registry_list_mismatch_idx ON blob_registry (data_type, id) WHERE checksum_mismatch;
-- list sorts: rows without the time sort as -infinity
CREATE INDEX blob_registry_list_synced_at_idx ON blob_registry
    (data_type, (coalesce(last_synced_at, '-infinity'::timestamptz)), id);
CREATE INDEX blob_registry_list_verified_at_idx ON blob_registry
    (data_type, (coalesce(verified_at, '-infinity'::timestamptz)), id);
-- key prefix filter (byte order, like S3)
CREATE INDEX blob_registry_list_key_c_idx ON blob_registry (data_type, (object_key COLLATE "C"));

-- One bulk resync/reverify: the filter it applies, the id range it walks
-- (rows with id <= max_id when it started), where it stands (cursor: every
-- row with id <= cursor is done) and what it changed. A runner holds a
-- lease; a crashed runner's operation is picked up after the lease ends.
CREATE TABLE registry_bulk_operation (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action            text        NOT NULL CHECK (action IN ('resync', 'reverify')),
    filter            jsonb       NOT NULL,
    actor             text        NOT NULL,
    state             text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
    planned           bigint      NOT NULL, -- dry-run count when it was started
    changed           bigint      NOT NULL DEFAULT 0,
    cursor_id         bigint      NOT NULL DEFAULT 0,
    max_id            bigint      NOT NULL,
    batches           bigint      NOT NULL DEFAULT 0,
    longest_batch_ms  double precision NOT NULL DEFAULT 0,
    error             text        NOT NULL DEFAULT '',
    lease_owner       text,
    lease_until       timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz
);
CREATE INDEX registry_bulk_operation_running_idx ON registry_bulk_operation (id) WHERE state = 'running';

-- Every operator action: who, when, what, on which rows.
CREATE TABLE registry_audit (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                timestamptz NOT NULL,
    actor             text        NOT NULL,
    action            text        NOT NULL,
    data_type         text        NOT NULL DEFAULT '',
    row_id            bigint,
    object_key        text,
    filter            jsonb,
    rows              bigint      NOT NULL DEFAULT 0,
    bulk_operation_id bigint REFERENCES registry_bulk_operation (id)
);
CREATE INDEX registry_audit_at_idx ON registry_audit (at DESC);

-- +goose Down
DROP TABLE registry_audit;
DROP TABLE registry_bulk_operation;
DROP INDEX blob_registry_list_key_c_idx;
DROP INDEX blob_registry_list_verified_at_idx;
DROP INDEX blob_registry_list_synced_at_idx;
DROP INDEX blob_registry_list_mismatch_idx;
DROP INDEX blob_registry_list_quarantined_idx;
DROP INDEX blob_registry_list_missing_idx;
DROP INDEX blob_registry_list_vfailed_idx;
DROP INDEX blob_registry_list_failed_idx;
DROP INDEX blob_registry_list_pending_idx;
DROP INDEX blob_registry_type_id_idx;
