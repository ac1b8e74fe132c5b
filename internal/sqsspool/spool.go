package sqsspool

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The spool is the local stand-in for the SQS queue between S3 and the
// functions: the receiver appends every webhook body to it durably before
// answering MinIO, and the queue worker (Queue) drains it. One file per
// message, named <seq>.<receives>.json: seq orders messages (and is the SQS
// messageId), receives counts the deliveries that failed so far (renamed
// on each failure, so ApproximateReceiveCount survives a restart). Messages
// that failed MaxReceives times are moved to the dead-letter directory,
// next to a <seq>.reason.txt saying why.

// ErrSpool is wrapped by the errors of the spool's file operations.
var ErrSpool = errors.New("sqsspool: spool")

// Modes of the spool's directories and files: the bodies are the bucket's
// notifications, readable by their owner only.
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
)

// spoolMessage is one spooled webhook body and what the queue knows of it.
type spoolMessage struct {
	seq      uint64
	receives int
	body     []byte
	group    string // ordering group: bucket/key of the body's records ("" for none)

	// Owned by the queue's dispatcher.
	visibleAt time.Time
	inFlight  bool
	spooledAt time.Time
}

// id is the SQS messageId (and receipt handle) of m.
func (m *spoolMessage) id() string { return formatSeq(m.seq) }

func formatSeq(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func spoolName(seq uint64, receives int) string {
	return fmt.Sprintf("%s.%d.json", formatSeq(seq), receives)
}

// parseSpoolName splits "<seq>.<receives>.json".
func parseSpoolName(name string) (uint64, int, bool) {
	base, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return 0, 0, false
	}
	s, r, ok := strings.Cut(base, ".")
	if !ok {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(s, 10, 64)
	rec, err2 := strconv.Atoi(r)
	if err1 != nil || err2 != nil || rec < 0 {
		return 0, 0, false
	}
	return seq, rec, true
}

// spool is the on-disk message store. Append is safe for concurrent use;
// the other methods are called by the queue's dispatcher only.
type spool struct {
	dir, dlq string

	mu    sync.Mutex
	seq   uint64
	fresh []*spoolMessage // appended, not yet taken by the dispatcher
	wake  chan struct{}   // signalled (non-blocking) after each Append
}

// openSpool creates dir and dlq if needed, removes temporary files a crash
// left behind and returns the spool with the messages already in dir.
func openSpool(dir, dlq string) (*spool, []*spoolMessage, error) {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), dlq} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrSpool, err)
		}
		if err := os.Chmod(d, dirMode); err != nil { // made by an older version
			return nil, nil, fmt.Errorf("%w: %w", ErrSpool, err)
		}
	}
	tmp, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	for _, e := range tmp {
		_ = os.Remove(filepath.Join(dir, "tmp", e.Name()))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	s := &spool{dir: dir, dlq: dlq, wake: make(chan struct{}, 1)}
	var msgs []*spoolMessage
	for _, e := range entries {
		seq, rec, ok := parseSpoolName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		body, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrSpool, err)
		}
		info, _ := e.Info()
		m := &spoolMessage{seq: seq, receives: rec, body: body, group: orderingGroup(body)}
		if info != nil {
			m.spooledAt = info.ModTime()
		}
		msgs = append(msgs, m)
		s.seq = max(s.seq, seq)
	}
	// The dead-letter directory holds sequence numbers too: never reuse one.
	dead, err := os.ReadDir(dlq)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	for _, e := range dead {
		if seq, _, ok := parseSpoolName(e.Name()); ok {
			s.seq = max(s.seq, seq)
		}
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].seq < msgs[j].seq })
	return s, msgs, nil
}

// Append stores body durably (temporary file, fsync, rename, fsync of the
// directory) and returns its message id. Only after Append returns nil may
// the sender be told the message was accepted.
func (s *spool) Append(body []byte) (string, error) {
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	name := spoolName(seq, 0)
	tmp := filepath.Join(s.dir, "tmp", name)
	if err := writeSynced(tmp, body); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("%w: %w", ErrSpool, err)
	}
	if err := syncDir(s.dir); err != nil {
		return "", err
	}
	m := &spoolMessage{seq: seq, body: body, group: orderingGroup(body), spooledAt: time.Now()}
	s.mu.Lock()
	s.fresh = append(s.fresh, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return m.id(), nil
}

// take returns the messages appended since the last take, in seq order.
func (s *spool) take() []*spoolMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.fresh
	s.fresh = nil
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// remove deletes a message that was handled.
func (s *spool) remove(m *spoolMessage) error {
	if err := os.Remove(filepath.Join(s.dir, spoolName(m.seq, m.receives))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	return nil
}

// failed records one more failed receive of m (renaming its file).
func (s *spool) failed(m *spoolMessage) error {
	from := filepath.Join(s.dir, spoolName(m.seq, m.receives))
	to := filepath.Join(s.dir, spoolName(m.seq, m.receives+1))
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	m.receives++
	return nil
}

// deadLetter moves m to the dead-letter directory with the reason next to it.
func (s *spool) deadLetter(m *spoolMessage, reason string) error {
	from := filepath.Join(s.dir, spoolName(m.seq, m.receives))
	to := filepath.Join(s.dlq, spoolName(m.seq, m.receives))
	if err := os.WriteFile(filepath.Join(s.dlq, formatSeq(m.seq)+".reason.txt"), []byte(reason+"\n"), fileMode); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	return syncDir(s.dlq)
}

func writeSynced(name string, body []byte) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fileMode)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	_, werr := f.Write(body)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrSpool, name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSpool, err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("%w: sync %s: %w", ErrSpool, dir, err)
	}
	return nil
}

// orderingGroup is the bucket/key a webhook body is about (the first
// record's), so that two events for one key are never in flight at once.
// A body that names no key has no group.
func orderingGroup(body []byte) string {
	var b struct {
		Records []struct {
			S3 struct {
				Bucket struct {
					Name string `json:"name"`
				} `json:"bucket"`
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
	}
	if json.Unmarshal(body, &b) != nil || len(b.Records) == 0 || b.Records[0].S3.Object.Key == "" {
		return ""
	}
	return b.Records[0].S3.Bucket.Name + "/" + b.Records[0].S3.Object.Key
}

// SpoolCounts are the messages waiting in a stack's spool and dead-letter
// directory.
type SpoolCounts struct {
	// Queued messages wait for (another) delivery; Retrying of them
	// failed at least once.
	Queued, Retrying int
	// DeadLetters failed MaxReceives times and are no longer delivered.
	DeadLetters int
	// Oldest is when the oldest queued message was spooled (zero if none).
	Oldest time.Time
}

// CountSpool reads the counts of a spool directory and its dead-letter
// directory (missing directories count as empty).
func CountSpool(dir, dlq string) (SpoolCounts, error) {
	var c SpoolCounts
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	for _, e := range entries {
		_, rec, ok := parseSpoolName(e.Name())
		if !ok {
			continue
		}
		c.Queued++
		if rec > 0 {
			c.Retrying++
		}
		if info, err := e.Info(); err == nil && (c.Oldest.IsZero() || info.ModTime().Before(c.Oldest)) {
			c.Oldest = info.ModTime()
		}
	}
	dead, err := os.ReadDir(dlq)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("%w: %w", ErrSpool, err)
	}
	for _, e := range dead {
		if _, _, ok := parseSpoolName(e.Name()); ok {
			c.DeadLetters++
		}
	}
	return c, nil
}
