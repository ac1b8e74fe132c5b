package verify

// All SQL of verification against blob_registry (columns of migration 00001
// and 00020). Every timestamp is a parameter from the Verifier's clock,
// never now(), so tests control time. The claim token of a row is the
// (verification_started_at, generation) pair read by the claim: a finish
// writes only when both are unchanged (compare-and-set), so a row that was
// re-claimed after a timeout, resynced or changed by an event during the
// check is never overwritten with a stale result.

// itemColumns lists the columns scanItem reads, in order.
const itemColumns = `r.id, r.data_type, r.object_key,
	r.state, r.generation, r.retry_count, r.retry_at, coalesce(r.last_sync_failure, ''),
	r.last_synced_at, r.started_at, r.size, r.etag, r.version_id, r.primary_sha256,
	r.missing_on_primary, r.deleted_at,
	r.verification_state, r.verification_started_at, r.verified_at, r.verification_retry_count,
	r.verification_retry_at, coalesce(r.verification_failure, ''), r.secondary_sha256,
	r.checksum_mismatch,
	r.primary_verification_state, r.primary_verification_started_at, r.primary_verified_at,
	r.primary_verification_retry_count, r.primary_verification_retry_at,
	coalesce(r.primary_verification_failure, ''), r.primary_checksum_mismatch,
	r.primary_mismatch_sha256, r.primary_verification_generation`

// dueOffset is the stable per-row reverification offset as a fraction of
// the spread, in [0, 1): the fractional part of id times the golden ratio
// (a low-discrepancy sequence), so any run of consecutive ids (rows
// registered in one burst), however short, is spread evenly over the window.
const dueOffset = `(r.id * 0.6180339887498949::float8 - floor(r.id * 0.6180339887498949::float8))`

// secondaryEligible: rows whose secondary can be verified at all.
const secondaryEligible = `r.state = 2 AND r.deleted_at IS NULL AND r.primary_sha256 <> ''`

// $1 started before, $2 now. Rows stuck in started go back to pending (or
// disabled when they are no longer verifiable).
const qRecoverSecondary = `
UPDATE blob_registry AS r SET
	verification_state = CASE WHEN ` + secondaryEligible + ` THEN 0 ELSE 4 END,
	verification_started_at = NULL,
	verification_failure = 'verification timed out (claim recovered)',
	updated_at = $2
WHERE r.verification_state = 1 AND r.verification_started_at < $1`

// $1 limit, $2 now, $3 reverify interval (µs), $4 reverify spread (µs).
//
// Candidates, in priority order: pending rows (never verified since their
// last copy) in id order; failed verifications whose retry time has come;
// verified rows due for reverification (oldest first). Each candidate set is
// locked with SKIP LOCKED so concurrent passes take disjoint rows.
const qClaimSecondary = `
WITH pending AS (
	SELECT r.id, 0 AS prio, 0::float8 AS ord FROM blob_registry r
	WHERE r.verification_state = 0 AND ` + secondaryEligible + `
	ORDER BY r.id LIMIT $1 FOR UPDATE SKIP LOCKED
), failed AS (
	SELECT r.id, 1, extract(epoch FROM r.verification_retry_at) FROM blob_registry r
	WHERE r.verification_state = 3 AND r.verification_retry_at <= $2 AND ` + secondaryEligible + `
	ORDER BY r.verification_retry_at LIMIT $1 FOR UPDATE SKIP LOCKED
), reverify AS (
	SELECT r.id, 2, extract(epoch FROM r.verified_at) FROM blob_registry r
	WHERE r.verification_state = 2 AND ` + secondaryEligible + `
	  AND r.verified_at <= $2 - ($3::bigint - $4::bigint) * interval '1 microsecond'
	  AND r.verified_at + ($3::bigint * interval '1 microsecond')
	      - ($4::bigint * ` + dueOffset + `) * interval '1 microsecond' <= $2
	ORDER BY r.verified_at LIMIT $1 FOR UPDATE SKIP LOCKED
), cand AS (
	SELECT * FROM pending UNION ALL SELECT * FROM failed UNION ALL SELECT * FROM reverify
), chosen AS (
	SELECT id FROM cand ORDER BY prio, ord, id LIMIT $1
)
UPDATE blob_registry AS r SET
	verification_state = 1,
	verification_started_at = $2,
	updated_at = $2
FROM chosen
WHERE r.id = chosen.id
RETURNING ` + itemColumns

// secondaryToken matches the claimed row: $1 id, $2 token time, $3 generation.
const secondaryToken = `r.id = $1 AND r.verification_state = 1 AND r.verification_started_at = $2 AND r.generation = $3`

// $1 id, $2 token, $3 generation, $4 now, $5 observed sha256, $6 expected sha256.
const qSecondaryMatch = `
UPDATE blob_registry AS r SET
	verification_state = 2,
	verification_started_at = NULL,
	verified_at = $4,
	verification_retry_count = 0,
	verification_retry_at = NULL,
	verification_failure = NULL,
	secondary_sha256 = $5,
	checksum_mismatch = false,
	updated_at = $4
WHERE ` + secondaryToken + ` AND r.primary_sha256 = $6 AND r.state = 2`

