package registry

// All SQL of the registry. Every timestamp is a parameter taken from the
// Store's clock, never now(), so tests control time. The table alias is
// always r so RowColumns can be used in RETURNING of joins.

// RowColumns is the select list ScanRow reads, in order, for a query whose
// blob_registry alias is r. Every statement of this package that returns
// rows uses it.
const RowColumns = `r.id, r.data_type, r.object_key,
	r.state, r.generation, r.retry_count, r.retry_at, coalesce(r.last_sync_failure, ''),
	r.last_synced_at, r.started_at, r.size, r.etag, r.version_id, r.primary_sha256,
	r.last_sequencer, r.missing_on_primary, r.deleted_at,
	r.verification_state, r.verification_started_at, r.verified_at, r.verification_retry_count,
	r.verification_retry_at, coalesce(r.verification_failure, ''), r.secondary_sha256,
	r.checksum_mismatch,
	r.primary_verification_state, r.primary_verification_started_at, r.primary_verified_at,
	r.primary_verification_retry_count, r.primary_verification_retry_at,
	coalesce(r.primary_verification_failure, ''), r.primary_checksum_mismatch,
	r.primary_mismatch_sha256, r.primary_verification_generation,
	r.created_at, r.updated_at`

// staleCondition is true when the incoming event (EXCLUDED) is not newer than
// the stored one: both sequencers known and incoming <= stored.
const staleCondition = `(r.last_sequencer <> '' AND EXCLUDED.last_sequencer <> ''
	AND EXCLUDED.last_sequencer <= r.last_sequencer)`

// sameContent is true when the event describes the object the row already
// describes (same ETag and version, row not a tombstone).
const sameContent = `(r.deleted_at IS NULL AND EXCLUDED.etag <> ''
	AND r.etag = EXCLUDED.etag AND r.version_id = EXCLUDED.version_id)`

// onConflictCreated turns an ObjectCreated insert into an upsert that
// ignores stale events, and the event of a restore's own PUT (the row was
// restored and is synced with exactly that object).
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
	restored_at = NULL,
	updated_at = EXCLUDED.updated_at
WHERE NOT ` + staleCondition + `
	AND NOT (r.restored_at IS NOT NULL AND r.state = 2 AND ` + sameContent + `)
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
	restored_at = NULL,
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
var qClaimKey = `
WITH chosen AS (
	SELECT b.id FROM blob_registry b
	WHERE b.data_type = $1 AND b.object_key = $2 AND b.state IN (0, 3)
	FOR UPDATE SKIP LOCKED)
` + syncMachine.claimChosen("$3")

// keyPrefixFilter is selective sync, the one place it is written in SQL:
// true when the key of the row aliased alias starts with one of the
// prefixes in parameter param (NULL = all keys). Every claim and every
// backfill query on rows uses it with the Store's KeyPrefixes.
func keyPrefixFilter(alias, param string) string {
	return `(` + param + `::text[] IS NULL
			OR EXISTS (SELECT 1 FROM unnest(` + param + `::text[]) AS kp(prefix) WHERE starts_with(` + alias + `.object_key, kp.prefix)))`
}

// $1 limit, $2 data types (NULL = all), $3 now, $4 key prefixes (NULL = all).
//
// Per data type it locks (SKIP LOCKED) up to $1 pending rows, longest
// pending (updated_at, id) first, and,
// only as far as pending rows do not fill $1, due failed rows in retry_at
// order; then it ranks rows within their type and takes the first $1 by
// (pending before failed, rank, type): round-robin across types. The types
// of the whole table are found with a loose index scan.
var qClaimDue = allTypes + `,
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
		WHERE b.data_type = t.data_type AND b.state = 0 AND ` + keyPrefixFilter("b", "$4") + `
		ORDER BY b.updated_at, b.id
		LIMIT $1
		FOR UPDATE SKIP LOCKED) p
),
failed AS (
	SELECT f.id, f.data_type, 1 AS prio,
		row_number() OVER (PARTITION BY f.data_type ORDER BY f.retry_at, f.id) AS rn
	FROM types t CROSS JOIN LATERAL (
		SELECT b.id, b.data_type, b.retry_at FROM blob_registry b
		WHERE b.data_type = t.data_type AND b.state = 3 AND b.retry_at <= $3 AND ` + keyPrefixFilter("b", "$4") + `
		ORDER BY b.retry_at
		LIMIT greatest($1 - (SELECT count(*) FROM pending), 0)
		FOR UPDATE SKIP LOCKED) f
),
chosen AS (
	SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM failed) c
	ORDER BY prio, rn, data_type LIMIT $1
)
` + syncMachine.claimChosen("$3")

