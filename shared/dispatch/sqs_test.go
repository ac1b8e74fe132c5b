package dispatch_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/dispatch"
	"github.com/geoblob/geoblob/shared/events"
)

// queue records SendMessageBatch calls the way SQS answers them: at most
// 10 entries, ids unique in the call; rejectOnce makes the first attempt
// of an entry fail (SQS's per-entry failure).
type queue struct {
	mu         sync.Mutex
	calls      int
	bodies     []string
	rejectOnce map[string]bool
	err        error
}

func (q *queue) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if q.err != nil {
		return nil, q.err
	}
	if len(in.Entries) > 10 || aws.ToString(in.QueueUrl) == "" {
		return nil, errors.New("AWS.SimpleQueueService.TooManyEntriesInBatchRequest")
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		body := aws.ToString(e.MessageBody)
		if q.rejectOnce[body] {
			delete(q.rejectOnce, body)
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: false})
			continue
		}
		q.bodies = append(q.bodies, body)
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func requests(n int) []events.SyncRequest {
	out := make([]events.SyncRequest, n)
	for i := range out {
		out[i] = events.SyncRequest{DataType: "npm_package_file", Key: "npm/p/-/p-1.0." + string(rune('a'+i%26)) + ".tgz", Generation: int64(i + 1)}
	}
	return out
}

func TestSQSSendsOneRequestPerMessageInBatchesOfTen(t *testing.T) {
	t.Parallel()
	q := &queue{}
	s := dispatch.NewSQS(q, "https://sqs.eu-west-1.amazonaws.com/123456789012/geoblob-sync", 3)
	reqs := requests(25)
	require.NoError(t, s.SendSync(t.Context(), reqs))
	assert.Equal(t, 3, q.calls)
	require.Len(t, q.bodies, 25)
	seen := map[int64]bool{}
	for _, b := range q.bodies {
		parsed, err := events.Parse([]byte(b))
		require.NoError(t, err)
		require.Len(t, parsed.Messages[0].Syncs, 1)
		seen[parsed.Messages[0].Syncs[0].Generation] = true
	}
	assert.Len(t, seen, 25, "every request sent exactly once")
}

func TestSQSRetriesRejectedEntriesOnceThenFails(t *testing.T) {
	t.Parallel()
	reqs := requests(3)
	body, err := events.EncodeSyncRequests(reqs[1:2])
	require.NoError(t, err)
	q := &queue{rejectOnce: map[string]bool{string(body): true}}
	s := dispatch.NewSQS(q, "https://sqs.eu-west-1.amazonaws.com/123456789012/geoblob-sync", 0)
	require.NoError(t, s.SendSync(t.Context(), reqs))
	assert.Equal(t, 2, q.calls, "the rejected entry is sent again")
	assert.Len(t, q.bodies, 3)

	q.err = errors.New("AccessDenied")
	err = s.SendSync(t.Context(), reqs)
	assert.ErrorIs(t, err, dispatch.ErrSend)
	assert.ErrorContains(t, err, "AccessDenied")
}
