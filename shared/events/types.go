// Package events turns the payloads that invoke geoblob's functions into
// object events: S3 notifications delivered directly, wrapped in SQS messages,
// delivered by EventBridge (directly or through SQS), and MinIO's webhook format.
package events

import (
	"errors"
	"time"
)

// Kind is what happened to an object.
type Kind int

// Event kinds.
const (
	KindUnknown Kind = iota
	KindCreated      // ObjectCreated:* (Put, Post, Copy, CompleteMultipartUpload)
	KindRemoved      // ObjectRemoved:* and LifecycleExpiration:* (delete, delete marker)
)

// String returns "created", "removed" or "unknown".
func (k Kind) String() string {
	switch k {
	case KindCreated:
		return "created"
	case KindRemoved:
		return "removed"
	}
	return "unknown"
}

// Sentinel errors.
var (
	// ErrMalformed: the payload or record could not be decoded.
	ErrMalformed = errors.New("events: malformed payload")
	// ErrUnsupported: a well-formed event geoblob does not act on (unknown event name).
	ErrUnsupported = errors.New("events: unsupported event")
)

// ObjectEvent is one object notification, normalized across delivery formats.
type ObjectEvent struct {
	Kind      Kind
	EventName string // as delivered, without MinIO's "s3:" prefix, e.g. "ObjectCreated:Put"
	Source    string // "aws:s3", "minio:s3", "aws.s3" (EventBridge)
	Bucket    string
	Key       string // URL-decoded exactly once
	Size      int64
	ETag      string
	VersionID string
	Sequencer string
	EventTime time.Time
}

// Message is one unit of delivery that succeeds or fails as a whole: an SQS
// message (ID is its messageId) or a direct invocation (ID empty).
type Message struct {
	ID     string
	Events []ObjectEvent
	// Skipped counts records that are deliberately not acted on (s3:TestEvent).
	Skipped int
	// Err is set when the message could not be decoded; it must be reported
	// as a failure (SQS batch item failure), never dropped.
	Err error
}

// Batch is a decoded invocation payload.
type Batch struct {
	// FromSQS is true when the payload was an SQS event; the handler then
	// answers with partial batch failures.
	FromSQS  bool
	Messages []Message
}