// Finish statements of every machine: $1 id, $2 generation, $3 claim time
// (the token, see machine.token), $4 now, then their own parameters.

// $5 size, $6 sha256, $7 etag, $8 version_id.
// Tombstones keep their metadata: syncing them means the delete was
// propagated.
var qMarkSynced = syncMachine.finishing(syncMachine.passed("$4") + `
	missing_on_primary = false,
	size = CASE WHEN r.deleted_at IS NULL THEN $5 ELSE r.size END,
	primary_sha256 = CASE WHEN r.deleted_at IS NULL AND $6 <> '' THEN $6 ELSE r.primary_sha256 END,
	etag = CASE WHEN r.deleted_at IS NULL AND $7 <> '' THEN $7 ELSE r.etag END,
	version_id = CASE WHEN r.deleted_at IS NULL AND $8 <> '' THEN $8 ELSE r.version_id END,
	verification_state = CASE WHEN r.deleted_at IS NULL AND ($6 <> '' OR r.primary_sha256 <> '')
		THEN 0 ELSE 4 END,
	verification_started_at = NULL,`)

// $5 new retry_count, $6 retry_at, $7 failure, $8 missing_on_primary.
var qMarkFailed = syncMachine.finishing(syncMachine.failed("$5", "$6", "$7") + `
	missing_on_primary = $8,`)

// Recover statements of every machine: $1 started before, $2 now, $3
// failure. Sync: stuck rows fail, due now, and the generation moves so the
// stuck worker can not finish them.
var qRecoverStuck = `
UPDATE blob_registry AS r SET` + syncMachine.failed(syncMachine.oneMore(), "$2", "$3") + `
	generation = r.generation + 1,
	updated_at = $2
WHERE ` + syncMachine.stuck()

// toSync is the SET items that send a row back to sync: pending, a new
// generation (a claim in flight loses), failed attempts forgotten,
// secondary verification off until the copy.
const toSync = `
	state = 0,
	generation = r.generation + 1,
	retry_count = 0,
	retry_at = NULL,
	verification_state = 4,
	verification_started_at = NULL,`

// $1 data_type, $2 object_key, $3 now. Returns one row when the key exists
// (changed or already pending).
const qResync = `
WITH target AS (
	SELECT id, state FROM blob_registry WHERE data_type = $1 AND object_key = $2
), upd AS (
	UPDATE blob_registry AS r SET` + toSync + `
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

// heldFilter selects held tombstones by $1 data type (” = all) and $2 key
// prefix (” = all).
const heldFilter = `r.delete_hold = 1 AND r.deleted_at IS NOT NULL AND r.state = 3
	AND ($1 = '' OR r.data_type = $1) AND starts_with(r.object_key, $2)`

const qCountHeld = `SELECT count(*) FROM blob_registry r WHERE ` + heldFilter

// $3 after key, $4 limit.
const qListHeld = `
SELECT ` + RowColumns + ` FROM blob_registry r
WHERE ` + heldFilter + ` AND r.object_key > $3
ORDER BY r.object_key, r.data_type
LIMIT $4`

const qHeldCounts = `
SELECT r.data_type, count(*), coalesce(sum(r.size), 0)::bigint FROM blob_registry r
WHERE r.delete_hold = 1 AND r.deleted_at IS NOT NULL AND r.state = 3
GROUP BY r.data_type ORDER BY r.data_type`

// $3 now.
var qReleaseHeld = `
UPDATE blob_registry AS r SET
	state = 0,
	generation = r.generation + 1,` + syncMachine.reset() + `
	delete_hold = 2,
	updated_at = $3
WHERE ` + heldFilter

// $3 now.
var qDiscardHeld = `
UPDATE blob_registry AS r SET` + syncMachine.passed("$3") + `
	generation = r.generation + 1,
	delete_hold = 3,
	updated_at = $3
