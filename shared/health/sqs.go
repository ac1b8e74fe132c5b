package health

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is the SQS call the dead-letter count makes; *sqs.Client
// satisfies it. IAM: sqs:GetQueueAttributes on each queue.
type SQSAPI interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

var _ SQSAPI = (*sqs.Client)(nil)

// SQSDeadLetters counts the messages in SQS dead-letter queues
// (ApproximateNumberOfMessages, visible ones; AWS updates it within about
// a minute).
type SQSDeadLetters struct {
	Client SQSAPI
	// QueueURLs are the dead-letter queues (GEOBLOB_DEAD_LETTER_QUEUES).
	QueueURLs []string
}

var _ DeadLetters = SQSDeadLetters{}

// DeadLetters sums the queues' message counts.
func (d SQSDeadLetters) DeadLetters(ctx context.Context) (int64, string, error) {
	var (
		total int64
		names []string
	)
	for _, u := range d.QueueURLs {
		names = append(names, u[strings.LastIndex(u, "/")+1:])
	}
	where := strings.Join(names, ", ")
	for _, u := range d.QueueURLs {
		out, err := d.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl:       &u,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages},
		})
		if err != nil {
			return 0, where, fmt.Errorf("health: queue %s: %w", u, err)
		}
		v := out.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)]
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, where, fmt.Errorf("health: queue %s: ApproximateNumberOfMessages %q: %w", u, v, err)
		}
		total += n
	}
	return total, where, nil
}
