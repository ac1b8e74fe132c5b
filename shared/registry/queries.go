package registry

// All SQL of the registry. Every timestamp is a parameter taken from the
// Store's clock, never now(), so tests control time. The table alias is
// always r so RowColumns can be used in RETURNING of joins.

// RowColumns is the select list ScanRow reads, in order, for a query whose
// blob_registry alias is r. Exported so packages with their own queries on
// blob_registry (backfill, verify) can return Rows and Claims that stay in
// step with this package.
const RowColumns = `r.id, r.data_type, r.object_key,
	r.state, r.generation, r.retry_count, r.retry_at, coalesce(r.last_sync_failure, ''),
	r.last_synced_at, r.started_at, r.size, r.etag, r.version_id, r.primary_sha256,
	r.last_sequencer, r.missing_on_primary, r.deleted_at,
	r.verification_state, r.verification_started_at, r.verified_at, r.verification_retry_count,
	r.verification_retry_at, coalesce(r.verification_failure, ''), r.secondary_sha256,
	r.checksum_mismatch, r.created_at, r.updated_at`

// staleCondition is true when the incoming event (EXCLUDED) is not newer than
// the stored one: both sequencers known and incoming <= stored.
const staleCondition = `(r.last_sequencer <> '' AND EXCLUDED.last_sequencer <> ''
	AND EXCLUDED.last_sequencer <= r.last_sequencer)`

// sameContent is true when the event describes the object the row already
// describes (same ETag and version, row not a tombstone).
const sameContent = `(r.deleted_at IS NULL AND EXCLUDED.etag <> ''
	AND r.etag = EXCLUDED.etag AND r.version_id = EXCLUDED.version_id)`

// onConflictCreated turns an ObjectCreated insert into an upsert that
// ignores stale events.
const onConflictCreated = `ON CONFLICT (data_type, object_key) DO UPDATE SET
	state = 0,
	generation = r.generation + 1,
	retry_count = 0,
	retry_at = NULL,
	size = EXCLUDED.size,
	etag = EXCLUDED.etag,
	version_id = EXCLUDED.version_id,
	primary_sha256 = CASE WHEN ` + sameContent + ` THEN r.primary_sha256 ELSE '' END,
	last_sequencer = CASE WHEN EXCLUDED.last_sequencer = '' THEN r.last_sequencer ELSE EXCLUDED.last_sequencer END,
	missing_on_primary = false,
	deleted_at = NULL,
	verification_state = 4,
	verification_started_at = NULL,
	verification_retry_at = NULL,
	verified_at = CASE WHEN ` + sameContent + ` THEN r.verified_at ELSE NULL END,
	verification_retry_count = CASE WHEN ` + sameContent + ` THEN r.verification_retry_count ELSE 0 END,
	verification_failure = CASE WHEN ` + sameContent + ` THEN r.verification_failure ELSE NULL END,
	secondary_sha256 = CASE WHEN ` + sameContent + ` THEN r.secondary_sha256 ELSE '' END,
	checksum_mismatch = CASE WHEN ` + sameContent + ` THEN r.checksum_mismatch ELSE false END,
	updated_at = EXCLUDED.updated_at
WHERE NOT ` + staleCondition + `
`

// $1 data_type, $2 object_key, $3 size, $4 etag, $5 version_id,
// $6 normalized sequencer, $7 now.
const qRecordCreated = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, size, etag, version_id,
	last_sequencer, verification_state, created_at, updated_at)
VALUES ($1, $2, 0, 1, $3, $4, $5, $6, 4, $7, $7)
` + onConflictCreated + `
RETURNING r.id`

// Batched RecordCreated for distinct keys, locking rows in key order:
// $1..$6 arrays of data_type, object_key, size, etag, version_id,
// normalized sequencer; $7 now. Returns the applied keys.
const qRecordCreatedMany = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, size, etag, version_id,
	last_sequencer, verification_state, created_at, updated_at)
SELECT e.data_type, e.object_key, 0, 1, e.size, e.etag, e.version_id, e.seq, 4, $7, $7
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
	AS e(data_type, object_key, size, etag, version_id, seq)
ORDER BY e.data_type, e.object_key
` + onConflictCreated + `
RETURNING r.data_type, r.object_key`

