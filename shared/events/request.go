package events

import (
	"encoding/json"
	"errors"
	"fmt"
)

// SyncRequest asks a worker (onCreate) to do the sync work of one registry
// row that a dispatcher (backfill) claimed: the row is in state started
// with Generation. The worker takes the claim over with a compare-and-set
// on Generation, so a duplicate request copies nothing, and a request for a
// row that changed since does the row's current work instead.
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
)

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
	if len(reqs) == 0 || len(reqs) > MaxRequestsPerMessage {
		return nil, fmt.Errorf("events: a sync request message carries 1 to %d requests, not %d", MaxRequestsPerMessage, len(reqs))
	}
	for i, r := range reqs {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("events: sync request %d: %w", i, err)
		}
	}
	body, err := json.Marshal(struct {
		Geoblob  RequestKind   `json:"geoblob"`
		Version  int           `json:"version"`
		Requests []SyncRequest `json:"requests"`
	}{RequestSync, RequestVersion, reqs})
	if err != nil {
		return nil, fmt.Errorf("events: encode sync requests: %w", err)
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

// parseRequests decodes a request message body into msg.Syncs. A request
// that can not be used is the message's error; the other requests stay.
func parseRequests(msg *Message, body []byte) {
	var m requestMessage
	if err := json.Unmarshal(body, &m); err != nil {
		msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: request message: %v", ErrMalformed, err))
		return
	}
	switch {
	case m.Geoblob != RequestSync:
		msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: request message of unknown kind %q", ErrMalformed, m.Geoblob))
		return
	case m.Version != RequestVersion:
		msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: request message version %d (want %d)", ErrMalformed, m.Version, RequestVersion))
		return
	case len(m.Requests) > MaxRequestsPerMessage:
		msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: %d requests in one message (at most %d)", ErrMalformed, len(m.Requests), MaxRequestsPerMessage))
		return
	}
	for i, raw := range m.Requests {
		var r SyncRequest
		if err := json.Unmarshal(raw, &r); err != nil {
			msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: sync request %d: %v", ErrMalformed, i, err))
			continue
		}
		if err := r.check(); err != nil {
			msg.Err = errors.Join(msg.Err, fmt.Errorf("%w: sync request %d: %v", ErrMalformed, i, err))
			continue
		}
		msg.Syncs = append(msg.Syncs, r)
	}
}
