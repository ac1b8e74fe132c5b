-- Dispatch leases (shared/registry/dispatch.go, issue #12): a dispatcher
-- no longer claims a row (a full, non-HOT UPDATE of blob_registry that
-- touches every index) before it sends the row's sync request. It reads due
-- rows read-only and records one narrow lease per request sent; the worker
-- that receives the request claims the row (compare-and-set on its state)
-- and deletes the lease in the same statement. A live lease keeps the row
-- from being sent again while its request is queued; an expired one (the
-- request was lost) lets the row be sent again. The dispatcher's window
-- counts live leases plus started rows.
--
-- No foreign key (its check would cost a blob_registry lookup per lease);
-- a lease of a deleted row only counts in the window until it expires.
-- No index on blob_registry: the dispatcher reads through
-- blob_registry_pending_idx and blob_registry_failed_retry_idx.

-- +goose Up
CREATE TABLE sync_dispatch_lease (
    row_id  bigint      PRIMARY KEY,
    sent_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE sync_dispatch_lease;