WHERE ` + heldFilter

// $1 at, $2 actor, $3 action, $4 data type, $5 filter, $6 rows.
const qAuditDR = `
INSERT INTO registry_audit (at, actor, action, data_type, filter, rows) VALUES ($1, $2, $3, $4, $5, $6)`

// ---- Verification (secondary and primary machines, migration 00020) ----

// dueOffset is the stable per-row reverification offset as a fraction of
// the spread, in [0, 1): the fractional part of id times the golden ratio
// (a low-discrepancy sequence), so any run of consecutive ids (rows
// registered in one burst), however short, is spread evenly over the window.
const dueOffset = `(r.id * 0.6180339887498949::float8 - floor(r.id * 0.6180339887498949::float8))`

// reverifyDue is true when a row last checked at ts is due for
// reverification: $3 interval and $4 spread (µs), $2 now; the row's due
// time is ts + interval - spread·dueOffset.
func reverifyDue(ts string) string {
	return ts + ` <= $2 - ($3::bigint - $4::bigint) * interval '1 microsecond'
	  AND ` + ts + ` + ($3::bigint * interval '1 microsecond')
	      - ($4::bigint * ` + dueOffset + `) * interval '1 microsecond' <= $2`
}

// secondaryEligible: rows whose secondary can be verified at all.
const secondaryEligible = `r.state = 2 AND r.deleted_at IS NULL AND r.primary_sha256 <> ''`

// secondaryReset is the state a secondary claim given back returns to:
// pending, or disabled when the row is no longer verifiable.
const secondaryReset = `CASE WHEN ` + secondaryEligible + ` THEN 0 ELSE 4 END`

var (
	qRecoverSecondary = secondaryMachine.giveBack(secondaryReset, true)
	qRecoverPrimary   = primaryMachine.giveBack("0", true)
)

// Verification claims handed over to a worker (see machine.accept).
var (
	qAcceptSecondaryClaim = secondaryMachine.accept()
	qAcceptPrimaryClaim   = primaryMachine.accept()
)

// Verification claims in flight, both machines (partial indexes
// blob_registry_verification_started_idx and
// blob_registry_primary_started_idx).
const qCountVerifying = `SELECT (SELECT count(*) FROM blob_registry WHERE verification_state = 1)
	+ (SELECT count(*) FROM blob_registry WHERE primary_verification_state = 1)`

// Verification claims: $1 limit, $2 now, $3 reverify interval (µs), $4
// reverify spread (µs), $5 key prefixes (NULL = all).
//
// Secondary candidates, in priority order: pending rows (never verified
// since their last copy) in id order (blob_registry_verification_due_idx,
// 00830: the claim reads only its LIMIT rows); failed verifications whose retry time
// has come; verified rows due for reverification (oldest first). Each
// candidate set is locked with SKIP LOCKED so concurrent passes take
// disjoint rows.
var qClaimSecondary = `
WITH pending AS (
	SELECT r.id, 0 AS prio, 0::float8 AS ord FROM blob_registry r
	WHERE r.verification_state = 0 AND ` + secondaryEligible + ` AND ` + keyPrefixFilter("r", "$5") + `
	ORDER BY r.id LIMIT $1 FOR UPDATE SKIP LOCKED
), failed AS (
	SELECT r.id, 1, extract(epoch FROM r.verification_retry_at) FROM blob_registry r
	WHERE r.verification_state = 3 AND r.verification_retry_at <= $2 AND ` + secondaryEligible + `
	  AND ` + keyPrefixFilter("r", "$5") + `
	ORDER BY r.verification_retry_at LIMIT $1 FOR UPDATE SKIP LOCKED
), reverify AS (
	SELECT r.id, 2, extract(epoch FROM r.verified_at) FROM blob_registry r
	WHERE r.verification_state = 2 AND ` + secondaryEligible + `
	  AND ` + reverifyDue("r.verified_at") + `
	  AND ` + keyPrefixFilter("r", "$5") + `
	ORDER BY r.verified_at LIMIT $1 FOR UPDATE SKIP LOCKED
)` + secondaryMachine.claimRanked("$2", "pending", "failed", "reverify")

// $5 observed sha256, $6 expected sha256.
var qSecondaryMatch = secondaryMachine.finishing(secondaryMachine.passed("$4")+`
	secondary_sha256 = $5,
	checksum_mismatch = false,`) + ` AND r.primary_sha256 = $6 AND r.state = 2`

// $5 observed sha256 (” when missing), $6 mismatch, $7 failure, $8
// retry_at.
//
// The secondary is bad: keep the observed checksum, count the failure
// (verification_retry_count is reset only by qSecondaryMatch, never by a
// sync, so the backoff keeps growing across repeated mismatches) and send the
// row back to sync with the same retry time (state failed, generation+1:
// ClaimDue takes it when retry_at is due and MarkSynced sets verification
// back to pending). When the primary itself is flagged, copying it would
// not help: the row only records the failure.
var qSecondaryBad = secondaryMachine.finishing(secondaryMachine.failed(secondaryMachine.oneMore(), "$8", "$7")+`
	secondary_sha256 = $5,
	checksum_mismatch = $6,
	state = CASE WHEN r.primary_checksum_mismatch THEN r.state ELSE 3 END,
	generation = CASE WHEN r.primary_checksum_mismatch THEN r.generation ELSE r.generation + 1 END,
	retry_at = CASE WHEN r.primary_checksum_mismatch THEN r.retry_at ELSE $8 END,
	last_sync_failure = CASE WHEN r.primary_checksum_mismatch THEN r.last_sync_failure ELSE $7 END,`) + ` AND r.state = 2
