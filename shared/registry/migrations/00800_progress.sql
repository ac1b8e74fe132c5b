-- Replication progress (issue #12: "visible progress, a predictable finish
-- time"): the backlog of every data type sampled about once a minute by the
-- scheduled backfill pass (Store.RecordProgress), kept for a day. The status
-- compares the counters now with the oldest sample of the last 15 minutes to
-- tell whether the backlog drains, how fast, and when it will be empty
-- (Store.Progress). One small row per type per minute: 7 types × 1,440 a day.

-- +goose Up
CREATE TABLE registry_progress (
    data_type     text        NOT NULL,
    at            timestamptz NOT NULL,
    backlog       bigint      NOT NULL CHECK (backlog >= 0),
    backlog_bytes bigint      NOT NULL CHECK (backlog_bytes >= 0),
    PRIMARY KEY (data_type, at)
);

-- +goose Down
DROP TABLE registry_progress;
