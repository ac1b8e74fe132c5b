-- One registry table for every data type: one row per (data_type, object_key)
-- with the Geo replication and verification state machines.

-- +goose Up
CREATE TABLE blob_registry (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    data_type                text        NOT NULL CHECK (data_type <> '' AND length(data_type) <= 100),
    object_key               text        NOT NULL CHECK (object_key <> ''),

    -- replication: 0 pending, 1 started, 2 synced, 3 failed
    state                    smallint    NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 3),
    generation               bigint      NOT NULL DEFAULT 1,
    retry_count              integer     NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    retry_at                 timestamptz,
    last_sync_failure        varchar(255),
    last_synced_at           timestamptz,
    started_at               timestamptz,
    size                     bigint      NOT NULL DEFAULT 0 CHECK (size >= 0),
    etag                     text        NOT NULL DEFAULT '',
    version_id               text        NOT NULL DEFAULT '',
    primary_sha256           text        NOT NULL DEFAULT '' CHECK (primary_sha256 ~ '^([0-9a-f]{64})?$'),
    -- normalized S3 sequencer (upper-case hex, left-padded): compared as
    -- bytes, hence COLLATE "C"
    last_sequencer           text COLLATE "C" NOT NULL DEFAULT '',
    missing_on_primary       boolean     NOT NULL DEFAULT false,
    deleted_at               timestamptz,

    -- verification: 0 pending, 1 started, 2 succeeded, 3 failed, 4 disabled
    verification_state       smallint    NOT NULL DEFAULT 4 CHECK (verification_state BETWEEN 0 AND 4),
    verification_started_at  timestamptz,
    verified_at              timestamptz,
    verification_retry_count integer     NOT NULL DEFAULT 0 CHECK (verification_retry_count >= 0),
    verification_retry_at    timestamptz,
    verification_failure     varchar(255),
    secondary_sha256         text        NOT NULL DEFAULT '' CHECK (secondary_sha256 ~ '^([0-9a-f]{64})?$'),
    checksum_mismatch        boolean     NOT NULL DEFAULT false,

    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,

    CONSTRAINT blob_registry_type_key_uniq UNIQUE (data_type, object_key),
    CONSTRAINT blob_registry_started_has_time CHECK (state <> 1 OR started_at IS NOT NULL),
    CONSTRAINT blob_registry_failed_has_retry CHECK (state <> 3 OR retry_at IS NOT NULL),
    CONSTRAINT blob_registry_verification_started_has_time
        CHECK (verification_state <> 1 OR verification_started_at IS NOT NULL)
);

-- claim queries (ClaimDue): pending rows per type, longest pending first
-- (updated_at is when the row became pending). Not (data_type, id): the
-- planner would then prefer the primary key and filter past every claimed row.
CREATE INDEX blob_registry_pending_idx ON blob_registry (data_type, updated_at, id) WHERE state = 0;
-- ... then failed rows per type whose retry_at is due
CREATE INDEX blob_registry_failed_retry_idx ON blob_registry (data_type, retry_at) WHERE state = 3;
-- RecoverStuck: started rows by age
CREATE INDEX blob_registry_started_idx ON blob_registry (started_at) WHERE state = 1;

-- verification: rows to verify, failed verifications by retry time, reverify by age, stuck
CREATE INDEX blob_registry_verification_pending_idx ON blob_registry (data_type, id)
    WHERE verification_state = 0;
CREATE INDEX blob_registry_verification_failed_idx ON blob_registry (data_type, verification_retry_at)
    WHERE verification_state = 3;
CREATE INDEX blob_registry_verified_at_idx ON blob_registry (data_type, verified_at)
    WHERE verification_state = 2;
CREATE INDEX blob_registry_verification_started_idx ON blob_registry (verification_started_at)
    WHERE verification_state = 1;

-- +goose Down
DROP TABLE blob_registry;
