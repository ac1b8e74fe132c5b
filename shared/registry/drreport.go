package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// FailureSecondaryMissing is the verification failure recorded when the
// secondary object does not exist (shared/verify writes it); the DR report
// reads it to tell "missing on the secondary" from other failures.
const FailureSecondaryMissing = "verification: secondary object missing"

// RiskCategory says why a failover right now would lose an object or serve
// it stale. Every row that is not synced has exactly one category, the
// first that applies in the order of RiskCategories.
type RiskCategory string

// Risk categories, most specific first.
const (
	// RiskHeldDelete: a delete the brake holds; the secondary still serves
	// an object the primary deleted.
	RiskHeldDelete RiskCategory = "held_delete"
	// RiskPendingDelete: a delete not yet propagated (queued, in flight,
	// failed or waiting for the grace period); served stale.
	RiskPendingDelete RiskCategory = "pending_delete"
	// RiskChecksumMismatch: verification found secondary bytes that differ
	// from the primary's checksum; the copy waits to be redone.
	RiskChecksumMismatch RiskCategory = "checksum_mismatch"
	// RiskMissingOnSecondary: verification found no secondary object; the
	// copy waits to be redone.
	RiskMissingOnSecondary RiskCategory = "missing_on_secondary"
	// RiskFailed: the copy failed (retried with backoff, or quarantined);
	// rows missing on the primary included.
	RiskFailed RiskCategory = "failed"
	// RiskUnsynced: the copy is queued (pending) or in flight (started).
	RiskUnsynced RiskCategory = "unsynced"
)

// RiskCategories lists every category in precedence order.
var RiskCategories = []RiskCategory{RiskHeldDelete, RiskPendingDelete, RiskChecksumMismatch,
	RiskMissingOnSecondary, RiskFailed, RiskUnsynced}

// Valid reports whether c is one of RiskCategories.
func (c RiskCategory) Valid() bool {
	for _, k := range RiskCategories {
		if c == k {
			return true
		}
	}
	return false
}

// Tombstone reports whether the category is about a deleted object (its
// bytes are served stale, not lost).
func (c RiskCategory) Tombstone() bool { return c == RiskHeldDelete || c == RiskPendingDelete }

// riskCategoryExpr classifies a row aliased r with r.state <> 2, in the
// order of RiskCategories.
var riskCategoryExpr = `(CASE
	WHEN r.deleted_at IS NOT NULL AND r.delete_hold = 1 THEN '` + string(RiskHeldDelete) + `'
	WHEN r.deleted_at IS NOT NULL THEN '` + string(RiskPendingDelete) + `'
	WHEN r.checksum_mismatch THEN '` + string(RiskChecksumMismatch) + `'
	WHEN r.verification_state = 3 AND r.verification_failure = '` + FailureSecondaryMissing + `' THEN '` + string(RiskMissingOnSecondary) + `'
	WHEN r.state = 3 THEN '` + string(RiskFailed) + `'
	ELSE '` + string(RiskUnsynced) + `' END)`

// The DR queries all select rows with the literal predicate r.state <> 2,
// which is the predicate of blob_registry_at_risk_idx (migration 00710):
// they cost in proportion to the rows at risk, not to the table.
var (
	// per type and category: objects and bytes.
	qRiskAggregate = `
SELECT r.data_type, ` + riskCategoryExpr + `, count(*)::bigint, coalesce(sum(r.size), 0)::bigint
FROM blob_registry r
WHERE r.state <> 2
GROUP BY 1, 2`

	// riskFilter: $1 data type (” = all), $2 category (” = all).
	riskFilter = `r.state <> 2 AND ($1 = '' OR r.data_type = $1) AND ($2 = '' OR ` + riskCategoryExpr + ` = $2)`

	// $3 after data type, $4 after key, $5 limit: keyset page in
	// (data_type, key in byte order).
	qRiskList = `
SELECT r.id, r.data_type, r.object_key, ` + riskCategoryExpr + `, r.state, r.size,
	CASE WHEN r.state = 1 THEN r.started_at ELSE r.updated_at END,
	r.deleted_at, coalesce(r.last_sync_failure, r.verification_failure, ''),
	r.quarantined_at IS NOT NULL, r.missing_on_primary
FROM blob_registry r
WHERE ` + riskFilter + `
	AND (r.data_type, r.object_key) > ($3::text, $4::text)
ORDER BY r.data_type, r.object_key
LIMIT $5`

	// rows of the filter after ($3, $4), for "N more".
	qRiskAfter = `
SELECT count(*) FROM blob_registry r
WHERE ` + riskFilter + `
	AND (r.data_type, r.object_key) > ($3::text, $4::text)`
)

