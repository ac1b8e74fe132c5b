// Package dispatch is how a geoblob dispatcher hands claimed registry rows
// to the workers: Window is the claim-and-send loop with a cap on the
// claims in flight (backfill's sync phase and verify's scheduled pass both
// run it), and SQS sends the request messages (events.SyncRequest,
// events.VerifyRequest) to the queue the workers consume, through the one
// call it needs, SendMessageBatch, behind a small interface; the local
// stack's SQS stand-in answers the same call.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/geoblob/geoblob/shared/events"
)

// BatchSender is the one SQS call the dispatcher makes; *sqs.Client
// satisfies it. IAM: sqs:SendMessage on the queue (SendMessageBatch is
// authorized as SendMessage), and kms:GenerateDataKey when the queue uses a
// customer managed key.
type BatchSender interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

var _ BatchSender = (*sqs.Client)(nil)

// MaxBatch is SQS's limit of entries per SendMessageBatch.
const MaxBatch = 10

// ErrSend wraps every failure to enqueue requests.
var ErrSend = errors.New("dispatch: send")

// SQS sends requests to one queue, one request per message (so one
// message is one copy or one check: the event source mapping's batch size
// is then the requests per invocation and partial batch failures are per
// request), in
// SendMessageBatch calls of up to 10 messages, Parallel calls at once.
type SQS struct {
	client   BatchSender
	queueURL string
	parallel int
}

// NewSQS returns a sender to queueURL making up to parallel calls at once
// (<= 0: 8).
func NewSQS(client BatchSender, queueURL string, parallel int) *SQS {
	if parallel <= 0 {
		parallel = 8
	}
	return &SQS{client: client, queueURL: queueURL, parallel: parallel}
}

// ValidQueueURL reports whether v looks like a queue URL (http or https
// with a host), the check of every GEOBLOB_*_QUEUE_URL variable.
func ValidQueueURL(v string) bool {
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// SendSync enqueues sync requests, one message each (see sendAll).
func (s *SQS) SendSync(ctx context.Context, reqs []events.SyncRequest) error {
	return sendAll(ctx, s, reqs, func(r events.SyncRequest) ([]byte, error) {
		return events.EncodeSyncRequests([]events.SyncRequest{r})
	})
}

// SendVerify enqueues verification requests, one message each (see
// sendAll).
func (s *SQS) SendVerify(ctx context.Context, reqs []events.VerifyRequest) error {
	return sendAll(ctx, s, reqs, func(r events.VerifyRequest) ([]byte, error) {
		return events.EncodeVerifyRequests([]events.VerifyRequest{r})
	})
}

// sendAll enqueues one message per request. Entries SQS rejects are
// retried once; if some are still not sent, the error (wrapping ErrSend)
// names how many. Sent requests stay sent: a retry of the whole call only
// duplicates requests, which the workers detect.
func sendAll[R any](ctx context.Context, s *SQS, reqs []R, encode func(R) ([]byte, error)) error {
	entries := make([]types.SendMessageBatchRequestEntry, 0, len(reqs))
	for i, r := range reqs {
		body, err := encode(r)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrSend, err)
		}
		entries = append(entries, types.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(body)),
		})
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, s.parallel)
	)
	for start := 0; start < len(entries); start += MaxBatch {
		batch := entries[start:min(start+MaxBatch, len(entries))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.send(ctx, batch); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// send sends one batch, retrying the entries SQS failed once.
func (s *SQS) send(ctx context.Context, batch []types.SendMessageBatchRequestEntry) error {
	for attempt := 1; ; attempt++ {
		out, err := s.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL), Entries: batch})
		if err != nil {
			return fmt.Errorf("%w: %d requests to %s: %w", ErrSend, len(batch), s.queueURL, err)
		}
		if len(out.Failed) == 0 {
			return nil
		}
		failed := map[string]bool{}
		var why []string
		for _, f := range out.Failed {
			failed[aws.ToString(f.Id)] = true
			why = append(why, aws.ToString(f.Code)+": "+aws.ToString(f.Message))
		}
		if attempt == 2 {
			return fmt.Errorf("%w: %d of %d requests rejected by %s: %s", ErrSend, len(out.Failed), len(batch), s.queueURL, strings.Join(why, "; "))
		}
		var again []types.SendMessageBatchRequestEntry
		for _, e := range batch {
			if failed[aws.ToString(e.Id)] {
				again = append(again, e)
			}
		}
		batch = again
	}
}