// onConflictRemoved turns an ObjectRemoved insert (a tombstone) into an
// upsert that ignores stale events.
const onConflictRemoved = `ON CONFLICT (data_type, object_key) DO UPDATE SET
	state = 0,
	generation = r.generation + 1,
	retry_count = 0,
	retry_at = NULL,
	last_sequencer = CASE WHEN EXCLUDED.last_sequencer = '' THEN r.last_sequencer ELSE EXCLUDED.last_sequencer END,
	missing_on_primary = false,
	deleted_at = coalesce(r.deleted_at, EXCLUDED.deleted_at),
	verification_state = 4,
	verification_started_at = NULL,
	verification_retry_at = NULL,
	updated_at = EXCLUDED.updated_at
WHERE NOT ` + staleCondition + `
`

// $1 data_type, $2 object_key, $3 normalized sequencer, $4 now.
const qRecordRemoved = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, last_sequencer,
	deleted_at, verification_state, created_at, updated_at)
VALUES ($1, $2, 0, 1, $3, $4, 4, $4, $4)
` + onConflictRemoved + `
RETURNING r.id`

// Batched RecordRemoved for distinct keys, in key order: $1..$3 arrays of
// data_type, object_key, normalized sequencer; $4 now. Returns the applied keys.
const qRecordRemovedMany = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, last_sequencer,
	deleted_at, verification_state, created_at, updated_at)
SELECT e.data_type, e.object_key, 0, 1, e.seq, $4, 4, $4, $4
FROM unnest($1::text[], $2::text[], $3::text[]) AS e(data_type, object_key, seq)
ORDER BY e.data_type, e.object_key
` + onConflictRemoved + `
RETURNING r.data_type, r.object_key`

// $1 data_type, $2 object_key, $3 size, $4 etag, $5 version_id, $6 now.
const qRegister = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, size, etag, version_id,
	verification_state, created_at, updated_at)
VALUES ($1, $2, 0, 1, $3, $4, $5, 4, $6, $6)
ON CONFLICT (data_type, object_key) DO NOTHING
RETURNING r.id`

// $1 data_type, $2 object_key, $3 now.
const qClaimKey = `
UPDATE blob_registry AS r SET
	state = 1,
	started_at = $3,
	generation = r.generation + 1,
	updated_at = $3
WHERE r.id = (
	SELECT b.id FROM blob_registry b
	WHERE b.data_type = $1 AND b.object_key = $2 AND b.state IN (0, 3)
	FOR UPDATE SKIP LOCKED)
