-- Least privilege in the database: the runtime functions (onCreate,
-- onDelete, backfill, verify, api) log in as a member of geoblob_runtime,
-- which may read and write rows (SELECT, INSERT, UPDATE, DELETE; sequences)
-- but owns nothing, so it cannot DROP, ALTER or CREATE tables, TRUNCATE or
-- change grants. Only migrate logs in as the owner (the Aurora master user)
-- and changes the schema. The login role itself (with the password of the
-- runtime secret) is made by registry.EnsureRuntimeLogin from migrate.
--
-- ALTER DEFAULT PRIVILEGES covers every table and sequence the owner
-- creates in later migrations, so a new table needs no grant of its own.
-- Temporary tables stay allowed (backfill stages batches in one).

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    CREATE ROLE geoblob_runtime NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- roles are per cluster: another database of the cluster made it
END
$$;
-- +goose StatementEnd
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO geoblob_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO geoblob_runtime;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO geoblob_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO geoblob_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO geoblob_runtime;
-- The migration history is read (schema version checks), never written.
REVOKE INSERT, UPDATE, DELETE ON registry_schema_migrations FROM geoblob_runtime;

-- +goose Down
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM geoblob_runtime;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM geoblob_runtime;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM geoblob_runtime;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM geoblob_runtime;
REVOKE USAGE ON SCHEMA public FROM geoblob_runtime;