// $1 id, $2 token, $3 generation, $4 now, $5 observed sha256 (” when
// missing), $6 mismatch, $7 failure, $8 retry_at.
//
// The secondary is bad: keep the observed checksum, count the failure
// (verification_retry_count is reset only by qSecondaryMatch, never by a
// sync, so the backoff keeps growing across repeated mismatches) and send the
// row back to sync with the same retry time (state failed, generation+1:
// ClaimDue takes it when retry_at is due and MarkSynced sets verification
// back to pending). When the primary itself is flagged, copying it would
// not help: the row only records the failure.
const qSecondaryBad = `
UPDATE blob_registry AS r SET
	verification_state = 3,
	verification_started_at = NULL,
	verification_retry_count = r.verification_retry_count + 1,
	verification_retry_at = $8,
	verification_failure = left($7, 255),
	secondary_sha256 = $5,
	checksum_mismatch = $6,
	state = CASE WHEN r.primary_checksum_mismatch THEN r.state ELSE 3 END,
	generation = CASE WHEN r.primary_checksum_mismatch THEN r.generation ELSE r.generation + 1 END,
	retry_at = CASE WHEN r.primary_checksum_mismatch THEN r.retry_at ELSE $8 END,
	last_sync_failure = CASE WHEN r.primary_checksum_mismatch THEN r.last_sync_failure ELSE left($7, 255) END,
	updated_at = $4
WHERE ` + secondaryToken + ` AND r.state = 2
RETURNING r.state = 3`

// $1 id, $2 token, $3 generation, $4 now, $5 failure, $6 retry_at.
const qSecondaryError = `
UPDATE blob_registry AS r SET
	verification_state = 3,
	verification_started_at = NULL,
	verification_retry_count = r.verification_retry_count + 1,
	verification_retry_at = $6,
	verification_failure = left($5, 255),
	updated_at = $4
WHERE ` + secondaryToken

// $1 id, $2 token, $3 now. Gives a claim back without a result (the row
// changed during the check, or the pass was cancelled).
const qSecondaryRelease = `
UPDATE blob_registry AS r SET
	verification_state = CASE WHEN ` + secondaryEligible + ` THEN 0 ELSE 4 END,
	verification_started_at = NULL,
	updated_at = $3
WHERE r.id = $1 AND r.verification_state = 1 AND r.verification_started_at = $2`

// primaryLive: rows whose primary can be read.
const primaryLive = `r.deleted_at IS NULL AND NOT r.missing_on_primary AND r.state <> 1`

// primaryChecked is when the primary's bytes were last hashed, by verify or
// by the copy that computed primary_sha256 (same expression as the index).
const primaryChecked = `greatest(coalesce(r.primary_verified_at, '-infinity'), coalesce(r.last_synced_at, '-infinity'))`

// $1 started before, $2 now.
const qRecoverPrimary = `
UPDATE blob_registry AS r SET
	primary_verification_state = 0,
	primary_verification_started_at = NULL,
	primary_verification_failure = 'verification timed out (claim recovered)',
	updated_at = $2
WHERE r.primary_verification_state = 1 AND r.primary_verification_started_at < $1`

// $1 limit, $2 now, $3 reverify interval (µs), $4 reverify spread (µs).
//
// Candidates: rows without a primary checksum that are not waiting for a
// copy (synced or failed; a pending copy computes it anyway); quarantined
// rows whose generation moved since they were flagged (an event announced
// new content: check again); failed checks whose retry time has come; rows
// whose primary was last hashed longer ago than the interval (with spread).
const qClaimPrimary = `
WITH unchecked AS (
	SELECT r.id, 0 AS prio, r.id::float8 AS ord FROM blob_registry r
	WHERE r.primary_sha256 = '' AND r.deleted_at IS NULL AND NOT r.missing_on_primary
	  AND r.state IN (2, 3) AND r.primary_verification_state <> 1
	  AND (r.primary_verification_state <> 3 OR r.primary_verification_retry_at <= $2)
	ORDER BY r.id LIMIT $1 FOR UPDATE SKIP LOCKED
), recheck AS (
	SELECT r.id, 1, r.id::float8 FROM blob_registry r
	WHERE r.primary_verification_state = 3 AND ` + primaryLive + ` AND r.primary_sha256 <> ''
	  AND ((r.primary_checksum_mismatch AND r.generation <> r.primary_verification_generation)
	    OR (NOT r.primary_checksum_mismatch AND r.primary_verification_retry_at <= $2))
	ORDER BY r.primary_verification_retry_at LIMIT $1 FOR UPDATE SKIP LOCKED
), reverify AS (
	SELECT r.id, 2, extract(epoch FROM ` + primaryChecked + `) FROM blob_registry r
	WHERE r.primary_sha256 <> '' AND r.deleted_at IS NULL AND r.primary_verification_state IN (0, 2, 4)
	  AND NOT r.missing_on_primary AND r.state <> 1
	  AND ` + primaryChecked + ` <= $2 - ($3::bigint - $4::bigint) * interval '1 microsecond'
	  AND ` + primaryChecked + ` + ($3::bigint * interval '1 microsecond')
	      - ($4::bigint * ` + dueOffset + `) * interval '1 microsecond' <= $2
	ORDER BY ` + primaryChecked + ` LIMIT $1 FOR UPDATE SKIP LOCKED
), cand AS (
	SELECT * FROM unchecked UNION ALL SELECT * FROM recheck UNION ALL SELECT * FROM reverify
), chosen AS (
	SELECT id FROM cand ORDER BY prio, ord, id LIMIT $1
)
UPDATE blob_registry AS r SET
	primary_verification_state = 1,
	primary_verification_started_at = $2,
	updated_at = $2
FROM chosen
WHERE r.id = chosen.id
RETURNING ` + itemColumns

