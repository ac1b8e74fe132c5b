package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// ErrInvalidFilter is returned (wrapped) for a filter, sort or cursor the
// registry can not apply.
var ErrInvalidFilter = errors.New("registry: invalid filter")

// Entry is a registry row with every column, as the operator surface shows
// it. The Primary* fields repeat Row.Primary for the operator surface.
type Entry struct {
	Row
	QuarantinedAt                 *time.Time
	PrimaryVerificationState      VerificationState
	PrimaryVerifiedAt             *time.Time
	PrimaryVerificationRetryCount int
	PrimaryVerificationRetryAt    *time.Time
	PrimaryVerificationFailure    string
	PrimaryChecksumMismatch       bool
	PrimaryMismatchSHA256         string
}

const entryColumns = RowColumns + `, r.quarantined_at`

func scanEntry(r pgx.CollectableRow, extra ...any) (Entry, error) {
	var e Entry
	dest := append(rowDest(&e.Row), &e.QuarantinedAt)
	err := r.Scan(append(dest, extra...)...)
	p := e.Row.Primary
	e.PrimaryVerificationState, e.PrimaryVerifiedAt = p.State, p.VerifiedAt
	e.PrimaryVerificationRetryCount, e.PrimaryVerificationRetryAt = p.RetryCount, p.RetryAt
	e.PrimaryVerificationFailure, e.PrimaryChecksumMismatch, e.PrimaryMismatchSHA256 = p.Failure, p.ChecksumMismatch, p.MismatchSHA256
	return e, err
}

// ParseReplicationState maps a state name (String) back to the state.
func ParseReplicationState(name string) (ReplicationState, error) {
	for s := StatePending; s <= StateFailed; s++ {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: replication state %q (want pending, started, synced or failed)", ErrInvalidFilter, name)
}

// ParseVerificationState maps a state name (String) back to the state.
func ParseVerificationState(name string) (VerificationState, error) {
	for s := VerificationPending; s <= VerificationDisabled; s++ {
		if s.String() == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: verification state %q (want pending, started, succeeded, failed or disabled)", ErrInvalidFilter, name)
}

// Filter selects registry rows for the list and for bulk actions. Zero
// fields do not filter; set fields are combined with AND.
type Filter struct {
	DataType          string `json:"data_type,omitempty"`
	State             string `json:"state,omitempty"`              // replication state name
	VerificationState string `json:"verification_state,omitempty"` // verification state name
	FailedOnly        bool   `json:"failed_only,omitempty"`        // sync failed or verification failed
	MissingOnPrimary  bool   `json:"missing_on_primary,omitempty"`
	Quarantined       bool   `json:"quarantined,omitempty"`
	ChecksumMismatch  bool   `json:"checksum_mismatch,omitempty"`
	KeyPrefix         string `json:"key_prefix,omitempty"`   // keys starting with (bytes)
	KeyContains       string `json:"key_contains,omitempty"` // keys containing (not index-backed)
}

// sqlBuilder collects a WHERE clause and its arguments.
type sqlBuilder struct {
	conds []string
	args  []any
}

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *sqlBuilder) where() string {
	if len(b.conds) == 0 {
		return "true"
	}
	return strings.Join(b.conds, " AND ")
}

// apply adds the filter's conditions on alias r.
func (f Filter) apply(b *sqlBuilder) error {
	if f.DataType != "" {
		b.conds = append(b.conds, "r.data_type = "+b.arg(f.DataType))
	}
	if f.State != "" {
		s, err := ParseReplicationState(f.State)
		if err != nil {
			return err
		}
		b.conds = append(b.conds, fmt.Sprintf("r.state = %d", s))
	}
	if f.VerificationState != "" {
		s, err := ParseVerificationState(f.VerificationState)
		if err != nil {
			return err
		}
		b.conds = append(b.conds, fmt.Sprintf("r.verification_state = %d", s))
	}
	if f.FailedOnly {
		// exactly the predicate of blob_registry_list_failed_any_idx (00700)
		b.conds = append(b.conds, "(r.state = 3 OR r.verification_state = 3)")
	}
	if f.MissingOnPrimary {
		b.conds = append(b.conds, "r.missing_on_primary")
	}
	if f.Quarantined {
		b.conds = append(b.conds, "r.quarantined_at IS NOT NULL")
	}
	if f.ChecksumMismatch {
		b.conds = append(b.conds, "r.checksum_mismatch")
	}
	if f.KeyPrefix != "" {
		p := b.arg(f.KeyPrefix)
		// object_key is COLLATE "C" (00750): a range of the unique
		// (data_type, object_key) index
		c := `r.object_key >= ` + p + ` AND starts_with(r.object_key, ` + p + `)`
		if upper, ok := prefixUpperBound(f.KeyPrefix); ok {
			c += ` AND r.object_key < ` + b.arg(upper)
		}
		b.conds = append(b.conds, c)
	}
	if f.KeyContains != "" {
		b.conds = append(b.conds, "strpos(r.object_key, "+b.arg(f.KeyContains)+") > 0")
	}
	return nil
}

// prefixUpperBound returns the smallest string greater than every string
// starting with p in byte (= code point) order, if there is one.
func prefixUpperBound(p string) (string, bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		if r == utf8.RuneError || r >= utf8.MaxRune {
			continue
		}
		r++
		if r >= 0xD800 && r <= 0xDFFF {
			r = 0xE000
		}
		return p + string(r), true
	}
	return "", false
}

