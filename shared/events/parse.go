package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	lambdaevents "github.com/aws/aws-lambda-go/events"
)

// Parse decodes an invocation payload. It recognises, by shape:
//
//   - an SQS event (Records[].eventSource "aws:sqs"); each message body may be
//     an S3 notification, an s3:TestEvent, an EventBridge S3 event, an SNS
//     envelope around any of those, or a MinIO webhook body. A body that can
//     not be decoded becomes that message's Err, never a failed batch;
//   - an S3 notification delivered directly (Records[].eventSource "aws:s3"
//     or "minio:s3"), including MinIO's webhook body;
//   - an SNS event delivered directly (Records[].EventSource "aws:sns");
//   - an EventBridge S3 event delivered directly (source "aws.s3");
//   - an s3:TestEvent delivered directly;
//   - a geoblob request message (see SyncRequest and VerifyRequest), in an SQS message or
//     directly.
//
// Only a payload that is none of these (or not JSON) makes Parse return an
// error (wrapping ErrMalformed). A record whose key holds an invalid
// %-escape is a per-message ErrMalformed; the message's other records are kept.
//
// Invariants of every event in Message.Events (the fuzz tests check them):
// Kind is KindCreated or KindRemoved; Bucket is set; Key is valid UTF-8,
// holds no NUL and is 1 to MaxKeyBytes bytes; Size is not negative;
// Sequencer is empty or SequencerWidth upper-case hex digits. A decoded
// record that breaks one of them goes to Message.Invalid instead.
func Parse(payload []byte) (Batch, error) {
	payload = bytes.TrimSpace(payload)
	var probe envelopeProbe
	if err := json.Unmarshal(payload, &probe); err != nil {
		return Batch{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if probe.Records != nil && isSQS(probe.Records) {
		var sqs lambdaevents.SQSEvent
		if err := json.Unmarshal(payload, &sqs); err != nil {
			return Batch{}, fmt.Errorf("%w: sqs event: %v", ErrMalformed, err)
		}
		b := Batch{FromSQS: true, Messages: make([]Message, 0, len(sqs.Records))}
		for _, m := range sqs.Records {
			msg := parseBody([]byte(m.Body))
			msg.ID = m.MessageId
			if msg.Err != nil {
				msg.Err = fmt.Errorf("sqs message %s: %w", m.MessageId, msg.Err)
			}
			b.Messages = append(b.Messages, msg)
		}
		return b, nil
	}
	msg := parseBody(payload)
	if msg.Err != nil && len(msg.Events) == 0 && msg.Skipped == 0 && len(msg.Unsupported) == 0 && len(msg.Syncs) == 0 && len(msg.Verifies) == 0 {
		return Batch{}, msg.Err
	}
	return Batch{Messages: []Message{msg}}, nil
}

// envelopeProbe holds the fields that tell the payload formats apart. Go's
// JSON decoding matches names case-insensitively; the formats do not collide.
type envelopeProbe struct {
	Records    []json.RawMessage `json:"Records"`
	Source     string            `json:"source"`
	DetailType string            `json:"detail-type"`
	Service    string            `json:"Service"`
	Event      string            `json:"Event"`
	Type       string            `json:"Type"`
	Message    *string           `json:"Message"`
	Geoblob    *string           `json:"geoblob"`
}

type recordProbe struct {
	EventSource string `json:"eventSource"` // SNS spells it EventSource; matching is case-insensitive
}

// IsSQSEvent reports whether payload is an SQS event (Records whose
// eventSource is aws:sqs), as an event source mapping delivers.
func IsSQSEvent(payload []byte) bool {
	var probe envelopeProbe
	return json.Unmarshal(bytes.TrimSpace(payload), &probe) == nil && probe.Records != nil && isSQS(probe.Records)
}

func isSQS(records []json.RawMessage) bool {
	for _, r := range records {
		var p recordProbe
		if json.Unmarshal(r, &p) == nil && p.EventSource == "aws:sqs" {
			return true
		}
	}
	return false
}

// maxNesting bounds envelopes inside envelopes (SQS -> SNS -> S3 is two).
const maxNesting = 3

func parseBody(body []byte) Message {
	var msg Message
	parseInto(&msg, bytes.TrimSpace(body), 0)
	return msg
}

// malformed adds to msg's error that its body is malformed (ErrMalformed),
// as format and args say.
func (msg *Message) malformed(format string, args ...any) {
	msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...))
}

func parseInto(msg *Message, body []byte, depth int) {
	if depth > maxNesting {
		msg.malformed("envelopes nested deeper than %d", maxNesting)
		return
	}
	var probe envelopeProbe
	if err := json.Unmarshal(body, &probe); err != nil {
		msg.malformed("%v", err)
		return
	}
	switch {
	case probe.Geoblob != nil:
		parseRequests(msg, body)
	case probe.Service == "Amazon S3" && probe.Event == "s3:TestEvent":
		msg.Skipped++
	case probe.Source == SourceEventBridge && probe.DetailType != "":
		parseEventBridge(msg, body)
	case probe.Type == "Notification" && probe.Message != nil:
		// SNS envelope (SNS -> SQS without raw message delivery).
		parseInto(msg, []byte(*probe.Message), depth+1)
	case len(probe.Records) > 0:
		for i, raw := range probe.Records {
			parseRecord(msg, i, raw, depth)
		}
	case probe.Records != nil:
		// {"Records":[]}: nothing to do.
	default:
		msg.malformed("not an S3, SNS, EventBridge or test event")
	}
}

