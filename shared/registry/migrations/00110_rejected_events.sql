-- Events that can never be applied (events.ErrInvalid: a key with NUL, not
-- UTF-8 or over 1,024 bytes, a negative size, a sequencer that is not 1-32
-- hex digits). The event functions record them here once and acknowledge the
-- message, instead of failing it until SQS moves it to the dead-letter queue
-- after maxReceiveCount receives: this table is their dead-letter store,
-- for local and AWS deployments alike. Keys and sequencers are stored as
-- the raw bytes received (bytea), since text cannot hold NUL or invalid UTF-8.

-- +goose Up
CREATE TABLE rejected_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL,
    function    text NOT NULL DEFAULT '',
    message_id  text NOT NULL DEFAULT '',
    event_name  text NOT NULL DEFAULT '',
    bucket      text NOT NULL DEFAULT '',
    object_key  bytea NOT NULL,
    size        bigint NOT NULL DEFAULT 0,
    sequencer   bytea NOT NULL DEFAULT '',
    version_id  text NOT NULL DEFAULT '',
    reason      varchar(255) NOT NULL
);
CREATE INDEX rejected_events_received_at_idx ON rejected_events (received_at);

-- +goose Down
DROP TABLE rejected_events;