RETURNING ` + RowColumns

// keyPrefixFilter restricts a claim to keys starting with one of $4
// (NULL = all keys).
const keyPrefixFilter = `($4::text[] IS NULL
			OR EXISTS (SELECT 1 FROM unnest($4::text[]) AS kp(prefix) WHERE starts_with(b.object_key, kp.prefix)))`

// $1 limit, $2 data types (NULL = all), $3 now, $4 key prefixes (NULL = all).
//
// Per data type it locks (SKIP LOCKED) up to $1 pending rows, longest
// pending (updated_at, id) first, and,
// only as far as pending rows do not fill $1, due failed rows in retry_at
// order; then it ranks rows within their type and takes the first $1 by
// (pending before failed, rank, type): round-robin across types. The types
// of the whole table are found with a loose index scan.
const qClaimDue = `
WITH RECURSIVE all_types(data_type) AS (
	(SELECT data_type FROM blob_registry ORDER BY data_type LIMIT 1)
	UNION ALL
	SELECT (SELECT b.data_type FROM blob_registry b WHERE b.data_type > t.data_type
		ORDER BY b.data_type LIMIT 1)
	FROM all_types t WHERE t.data_type IS NOT NULL
),
types AS (
	SELECT data_type FROM all_types WHERE data_type IS NOT NULL AND $2::text[] IS NULL
	UNION
	SELECT unnest($2::text[])
),
pending AS (
	SELECT p.id, p.data_type, 0 AS prio,
		row_number() OVER (PARTITION BY p.data_type ORDER BY p.updated_at, p.id) AS rn
	FROM types t CROSS JOIN LATERAL (
		SELECT b.id, b.data_type, b.updated_at FROM blob_registry b
		WHERE b.data_type = t.data_type AND b.state = 0 AND ` + keyPrefixFilter + `
		ORDER BY b.updated_at, b.id
		LIMIT $1
		FOR UPDATE SKIP LOCKED) p
),
failed AS (
	SELECT f.id, f.data_type, 1 AS prio,
		row_number() OVER (PARTITION BY f.data_type ORDER BY f.retry_at, f.id) AS rn
	FROM types t CROSS JOIN LATERAL (
		SELECT b.id, b.data_type, b.retry_at FROM blob_registry b
		WHERE b.data_type = t.data_type AND b.state = 3 AND b.retry_at <= $3 AND ` + keyPrefixFilter + `
		ORDER BY b.retry_at
		LIMIT greatest($1 - (SELECT count(*) FROM pending), 0)
		FOR UPDATE SKIP LOCKED) f
),
chosen AS (
	SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM failed) c
	ORDER BY prio, rn, data_type LIMIT $1
)
UPDATE blob_registry AS r SET
	state = 1,
	started_at = $3,
	generation = r.generation + 1,
	updated_at = $3
FROM chosen
WHERE r.id = chosen.id
RETURNING ` + RowColumns

// $1 id, $2 generation, $3 size, $4 sha256, $5 etag, $6 version_id, $7 now.
// Tombstones keep their metadata: syncing them means the delete was
// propagated.
const qMarkSynced = `
UPDATE blob_registry AS r SET
	state = 2,
	last_synced_at = $7,
	retry_count = 0,
	retry_at = NULL,
	last_sync_failure = NULL,
	missing_on_primary = false,
	size = CASE WHEN r.deleted_at IS NULL THEN $3 ELSE r.size END,
	primary_sha256 = CASE WHEN r.deleted_at IS NULL AND $4 <> '' THEN $4 ELSE r.primary_sha256 END,
	etag = CASE WHEN r.deleted_at IS NULL AND $5 <> '' THEN $5 ELSE r.etag END,
	version_id = CASE WHEN r.deleted_at IS NULL AND $6 <> '' THEN $6 ELSE r.version_id END,
	verification_state = CASE WHEN r.deleted_at IS NULL AND ($4 <> '' OR r.primary_sha256 <> '')
		THEN 0 ELSE 4 END,
	verification_started_at = NULL,
	updated_at = $7
WHERE r.id = $1 AND r.state = 1 AND r.generation = $2`

// $1 id, $2 generation, $3 new retry_count, $4 retry_at, $5 failure,
// $6 missing_on_primary, $7 now.
const qMarkFailed = `
UPDATE blob_registry AS r SET
	state = 3,
	retry_count = $3,
	retry_at = $4,
	last_sync_failure = $5,
	missing_on_primary = $6,
	updated_at = $7
WHERE r.id = $1 AND r.state = 1 AND r.generation = $2`

// $1 started before, $2 now, $3 failure.
const qRecoverStuck = `
UPDATE blob_registry AS r SET
	state = 3,
	retry_at = $2,
	retry_count = r.retry_count + 1,
	last_sync_failure = $3,
	generation = r.generation + 1,
	updated_at = $2
