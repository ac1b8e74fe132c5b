-- Delete brake (owned by shared/registry, brake.go): deletes propagated to
-- the secondary go through a budget. When too many arrive in a sliding
-- window, the brake trips and tombstones wait in a held state (the secondary
-- keeps its copy) until an operator releases or discards them.

-- +goose Up
-- delete_hold: 0 none, 1 held (waits for an operator; the row is failed
-- with retry_at = infinity, so no claim picks it up), 2 released (the
-- operator allowed the delete: it bypasses the budget), 3 discarded (the
-- operator kept the secondary copy; the tombstone is synced).
ALTER TABLE blob_registry
    ADD COLUMN delete_hold smallint NOT NULL DEFAULT 0 CHECK (delete_hold BETWEEN 0 AND 3);
CREATE INDEX blob_registry_delete_held_idx ON blob_registry (data_type, object_key)
    WHERE delete_hold = 1;

-- A row that becomes live again (a create event) forgets any hold.
-- +goose StatementBegin
CREATE FUNCTION blob_registry_end_delete_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.delete_hold := 0;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER blob_registry_end_delete_hold
    BEFORE UPDATE ON blob_registry
    FOR EACH ROW
    WHEN (OLD.delete_hold <> 0 AND NEW.deleted_at IS NULL)
    EXECUTE FUNCTION blob_registry_end_delete_hold();

-- One row per brake scope: '*' (all types) or a data type.
CREATE TABLE delete_brake (
    scope      text PRIMARY KEY,
    tripped_at timestamptz,            -- NULL: not tripped
    reason     text NOT NULL DEFAULT '',
    reset_at   timestamptz,            -- deletes before this do not count
    updated_at timestamptz NOT NULL
);

-- Deletes admitted by the budget, for the sliding window (pruned as they
-- leave the longest window in use).
CREATE TABLE delete_brake_log (
    data_type text        NOT NULL,
    at        timestamptz NOT NULL
);
CREATE INDEX delete_brake_log_at_idx ON delete_brake_log (at, data_type);

-- Rows per type the fraction thresholds compare with (live rows plus rows
-- tombstoned within the window), recounted at most once a minute.
CREATE TABLE delete_brake_population (
    data_type  text PRIMARY KEY,
    rows       bigint      NOT NULL,
    counted_at timestamptz NOT NULL
);

-- Operator actions (release, discard, reset, restore) are audited in
-- registry_audit (migration 00210).

-- +goose Down
DROP TABLE delete_brake_population;
DROP TABLE delete_brake_log;
DROP TABLE delete_brake;
DROP TRIGGER blob_registry_end_delete_hold ON blob_registry;
DROP FUNCTION blob_registry_end_delete_hold();
DROP INDEX blob_registry_delete_held_idx;
ALTER TABLE blob_registry DROP COLUMN delete_hold;
