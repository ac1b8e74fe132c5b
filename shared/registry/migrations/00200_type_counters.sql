-- Per-type registry counters, maintained incrementally (issue #8): a status
-- request never counts blob_registry.
--
-- Every statement that inserts, updates or deletes registry rows fires one
-- statement-level trigger (transition tables) that appends, in the same
-- transaction, ONE row per data type it touched to registry_counter_delta:
-- the sum of the new rows' contributions minus the old rows'. The delta
-- table is insert-only (no hot counter row serializing writers);
-- Store.RollupCounters moves committed deltas into registry_type_counters in
-- one statement (DELETE ... RETURNING feeding an upsert), so a delta is
-- counted exactly once. Every figure is a sum over rows of a function of the
-- row, so at any snapshot
--     registry_type_counters + registry_counter_delta = a full recount,
-- which is what Store.TypeStatus reads. Columns are generated from one list;
-- keep the three trigger functions, the initial fill and the Go side
-- (shared/registry/counters.go) in step.

-- +goose Up
CREATE TABLE registry_type_counters (
    data_type text PRIMARY KEY,
    rows bigint NOT NULL DEFAULT 0,
    tombstones bigint NOT NULL DEFAULT 0,
    tombstones_pending bigint NOT NULL DEFAULT 0,
    pending bigint NOT NULL DEFAULT 0,
    started bigint NOT NULL DEFAULT 0,
    synced bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    verification_pending bigint NOT NULL DEFAULT 0,
    verification_started bigint NOT NULL DEFAULT 0,
    verified bigint NOT NULL DEFAULT 0,
    verification_failed bigint NOT NULL DEFAULT 0,
    checksum_mismatch bigint NOT NULL DEFAULT 0,
    primary_checksummed bigint NOT NULL DEFAULT 0,
    primary_verified bigint NOT NULL DEFAULT 0,
    primary_checksum_failed bigint NOT NULL DEFAULT 0,
    primary_checksum_mismatch bigint NOT NULL DEFAULT 0,
    missing_on_primary bigint NOT NULL DEFAULT 0,
    quarantined bigint NOT NULL DEFAULT 0,
    bytes_total bigint NOT NULL DEFAULT 0,
    bytes_synced bigint NOT NULL DEFAULT 0,
    bytes_pending bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE registry_counter_delta (
    data_type text NOT NULL,

    rows bigint NOT NULL DEFAULT 0,
    tombstones bigint NOT NULL DEFAULT 0,
    tombstones_pending bigint NOT NULL DEFAULT 0,
    pending bigint NOT NULL DEFAULT 0,
    started bigint NOT NULL DEFAULT 0,
    synced bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    verification_pending bigint NOT NULL DEFAULT 0,
    verification_started bigint NOT NULL DEFAULT 0,
    verified bigint NOT NULL DEFAULT 0,
    verification_failed bigint NOT NULL DEFAULT 0,
    checksum_mismatch bigint NOT NULL DEFAULT 0,
    primary_checksummed bigint NOT NULL DEFAULT 0,
    primary_verified bigint NOT NULL DEFAULT 0,
    primary_checksum_failed bigint NOT NULL DEFAULT 0,
    primary_checksum_mismatch bigint NOT NULL DEFAULT 0,
    missing_on_primary bigint NOT NULL DEFAULT 0,
    quarantined bigint NOT NULL DEFAULT 0,
    bytes_total bigint NOT NULL DEFAULT 0,
    bytes_synced bigint NOT NULL DEFAULT 0,
    bytes_pending bigint NOT NULL DEFAULT 0
);

-- +goose StatementBegin
CREATE FUNCTION blob_registry_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO registry_counter_delta (data_type, rows, tombstones, tombstones_pending, pending, started, synced, failed, verification_pending, verification_started, verified, verification_failed, checksum_mismatch, primary_checksummed, primary_verified, primary_checksum_failed, primary_checksum_mismatch, missing_on_primary, quarantined, bytes_total, bytes_synced, bytes_pending)
SELECT data_type,
	sum(s * rows)::bigint,
	sum(s * tombstones)::bigint,
	sum(s * tombstones_pending)::bigint,
	sum(s * pending)::bigint,
	sum(s * started)::bigint,
	sum(s * synced)::bigint,
	sum(s * failed)::bigint,
	sum(s * verification_pending)::bigint,
	sum(s * verification_started)::bigint,
	sum(s * verified)::bigint,
	sum(s * verification_failed)::bigint,
	sum(s * checksum_mismatch)::bigint,
	sum(s * primary_checksummed)::bigint,
	sum(s * primary_verified)::bigint,
	sum(s * primary_checksum_failed)::bigint,
	sum(s * primary_checksum_mismatch)::bigint,
	sum(s * missing_on_primary)::bigint,
	sum(s * quarantined)::bigint,
	sum(s * bytes_total)::bigint,
	sum(s * bytes_synced)::bigint,
	sum(s * bytes_pending)::bigint
FROM (
	SELECT 1::bigint AS s, r.data_type,
		(r.deleted_at IS NULL)::int::bigint AS rows,
		(r.deleted_at IS NOT NULL)::int::bigint AS tombstones,
		(r.deleted_at IS NOT NULL AND r.state <> 2)::int::bigint AS tombstones_pending,
		(r.deleted_at IS NULL AND r.state = 0)::int::bigint AS pending,
		(r.deleted_at IS NULL AND r.state = 1)::int::bigint AS started,
		(r.deleted_at IS NULL AND r.state = 2)::int::bigint AS synced,
		(r.deleted_at IS NULL AND r.state = 3)::int::bigint AS failed,
		(r.deleted_at IS NULL AND r.verification_state = 0)::int::bigint AS verification_pending,
		(r.deleted_at IS NULL AND r.verification_state = 1)::int::bigint AS verification_started,
		(r.deleted_at IS NULL AND r.verification_state = 2)::int::bigint AS verified,
		(r.deleted_at IS NULL AND r.verification_state = 3)::int::bigint AS verification_failed,
		(r.deleted_at IS NULL AND r.checksum_mismatch)::int::bigint AS checksum_mismatch,
		(r.deleted_at IS NULL AND r.primary_sha256 <> '')::int::bigint AS primary_checksummed,
		(r.deleted_at IS NULL AND r.primary_verification_state = 2)::int::bigint AS primary_verified,
		(r.deleted_at IS NULL AND r.primary_verification_state = 3)::int::bigint AS primary_checksum_failed,
		(r.deleted_at IS NULL AND r.primary_checksum_mismatch)::int::bigint AS primary_checksum_mismatch,
		(r.deleted_at IS NULL AND r.missing_on_primary)::int::bigint AS missing_on_primary,
		(r.quarantined_at IS NOT NULL)::int::bigint AS quarantined,
		CASE WHEN r.deleted_at IS NULL THEN r.size ELSE 0 END AS bytes_total,
		CASE WHEN r.deleted_at IS NULL AND r.state = 2 THEN r.size ELSE 0 END AS bytes_synced,
		CASE WHEN r.deleted_at IS NULL AND r.state <> 2 THEN r.size ELSE 0 END AS bytes_pending
	FROM new_table r
) x
GROUP BY data_type
HAVING sum(s * rows) <> 0
	OR sum(s * tombstones) <> 0
	OR sum(s * tombstones_pending) <> 0
	OR sum(s * pending) <> 0
	OR sum(s * started) <> 0
	OR sum(s * synced) <> 0
	OR sum(s * failed) <> 0
	OR sum(s * verification_pending) <> 0
	OR sum(s * verification_started) <> 0
	OR sum(s * verified) <> 0
	OR sum(s * verification_failed) <> 0
	OR sum(s * checksum_mismatch) <> 0
	OR sum(s * primary_checksummed) <> 0
	OR sum(s * primary_verified) <> 0
	OR sum(s * primary_checksum_failed) <> 0
	OR sum(s * primary_checksum_mismatch) <> 0
	OR sum(s * missing_on_primary) <> 0
	OR sum(s * quarantined) <> 0
	OR sum(s * bytes_total) <> 0
	OR sum(s * bytes_synced) <> 0
	OR sum(s * bytes_pending) <> 0;
RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION blob_registry_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO registry_counter_delta (data_type, rows, tombstones, tombstones_pending, pending, started, synced, failed, verification_pending, verification_started, verified, verification_failed, checksum_mismatch, primary_checksummed, primary_verified, primary_checksum_failed, primary_checksum_mismatch, missing_on_primary, quarantined, bytes_total, bytes_synced, bytes_pending)
SELECT data_type,
	sum(s * rows)::bigint,
	sum(s * tombstones)::bigint,
	sum(s * tombstones_pending)::bigint,
	sum(s * pending)::bigint,
	sum(s * started)::bigint,
	sum(s * synced)::bigint,
	sum(s * failed)::bigint,
	sum(s * verification_pending)::bigint,
	sum(s * verification_started)::bigint,
	sum(s * verified)::bigint,
	sum(s * verification_failed)::bigint,
	sum(s * checksum_mismatch)::bigint,
	sum(s * primary_checksummed)::bigint,
	sum(s * primary_verified)::bigint,
	sum(s * primary_checksum_failed)::bigint,
	sum(s * primary_checksum_mismatch)::bigint,
	sum(s * missing_on_primary)::bigint,
	sum(s * quarantined)::bigint,
	sum(s * bytes_total)::bigint,
	sum(s * bytes_synced)::bigint,
	sum(s * bytes_pending)::bigint
FROM (
	SELECT -1::bigint AS s, r.data_type,
		(r.deleted_at IS NULL)::int::bigint AS rows,
		(r.deleted_at IS NOT NULL)::int::bigint AS tombstones,
		(r.deleted_at IS NOT NULL AND r.state <> 2)::int::bigint AS tombstones_pending,
		(r.deleted_at IS NULL AND r.state = 0)::int::bigint AS pending,
		(r.deleted_at IS NULL AND r.state = 1)::int::bigint AS started,
		(r.deleted_at IS NULL AND r.state = 2)::int::bigint AS synced,
		(r.deleted_at IS NULL AND r.state = 3)::int::bigint AS failed,
		(r.deleted_at IS NULL AND r.verification_state = 0)::int::bigint AS verification_pending,
		(r.deleted_at IS NULL AND r.verification_state = 1)::int::bigint AS verification_started,
		(r.deleted_at IS NULL AND r.verification_state = 2)::int::bigint AS verified,
		(r.deleted_at IS NULL AND r.verification_state = 3)::int::bigint AS verification_failed,
		(r.deleted_at IS NULL AND r.checksum_mismatch)::int::bigint AS checksum_mismatch,
		(r.deleted_at IS NULL AND r.primary_sha256 <> '')::int::bigint AS primary_checksummed,
		(r.deleted_at IS NULL AND r.primary_verification_state = 2)::int::bigint AS primary_verified,
		(r.deleted_at IS NULL AND r.primary_verification_state = 3)::int::bigint AS primary_checksum_failed,
		(r.deleted_at IS NULL AND r.primary_checksum_mismatch)::int::bigint AS primary_checksum_mismatch,
		(r.deleted_at IS NULL AND r.missing_on_primary)::int::bigint AS missing_on_primary,
		(r.quarantined_at IS NOT NULL)::int::bigint AS quarantined,
		CASE WHEN r.deleted_at IS NULL THEN r.size ELSE 0 END AS bytes_total,
		CASE WHEN r.deleted_at IS NULL AND r.state = 2 THEN r.size ELSE 0 END AS bytes_synced,
		CASE WHEN r.deleted_at IS NULL AND r.state <> 2 THEN r.size ELSE 0 END AS bytes_pending
	FROM old_table r
) x
GROUP BY data_type
HAVING sum(s * rows) <> 0
	OR sum(s * tombstones) <> 0
	OR sum(s * tombstones_pending) <> 0
	OR sum(s * pending) <> 0
	OR sum(s * started) <> 0
	OR sum(s * synced) <> 0
	OR sum(s * failed) <> 0
	OR sum(s * verification_pending) <> 0
	OR sum(s * verification_started) <> 0
	OR sum(s * verified) <> 0
	OR sum(s * verification_failed) <> 0
	OR sum(s * checksum_mismatch) <> 0
	OR sum(s * primary_checksummed) <> 0
	OR sum(s * primary_verified) <> 0
	OR sum(s * primary_checksum_failed) <> 0
	OR sum(s * primary_checksum_mismatch) <> 0
	OR sum(s * missing_on_primary) <> 0
	OR sum(s * quarantined) <> 0
	OR sum(s * bytes_total) <> 0
	OR sum(s * bytes_synced) <> 0
	OR sum(s * bytes_pending) <> 0;
RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION blob_registry_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO registry_counter_delta (data_type, rows, tombstones, tombstones_pending, pending, started, synced, failed, verification_pending, verification_started, verified, verification_failed, checksum_mismatch, primary_checksummed, primary_verified, primary_checksum_failed, primary_checksum_mismatch, missing_on_primary, quarantined, bytes_total, bytes_synced, bytes_pending)
SELECT data_type,
	sum(s * rows)::bigint,
	sum(s * tombstones)::bigint,
	sum(s * tombstones_pending)::bigint,
	sum(s * pending)::bigint,
	sum(s * started)::bigint,
	sum(s * synced)::bigint,
	sum(s * failed)::bigint,
	sum(s * verification_pending)::bigint,
	sum(s * verification_started)::bigint,
	sum(s * verified)::bigint,
	sum(s * verification_failed)::bigint,
	sum(s * checksum_mismatch)::bigint,
	sum(s * primary_checksummed)::bigint,
	sum(s * primary_verified)::bigint,
	sum(s * primary_checksum_failed)::bigint,
	sum(s * primary_checksum_mismatch)::bigint,
	sum(s * missing_on_primary)::bigint,
	sum(s * quarantined)::bigint,
	sum(s * bytes_total)::bigint,
	sum(s * bytes_synced)::bigint,
	sum(s * bytes_pending)::bigint
FROM (
	SELECT 1::bigint AS s, r.data_type,
		(r.deleted_at IS NULL)::int::bigint AS rows,
		(r.deleted_at IS NOT NULL)::int::bigint AS tombstones,
		(r.deleted_at IS NOT NULL AND r.state <> 2)::int::bigint AS tombstones_pending,
		(r.deleted_at IS NULL AND r.state = 0)::int::bigint AS pending,
		(r.deleted_at IS NULL AND r.state = 1)::int::bigint AS started,
		(r.deleted_at IS NULL AND r.state = 2)::int::bigint AS synced,
		(r.deleted_at IS NULL AND r.state = 3)::int::bigint AS failed,
		(r.deleted_at IS NULL AND r.verification_state = 0)::int::bigint AS verification_pending,
		(r.deleted_at IS NULL AND r.verification_state = 1)::int::bigint AS verification_started,
		(r.deleted_at IS NULL AND r.verification_state = 2)::int::bigint AS verified,
		(r.deleted_at IS NULL AND r.verification_state = 3)::int::bigint AS verification_failed,
		(r.deleted_at IS NULL AND r.checksum_mismatch)::int::bigint AS checksum_mismatch,
		(r.deleted_at IS NULL AND r.primary_sha256 <> '')::int::bigint AS primary_checksummed,
		(r.deleted_at IS NULL AND r.primary_verification_state = 2)::int::bigint AS primary_verified,
		(r.deleted_at IS NULL AND r.primary_verification_state = 3)::int::bigint AS primary_checksum_failed,
		(r.deleted_at IS NULL AND r.primary_checksum_mismatch)::int::bigint AS primary_checksum_mismatch,
		(r.deleted_at IS NULL AND r.missing_on_primary)::int::bigint AS missing_on_primary,
		(r.quarantined_at IS NOT NULL)::int::bigint AS quarantined,
		CASE WHEN r.deleted_at IS NULL THEN r.size ELSE 0 END AS bytes_total,
		CASE WHEN r.deleted_at IS NULL AND r.state = 2 THEN r.size ELSE 0 END AS bytes_synced,
		CASE WHEN r.deleted_at IS NULL AND r.state <> 2 THEN r.size ELSE 0 END AS bytes_pending
	FROM new_table r
	UNION ALL
	SELECT -1::bigint AS s, r.data_type,
		(r.deleted_at IS NULL)::int::bigint AS rows,
		(r.deleted_at IS NOT NULL)::int::bigint AS tombstones,
		(r.deleted_at IS NOT NULL AND r.state <> 2)::int::bigint AS tombstones_pending,
		(r.deleted_at IS NULL AND r.state = 0)::int::bigint AS pending,
		(r.deleted_at IS NULL AND r.state = 1)::int::bigint AS started,
		(r.deleted_at IS NULL AND r.state = 2)::int::bigint AS synced,
		(r.deleted_at IS NULL AND r.state = 3)::int::bigint AS failed,
		(r.deleted_at IS NULL AND r.verification_state = 0)::int::bigint AS verification_pending,
		(r.deleted_at IS NULL AND r.verification_state = 1)::int::bigint AS verification_started,
		(r.deleted_at IS NULL AND r.verification_state = 2)::int::bigint AS verified,
		(r.deleted_at IS NULL AND r.verification_state = 3)::int::bigint AS verification_failed,
		(r.deleted_at IS NULL AND r.checksum_mismatch)::int::bigint AS checksum_mismatch,
		(r.deleted_at IS NULL AND r.primary_sha256 <> '')::int::bigint AS primary_checksummed,
		(r.deleted_at IS NULL AND r.primary_verification_state = 2)::int::bigint AS primary_verified,
		(r.deleted_at IS NULL AND r.primary_verification_state = 3)::int::bigint AS primary_checksum_failed,
		(r.deleted_at IS NULL AND r.primary_checksum_mismatch)::int::bigint AS primary_checksum_mismatch,
		(r.deleted_at IS NULL AND r.missing_on_primary)::int::bigint AS missing_on_primary,
		(r.quarantined_at IS NOT NULL)::int::bigint AS quarantined,
		CASE WHEN r.deleted_at IS NULL THEN r.size ELSE 0 END AS bytes_total,
		CASE WHEN r.deleted_at IS NULL AND r.state = 2 THEN r.size ELSE 0 END AS bytes_synced,
		CASE WHEN r.deleted_at IS NULL AND r.state <> 2 THEN r.size ELSE 0 END AS bytes_pending
	FROM old_table r
) x
GROUP BY data_type
HAVING sum(s * rows) <> 0
	OR sum(s * tombstones) <> 0
	OR sum(s * tombstones_pending) <> 0
	OR sum(s * pending) <> 0
	OR sum(s * started) <> 0
	OR sum(s * synced) <> 0
	OR sum(s * failed) <> 0
	OR sum(s * verification_pending) <> 0
	OR sum(s * verification_started) <> 0
	OR sum(s * verified) <> 0
	OR sum(s * verification_failed) <> 0
	OR sum(s * checksum_mismatch) <> 0
	OR sum(s * primary_checksummed) <> 0
	OR sum(s * primary_verified) <> 0
	OR sum(s * primary_checksum_failed) <> 0
	OR sum(s * primary_checksum_mismatch) <> 0
	OR sum(s * missing_on_primary) <> 0
	OR sum(s * quarantined) <> 0
	OR sum(s * bytes_total) <> 0
	OR sum(s * bytes_synced) <> 0
	OR sum(s * bytes_pending) <> 0;
RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION blob_registry_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
DELETE FROM registry_counter_delta;
DELETE FROM registry_type_counters;
RETURN NULL;
END $$;
-- +goose StatementEnd

-- No writer may change rows between the initial fill and the triggers.
LOCK TABLE blob_registry IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER blob_registry_count_insert AFTER INSERT ON blob_registry
    REFERENCING NEW TABLE AS new_table FOR EACH STATEMENT EXECUTE FUNCTION blob_registry_count_insert();
CREATE TRIGGER blob_registry_count_update AFTER UPDATE ON blob_registry
    REFERENCING OLD TABLE AS old_table NEW TABLE AS new_table FOR EACH STATEMENT EXECUTE FUNCTION blob_registry_count_update();
CREATE TRIGGER blob_registry_count_delete AFTER DELETE ON blob_registry
    REFERENCING OLD TABLE AS old_table FOR EACH STATEMENT EXECUTE FUNCTION blob_registry_count_delete();
CREATE TRIGGER blob_registry_count_truncate AFTER TRUNCATE ON blob_registry
    FOR EACH STATEMENT EXECUTE FUNCTION blob_registry_count_truncate();

INSERT INTO registry_type_counters (data_type, rows, tombstones, tombstones_pending, pending, started, synced, failed, verification_pending, verification_started, verified, verification_failed, checksum_mismatch, primary_checksummed, primary_verified, primary_checksum_failed, primary_checksum_mismatch, missing_on_primary, quarantined, bytes_total, bytes_synced, bytes_pending)
SELECT data_type,
	sum(s * rows)::bigint,
	sum(s * tombstones)::bigint,
	sum(s * tombstones_pending)::bigint,
	sum(s * pending)::bigint,
	sum(s * started)::bigint,
	sum(s * synced)::bigint,
	sum(s * failed)::bigint,
	sum(s * verification_pending)::bigint,
	sum(s * verification_started)::bigint,
	sum(s * verified)::bigint,
	sum(s * verification_failed)::bigint,
	sum(s * checksum_mismatch)::bigint,
	sum(s * primary_checksummed)::bigint,
	sum(s * primary_verified)::bigint,
	sum(s * primary_checksum_failed)::bigint,
	sum(s * primary_checksum_mismatch)::bigint,
	sum(s * missing_on_primary)::bigint,
	sum(s * quarantined)::bigint,
	sum(s * bytes_total)::bigint,
	sum(s * bytes_synced)::bigint,
	sum(s * bytes_pending)::bigint
FROM (
	SELECT 1::bigint AS s, r.data_type,
		(r.deleted_at IS NULL)::int::bigint AS rows,
		(r.deleted_at IS NOT NULL)::int::bigint AS tombstones,
		(r.deleted_at IS NOT NULL AND r.state <> 2)::int::bigint AS tombstones_pending,
		(r.deleted_at IS NULL AND r.state = 0)::int::bigint AS pending,
		(r.deleted_at IS NULL AND r.state = 1)::int::bigint AS started,
		(r.deleted_at IS NULL AND r.state = 2)::int::bigint AS synced,
		(r.deleted_at IS NULL AND r.state = 3)::int::bigint AS failed,
		(r.deleted_at IS NULL AND r.verification_state = 0)::int::bigint AS verification_pending,
		(r.deleted_at IS NULL AND r.verification_state = 1)::int::bigint AS verification_started,
		(r.deleted_at IS NULL AND r.verification_state = 2)::int::bigint AS verified,
		(r.deleted_at IS NULL AND r.verification_state = 3)::int::bigint AS verification_failed,
		(r.deleted_at IS NULL AND r.checksum_mismatch)::int::bigint AS checksum_mismatch,
		(r.deleted_at IS NULL AND r.primary_sha256 <> '')::int::bigint AS primary_checksummed,
		(r.deleted_at IS NULL AND r.primary_verification_state = 2)::int::bigint AS primary_verified,
		(r.deleted_at IS NULL AND r.primary_verification_state = 3)::int::bigint AS primary_checksum_failed,
		(r.deleted_at IS NULL AND r.primary_checksum_mismatch)::int::bigint AS primary_checksum_mismatch,
		(r.deleted_at IS NULL AND r.missing_on_primary)::int::bigint AS missing_on_primary,
		(r.quarantined_at IS NOT NULL)::int::bigint AS quarantined,
		CASE WHEN r.deleted_at IS NULL THEN r.size ELSE 0 END AS bytes_total,
		CASE WHEN r.deleted_at IS NULL AND r.state = 2 THEN r.size ELSE 0 END AS bytes_synced,
		CASE WHEN r.deleted_at IS NULL AND r.state <> 2 THEN r.size ELSE 0 END AS bytes_pending
	FROM blob_registry r
) x
GROUP BY data_type;

-- oldest unsynced age per type (an index-backed min, see qTypeStatus):
-- pending rows use blob_registry_pending_idx; these two cover started rows
-- and failed rows that are not quarantined.
CREATE INDEX blob_registry_started_type_idx ON blob_registry (data_type, started_at) WHERE state = 1;
CREATE INDEX blob_registry_failed_age_idx ON blob_registry (data_type, updated_at)
    WHERE state = 3 AND quarantined_at IS NULL;

-- +goose Down
DROP INDEX blob_registry_failed_age_idx;
DROP INDEX blob_registry_started_type_idx;
DROP TRIGGER blob_registry_count_truncate ON blob_registry;
DROP TRIGGER blob_registry_count_delete ON blob_registry;
DROP TRIGGER blob_registry_count_update ON blob_registry;
DROP TRIGGER blob_registry_count_insert ON blob_registry;
DROP FUNCTION blob_registry_count_truncate();
DROP FUNCTION blob_registry_count_update();
DROP FUNCTION blob_registry_count_delete();
DROP FUNCTION blob_registry_count_insert();
DROP TABLE registry_counter_delta;
DROP TABLE registry_type_counters;
