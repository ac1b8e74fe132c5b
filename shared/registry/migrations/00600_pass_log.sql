-- Pass log (owned by shared/registry, written by backfill and verify): the
-- last pass of each scheduled job, so the health check and the console can
-- tell whether the safety net is running and whether it succeeded.

-- +goose Up
CREATE TABLE pass_log (
    job              text PRIMARY KEY CHECK (job <> ''),
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    ok               boolean     NOT NULL,
    error            text        NOT NULL DEFAULT '',
    summary          jsonb       NOT NULL DEFAULT '{}',
    passes           bigint      NOT NULL DEFAULT 1,
    failures         bigint      NOT NULL DEFAULT 0,
    last_ok_at       timestamptz
);

-- +goose Down
DROP TABLE pass_log;