// Sort orders of the registry list.
const (
	// SortID orders by id (default ascending). With a key prefix and a
	// data type the list is in key order (bytes, as S3 lists) instead, so
	// every page is a range scan of the (data_type, object_key) index.
	SortID = "id"
	// SortLastSynced lists the synced rows by last_synced_at (default
	// newest first): a row that is not synced (e.g. resynced, pending
	// again) has no current sync time and is not listed.
	SortLastSynced = "last_synced"
	// SortVerifiedAt lists the rows whose verification succeeded by
	// verified_at (default newest first).
	SortVerifiedAt = "verified_at"
)

// PageQuery asks for one page of the registry list.
type PageQuery struct {
	Filter
	Sort  string // SortID (default), SortLastSynced or SortVerifiedAt
	Order string // "asc" or "desc"; "" = the sort's default
	After string // cursor of the previous page's Next; "" = first page
	Limit int    // 1..1000; <= 0 means 50
}

// Page is one page of the registry list.
type Page struct {
	Entries []Entry
	Next    string // cursor of the next page; "" on the last page
}

// listOrder is how one list query orders and pages its rows.
type listOrder struct {
	expr   string // SQL expression ordered by before id; "" = id only
	cast   string // SQL type of the cursor's key (of expr)
	byKey  bool   // ordered by object_key alone (unique within the type)
	desc   bool   // default direction
	cond   string // rows the sort lists ("" = all): its partial index's predicate
	states bool   // id order as a merge of per-state scans (see ListPage)
}

// sortOrder returns the order of sort for filter f, matching the list
// indexes (migrations 00700 and 00750).
func sortOrder(sort string, f Filter) (listOrder, error) {
	switch sort {
	case "", SortID:
		if f.DataType != "" && f.KeyPrefix != "" {
			return listOrder{expr: "r.object_key", cast: "text", byKey: true}, nil
		}
		// no state and no other index-backed condition narrows the type:
		// merge the per-state ranges of (data_type, state, id), or of
		// (data_type, state, id) WHERE missing_on_primary (00755)
		plain := f.State == "" && f.VerificationState == "" && !f.FailedOnly && !f.Quarantined && !f.ChecksumMismatch
		return listOrder{states: f.DataType != "" && plain}, nil
	case SortLastSynced:
		if f.State != "" && f.State != StateSynced.String() {
			return listOrder{}, fmt.Errorf("%w: sort %s lists synced rows only, not state %s", ErrInvalidFilter, sort, f.State)
		}
		// partial index blob_registry_list_synced_at_idx (00750)
		return listOrder{expr: "coalesce(r.last_synced_at, '-infinity'::timestamptz)", cast: "timestamptz",
			desc: true, cond: fmt.Sprintf("r.state = %d", StateSynced)}, nil
	case SortVerifiedAt:
		if f.VerificationState != "" && f.VerificationState != VerificationSucceeded.String() {
			return listOrder{}, fmt.Errorf("%w: sort %s lists verified rows only, not verification state %s",
				ErrInvalidFilter, sort, f.VerificationState)
		}
		// partial index blob_registry_list_verified_at_idx (00750)
		return listOrder{expr: "coalesce(r.verified_at, '-infinity'::timestamptz)", cast: "timestamptz",
			desc: true, cond: fmt.Sprintf("r.verification_state = %d", VerificationSucceeded)}, nil
	}
	return listOrder{}, fmt.Errorf("%w: sort %q (want id, last_synced or verified_at)", ErrInvalidFilter, sort)
}