RETURNING r.state = 3`

// $5 failure, $6 retry_at.
var qSecondaryError = secondaryMachine.finishing(secondaryMachine.failed(secondaryMachine.oneMore(), "$6", "$5"))

// primaryLive: rows whose primary can be read.
const primaryLive = `r.deleted_at IS NULL AND NOT r.missing_on_primary AND r.state <> 1`

// primaryChecked is when the primary's bytes were last hashed, by verify or
// by the copy that computed primary_sha256 (same expression as the index).
const primaryChecked = `greatest(coalesce(r.primary_verified_at, '-infinity'), coalesce(r.last_synced_at, '-infinity'))`

// Primary candidates: rows without a primary checksum that are not waiting
// for a copy (synced or failed; a pending copy computes it anyway);
// quarantined rows whose generation moved since they were flagged (an event
// announced new content: check again); failed checks whose retry time has
// come; rows whose primary was last hashed longer ago than the interval
// (with spread).
var qClaimPrimary = `
WITH unchecked AS (
	SELECT r.id, 0 AS prio, r.id::float8 AS ord FROM blob_registry r
	WHERE r.primary_sha256 = '' AND r.deleted_at IS NULL AND NOT r.missing_on_primary
	  AND r.state IN (2, 3) AND r.primary_verification_state <> 1
	  AND (r.primary_verification_state <> 3 OR r.primary_verification_retry_at <= $2)
	  AND ` + keyPrefixFilter("r", "$5") + `
	ORDER BY r.id LIMIT $1 FOR UPDATE SKIP LOCKED
), recheck AS (
	SELECT r.id, 1, r.id::float8 FROM blob_registry r
	WHERE r.primary_verification_state = 3 AND ` + primaryLive + ` AND r.primary_sha256 <> ''
	  AND ((r.primary_checksum_mismatch AND r.generation <> r.primary_verification_generation)
	    OR (NOT r.primary_checksum_mismatch AND r.primary_verification_retry_at <= $2))
	  AND ` + keyPrefixFilter("r", "$5") + `
	ORDER BY r.primary_verification_retry_at LIMIT $1 FOR UPDATE SKIP LOCKED
), reverify AS (
	SELECT r.id, 2, extract(epoch FROM ` + primaryChecked + `) FROM blob_registry r
	WHERE r.primary_sha256 <> '' AND r.deleted_at IS NULL AND r.primary_verification_state IN (0, 2, 4)
	  AND NOT r.missing_on_primary AND r.state <> 1
	  AND ` + reverifyDue(primaryChecked) + `
	  AND ` + keyPrefixFilter("r", "$5") + `
	ORDER BY ` + primaryChecked + ` LIMIT $1 FOR UPDATE SKIP LOCKED
)` + primaryMachine.claimRanked("$2", "unchecked", "recheck", "reverify")

// $5 sha256, $6 expected sha256 (” = the row had none: record it). Also
// turns on secondary verification of a synced row that was waiting for its
// primary checksum.
var qPrimaryMatch = primaryMachine.finishing(primaryMachine.passed("$4")+`
	primary_sha256 = $5,
	primary_checksum_mismatch = false,
	primary_mismatch_sha256 = '',
	primary_verification_generation = r.generation,
	verification_state = CASE WHEN r.state = 2 AND r.verification_state = 4 THEN 0 ELSE r.verification_state END,`) +
	` AND r.primary_sha256 = $6`

// $5 observed sha256, $6 failure. Quarantine: no retry time; the row is
// looked at again when its generation moves (an event) or an operator
// decides.
var qPrimaryMismatch = primaryMachine.finishing(primaryMachine.failed(primaryMachine.oneMore(), "NULL", "$6")+`
	primary_checksum_mismatch = true,
	primary_mismatch_sha256 = $5,
	primary_verification_generation = r.generation,`) + ` AND r.primary_sha256 <> ''`

// $5 failure, $6 retry_at.
var qPrimaryError = primaryMachine.finishing(primaryMachine.failed(primaryMachine.oneMore(), "$6", "$5") + `
	primary_checksum_mismatch = false,
	primary_verification_generation = r.generation,`)

// $1 id, $2 now. An operator accepts the primary's current content: clear the
// quarantine and send the row to sync (state pending, generation+1); the copy
// computes the new primary checksum and verification follows.
var qAcceptPrimary = `
UPDATE blob_registry AS r SET` + primaryMachine.ended("0") + primaryMachine.reset() + `
	primary_checksum_mismatch = false,
	primary_mismatch_sha256 = '',` + toSync + `
	updated_at = $2
