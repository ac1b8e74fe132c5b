-- DR readiness report (shared/registry/drreport.go, issue #11): every row a
-- failover right now would lose or serve stale is in a state other than
-- synced (pending, started, failed, and held deletes, which are failed
-- tombstones). One partial index over exactly those rows serves the
-- report's per-category aggregate (a scan bounded by the rows at risk, not
-- by the table: a healthy registry of 10M rows has almost none) and its
-- keyset-paged list in (data type, key) order, S3's byte order. The
-- queries repeat the predicate "r.state <> 2" literally so the planner
-- matches this index.

-- +goose Up
CREATE INDEX blob_registry_at_risk_idx ON blob_registry (data_type, (object_key COLLATE "C"))
    WHERE state <> 2;

-- +goose Down
DROP INDEX blob_registry_at_risk_idx;