WHERE r.state = 1 AND r.started_at < $1`

// $1 data_type, $2 object_key, $3 now. Returns one row when the key exists
// (changed or already pending).
const qResync = `
WITH target AS (
	SELECT id, state FROM blob_registry WHERE data_type = $1 AND object_key = $2
), upd AS (
	UPDATE blob_registry AS r SET
		state = 0,
		generation = r.generation + 1,
		retry_count = 0,
		retry_at = NULL,
		verification_state = 4,
		verification_started_at = NULL,
		updated_at = $3
	FROM target
	WHERE r.id = target.id AND target.state <> 0
	RETURNING r.id
)
SELECT id FROM target`

// $1 data_type, $2 object_key.
const qGet = `SELECT ` + RowColumns + ` FROM blob_registry r WHERE r.data_type = $1 AND r.object_key = $2`

// $1 id.
const qGetByID = `SELECT ` + RowColumns + ` FROM blob_registry r WHERE r.id = $1`

// $1 data_type (empty = all), $2 after id, $3 limit, $4 include tombstones.
const qList = `
SELECT ` + RowColumns + ` FROM blob_registry r
WHERE ($1 = '' OR r.data_type = $1) AND r.id > $2 AND ($4 OR r.deleted_at IS NULL)
ORDER BY r.id
LIMIT $3`

const qStats = `
SELECT data_type,
	count(*) FILTER (WHERE deleted_at IS NULL),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 0),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 1),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 2),
	count(*) FILTER (WHERE deleted_at IS NULL AND state = 3),
	count(*) FILTER (WHERE deleted_at IS NOT NULL),
	count(*) FILTER (WHERE deleted_at IS NOT NULL AND state <> 2),
	coalesce(sum(size) FILTER (WHERE deleted_at IS NULL AND state = 2), 0)::bigint,
	count(*) FILTER (WHERE deleted_at IS NULL AND verification_state = 2),
	count(*) FILTER (WHERE deleted_at IS NULL AND verification_state = 3),
	count(*) FILTER (WHERE deleted_at IS NULL AND checksum_mismatch),
	count(*) FILTER (WHERE deleted_at IS NULL AND missing_on_primary)
FROM blob_registry
GROUP BY data_type
ORDER BY data_type`

// $1 data_type, $2 object_key, $3 generation, $4 now. Takes over a claim
// another process took (a dispatched sync request): only while the row is
// still started with that generation; bumps the generation so a duplicate
// request (or the dispatcher) can no longer finish or take it, and restarts
// the stuck-claim clock.
const qAcceptClaim = `
UPDATE blob_registry AS r SET
	generation = r.generation + 1,
	started_at = $4,
	updated_at = $4
WHERE r.data_type = $1 AND r.object_key = $2 AND r.state = 1 AND r.generation = $3
RETURNING ` + RowColumns

// Rows in state started: claims in flight (event copies, dispatched sync
// requests and in-process backfill copies alike). Uses the partial index
// blob_registry_started_idx.
const qCountStarted = `SELECT count(*) FROM blob_registry WHERE state = 1`

// Delete brake (brake.go).

// $1 id, $2 generation: the hold and tombstone time of a row still claimed.
const qClaimedTombstone = `
SELECT r.delete_hold, r.deleted_at FROM blob_registry r
WHERE r.id = $1 AND r.generation = $2 AND r.state = 1`

// $1 scopes.
const qBrakeScopes = `
SELECT scope, tripped_at, reason, reset_at FROM delete_brake WHERE scope = ANY($1::text[])`

const qTrippedScopes = `
SELECT scope, tripped_at, reason, reset_at FROM delete_brake WHERE tripped_at IS NOT NULL ORDER BY scope`

// $1 counted since (all types), $2 counted since (the type), $3 data type.
const qBrakeCounts = `
SELECT (SELECT count(*) FROM delete_brake_log WHERE at > $1),
	(SELECT count(*) FROM delete_brake_log WHERE at > $2 AND data_type = $3)`

// $1 data type: population overall and of the type, the oldest count, and
// whether the type was counted.
const qPopulation = `
SELECT coalesce(sum(rows), 0)::bigint,
	coalesce(sum(rows) FILTER (WHERE data_type = $1), 0)::bigint,
	min(counted_at),
	bool_or(data_type = $1) IS TRUE