func parseRecord(msg *Message, i int, raw json.RawMessage, depth int) {
	var p recordProbe
	if err := json.Unmarshal(raw, &p); err != nil {
		msg.malformed("record %d: %v", i, err)
		return
	}
	switch p.EventSource {
	case SourceS3, SourceMinIO:
		parseS3Record(msg, i, raw)
	case "aws:sns":
		var rec lambdaevents.SNSEventRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			msg.malformed("sns record %d: %v", i, err)
			return
		}
		parseInto(msg, []byte(rec.SNS.Message), depth+1)
	default:
		msg.malformed("record %d: unknown eventSource %q", i, p.EventSource)
	}
}

func parseS3Record(msg *Message, i int, raw json.RawMessage) {
	var rec lambdaevents.S3EventRecord
	// S3Object.UnmarshalJSON fails on an invalid %-escape in the key; that is
	// this record's error, the message's other records stay usable.
	if err := json.Unmarshal(raw, &rec); err != nil {
		msg.malformed("s3 record %d: %v", i, err)
		return
	}
	name := strings.TrimPrefix(rec.EventName, "s3:")
	ev := ObjectEvent{
		Kind:      KindOf(name),
		EventName: name,
		Source:    rec.EventSource,
		Bucket:    rec.S3.Bucket.Name,
		Key:       rec.S3.Object.URLDecodedKey,
		Size:      rec.S3.Object.Size,
		ETag:      strings.Trim(rec.S3.Object.ETag, `"`),
		VersionID: rec.S3.Object.VersionID,
		Sequencer: rec.S3.Object.Sequencer,
		EventTime: rec.EventTime,
	}
	add(msg, i, ev)
}

func add(msg *Message, i int, ev ObjectEvent) {
	switch {
	case ev.Bucket == "" || ev.Key == "":
		msg.malformed("record %d (%s): missing bucket or key", i, ev.EventName)
	case ev.Kind == KindUnknown:
		msg.Unsupported = append(msg.Unsupported, ev)
	default:
		raw := ev
		if err := validate(&ev); err != nil {
			msg.Invalid = append(msg.Invalid, Rejected{Event: raw, Err: fmt.Errorf("record %d (%s): %w", i, ev.EventName, err)})
			return
		}
		msg.Events = append(msg.Events, ev)
	}
}

// KindOf maps an S3 notification event name (with or without the "s3:"
// prefix) to a Kind: ObjectCreated:* is created; ObjectRemoved:* (Delete,
// DeleteMarkerCreated, MinIO's NoOP) and LifecycleExpiration:* are removed;
// anything else is KindUnknown.
func KindOf(eventName string) Kind {
	name := strings.TrimPrefix(eventName, "s3:")
	switch {
	case strings.HasPrefix(name, "ObjectCreated:"):
		return KindCreated
	case strings.HasPrefix(name, "ObjectRemoved:"), strings.HasPrefix(name, "LifecycleExpiration:"):
		return KindRemoved
	}
	return KindUnknown
}

// eventBridgeDetail is the detail of an S3 event delivered by EventBridge.
type eventBridgeDetail struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		// Key is NOT URL-encoded in EventBridge events (unlike S3
		// notifications): it is used verbatim, so a literal '+' or '%' stays.
		Key       string `json:"key"`
		Size      int64  `json:"size"`
		ETag      string `json:"etag"`
		VersionID string `json:"version-id"`
		Sequencer string `json:"sequencer"`
	} `json:"object"`
	Reason       string `json:"reason"`
	DeletionType string `json:"deletion-type"`
}

func parseEventBridge(msg *Message, body []byte) {
	var cw lambdaevents.CloudWatchEvent
	if err := json.Unmarshal(body, &cw); err != nil {
		msg.malformed("eventbridge event: %v", err)
		return
	}
	var d eventBridgeDetail
	if err := json.Unmarshal(cw.Detail, &d); err != nil {
		msg.malformed("eventbridge event %s detail: %v", cw.ID, err)
		return
	}
	name := eventBridgeName(cw.DetailType, d.Reason, d.DeletionType)
	add(msg, 0, ObjectEvent{
		Kind:      KindOf(name),
		EventName: name,
		Source:    SourceEventBridge,
		Bucket:    d.Bucket.Name,
		Key:       d.Object.Key,
		Size:      d.Object.Size,
		ETag:      strings.Trim(d.Object.ETag, `"`),
		VersionID: d.Object.VersionID,
		Sequencer: d.Object.Sequencer,
		EventTime: cw.Time.UTC(),
	})
}

// eventBridgeName maps an EventBridge detail-type, reason and deletion-type to
// the equivalent S3 notification event name.
func eventBridgeName(detailType, reason, deletionType string) string {
	switch detailType {
	case "Object Created":
		switch reason {
		case "PutObject":
			return "ObjectCreated:Put"
		case "POST Object":
			return "ObjectCreated:Post"
		case "CopyObject":
			return "ObjectCreated:Copy"
		case "CompleteMultipartUpload":
			return "ObjectCreated:CompleteMultipartUpload"
		}
		return "ObjectCreated:" + strings.ReplaceAll(reason, " ", "")
	case "Object Deleted":
		suffix := "Delete"
		if deletionType == "Delete Marker Created" {
			suffix = "DeleteMarkerCreated"
		}
		if reason == "Lifecycle Expiration" {
			return "LifecycleExpiration:" + suffix
		}
		return "ObjectRemoved:" + suffix
	}
	return detailType
}
