// Package restore copies objects from the secondary bucket back to the
// primary: after a mass deletion, a ransomware overwrite, or a regional
// outage during which the registry wrote to the secondary (failback). It
// plans first (what, which version, how many bytes), then executes: every
// object streamed through shared/blobstore, its SHA-256 checked by reading
// the primary back, and its registry row marked restored so neither the
// restore's own ObjectCreated event nor a backfill pass copies it back or
// deletes it again. Execution is resumable through a journal of finished keys.
package restore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
)

// Registry is what restore needs of the registry; *registry.Store satisfies it.
type Registry interface {
	// DeletedBetween lists tombstones deleted in [from, to) in key order.
	DeletedBetween(ctx context.Context, from, to time.Time, dataType, prefix, afterKey string, limit int) ([]registry.Row, error)
	// MarkRestored records a restored object (live, synced, restored).
	MarkRestored(ctx context.Context, r registry.Restored) error
	// AuditRestore records a restore run.
	AuditRestore(ctx context.Context, actor string, selector any, objects int64) error
}

var _ Registry = (*registry.Store)(nil)

// Bucket is one side as restore uses it; *blobstore.Store satisfies it.
type Bucket interface {
	blobstore.Sink
	Head(ctx context.Context, key string) (blobstore.Object, error)
	Hash(ctx context.Context, key string) (blobstore.Digest, error)
	OpenVersion(ctx context.Context, key, versionID string) (io.ReadCloser, blobstore.Object, error)
	ListVersions(ctx context.Context, prefix string, fn func(page []blobstore.Version) error) error
}

var _ Bucket = (*blobstore.Store)(nil)

// Sentinel errors.
var (
	// ErrSelector: the selector asks for nothing or for two modes at once.
	ErrSelector = errors.New("restore: invalid selector")
	// ErrVerify: the bytes read back from the primary do not hash to what
	// was read from the secondary.
	ErrVerify = errors.New("restore: checksum mismatch on arrival")
)