WHERE r.id = $1 AND r.primary_checksum_mismatch AND r.deleted_at IS NULL
RETURNING r.id`

// qVerificationSummary counts live rows per data type.
const qVerificationSummary = `
SELECT data_type,
	count(*),
	count(*) FILTER (WHERE state = 2),
	count(*) FILTER (WHERE verification_state = 2),
	count(*) FILTER (WHERE verification_state = 3),
	count(*) FILTER (WHERE checksum_mismatch),
	count(*) FILTER (WHERE verification_state IN (0, 1)),
	count(*) FILTER (WHERE primary_sha256 <> ''),
	count(*) FILTER (WHERE primary_verification_state = 2),
	count(*) FILTER (WHERE primary_checksum_mismatch)
FROM blob_registry
WHERE deleted_at IS NULL
GROUP BY data_type
ORDER BY data_type`

// ---- Backfill: reconciliation with the primary, quarantine, health ----
// Keys compare in byte order, the order in which S3 lists them: the column
// object_key is COLLATE "C" (migration 00750).

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
// whose row says something else: a tombstone (the newer truth until a HEAD
// says otherwise), or a synced row with another ETag. Those get a no-op
// update so RETURNING reports them (inserted = false). Other existing rows
// are left alone.
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
var qListingOrphans = `
SELECT r.data_type, r.object_key FROM blob_registry r
WHERE r.deleted_at IS NULL
	AND r.data_type = ANY($1::text[])
	AND r.object_key > $2::text
	AND ($3::text IS NULL OR r.object_key <= $3::text)
	AND r.created_at < $4
	AND ` + keyPrefixFilter("r", "$5") + `
	AND NOT EXISTS (SELECT 1 FROM backfill_batch b
		WHERE b.data_type = r.data_type AND b.object_key = r.object_key)
ORDER BY r.object_key`

// $1 cursor name. Remembers the staged keys for an inventory pass.
const qSeenStaged = `
INSERT INTO backfill_seen (cursor, data_type, object_key)
SELECT $1, data_type, object_key FROM backfill_batch`

// $1 cursor name, $2 data types, $3 created before, $4 after id, $5
// prefixes (NULL = all). Live rows an inventory pass did not see. No LIMIT
// on purpose: with one the planner picks a nested-loop anti-join over the
// unindexed seen table; without, one hash anti-join. The caller reads a
// bounded number of rows.
var qInventoryOrphans = `
SELECT r.id, r.data_type, r.object_key FROM blob_registry r
WHERE r.deleted_at IS NULL
	AND r.data_type = ANY($2::text[])
	AND r.created_at < $3
	AND r.id > $4
	AND ` + keyPrefixFilter("r", "$5") + `
	AND NOT EXISTS (SELECT 1 FROM backfill_seen s
		WHERE s.cursor = $1 AND s.data_type = r.data_type AND s.object_key = r.object_key)