FROM delete_brake_population`

// $1 window start, $2 now.
const qRecountPopulation = `
WITH counted AS (
	SELECT data_type, count(*) AS n FROM blob_registry
	WHERE deleted_at IS NULL OR deleted_at > $1
	GROUP BY data_type
), gone AS (
	DELETE FROM delete_brake_population p WHERE NOT EXISTS (SELECT 1 FROM counted c WHERE c.data_type = p.data_type)
)
INSERT INTO delete_brake_population (data_type, rows, counted_at)
SELECT data_type, n, $2 FROM counted
ON CONFLICT (data_type) DO UPDATE SET rows = EXCLUDED.rows, counted_at = EXCLUDED.counted_at`

// $1 scope, $2 now, $3 reason.
const qTripBrake = `
INSERT INTO delete_brake (scope, tripped_at, reason, updated_at) VALUES ($1, $2, $3, $2)
ON CONFLICT (scope) DO UPDATE SET
	tripped_at = coalesce(delete_brake.tripped_at, EXCLUDED.tripped_at),
	reason = CASE WHEN delete_brake.tripped_at IS NULL THEN EXCLUDED.reason ELSE delete_brake.reason END,
	updated_at = EXCLUDED.updated_at`

// $1 scopes (NULL = all), $2 now.
const qResetBrake = `
UPDATE delete_brake SET tripped_at = NULL, reason = '', reset_at = $2, updated_at = $2
WHERE $1::text[] IS NULL OR scope = ANY($1::text[])`

// $1 data type, $2 now, $3 prune before.
const qLogDelete = `
WITH pruned AS (DELETE FROM delete_brake_log WHERE at < $3)
INSERT INTO delete_brake_log (data_type, at) VALUES ($1, $2)`

// $1 id, $2 generation, $3 reason, $4 now.
const qHoldDelete = `
UPDATE blob_registry AS r SET
	state = 3,
	retry_at = 'infinity',
	last_sync_failure = $3,
	delete_hold = 1,
	updated_at = $4
WHERE r.id = $1 AND r.state = 1 AND r.generation = $2`

// $1 id, $2 generation, $3 until, $4 reason, $5 now.
const qDeferDelete = `
UPDATE blob_registry AS r SET
	state = 3,
	retry_at = $3,
	last_sync_failure = $4,
	updated_at = $5
WHERE r.id = $1 AND r.state = 1 AND r.generation = $2`

// heldFilter selects held tombstones by $1 data type (” = all) and $2 key
// prefix (” = all).
const heldFilter = `r.delete_hold = 1 AND r.deleted_at IS NOT NULL AND r.state = 3
	AND ($1 = '' OR r.data_type = $1) AND starts_with(r.object_key, $2)`

const qCountHeld = `SELECT count(*) FROM blob_registry r WHERE ` + heldFilter

// $3 after key, $4 limit.
const qListHeld = `
SELECT ` + RowColumns + ` FROM blob_registry r
WHERE ` + heldFilter + ` AND (r.object_key COLLATE "C") > ($3 COLLATE "C")
ORDER BY r.object_key COLLATE "C", r.data_type
LIMIT $4`

const qHeldCounts = `
SELECT r.data_type, count(*), coalesce(sum(r.size), 0)::bigint FROM blob_registry r
WHERE r.delete_hold = 1 AND r.deleted_at IS NOT NULL AND r.state = 3
GROUP BY r.data_type ORDER BY r.data_type`

// $3 now.
const qReleaseHeld = `
UPDATE blob_registry AS r SET
	state = 0,
	generation = r.generation + 1,
	retry_at = NULL,
	retry_count = 0,
	last_sync_failure = NULL,
	delete_hold = 2,
	updated_at = $3
WHERE ` + heldFilter

// $3 now.
const qDiscardHeld = `
UPDATE blob_registry AS r SET
	state = 2,
	generation = r.generation + 1,
	retry_at = NULL,
	retry_count = 0,
	last_sync_failure = NULL,
	last_synced_at = $3,
	delete_hold = 3,
	updated_at = $3
WHERE ` + heldFilter

// $1 at, $2 actor, $3 action, $4 data type, $5 filter, $6 rows.
const qAuditDR = `
INSERT INTO registry_audit (at, actor, action, data_type, filter, rows) VALUES ($1, $2, $3, $4, $5, $6)`
