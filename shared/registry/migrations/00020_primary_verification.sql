-- Primary verification (owned by shared/verify): the registry's primary
-- SHA-256 is re-checked against the primary's bytes after the reverification
-- interval, so bit rot or tampering on the primary is reported instead of
-- being copied over the good secondary.
--
-- primary_verification_state: 0 pending, 1 started, 2 succeeded, 3 failed,
-- 4 disabled (same numbering as verification_state). A failed row with
-- primary_checksum_mismatch is quarantined until the row changes (an event
-- bumps generation past primary_verification_generation) or an operator
-- accepts the primary's new content.

-- +goose Up
ALTER TABLE blob_registry
    ADD COLUMN primary_verification_state       smallint NOT NULL DEFAULT 0
        CHECK (primary_verification_state BETWEEN 0 AND 4),
    ADD COLUMN primary_verification_started_at  timestamptz,
    ADD COLUMN primary_verified_at              timestamptz,
    ADD COLUMN primary_verification_retry_count integer NOT NULL DEFAULT 0
        CHECK (primary_verification_retry_count >= 0),
    ADD COLUMN primary_verification_retry_at    timestamptz,
    ADD COLUMN primary_verification_failure     varchar(255),
    ADD COLUMN primary_checksum_mismatch        boolean NOT NULL DEFAULT false,
    ADD COLUMN primary_mismatch_sha256          text NOT NULL DEFAULT ''
        CHECK (primary_mismatch_sha256 ~ '^([0-9a-f]{64})?$'),
    ADD COLUMN primary_verification_generation  bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT blob_registry_primary_verification_started_has_time
        CHECK (primary_verification_state <> 1 OR primary_verification_started_at IS NOT NULL);

-- live rows whose primary checksum is unknown
CREATE INDEX blob_registry_primary_unchecked_idx ON blob_registry (id)
    WHERE primary_sha256 = '' AND deleted_at IS NULL;
-- primary reverification by the time the primary's bytes were last hashed
-- (by verify, or by the copy that computed primary_sha256)
CREATE INDEX blob_registry_primary_checked_idx ON blob_registry
    ((greatest(coalesce(primary_verified_at, '-infinity'), coalesce(last_synced_at, '-infinity'))))
    WHERE primary_sha256 <> '' AND deleted_at IS NULL AND primary_verification_state IN (0, 2, 4);
CREATE INDEX blob_registry_primary_failed_idx ON blob_registry (primary_verification_retry_at)
    WHERE primary_verification_state = 3;
CREATE INDEX blob_registry_primary_started_idx ON blob_registry (primary_verification_started_at)
    WHERE primary_verification_state = 1;

-- +goose Down
DROP INDEX blob_registry_primary_started_idx;
DROP INDEX blob_registry_primary_failed_idx;
DROP INDEX blob_registry_primary_checked_idx;
DROP INDEX blob_registry_primary_unchecked_idx;
ALTER TABLE blob_registry
    DROP CONSTRAINT blob_registry_primary_verification_started_has_time,
    DROP COLUMN primary_verification_generation,
    DROP COLUMN primary_mismatch_sha256,
    DROP COLUMN primary_checksum_mismatch,
    DROP COLUMN primary_verification_failure,
    DROP COLUMN primary_verification_retry_at,
    DROP COLUMN primary_verification_retry_count,
    DROP COLUMN primary_verified_at,
    DROP COLUMN primary_verification_started_at,
    DROP COLUMN primary_verification_state;
