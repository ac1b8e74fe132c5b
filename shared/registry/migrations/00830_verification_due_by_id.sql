-- Verification claims take pending rows in id order across all types
-- (qClaimSecondary's "pending"), but the pending index was (data_type, id):
-- no order across types, so the planner walked the primary key from the
-- start and filtered out every row already verified. Each claim then cost
-- O(rows verified so far), a verify pass O(n^2): measured during a
-- 300,000-object initial replication, a claim of 100 rows ran at 87 % of a
-- core with 187,500 rows verified. Index the pending rows by id alone: a
-- claim reads its LIMIT rows. Nothing else used (data_type, id) here (lists
-- filter verification states through (data_type, verification_state, id)).

-- +goose Up
CREATE INDEX blob_registry_verification_due_idx ON blob_registry (id) WHERE verification_state = 0;
DROP INDEX blob_registry_verification_pending_idx;

-- +goose Down
CREATE INDEX blob_registry_verification_pending_idx ON blob_registry (data_type, id) WHERE verification_state = 0;
DROP INDEX blob_registry_verification_due_idx;
