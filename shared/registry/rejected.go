package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Rejection is an event that can never be applied (see events.ErrInvalid),
// recorded instead of being retried.
type Rejection struct {
	Function  string // function that received it
	MessageID string // SQS message id; empty for a direct invocation
	EventName string
	Bucket    string
	Key       string // raw bytes as received (may hold NUL or invalid UTF-8)
	Size      int64
	Sequencer string // as received
	VersionID string
	Reason    string // cut to MaxFailureLen
}

const insertRejectedSQL = `INSERT INTO rejected_events
	(received_at, function, message_id, event_name, bucket, object_key, size, sequencer, version_id, reason)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

// RecordRejected stores rejected events in one transaction (all or none).
// Text fields are made storable (NUL removed, invalid UTF-8 replaced); key
// and sequencer keep their exact bytes.
func (s *Store) RecordRejected(ctx context.Context, rs []Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	now := s.now()
	var b pgx.Batch
	for _, r := range rs {
		b.Queue(insertRejectedSQL, now, storable(r.Function), storable(r.MessageID), storable(r.EventName),
			storable(r.Bucket), []byte(r.Key), r.Size, []byte(r.Sequencer), storable(r.VersionID), TruncateFailure(r.Reason))
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, &b).Close() })
	if err != nil {
		return fmt.Errorf("registry: record %d rejected events: %w", len(rs), err)
	}
	return nil
}

// storable makes s storable in a PostgreSQL text column.
func storable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
