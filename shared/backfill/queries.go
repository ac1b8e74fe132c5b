package backfill

// The SQL of the backfill package: its own tables (backfill_cursor,
// backfill_seen). Every statement on the registry table is a method of
// shared/registry. Timestamps are parameters from the Runner's clock.

// qSeenAnalyze refreshes the planner's statistics of the seen table before
// the anti-join.
const qSeenAnalyze = `ANALYZE backfill_seen`

// $1 cursor name.
const qSeenClear = `DELETE FROM backfill_seen WHERE cursor = $1`

// $1 name, $2 owner, $3 now, $4 lease until. Takes the cursor's lease
// (creating the cursor) unless another owner holds an unexpired one.
const qCursorLease = `
INSERT INTO backfill_cursor AS c (name, lease_owner, lease_until, updated_at)
VALUES ($1, $2, $4, $3)
ON CONFLICT (name) DO UPDATE SET lease_owner = $2, lease_until = $4, updated_at = $3
WHERE c.lease_owner IS NULL OR c.lease_owner = $2 OR c.lease_until < $3
RETURNING c.position, c.pass_started_at, c.passes_completed, c.last_completed_at, c.listed, c.registered`

// $1 name, $2 owner, $3 now.
const qCursorRelease = `
UPDATE backfill_cursor SET lease_owner = NULL, lease_until = NULL, updated_at = $3
WHERE name = $1 AND lease_owner = $2`

// $1 name, $2 owner, $3 now, $4 position, $5 pass started at, $6 listed
// (added), $7 registered (added). Saves progress; no row when the lease was
// lost.
const qCursorSave = `
UPDATE backfill_cursor SET position = $4, pass_started_at = $5,
	listed = listed + $6, registered = registered + $7, updated_at = $3
WHERE name = $1 AND lease_owner = $2
RETURNING 1`

// $1 name, $2 owner, $3 now, $4 position for the next pass. Ends a pass.
const qCursorComplete = `
UPDATE backfill_cursor SET position = $4, pass_started_at = NULL,
	passes_completed = passes_completed + 1, last_completed_at = $3,
	listed = 0, registered = 0, updated_at = $3
WHERE name = $1 AND lease_owner = $2
RETURNING 1`

// $1 name, $2 owner, $3 now, $4 position. Starts a new pass at position
// (resetting the pass counters).
const qCursorRestart = `
UPDATE backfill_cursor SET position = $4, pass_started_at = $3,
	listed = 0, registered = 0, updated_at = $3
WHERE name = $1 AND lease_owner = $2
RETURNING 1`
