// Package dispatch sends geoblob request messages (events.SyncRequest) to
// the queue the workers consume. In AWS that is an SQS queue, reached
// through the one call it needs, SendMessageBatch, behind a small
// interface; the local stack plugs its SQS stand-in into the same interface.
package dispatch

import (
	"context"
	"errors"
	"fmt"
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

// SQS sends sync requests to one queue, one request per message (so one
// message is one copy: the event source mapping's batch size is then the
// requests per invocation and partial batch failures are per request), in
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

// SendSync enqueues reqs. Entries SQS rejects are retried once; if some
// are still not sent, the error (wrapping ErrSend) names how many. Sent
// requests stay sent: a retry of the whole call only duplicates requests,
// which the workers detect.
func (s *SQS) SendSync(ctx context.Context, reqs []events.SyncRequest) error {
	entries := make([]types.SendMessageBatchRequestEntry, 0, len(reqs))
	for i, r := range reqs {
		body, err := events.EncodeSyncRequests([]events.SyncRequest{r})
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
