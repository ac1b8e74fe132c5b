package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Job names of the passes recorded in the pass log.
const (
	// JobBackfill is a backfill pass (functions/backfill, geoblob backfill).
	JobBackfill = "backfill"
	// JobVerify is a verification pass (functions/verify, geoblob verify).
	JobVerify = "verify"
)

// PassResult is what one pass reports to the pass log.
type PassResult struct {
	Job      string
	Started  time.Time
	Finished time.Time
	// Err is the pass's error; nil means the pass succeeded. Its text is
	// stored cut to MaxFailureLen characters.
	Err error
	// Summary is the pass's report (any JSON-encodable value).
	Summary any
}

// Pass is the pass log's record of a job: its last pass and totals.
type Pass struct {
	Job        string          `json:"job"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
	OK         bool            `json:"ok"`
	Error      string          `json:"error,omitempty"`
	Summary    json.RawMessage `json:"summary"`
	Passes     int64           `json:"passes"`
	Failures   int64           `json:"failures"`
	// LastOKAt is when the last successful pass finished (nil: never).
	LastOKAt *time.Time `json:"last_ok_at,omitempty"`
}

const qRecordPass = `INSERT INTO pass_log AS p (job, started_at, finished_at, ok, error, summary, passes, failures, last_ok_at)
VALUES ($1, $2, $3, $4, $5, $6, 1, CASE WHEN $4 THEN 0 ELSE 1 END, CASE WHEN $4 THEN $3::timestamptz END)
ON CONFLICT (job) DO UPDATE SET
	started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, ok = EXCLUDED.ok,
	error = EXCLUDED.error, summary = EXCLUDED.summary, passes = p.passes + 1,
	failures = p.failures + EXCLUDED.failures, last_ok_at = coalesce(EXCLUDED.last_ok_at, p.last_ok_at)`

const qPasses = `SELECT job, started_at, finished_at, ok, error, summary, passes, failures, last_ok_at
FROM pass_log ORDER BY job`

// RecordPass stores the outcome of a pass as its job's last pass.
func (s *Store) RecordPass(ctx context.Context, p PassResult) error {
	if p.Job == "" {
		return fmt.Errorf("registry: record pass: empty job")
	}
	summary := []byte("{}")
	if p.Summary != nil {
		b, err := json.Marshal(p.Summary)
		if err != nil {
			return fmt.Errorf("registry: record pass %s: summary: %w", p.Job, err)
		}
		summary = b
	}
	errText := ""
	if p.Err != nil {
		errText = TruncateFailure(p.Err.Error())
	}
	if p.Finished.IsZero() {
		p.Finished = s.now()
	}
	if _, err := s.pool.Exec(ctx, qRecordPass, p.Job, p.Started.Truncate(time.Microsecond),
		p.Finished.Truncate(time.Microsecond), p.Err == nil, errText, summary); err != nil {
		return fmt.Errorf("registry: record pass %s: %w", p.Job, err)
	}
	return nil
}

// Passes returns the last pass of every job that has run, ordered by job.
func (s *Store) Passes(ctx context.Context) ([]Pass, error) {
	return collect(ctx, s.pool, "passes", func(r pgx.CollectableRow) (Pass, error) {
		var p Pass
		var summary []byte
		err := r.Scan(&p.Job, &p.StartedAt, &p.FinishedAt, &p.OK, &p.Error, &summary, &p.Passes, &p.Failures, &p.LastOKAt)
		p.Summary = summary
		return p, err
	}, qPasses)
}
