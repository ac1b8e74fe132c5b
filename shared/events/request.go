package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SyncRequest asks a worker (onCreate) to do the sync work of one registry
// row that a dispatcher (backfill) found due and leased; Generation is the
// row's generation then. The worker claims the row with a compare-and-set
// on its state (pending, or failed and due), which also ends the lease, so
// a duplicate request copies nothing, and a request for a row that changed
// since does the row's current work. (A request of an older dispatcher that
// claimed the row itself, state started with Generation, is taken over
// with a compare-and-set on Generation.)
type SyncRequest struct {
	DataType   string `json:"data_type"`
	Key        string `json:"key"` // the object key, verbatim (not URL-encoded)
	Generation int64  `json:"generation"`
}

// RequestKind says what a geoblob request message asks for.
type RequestKind string

// Request kinds (the "geoblob" field of a request message).
const (
	// RequestSync: sync the named rows (replication).
	RequestSync RequestKind = "sync"
	// RequestVerify: verify the named rows (see VerifyRequest).
	RequestVerify RequestKind = "verify"
)

// VerifySide names the copy a VerifyRequest checks.
type VerifySide string

// Verification sides.
const (
	// SideSecondary: hash the secondary copy and compare it with the
	// primary's checksum.
	SideSecondary VerifySide = "secondary"
	// SidePrimary: hash the primary object (record its checksum, or
	// recheck it).
	SidePrimary VerifySide = "primary"
)

// VerifyRequest asks a verify worker to do the verification of one
// registry row that the verify function's scheduled pass (the dispatcher)
// claimed on Side: the row's state of that side is started, with
// Generation and the claim time ClaimedAt (the claim's token). The worker
// takes the claim over with a compare-and-set on that token (which moves
// the claim time on), so a duplicate request hashes nothing; a request
// whose claim is gone (finished, recovered after the stuck-claim timeout,
// reset by a sync) is dropped: the row is claimed again when it is due.
// Mode, when set ("deep" or "fast"), overrides the data type's mode.
//
//	{"geoblob":"verify","version":1,"requests":[{"data_type":"npm_package_file","key":"npm/a/-/a-1.0.0.tgz","side":"secondary","generation":7,"claimed_at":"2026-03-01T12:00:00.123456Z"}]}
type VerifyRequest struct {
	DataType   string     `json:"data_type"`
	Key        string     `json:"key"` // the object key, verbatim (not URL-encoded)
	Side       VerifySide `json:"side"`
	Generation int64      `json:"generation"`
	ClaimedAt  time.Time  `json:"claimed_at"`
	Mode       string     `json:"mode,omitempty"`
}

// RequestVersion is the version of the request message format that
// EncodeSyncRequests writes and Parse accepts.
const RequestVersion = 1

// MaxRequestsPerMessage bounds the requests one message may carry, so a
// message stays far below SQS's 256 KiB (a key is at most 1,024 bytes).
const MaxRequestsPerMessage = 100

// requestMessage is the JSON body of a request message:
//
//	{"geoblob":"sync","version":1,"requests":[{"data_type":"npm_package_file","key":"npm/a/-/a-1.0.0.tgz","generation":7}]}
type requestMessage struct {
	Geoblob  RequestKind       `json:"geoblob"`
	Version  int               `json:"version"`
	Requests []json.RawMessage `json:"requests"`
}

// EncodeSyncRequests returns the message body carrying reqs (1 to
// MaxRequestsPerMessage valid requests).
func EncodeSyncRequests(reqs []SyncRequest) ([]byte, error) {
	return encodeRequests(RequestSync, reqs)
}

// EncodeVerifyRequests returns the message body carrying reqs (1 to
// MaxRequestsPerMessage valid requests).
func EncodeVerifyRequests(reqs []VerifyRequest) ([]byte, error) {
	return encodeRequests(RequestVerify, reqs)
}

// request is what every kind of request can say about itself.
type request interface {
	SyncRequest | VerifyRequest
	check() error
}

func encodeRequests[R request](kind RequestKind, reqs []R) ([]byte, error) {
	if len(reqs) == 0 || len(reqs) > MaxRequestsPerMessage {
		return nil, fmt.Errorf("events: a %s request message carries 1 to %d requests, not %d", kind, MaxRequestsPerMessage, len(reqs))
	}
	for i, r := range reqs {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("events: %s request %d: %w", kind, i, err)
		}
	}
	body, err := json.Marshal(struct {
		Geoblob  RequestKind `json:"geoblob"`
		Version  int         `json:"version"`
		Requests []R         `json:"requests"`
	}{kind, RequestVersion, reqs})
	if err != nil {
		return nil, fmt.Errorf("events: encode %s requests: %w", kind, err)
	}
	return body, nil
}

// check reports what makes r unusable.
func (r SyncRequest) check() error {
	switch {
	case r.DataType == "" || r.Key == "":
		return errors.New("data type and key are required")
	case r.Generation <= 0:
		return fmt.Errorf("generation %d is not positive", r.Generation)
	}
	return ValidKey(r.Key)
}

// check reports what makes r unusable.
func (r VerifyRequest) check() error {
	switch {
	case r.DataType == "" || r.Key == "":
		return errors.New("data type and key are required")
	case r.Side != SideSecondary && r.Side != SidePrimary:
		return fmt.Errorf("side %q is not %q or %q", r.Side, SideSecondary, SidePrimary)
	case r.Generation <= 0:
		return fmt.Errorf("generation %d is not positive", r.Generation)
	case r.ClaimedAt.IsZero():
		return errors.New("claimed_at is required")
	case r.Mode != "" && r.Mode != "deep" && r.Mode != "fast":
		return fmt.Errorf("mode %q is not deep or fast", r.Mode)
	}
	return ValidKey(r.Key)
}

// parseRequests decodes a request message body into msg.Syncs or
// msg.Verifies. A request that can not be used is the message's error; the
// other requests stay.
func parseRequests(msg *Message, body []byte) {
	var m requestMessage
	if err := json.Unmarshal(body, &m); err != nil {
		msg.malformed("request message: %v", err)
		return
	}
	switch {
	case m.Geoblob != RequestSync && m.Geoblob != RequestVerify:
		msg.malformed("request message of unknown kind %q", m.Geoblob)
		return
	case m.Version != RequestVersion:
		msg.malformed("request message version %d (want %d)", m.Version, RequestVersion)
		return
	case len(m.Requests) > MaxRequestsPerMessage:
		msg.malformed("%d requests in one message (at most %d)", len(m.Requests), MaxRequestsPerMessage)
		return
	}
	if m.Geoblob == RequestVerify {
		msg.Verifies = decodeRequests[VerifyRequest](msg, m)
	} else {
		msg.Syncs = decodeRequests[SyncRequest](msg, m)
	}
}

// decodeRequests decodes the requests of m that are usable and joins the
// errors of the others into msg.Err.
func decodeRequests[R request](msg *Message, m requestMessage) []R {
	var out []R
	for i, raw := range m.Requests {
		var r R
		if err := json.Unmarshal(raw, &r); err != nil {
			msg.malformed("%s request %d: %v", m.Geoblob, i, err)
			continue
		}
		if err := r.check(); err != nil {
			msg.malformed("%s request %d: %v", m.Geoblob, i, err)
			continue
		}
		out = append(out, r)
	}
	return out
}