ORDER BY r.id`

// quarantineUntil is the retry_at of quarantined rows: never due.
const quarantineUntil = "9999-12-31T00:00:00Z"

// $1 max attempts, $2 data types, $3 now. Quarantines failed rows that
// used up their attempts.
const qQuarantine = `
UPDATE blob_registry SET quarantined_at = $3, retry_at = '` + quarantineUntil + `'::timestamptz, updated_at = $3
WHERE state = 3 AND retry_count >= $1 AND quarantined_at IS NULL AND data_type = ANY($2::text[])`

// $1 data types (NULL = all), $2 object key (” = every quarantined row of
// the types), $3 now. Ends the quarantine of rows: pending, attempts reset, generation
// bumped (the trigger clears quarantined_at).
const qResyncQuarantined = `
UPDATE blob_registry AS r SET` + toSync + `
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

// $1 data types, $2 now, $3 prefixes (NULL = all). Rows ClaimDue would
// claim now (for progress totals).
var qCountDue = `
SELECT count(*) FROM blob_registry b
WHERE b.data_type = ANY($1::text[])
	AND (b.state = 0 OR (b.state = 3 AND b.retry_at <= $2))
	AND ` + keyPrefixFilter("b", "$3")

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

// Restore (restore.go).

// $1 data type, $2 key, $3 size, $4 etag, $5 version id, $6 sha256, $7 now.
// The object is on the primary again, as written by geoblob restore, and the
// secondary holds the same bytes: a live synced row, verification due.
var qMarkRestored = `
INSERT INTO blob_registry AS r (data_type, object_key, state, generation, size, etag, version_id,
	primary_sha256, last_synced_at, verification_state, restored_at, created_at, updated_at)
VALUES ($1, $2, 2, 1, $3, $4, $5, $6, $7, 0, $7, $7, $7)
ON CONFLICT (data_type, object_key) DO UPDATE SET` + syncMachine.passed("$7") + `
	generation = r.generation + 1,
	size = $3,
	etag = $4,
	version_id = $5,
	primary_sha256 = $6,
	missing_on_primary = false,
	deleted_at = NULL,` + secondaryMachine.ended("0") + secondaryMachine.reset() + `
	secondary_sha256 = '',
	checksum_mismatch = false,
	restored_at = $7,
	updated_at = $7`

// $1 deleted from, $2 deleted to, $3 data type (empty = all), $4 key prefix,
// $5 after key, $6 limit.
const qDeletedBetween = `
SELECT ` + RowColumns + ` FROM blob_registry r
WHERE r.deleted_at >= $1 AND r.deleted_at < $2
	AND ($3 = '' OR r.data_type = $3) AND starts_with(r.object_key, $4)
	AND r.object_key > $5
ORDER BY r.object_key, r.data_type
LIMIT $6`

// Dispatch leases (dispatch.go).

// allTypes is a CTE of every data type present (all_types, ending in a
// NULL), found with a loose index scan.
const allTypes = `
WITH RECURSIVE all_types(data_type) AS (
	(SELECT data_type FROM blob_registry ORDER BY data_type LIMIT 1)
	UNION ALL
	SELECT (SELECT b.data_type FROM blob_registry b WHERE b.data_type > t.data_type
		ORDER BY b.data_type LIMIT 1)
	FROM all_types t WHERE t.data_type IS NOT NULL
)`

// Every data type present.
const qAllTypes = allTypes + `
SELECT data_type FROM all_types WHERE data_type IS NOT NULL`

// liveLease is true when row b has a lease sent after $8 (a request in
// flight).
const liveLease = `EXISTS (SELECT 1 FROM sync_dispatch_lease l WHERE l.row_id = b.id AND l.sent_at > $8)`