// primaryToken matches the claimed row: $1 id, $2 token time, $3 generation.
const primaryToken = `r.id = $1 AND r.primary_verification_state = 1
	AND r.primary_verification_started_at = $2 AND r.generation = $3`

// $1 id, $2 token, $3 generation, $4 now, $5 sha256, $6 expected sha256 (” =
// the row had none: record it). Also turns on secondary verification of a
// synced row that was waiting for its primary checksum.
const qPrimaryMatch = `
UPDATE blob_registry AS r SET
	primary_sha256 = $5,
	primary_verification_state = 2,
	primary_verification_started_at = NULL,
	primary_verified_at = $4,
	primary_verification_retry_count = 0,
	primary_verification_retry_at = NULL,
	primary_verification_failure = NULL,
	primary_checksum_mismatch = false,
	primary_mismatch_sha256 = '',
	primary_verification_generation = r.generation,
	verification_state = CASE WHEN r.state = 2 AND r.verification_state = 4 THEN 0 ELSE r.verification_state END,
	updated_at = $4
WHERE ` + primaryToken + ` AND r.primary_sha256 = $6`

// $1 id, $2 token, $3 generation, $4 now, $5 observed sha256, $6 failure.
// Quarantine: no retry time; the row is looked at again when its generation
// moves (an event) or an operator decides.
const qPrimaryMismatch = `
UPDATE blob_registry AS r SET
	primary_verification_state = 3,
	primary_verification_started_at = NULL,
	primary_verification_retry_count = r.primary_verification_retry_count + 1,
	primary_verification_retry_at = NULL,
	primary_verification_failure = left($6, 255),
	primary_checksum_mismatch = true,
	primary_mismatch_sha256 = $5,
	primary_verification_generation = r.generation,
	updated_at = $4
WHERE ` + primaryToken + ` AND r.primary_sha256 <> ''`

// $1 id, $2 token, $3 generation, $4 now, $5 failure, $6 retry_at.
const qPrimaryError = `
UPDATE blob_registry AS r SET
	primary_verification_state = 3,
	primary_verification_started_at = NULL,
	primary_verification_retry_count = r.primary_verification_retry_count + 1,
	primary_verification_retry_at = $6,
	primary_verification_failure = left($5, 255),
	primary_checksum_mismatch = false,
	primary_verification_generation = r.generation,
	updated_at = $4
WHERE ` + primaryToken

// $1 id, $2 token, $3 now.
const qPrimaryRelease = `
UPDATE blob_registry AS r SET
	primary_verification_state = 0,
	primary_verification_started_at = NULL,
	updated_at = $3
WHERE r.id = $1 AND r.primary_verification_state = 1 AND r.primary_verification_started_at = $2`

// $1 id, $2 now. An operator accepts the primary's current content: clear the
// quarantine and send the row to sync (state pending, generation+1); the copy
// computes the new primary checksum and verification follows.
const qAcceptPrimary = `
UPDATE blob_registry AS r SET
	primary_verification_state = 0,
	primary_verification_started_at = NULL,
	primary_verification_retry_count = 0,
	primary_verification_retry_at = NULL,
	primary_verification_failure = NULL,
	primary_checksum_mismatch = false,
	primary_mismatch_sha256 = '',
	state = 0,
	generation = r.generation + 1,
	retry_count = 0,
	retry_at = NULL,
	verification_state = 4,
	verification_started_at = NULL,
	updated_at = $2
WHERE r.id = $1 AND r.primary_checksum_mismatch AND r.deleted_at IS NULL
RETURNING r.id`

// $1 id.
const qGetItem = `SELECT ` + itemColumns + ` FROM blob_registry r WHERE r.id = $1`

// qSummary counts live rows per data type.
const qSummary = `
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