// Selector chooses what to restore. Key, Prefix and DataType narrow every
// mode; at most one of the time modes may be set. Without a time mode the
// secondary's current copy of every selected object missing on the primary
// is restored.
type Selector struct {
	Key      string `json:"key,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	DataType string `json:"data_type,omitempty"`
	// DeletedFrom and DeletedTo: objects whose deletion the registry
	// recorded in [DeletedFrom, DeletedTo) and that the primary still
	// lacks; the version the secondary held when the deletion happened.
	DeletedFrom time.Time `json:"deleted_from,omitzero"`
	DeletedTo   time.Time `json:"deleted_to,omitzero"`
	// AsOf: objects whose copy changed after AsOf (overwritten or deleted);
	// the version current on the versioned secondary at AsOf.
	AsOf time.Time `json:"as_of,omitzero"`
	// WrittenAfter (failback): objects whose current secondary version was
	// written after this time (e.g. by the registry while it ran on the
	// secondary during an outage); their current version.
	WrittenAfter time.Time `json:"written_after,omitzero"`
}

func (s Selector) check() error {
	modes := 0
	for _, set := range []bool{!s.DeletedFrom.IsZero() || !s.DeletedTo.IsZero(), !s.AsOf.IsZero(), !s.WrittenAfter.IsZero()} {
		if set {
			modes++
		}
	}
	switch {
	case modes > 1:
		return fmt.Errorf("%w: choose one of deleted between, as of, written after", ErrSelector)
	case (!s.DeletedFrom.IsZero() || !s.DeletedTo.IsZero()) && (s.DeletedFrom.IsZero() || s.DeletedTo.IsZero() || !s.DeletedFrom.Before(s.DeletedTo)):
		return fmt.Errorf("%w: deleted between needs a start before its end", ErrSelector)
	case modes == 0 && s.Key == "" && s.Prefix == "" && s.DataType == "":
		return fmt.Errorf("%w: name a key, a prefix, a data type or a time window", ErrSelector)
	}
	return nil
}

// Item is one object to restore.
type Item struct {
	DataType string `json:"data_type"`
	Key      string `json:"key"`
	// VersionID is the secondary version to restore.
	VersionID string `json:"version_id"`
	// Current says the version is the secondary's current one; otherwise
	// the secondary is brought to it too (as a new current version).
	Current      bool      `json:"current"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"last_modified"`
	Reason       string    `json:"reason"`
}

// Plan is what Execute would do.
type Plan struct {
	Selector Selector `json:"selector"`
	Items    []Item   `json:"items"`
	Objects  int      `json:"objects"`
	Bytes    int64    `json:"bytes"`
	// Skipped counts selected objects that need no restore or cannot be
	// restored, by reason.
	Skipped map[string]int `json:"skipped"`
}

// Restorer plans and executes restores.
type Restorer struct {
	Registry  Registry
	Primary   Bucket
	Secondary Bucket
	Catalog   *datatype.Catalog
	Logger    *slog.Logger
}

// history is a key's versions, newest first.
type history []blobstore.Version

// at returns the entry current at t (the newest with LastModified <= t).
func (h history) at(t time.Time) (blobstore.Version, bool) {
	for _, v := range h {
		if !v.LastModified.After(t) {
			return v, true
		}
	}
	return blobstore.Version{}, false
}

// versions reads the secondary's version history of the keys under prefix.
func (r *Restorer) versions(ctx context.Context, prefix string) (map[string]history, error) {
	out := map[string]history{}
	err := r.Secondary.ListVersions(ctx, prefix, func(page []blobstore.Version) error {
		for _, v := range page {
			out[v.Key] = append(out[v.Key], v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("restore: list secondary versions: %w", err)
	}
	for k, h := range out {
		sort.SliceStable(h, func(i, j int) bool {
			if h[i].IsLatest != h[j].IsLatest {
				return h[i].IsLatest
			}
			return h[i].LastModified.After(h[j].LastModified)
		})
		out[k] = h
	}
	return out, nil
}

// Plan works out what a restore of sel would copy. It reads the secondary's
// version history, the registry (deletion window) and HEADs the primary;
// it writes nothing.
func (r *Restorer) Plan(ctx context.Context, sel Selector) (Plan, error) {
	if err := sel.check(); err != nil {
		return Plan{}, err
	}
	p := Plan{Selector: sel, Items: []Item{}, Skipped: map[string]int{}}
	prefix := sel.Prefix
	if sel.Key != "" {
		prefix = sel.Key
	}
	hist, err := r.versions(ctx, prefix)
	if err != nil {
		return Plan{}, err
	}
	add := func(typ, key string, v blobstore.Version, current bool, reason string) {
		p.Items = append(p.Items, Item{DataType: typ, Key: key, VersionID: v.VersionID, Current: current,
			Size: v.Size, LastModified: v.LastModified, Reason: reason})
	}
	skip := func(reason string) { p.Skipped[reason]++ }

	if !sel.DeletedFrom.IsZero() {
		after := ""
		for {
			rows, err := r.Registry.DeletedBetween(ctx, sel.DeletedFrom, sel.DeletedTo, sel.DataType, prefix, after, 1000)
			if err != nil {
				return Plan{}, fmt.Errorf("restore: %w", err)
			}
			for _, row := range rows {
				after = row.ObjectKey
				if sel.Key != "" && row.ObjectKey != sel.Key {
					continue
				}
				if err := r.planDeleted(ctx, row, hist[row.ObjectKey], add, skip); err != nil {
					return Plan{}, err
				}
			}
			if len(rows) < 1000 {
				break
			}
		}
	} else {
		keys := make([]string, 0, len(hist))
		for k := range hist {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, key := range keys {
			typ, ok := r.selected(sel, key)
			if !ok {
				continue
			}
			if err := r.planKey(ctx, sel, typ, key, hist[key], add, skip); err != nil {
				return Plan{}, err
			}
		}
	}
	for _, it := range p.Items {
		p.Bytes += it.Size
	}
	p.Objects = len(p.Items)
	return p, nil
}

// selected reports whether key belongs to the selection, and its type.
func (r *Restorer) selected(sel Selector, key string) (string, bool) {
	if sel.Key != "" && key != sel.Key {
		return "", false
	}
	if !strings.HasPrefix(key, sel.Prefix) {
		return "", false
	}
	t, ok := r.Catalog.Match(key)
	if !ok || (sel.DataType != "" && t.Name != sel.DataType) {
		return "", false
	}
	return t.Name, true
}

type addFunc func(typ, key string, v blobstore.Version, current bool, reason string)

// planDeleted restores a tombstone's object as the secondary held it when
// the deletion was recorded, unless the primary has the key again.
func (r *Restorer) planDeleted(ctx context.Context, row registry.Row, h history, add addFunc, skip func(string)) error {
	missing, err := r.missingOnPrimary(ctx, row.ObjectKey)
	if err != nil {
		return err
	}
	if !missing {
		skip("on the primary again")
		return nil
	}
	v, ok := h.at(*row.DeletedAt)
	if !ok || v.DeleteMarker {
		skip("no secondary version from before the deletion")
		return nil
	}
	add(row.DataType, row.ObjectKey, v, v.IsLatest, "deleted on the primary at "+row.DeletedAt.UTC().Format(time.RFC3339))
	return nil
}

func (r *Restorer) planKey(ctx context.Context, sel Selector, typ, key string, h history, add addFunc, skip func(string)) error {
	latest := h[0]
	switch {
	case !sel.AsOf.IsZero():
		if !latest.LastModified.After(sel.AsOf) {
			skip("unchanged since the time asked for")
			return nil
		}
		v, ok := h.at(sel.AsOf)
		if !ok || v.DeleteMarker {
			skip("did not exist at the time asked for")
			return nil
		}
		add(typ, key, v, v.IsLatest, "changed after "+sel.AsOf.UTC().Format(time.RFC3339))
	case !sel.WrittenAfter.IsZero():
		if latest.DeleteMarker || !latest.LastModified.After(sel.WrittenAfter) {
			skip("not written to the secondary after the time asked for")
			return nil
		}
		add(typ, key, latest, true, "written to the secondary at "+latest.LastModified.UTC().Format(time.RFC3339))
	default:
		if latest.DeleteMarker {
			skip("deleted on the secondary too (use a time window to restore an older version)")
			return nil
		}
		missing, err := r.missingOnPrimary(ctx, key)
		if err != nil {
			return err
		}
		if !missing {
			skip("present on the primary")
			return nil
		}
		add(typ, key, latest, true, "missing on the primary")
	}
	return nil
}

func (r *Restorer) missingOnPrimary(ctx context.Context, key string) (bool, error) {
	_, err := r.Primary.Head(ctx, key)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, blobstore.ErrNotFound):
		return true, nil
	}
	return false, fmt.Errorf("restore: head primary %s: %w", key, err)
}

// Progress is reported after every restored object.
type Progress struct {
	Done, Total  int
	Bytes        int64
	Skipped      int // already in the journal
	LastKey      string
	LastDuration time.Duration
	StartedAt    time.Time
	BytesPlanned int64
}

// ExecOptions configure Execute.
type ExecOptions struct {
	// Journal, when set, is read first (keys restored by an earlier run are
	// skipped) and gets one line per restored object: a rerun resumes.
	Journal io.ReadWriter
	// Progress is called after each object; nil = none.
	Progress func(Progress)
	// Actor names the operator in the audit trail.
	Actor string
}

// Result is what Execute did.
type Result struct {
	Restored int   `json:"restored"`
	Skipped  int   `json:"skipped"` // found in the journal
	Bytes    int64 `json:"bytes"`
}

// journalLine is one finished object in the journal.
type journalLine struct {
	Key     string `json:"key"`
	Version string `json:"version_id"`
	SHA256  string `json:"sha256"`
}

// Execute restores the plan's items one by one: stream the secondary
// version to the primary, read the primary back and compare SHA-256, bring
// the secondary's current version to the same bytes when it differs, mark
// the registry row restored, append to the journal. It stops at the first
// failure (a rerun with the same journal resumes after the last success).
func (r *Restorer) Execute(ctx context.Context, p Plan, o ExecOptions) (Result, error) {
	done := map[string]bool{}
	if o.Journal != nil {
		sc := bufio.NewScanner(o.Journal)
		for sc.Scan() {
			var l journalLine
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Key != "" {
				done[l.Key+"\x00"+l.Version] = true
			}
		}
		if err := sc.Err(); err != nil {
			return Result{}, fmt.Errorf("restore: read journal: %w", err)
		}
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	prog := Progress{Total: len(p.Items), StartedAt: time.Now(), BytesPlanned: p.Bytes}
	for _, it := range p.Items {
		if done[it.Key+"\x00"+it.VersionID] {
			res.Skipped++
			prog.Skipped++
			continue
		}
		start := time.Now()
		sha, err := r.restoreOne(ctx, it)
		if err != nil {
			return res, err
		}
		if o.Journal != nil {
			line, _ := json.Marshal(journalLine{Key: it.Key, Version: it.VersionID, SHA256: sha})
			if _, err := o.Journal.Write(append(line, '\n')); err != nil {
				return res, fmt.Errorf("restore: write journal: %w", err)
			}
		}
		res.Restored++
		res.Bytes += it.Size
		log.InfoContext(ctx, "restored", "data_type", it.DataType, "key", it.Key, "version_id", it.VersionID, "sha256", sha)
		if o.Progress != nil {
			prog.Done, prog.Bytes, prog.LastKey, prog.LastDuration = res.Restored, res.Bytes, it.Key, time.Since(start)
			o.Progress(prog)
		}
	}
	if err := r.Registry.AuditRestore(ctx, o.Actor, p.Selector, int64(res.Restored)); err != nil {
		return res, err
	}
	return res, nil
}

func (r *Restorer) restoreOne(ctx context.Context, it Item) (string, error) {
	res, err := blobstore.Copy(ctx, versionReader{r.Secondary, it.VersionID}, r.Primary, it.Key)
	if err != nil {
		return "", fmt.Errorf("restore: %s (version %s): %w", it.Key, it.VersionID, err)
	}
	d, err := r.Primary.Hash(ctx, it.Key)
	if err != nil {
		return "", fmt.Errorf("restore: read back %s: %w", it.Key, err)
	}
	if got := d.SHA256; got != res.SHA256 {
		return "", fmt.Errorf("%w: %s: secondary version %s has %s, the primary now returns %s", ErrVerify, it.Key, it.VersionID, res.SHA256, got)
	}
	if !it.Current {
		// The secondary's current copy is the damaged one: make the
		// restored bytes current there too, so both sides agree.
		sres, err := blobstore.Copy(ctx, versionReader{r.Secondary, it.VersionID}, r.Secondary, it.Key)
		if err != nil {
			return "", fmt.Errorf("restore: make %s current on the secondary: %w", it.Key, err)
		}
		if sres.SHA256 != res.SHA256 {
			return "", fmt.Errorf("%w: %s: secondary copy %s, primary %s", ErrVerify, it.Key, sres.SHA256, res.SHA256)
		}
	}
	err = r.Registry.MarkRestored(ctx, registry.Restored{
		DataType: it.DataType, Key: it.Key, Size: res.Size,
		ETag: res.ETag, VersionID: res.VersionID, SHA256: res.SHA256,
	})
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	return res.SHA256, nil
}

var _ blobstore.Source = versionReader{}

// versionReader opens one fixed version of a key on b (a blobstore.Source).
type versionReader struct {
	b         Bucket
	versionID string
}

// Open opens version versionID of key.
func (v versionReader) Open(ctx context.Context, key string) (io.ReadCloser, blobstore.Object, error) {
	return v.b.OpenVersion(ctx, key, v.versionID)
}
