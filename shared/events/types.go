// Package events turns the payloads that invoke geoblob's functions into
// object events: S3 notifications delivered directly, wrapped in SQS messages
// (raw or inside an SNS envelope), delivered by EventBridge (directly or
// through SQS), and MinIO's webhook format.
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
	KindRemoved      // ObjectRemoved:* and LifecycleExpiration:* (delete, delete marker, MinIO NoOP)
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
	// ErrInvalid: a decoded event that can never be applied, however often
	// it is retried: its key is longer than MaxKeyBytes, not valid UTF-8 or
	// holds NUL, its size is negative, or its sequencer is not 1 to 32 hex
	// digits. Such events are rejected (recorded once), never retried.
	ErrInvalid = errors.New("events: invalid event")
)

// Source values of ObjectEvent.Source.
const (
	SourceS3          = "aws:s3"
	SourceMinIO       = "minio:s3"
	SourceEventBridge = "aws.s3"
)

// ObjectEvent is one object notification, normalized across delivery formats.
type ObjectEvent struct {
	Kind Kind
	// EventName is the S3 notification event name without MinIO's or the
	// lifecycle examples' "s3:" prefix, e.g. "ObjectCreated:Put". EventBridge
	// events are given the equivalent notification name (detail-type and
	// reason mapped: "Object Created"+"PutObject" -> "ObjectCreated:Put").
	EventName string
	Source    string // SourceS3, SourceMinIO or SourceEventBridge
	Bucket    string
	Key       string // URL-decoded exactly once (EventBridge keys arrive unencoded)
	Size      int64
	ETag      string
	VersionID string
	// Sequencer is normalized (see NormalizeSequencer) in Message.Events;
	// in Message.Invalid it is as delivered.
	Sequencer string
	EventTime time.Time
}

// Message is one unit of delivery that succeeds or fails as a whole: an SQS
// message (ID is its messageId) or a direct invocation (ID empty).
type Message struct {
	ID string
	// Events are the records geoblob acts on, in delivery order.
	Events []ObjectEvent
	// Skipped counts records that are deliberately not acted on (s3:TestEvent).
	Skipped int
	// Unsupported are well-formed records with an event name geoblob does not
	// act on (Kind == KindUnknown, e.g. ObjectRestore:Completed). They are
	// counted and logged, never retried.
	Unsupported []ObjectEvent
	// Syncs are the sync requests of a request message (see SyncRequest),
	// in message order.
	Syncs []SyncRequest
	// Verifies are the verification requests of a request message (see
	// VerifyRequest), in message order.
	Verifies []VerifyRequest
	// Invalid are decoded records geoblob would act on that can never
	// succeed (each Err wraps ErrInvalid; see ValidKey, ValidSize,
	// NormalizeSequencer). They must be rejected at once, never retried.
	Invalid []Rejected
	// Err is set when the message, or one of its records, could not be
	// decoded (it wraps ErrMalformed; record errors are joined). Events still
	// holds every record that did decode. It must be reported as a failure
	// (SQS batch item failure, or an error for a direct invocation), never dropped.
	Err error
}

// Rejected is an event that failed validation, with the reason.
type Rejected struct {
	Event ObjectEvent
	Err   error // wraps ErrInvalid
}

// Batch is a decoded invocation payload.
type Batch struct {
	// FromSQS is true when the payload was an SQS event; the handler then
	// answers with partial batch failures.
	FromSQS  bool
	Messages []Message
}