// qLeasePlan is the planner settings of qLeaseDue's transaction.
const qLeasePlan = `SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)`

// $1 data types, $2/$3 pending position per type (updated_at, id), $4/$5
// failed position per type (retry_at, id), $6 limit per type, $7 now, $8
// lease cutoff (leases sent at or before it are expired), $9 key prefixes
// (NULL = all), $10 max attempts (<= 0: no limit).
//
// Per type, read-only: up to its limit pending rows after its position in
// (updated_at, id) order (blob_registry_pending_idx), then, as far as
// pending rows do not fill the limit, failed rows due at $7 after its
// position in (retry_at, id) order (blob_registry_failed_retry_idx) that
// have not used up their attempts; rows with a live lease are skipped. Every candidate gets a lease (an expired
// one is renewed; a live one a concurrent dispatcher just took is left
// alone). Returns every candidate, whether it was leased here, and its
// position value, so the caller moves its positions past all of them.
var qLeaseDue = `
WITH t AS (
	SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::timestamptz[], $5::bigint[], $6::int[])
		AS t(data_type, pu, pi, fr, fi, lim)
),
pending AS (
	SELECT p.* FROM t CROSS JOIN LATERAL (
		SELECT b.id, b.data_type, b.object_key, b.generation, false AS failed, b.updated_at AS at
		FROM blob_registry b
		WHERE b.data_type = t.data_type AND b.state = 0 AND (b.updated_at, b.id) > (t.pu, t.pi)
			AND ` + keyPrefixFilter("b", "$9") + ` AND NOT ` + liveLease + `
		ORDER BY b.updated_at, b.id
		LIMIT t.lim) p
),
failed AS (
	SELECT f.* FROM t CROSS JOIN LATERAL (
		SELECT b.id, b.data_type, b.object_key, b.generation, true AS failed, b.retry_at AS at
		FROM blob_registry b
		WHERE b.data_type = t.data_type AND b.state = 3 AND b.retry_at <= $7
			AND (b.retry_at, b.id) > (t.fr, t.fi) AND ($10::int <= 0 OR b.retry_count < $10)
			AND ` + keyPrefixFilter("b", "$9") + ` AND NOT ` + liveLease + `
		ORDER BY b.retry_at, b.id
		LIMIT greatest(t.lim - (SELECT count(*) FROM pending p WHERE p.data_type = t.data_type), 0)) f
),
cand AS (
	SELECT * FROM pending UNION ALL SELECT * FROM failed
),
leased AS (
	INSERT INTO sync_dispatch_lease AS l (row_id, sent_at)
	SELECT id, $7 FROM cand ORDER BY id
	ON CONFLICT (row_id) DO UPDATE SET sent_at = EXCLUDED.sent_at WHERE l.sent_at <= $8
	RETURNING l.row_id
)
SELECT c.id, c.data_type, c.object_key, c.generation, c.failed, c.at, l.row_id IS NOT NULL
FROM cand c LEFT JOIN leased l ON l.row_id = c.id`

// $1 row ids.
const qReleaseLeases = `DELETE FROM sync_dispatch_lease WHERE row_id = ANY($1::bigint[])`

// $1 lease cutoff.
const qExpireLeases = `DELETE FROM sync_dispatch_lease WHERE sent_at <= $1`

// $1 lease cutoff. Started rows use the partial index
// blob_registry_started_idx.
const qCountDispatched = `
SELECT (SELECT count(*) FROM blob_registry WHERE state = 1)
	+ (SELECT count(*) FROM sync_dispatch_lease WHERE sent_at > $1)`

// $1 data_type, $2 object_key, $3 now. Ends the row's dispatch lease and
// claims the row if it is pending, or failed and due.
var qClaimRequested = `
WITH lease AS (
	DELETE FROM sync_dispatch_lease l USING blob_registry b
	WHERE b.data_type = $1 AND b.object_key = $2 AND l.row_id = b.id
),
chosen AS (
	SELECT b.id FROM blob_registry b
	WHERE b.data_type = $1 AND b.object_key = $2 AND (b.state = 0 OR (b.state = 3 AND b.retry_at <= $3))
	FOR UPDATE SKIP LOCKED)
` + syncMachine.claimChosen("$3")