// ListPage returns one page of rows matching q's filter in q's order, with
// keyset pagination: every page is an index range scan from the cursor, so
// a late page costs what the first does, and rows inserted or changed while
// paging neither repeat nor push others off a page (in id order).
func (s *Store) ListPage(ctx context.Context, q PageQuery) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	if limit > 1000 {
		return Page{}, fmt.Errorf("%w: limit %d above 1000", ErrInvalidFilter, limit)
	}
	o, err := sortOrder(q.Sort, q.Filter)
	if err != nil {
		return Page{}, err
	}
	desc := o.desc
	switch q.Order {
	case "":
	case "asc":
		desc = false
	case "desc":
		desc = true
	default:
		return Page{}, fmt.Errorf("%w: order %q (want asc or desc)", ErrInvalidFilter, q.Order)
	}
	var b sqlBuilder
	if err := q.Filter.apply(&b); err != nil {
		return Page{}, err
	}
	if o.cond != "" {
		b.conds = append(b.conds, o.cond)
	}
	cmp, dir := ">", "ASC"
	if desc {
		cmp, dir = "<", "DESC"
	}
	keyCol := "''"
	order := "r.id " + dir
	switch {
	case o.byKey:
		keyCol, order = o.expr, o.expr+" "+dir
	case o.expr != "":
		keyCol = o.expr + "::text"
		order = o.expr + " " + dir + ", r.id " + dir
	}
	order = typeFirst(q.Filter, order)
	if q.After != "" {
		key, id, err := decodeCursor(q.After)
		if err != nil {
			return Page{}, err
		}
		switch {
		case o.byKey:
			b.conds = append(b.conds, o.expr+" "+cmp+" "+b.arg(key)+"::text")
		case o.expr == "":
			b.conds = append(b.conds, "r.id "+cmp+" "+b.arg(id))
		default:
			b.conds = append(b.conds, "("+o.expr+", r.id) "+cmp+" ("+b.arg(key)+"::"+o.cast+", "+b.arg(id)+")")
		}
	}
	lim := " LIMIT " + strconv.Itoa(limit+1)
	sql := "SELECT " + entryColumns + ", " + keyCol + " FROM blob_registry r WHERE " + b.where() +
		" ORDER BY " + order + lim
	if o.states {
		// Without a state the type's rows in id order are the merge of its
		// rows per replication state, each an id range of
		// (data_type, state, id): at most 4 × (limit+1) index entries
		// instead of a (data_type, id) index every update would maintain
		// (and a missing-on-primary filter stays a range scan with a state).
		parts := make([]string, 0, StateFailed+1)
		for st := StatePending; st <= StateFailed; st++ {
			parts = append(parts, fmt.Sprintf("(SELECT %s, %s FROM blob_registry r WHERE %s AND r.state = %d ORDER BY %s%s)",
				entryColumns, keyCol, b.where(), st, order, lim))
		}
		sql = "SELECT * FROM (" + strings.Join(parts, " UNION ALL ") + ") u ORDER BY u.id " + dir + lim
	}
	var keys []string
	entries, err := collect(ctx, s.pool, "list page", func(r pgx.CollectableRow) (Entry, error) {
		var key string
		e, err := scanEntry(r, &key)
		keys = append(keys, key)
		return e, err
	}, sql, b.args...)
	if err != nil {
		return Page{}, err
	}
	page := Page{Entries: entries}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = encodeCursor(keys[limit-1], entries[limit-1].ID)
	}
	return page, nil
}

// IDCursor is the cursor of the page that starts after row id in id order
// (PageQuery.After with SortID): a list can start anywhere.
func IDCursor(id int64) string { return encodeCursor("", id) }

// typeFirst prefixes an ORDER BY with the data type when the filter fixes
// it: the same order, but only the per-type indexes (data_type, ...)
// provide it, so the planner never walks the primary key past other types'
// rows hoping to meet the LIMIT (rows of one type come in bursts, e.g. a
// backfill, so their ids are not spread evenly).
func typeFirst(f Filter, order string) string {
	if f.DataType == "" {
		return order
	}
	return "r.data_type, " + order
}

func encodeCursor(key string, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(key + "|" + strconv.FormatInt(id, 10)))
}

func decodeCursor(c string) (string, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		i := strings.LastIndexByte(string(raw), '|')
		if i >= 0 {
			id, perr := strconv.ParseInt(string(raw[i+1:]), 10, 64)
			if perr == nil {
				return string(raw[:i]), id, nil
			}
		}
	}
	return "", 0, fmt.Errorf("%w: cursor %q", ErrInvalidFilter, c)
}

// GetEntry returns the row with id and every column, or ErrNotFound.
func (s *Store) GetEntry(ctx context.Context, id int64) (Entry, error) {
	e, err := collectOne(ctx, s.pool, fmt.Sprintf("get id %d", id),
		func(r pgx.CollectableRow) (Entry, error) { return scanEntry(r) },
		"SELECT "+entryColumns+" FROM blob_registry r WHERE r.id = $1", id)
	if err != nil {
		return Entry{}, err
	}
	return e, nil
}
