-- Backfill (owned by shared/backfill): resumable cursors, the keys seen in
-- an inventory pass, key-ordered access for listing reconciliation, and
-- quarantine of rows that failed too often.

-- +goose Up
-- One row per reconcile/orphan source (e.g. "reconcile:list:<bucket>"):
-- where the current pass stands, who holds it, and what passes did.
CREATE TABLE backfill_cursor (
    name              text PRIMARY KEY,
    position          jsonb       NOT NULL DEFAULT '{}',
    pass_started_at   timestamptz,
    passes_completed  bigint      NOT NULL DEFAULT 0,
    last_completed_at timestamptz,
    lease_owner       text,
    lease_until       timestamptz,
    listed            bigint      NOT NULL DEFAULT 0, -- objects listed in the current pass
    registered        bigint      NOT NULL DEFAULT 0, -- rows inserted in the current pass
    updated_at        timestamptz NOT NULL
);

-- Keys listed by an inventory pass that has not finished yet; the rows not
-- in it are the registry's orphan candidates (one hash anti-join at the end
-- of the pass). Rebuilt every pass, so not WAL-logged, and without an index:
-- appending must stay cheap at a billion keys; duplicates (a batch redone
-- after a crash) are harmless.
CREATE UNLOGGED TABLE backfill_seen (
    cursor     text NOT NULL,
    data_type  text NOT NULL,
    object_key text NOT NULL
);

-- Listing reconciliation walks live rows in S3's key order (bytes).
CREATE INDEX blob_registry_live_key_c_idx ON blob_registry ((object_key COLLATE "C"))
    WHERE deleted_at IS NULL;

-- Quarantine: a failed row whose retry_count reached the configured maximum
-- gets quarantined_at and a retry_at in the far future, so no claim picks it
-- up again until someone asks for a resync.
ALTER TABLE blob_registry ADD COLUMN quarantined_at timestamptz;
CREATE INDEX blob_registry_quarantined_idx ON blob_registry (data_type)
    WHERE quarantined_at IS NOT NULL;

-- Leaving the failed state (resync, an event, a claim) ends the quarantine,
-- whoever makes the change.
-- +goose StatementBegin
CREATE FUNCTION blob_registry_end_quarantine() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.quarantined_at := NULL;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER blob_registry_end_quarantine
    BEFORE UPDATE ON blob_registry
    FOR EACH ROW
    WHEN (OLD.quarantined_at IS NOT NULL AND NEW.state <> 3)
    EXECUTE FUNCTION blob_registry_end_quarantine();

-- +goose Down
DROP TRIGGER blob_registry_end_quarantine ON blob_registry;
DROP FUNCTION blob_registry_end_quarantine();
DROP INDEX blob_registry_quarantined_idx;
ALTER TABLE blob_registry DROP COLUMN quarantined_at;
DROP INDEX blob_registry_live_key_c_idx;
DROP TABLE backfill_seen;
DROP TABLE backfill_cursor;
