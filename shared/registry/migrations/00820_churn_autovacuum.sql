-- Two tables are written and emptied all the time: sync_dispatch_lease (one
-- insert per dispatched request, one delete when a worker takes it up:
-- tens of thousands a second at full dispatch rate) and
-- registry_counter_delta (one row per statement on blob_registry, deleted
-- by every rollup). With the default autovacuum thresholds (20 % of the
-- table) vacuum runs late on a table that is nearly empty between bursts,
-- and the dispatcher's window count and expiry scans read the dead rows.
-- Vacuum them after a fixed number of dead rows instead, without the cost
-- delay.

-- +goose Up
ALTER TABLE sync_dispatch_lease SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE registry_counter_delta SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000, autovacuum_vacuum_cost_delay = 0);

-- +goose Down
ALTER TABLE registry_counter_delta RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, autovacuum_vacuum_cost_delay);
ALTER TABLE sync_dispatch_lease RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold, autovacuum_vacuum_cost_delay);
