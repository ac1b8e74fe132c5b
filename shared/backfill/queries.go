package backfill

// All SQL of the backfill package. Timestamps are parameters from the
// Runner's clock. Keys are compared COLLATE "C" (bytes), the order in which
// S3 lists them.

// qStageCreate makes the per-connection staging table for one batch of
// listed objects; ON COMMIT DELETE ROWS empties it after every transaction.
const qStageCreate = `
CREATE TEMP TABLE IF NOT EXISTS backfill_batch (
	data_type  text   NOT NULL,
	object_key text   NOT NULL,
	size       bigint NOT NULL,
	etag       text   NOT NULL
) ON COMMIT DELETE ROWS`

// stageTable and stageColumns name the COPY target.
const stageTable = "backfill_batch"

var stageColumns = []string{"data_type", "object_key", "size", "etag"}

// $1 now, $2 not changed since. Registers the staged objects that have no
// row as pending, in the same index lookups that find the staged objects
// whose row says something else (see changedCondition): those get a no-op
// update so RETURNING reports them (inserted = false). Other existing rows
// (tombstones included: a tombstone is the newer truth until a HEAD says
// otherwise) are left alone.
const qRegisterStaged = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, size, etag,
	verification_state, created_at, updated_at)
SELECT DISTINCT ON (data_type, object_key) data_type, object_key, 0, 1, size, etag, 4, $1::timestamptz, $1::timestamptz
FROM backfill_batch
ORDER BY data_type, object_key
ON CONFLICT (data_type, object_key) DO UPDATE SET updated_at = r.updated_at
WHERE r.updated_at < $2 AND (r.deleted_at IS NOT NULL
	OR (r.state = 2 AND r.etag <> '' AND EXCLUDED.etag <> '' AND r.etag <> EXCLUDED.etag))
RETURNING (r.xmax = 0) AS inserted, r.data_type, r.object_key`

// $1 data types, $2 after key (exclusive, ” = from the start), $3 up to key
// (inclusive, NULL = to the end), $4 created before, $5 prefixes (NULL = all).
//
// Live rows in the key range of a listed batch that the batch does not
// contain: their primary object was deleted (or the listing raced a
// create, which the caller rules out with a HEAD).
const qListingOrphans = `
SELECT r.data_type, r.object_key FROM blob_registry r
WHERE r.deleted_at IS NULL
	AND r.data_type = ANY($1::text[])
	AND (r.object_key COLLATE "C") > ($2::text COLLATE "C")
	AND ($3::text IS NULL OR (r.object_key COLLATE "C") <= ($3::text COLLATE "C"))
	AND r.created_at < $4
	AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($5::text[]) p WHERE starts_with(r.object_key, p)))
	AND NOT EXISTS (SELECT 1 FROM backfill_batch b
		WHERE b.data_type = r.data_type AND b.object_key = r.object_key)
ORDER BY (r.object_key COLLATE "C")`

// $1 cursor name. Remembers the staged keys for an inventory pass.
const qSeenStaged = `
INSERT INTO backfill_seen (cursor, data_type, object_key)
SELECT $1, data_type, object_key FROM backfill_batch`

// $1 cursor name, $2 data types, $3 created before, $4 after id, $5
// prefixes (NULL = all). Live rows an inventory pass did not see. No LIMIT
// on purpose: with one the planner picks a nested-loop anti-join over the
// unindexed seen table; without, one hash anti-join. The caller reads a
// bounded number of rows and asks again after the last id.
const qInventoryOrphans = `
SELECT r.id, r.data_type, r.object_key FROM blob_registry r
WHERE r.deleted_at IS NULL
	AND r.data_type = ANY($2::text[])
	AND r.created_at < $3
	AND r.id > $4
	AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($5::text[]) p WHERE starts_with(r.object_key, p)))
	AND NOT EXISTS (SELECT 1 FROM backfill_seen s
		WHERE s.cursor = $1 AND s.data_type = r.data_type AND s.object_key = r.object_key)
ORDER BY r.id`

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

// quarantineUntil is the retry_at of quarantined rows: never due.
const quarantineUntil = "9999-12-31T00:00:00Z"

// $1 max attempts, $2 data types, $3 now. Quarantines failed rows that
// used up their attempts.
const qQuarantine = `
UPDATE blob_registry SET quarantined_at = $3, retry_at = '` + quarantineUntil + `'::timestamptz, updated_at = $3
WHERE state = 3 AND retry_count >= $1 AND quarantined_at IS NULL AND data_type = ANY($2::text[])`

// $1 data types (NULL = all), $2 object key (” = every quarantined row of
// the types), $3 now. Ends the quarantine of rows: pending, attempts reset,
// generation bumped (the trigger clears quarantined_at).
const qResyncQuarantined = `
UPDATE blob_registry AS r SET
	state = 0,
	generation = r.generation + 1,
	retry_count = 0,
	retry_at = NULL,
	verification_state = 4,
	verification_started_at = NULL,
	updated_at = $3
WHERE r.quarantined_at IS NOT NULL AND r.state = 3
	AND ($1::text[] IS NULL OR r.data_type = ANY($1::text[]))
	AND ($2 = '' OR r.object_key = $2)`

// $1 data types. Per type: quarantined rows, and rows waiting for sync.
const qQuarantineStats = `
SELECT data_type,
	count(*) FILTER (WHERE quarantined_at IS NOT NULL AND state = 3),
	count(*) FILTER (WHERE state = 0),
	count(*) FILTER (WHERE state = 3 AND quarantined_at IS NULL)
FROM blob_registry
WHERE data_type = ANY($1::text[])
GROUP BY data_type ORDER BY data_type`

// $1 data types, $2 now, $3 prefixes (NULL = all). Rows a sync pass would
// claim now (for progress totals).
const qCountDue = `
SELECT count(*) FROM blob_registry b
WHERE b.data_type = ANY($1::text[])
	AND (b.state = 0 OR (b.state = 3 AND b.retry_at <= $2))
	AND ($3::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($3::text[]) p WHERE starts_with(b.object_key, p)))`

// $1 keys, $2 data types. Live rows among listed secondary keys.
const qLiveKeys = `
SELECT object_key FROM blob_registry
WHERE object_key = ANY($1::text[]) AND data_type = ANY($2::text[]) AND deleted_at IS NULL`

// $1 data types. Registry health: the oldest last change among live rows
// still waiting for a sync (pending, started, retried failures; each subquery
// walks one partial index), and the failed and quarantined counts.
const qHealth = `
SELECT least(
	(SELECT min(updated_at) FROM blob_registry WHERE state = 0 AND data_type = ANY($1::text[])),
	(SELECT min(started_at) FROM blob_registry WHERE state = 1 AND data_type = ANY($1::text[])),
	(SELECT min(updated_at) FROM blob_registry WHERE state = 3 AND quarantined_at IS NULL AND data_type = ANY($1::text[]))),
	(SELECT count(*) FROM blob_registry WHERE state = 3 AND quarantined_at IS NULL AND data_type = ANY($1::text[])),
	(SELECT count(*) FROM blob_registry WHERE state = 3 AND quarantined_at IS NOT NULL AND data_type = ANY($1::text[]))`