// $1 verified before (= overdue), $2 data types. Per type: rows whose
// verification is older than the interval, and the oldest verification,
// both from blob_registry_verified_at_idx (data_type, verified_at) WHERE
// verification_state = 2: the count is bounded by the overdue rows.
const qVerificationAge = `
SELECT t.data_type,
	(SELECT count(*) FROM blob_registry b
		WHERE b.verification_state = 2 AND b.data_type = t.data_type AND b.verified_at < $1)::bigint,
	(SELECT min(b.verified_at) FROM blob_registry b
		WHERE b.verification_state = 2 AND b.data_type = t.data_type)
FROM unnest($2::text[]) AS t(data_type)`

// RiskFigure counts objects at risk and their bytes.
type RiskFigure struct {
	Objects int64 `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// Coverage is the verification coverage of synced objects.
type Coverage struct {
	// Synced counts live synced rows (counter).
	Synced int64 `json:"synced"`
	// Verified counts live rows whose verification succeeded (counter).
	Verified int64 `json:"verified"`
	// VerifiedWithinInterval counts those verified within the reverify
	// interval.
	VerifiedWithinInterval int64 `json:"verified_within_interval"`
	// Share is VerifiedWithinInterval / Synced (1 when nothing is synced).
	Share float64 `json:"share"`
	// OldestVerifiedAt is the oldest successful verification (nil: none).
	OldestVerifiedAt *time.Time `json:"oldest_verified_at,omitempty"`
}

func (c *Coverage) add(o Coverage) {
	c.Synced += o.Synced
	c.Verified += o.Verified
	c.VerifiedWithinInterval += o.VerifiedWithinInterval
	c.OldestVerifiedAt = minTime(c.OldestVerifiedAt, o.OldestVerifiedAt)
}

func (c *Coverage) share() {
	c.Share = 1
	if c.Synced > 0 {
		c.Share = min(float64(c.VerifiedWithinInterval)/float64(c.Synced), 1)
	}
}

func minTime(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.Before(*a)) {
		return b
	}
	return a
}

// DRTypeReport is the DR readiness of one data type.
type DRTypeReport struct {
	DataType string `json:"data_type"`
	// Rows counts live rows (counter).
	Rows int64 `json:"rows"`
	// OldestUnsyncedAt and RPOSeconds: the registry's oldest-unsynced
	// definition (TypeStatus; quarantined rows excluded).
	OldestUnsyncedAt *time.Time `json:"oldest_unsynced_at,omitempty"`
	RPOSeconds       float64    `json:"rpo_seconds"`
	// ObjectsAtRisk counts rows not synced, tombstones included (counters:
	// rows - synced + tombstones_pending); it equals the sum of Categories.
	ObjectsAtRisk int64 `json:"objects_at_risk"`
	// BytesAtRisk is the size of the live objects at risk: what a failover
	// would lose or serve stale (counter bytes_pending).
	BytesAtRisk int64 `json:"bytes_at_risk"`
	// StaleBytes is the size of deleted objects the secondary would still
	// serve (held and pending deletes).
	StaleBytes int64 `json:"stale_bytes"`
	// Categories splits ObjectsAtRisk; every category is present.
	Categories   map[RiskCategory]RiskFigure `json:"categories"`
	Verification Coverage                    `json:"verification"`
}

// AtRiskObject is one object a failover right now would lose or serve
// stale.
type AtRiskObject struct {
	ID        int64        `json:"id"`
	DataType  string       `json:"data_type"`
	ObjectKey string       `json:"object_key"`
	Category  RiskCategory `json:"category"`
	State     string       `json:"state"`
	Size      int64        `json:"size"`
	// Since is when the row's wait began (its claim for a started row,
	// else its last change); AgeSeconds is the report time minus Since.
	Since            time.Time  `json:"since"`
	AgeSeconds       float64    `json:"age_seconds"`
	DeletedAt        *time.Time `json:"deleted_at,omitempty"`
	Failure          string     `json:"failure,omitempty"`
	Quarantined      bool       `json:"quarantined,omitempty"`
	MissingOnPrimary bool       `json:"missing_on_primary,omitempty"`
}

// DRReportQuery selects the report's list of objects at risk; the figures
// always cover the whole registry.
type DRReportQuery struct {
	// DataType and Category filter the list ("" = all).
	DataType string
	Category RiskCategory
	// After is the Next cursor of the previous page ("" = first page).
	After string
	// Limit is the page size; <= 0 means DefaultDRListLimit, at most
	// MaxDRListLimit.
	Limit int
	// ReverifyInterval is the verification age that counts as covered;
	// <= 0 means 90 days (verify's default).
	ReverifyInterval time.Duration
}

// List sizes of the DR report.
const (
	DefaultDRListLimit = 100
	MaxDRListLimit     = 10000
)

// DRReport is what a failover right now would lose or serve stale.
type DRReport struct {
	GeneratedAt time.Time `json:"generated_at"`
	// RPOSeconds is the current recovery point: the age of the oldest
	// unsynced row of any type (0: everything is synced).
	RPOSeconds       float64    `json:"rpo_seconds"`
	OldestUnsyncedAt *time.Time `json:"oldest_unsynced_at,omitempty"`
	// ObjectsAtRisk, BytesAtRisk, StaleBytes and Categories: the sums of
	// Types'.
	ObjectsAtRisk int64                       `json:"objects_at_risk"`
	BytesAtRisk   int64                       `json:"bytes_at_risk"`
	StaleBytes    int64                       `json:"stale_bytes"`
	Categories    map[RiskCategory]RiskFigure `json:"categories"`
	// ReverifyIntervalSeconds is the interval Verification is measured by.
	ReverifyIntervalSeconds float64        `json:"reverify_interval_seconds"`
	Verification            Coverage       `json:"verification"`
	Types                   []DRTypeReport `json:"types"`
	// LastBackfill and LastVerify are the pass log's records (nil: the job
	// never ran); LastOKAt is the last successful pass.
	LastBackfill *Pass `json:"last_backfill"`
	LastVerify   *Pass `json:"last_verify"`
	// Objects is one page of the objects at risk matching the query, in
	// (data type, key) order; Matching counts all that match; More counts
	// those after this page; Next is the cursor of the next page ("" at
	// the end).
	Objects  []AtRiskObject `json:"objects"`
	Matching int64          `json:"matching"`
	More     int64          `json:"more"`
	Next     string         `json:"next,omitempty"`
}

// DRReport reads the DR readiness report: RPO, objects and bytes at risk
// per type and category, verification coverage and the last passes from
// the counters and the partial indexes of the rows at risk (one snapshot),
// plus one keyset page of the objects at risk.
func (s *Store) DRReport(ctx context.Context, q DRReportQuery) (DRReport, error) {
	if q.Category != "" && !q.Category.Valid() {
		return DRReport{}, fmt.Errorf("%w: category %q (want one of %v)", ErrInvalidFilter, q.Category, RiskCategories)
	}
	afterType, afterKey, err := decodeRiskCursor(q.After)
	if err != nil {
		return DRReport{}, err
	}
	if q.Limit <= 0 {
		q.Limit = DefaultDRListLimit
	}
	q.Limit = min(q.Limit, MaxDRListLimit)
	if q.ReverifyInterval <= 0 {
		q.ReverifyInterval = 90 * 24 * time.Hour
	}
	if _, err := s.RollupCounters(ctx); err != nil {
		return DRReport{}, err
	}
	now := s.now()
	rep := DRReport{GeneratedAt: now, ReverifyIntervalSeconds: q.ReverifyInterval.Seconds(),
		Categories: emptyCategories(), Objects: []AtRiskObject{}, Types: []DRTypeReport{}}
	// The counters are the transaction's first read: its snapshot is taken
	// after that statement locked the summary and the deltas, and the lock
	// is held to the end, so a rollup's TRUNCATE of the deltas
	// (compactDeltas) is either wholly before or wholly after it.
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := s.drFigures(ctx, tx, now, q.ReverifyInterval, &rep); err != nil {
			return err
		}
		return drObjects(ctx, tx, now, q, afterType, afterKey, &rep)
	})
	if err != nil {
		return DRReport{}, fmt.Errorf("registry: dr report: %w", err)
	}
	passes, err := s.Passes(ctx)
	if err != nil {
		return DRReport{}, err
	}
	for i := range passes {
		switch passes[i].Job {
		case JobBackfill:
			rep.LastBackfill = &passes[i]
		case JobVerify:
			rep.LastVerify = &passes[i]
		}
	}
	return rep, nil
}

func emptyCategories() map[RiskCategory]RiskFigure {
	m := make(map[RiskCategory]RiskFigure, len(RiskCategories))
	for _, c := range RiskCategories {
		m[c] = RiskFigure{}
	}
	return m
}

// drFigures fills the per-type and total figures.
func (s *Store) drFigures(ctx context.Context, tx pgx.Tx, now time.Time, interval time.Duration, rep *DRReport) error {
	status, err := s.readTypeStatus(ctx, tx)
	if err != nil {
		return err
	}
	byType := map[string]*DRTypeReport{}
	names := make([]string, 0, len(status))
	for _, t := range status {
		tr := DRTypeReport{DataType: t.DataType, Rows: t.Rows, OldestUnsyncedAt: t.OldestUnsyncedAt,
			RPOSeconds: t.OldestUnsyncedAge.Seconds(), ObjectsAtRisk: t.AtRiskObjects(),
			BytesAtRisk: t.BytesPending, Categories: emptyCategories(),
			Verification: Coverage{Synced: t.Synced, Verified: t.Verified}}
		rep.Types = append(rep.Types, tr)
		names = append(names, t.DataType)
	}
	for i := range rep.Types {
		byType[rep.Types[i].DataType] = &rep.Types[i]
	}
	rows, err := tx.Query(ctx, qRiskAggregate)
	if err != nil {
		return err
	}
	var typ, cat string
	var n, bytes int64
	_, err = pgx.ForEachRow(rows, []any{&typ, &cat, &n, &bytes}, func() error {
		tr := byType[typ]
		if tr == nil {
			return fmt.Errorf("data type %q has rows at risk but no counters", typ)
		}
		c := RiskCategory(cat)
		f := tr.Categories[c]
		f.Objects += n
		f.Bytes += bytes
		tr.Categories[c] = f
		if c.Tombstone() {
			tr.StaleBytes += bytes
		}
		return nil
	})
	if err != nil {
		return err
	}
	rows, err = tx.Query(ctx, qVerificationAge, now.Add(-interval), names)
	if err != nil {
		return err
	}
	var overdue int64
	var oldest *time.Time
	_, err = pgx.ForEachRow(rows, []any{&typ, &overdue, &oldest}, func() error {
		tr := byType[typ]
		tr.Verification.VerifiedWithinInterval = max(tr.Verification.Verified-overdue, 0)
		tr.Verification.OldestVerifiedAt = oldest
		return nil
	})
	if err != nil {
		return err
	}
	for i := range rep.Types {
		tr := &rep.Types[i]
		tr.Verification.share()
		rep.ObjectsAtRisk += tr.ObjectsAtRisk
		rep.BytesAtRisk += tr.BytesAtRisk
		rep.StaleBytes += tr.StaleBytes
		for c, f := range tr.Categories {
			t := rep.Categories[c]
			t.Objects += f.Objects
			t.Bytes += f.Bytes
			rep.Categories[c] = t
		}
		rep.Verification.add(tr.Verification)
		if old := minTime(rep.OldestUnsyncedAt, tr.OldestUnsyncedAt); old != rep.OldestUnsyncedAt {
			rep.OldestUnsyncedAt = old
			rep.RPOSeconds = tr.RPOSeconds
		}
	}
	rep.Verification.share()
	return nil
}

// drObjects fills one page of the objects at risk.
func drObjects(ctx context.Context, tx pgx.Tx, now time.Time, q DRReportQuery, afterType, afterKey string, rep *DRReport) error {
	for _, t := range rep.Types {
		if q.DataType != "" && t.DataType != q.DataType {
			continue
		}
		for c, f := range t.Categories {
			if q.Category == "" || q.Category == c {
				rep.Matching += f.Objects
			}
		}
	}
	var err error
	rep.Objects, err = collect(ctx, tx, "dr report", func(r pgx.CollectableRow) (AtRiskObject, error) {
		var o AtRiskObject
		var state ReplicationState
		err := r.Scan(&o.ID, &o.DataType, &o.ObjectKey, &o.Category, &state, &o.Size, &o.Since,
			&o.DeletedAt, &o.Failure, &o.Quarantined, &o.MissingOnPrimary)
		o.State = state.String()
		o.AgeSeconds = max(now.Sub(o.Since), 0).Seconds()
		return o, err
	}, qRiskList, q.DataType, string(q.Category), afterType, afterKey, q.Limit)
	if err != nil {
		return err
	}
	if len(rep.Objects) == 0 {
		return nil
	}
	last := rep.Objects[len(rep.Objects)-1]
	if afterType == "" {
		// A first page: the aggregate of this snapshot already counts
		// the rest.
		rep.More = rep.Matching - int64(len(rep.Objects))
	} else if err := tx.QueryRow(ctx, qRiskAfter, q.DataType, string(q.Category), last.DataType, last.ObjectKey).Scan(&rep.More); err != nil {
		return err
	}
	if rep.More > 0 {
		rep.Next = RiskCursor(last.DataType, last.ObjectKey)
	}
	return nil
}

// RiskCursor is the DR report's Next cursor of a page ending at (dataType,
// key): the next page starts after that key.
func RiskCursor(dataType, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(dataType + "\x00" + key))
}

func decodeRiskCursor(c string) (string, string, error) {
	if c == "" {
		return "", "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	typ, key, ok := strings.Cut(string(b), "\x00")
	if err != nil || !ok || typ == "" {
		return "", "", fmt.Errorf("%w: cursor %q", ErrInvalidFilter, c)
	}
	return typ, key, nil
}
