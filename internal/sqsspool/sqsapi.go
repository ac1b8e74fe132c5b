package sqsspool

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// SQSAPI is the part of the Amazon SQS API a geoblob dispatcher calls,
// SendMessageBatch (and SendMessage), in SQS's JSON protocol (what
// aws-sdk-go-v2's sqs client speaks; point it here with a BaseEndpoint or
// AWS_ENDPOINT_URL_SQS). Each message is appended to the spool of the
// queue its QueueUrl names (the URL's last path segment), so the local
// stack's dispatchers run the same sending code as in AWS. Requests are
// not authenticated: serve it on 127.0.0.1 only.
type SQSAPI struct {
	queues map[string]Enqueuer
	logger *slog.Logger
}

var _ http.Handler = (*SQSAPI)(nil)

// SQSTargetPrefix starts the X-Amz-Target header of every SQS JSON call;
// IsSQSRequest tells them from the receiver's webhook POSTs.
const SQSTargetPrefix = "AmazonSQS."

// IsSQSRequest reports whether req is an SQS JSON-protocol call.
func IsSQSRequest(req *http.Request) bool {
	return strings.HasPrefix(req.Header.Get("X-Amz-Target"), SQSTargetPrefix)
}

// NewSQSAPI serves the named queues (queue name → spool).
func NewSQSAPI(queues map[string]Enqueuer, logger *slog.Logger) *SQSAPI {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SQSAPI{queues: queues, logger: logger}
}

// QueueURL is the URL of queue name at endpoint (as SQS spells them,
// <endpoint>/<account>/<name>).
func QueueURL(endpoint, name string) string {
	return strings.TrimSuffix(endpoint, "/") + "/000000000000/" + name
}

type sqsEntry struct {
	ID          string `json:"Id"`
	MessageBody string `json:"MessageBody"`
}

type sqsSendBatch struct {
	QueueURL string     `json:"QueueUrl"`
	Entries  []sqsEntry `json:"Entries"`
	// SendMessage's fields.
	MessageBody string `json:"MessageBody"`
}

type sqsResult struct {
	ID               string `json:"Id,omitempty"`
	MessageID        string `json:"MessageId"`
	MD5OfMessageBody string `json:"MD5OfMessageBody"`
}

type sqsFailure struct {
	ID          string `json:"Id"`
	SenderFault bool   `json:"SenderFault"`
	Code        string `json:"Code"`
	Message     string `json:"Message"`
}

// ServeHTTP implements http.Handler.
func (a *SQSAPI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), SQSTargetPrefix)
	if req.Method != http.MethodPost || (op != "SendMessageBatch" && op != "SendMessage") {
		a.fail(w, http.StatusBadRequest, "UnsupportedOperation", fmt.Sprintf("%s %s is not served by the local SQS stand-in", req.Method, op))
		return
	}
	var in sqsSendBatch
	if err := json.NewDecoder(io.LimitReader(req.Body, 11*maxBody)).Decode(&in); err != nil {
		a.fail(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return
	}
	u, err := url.Parse(in.QueueURL)
	q, ok := a.queues[path.Base(u.Path)]
	if err != nil || !ok {
		a.fail(w, http.StatusBadRequest, "AWS.SimpleQueueService.NonExistentQueue", "no queue "+in.QueueURL)
		return
	}
	if op == "SendMessage" {
		res, ferr := a.append(q, sqsEntry{MessageBody: in.MessageBody})
		if ferr != nil {
			a.fail(w, http.StatusInternalServerError, ferr.Code, ferr.Message)
			return
		}
		a.reply(w, res)
		return
	}
	if len(in.Entries) == 0 || len(in.Entries) > 10 {
		a.fail(w, http.StatusBadRequest, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", fmt.Sprintf("%d entries", len(in.Entries)))
		return
	}
	out := struct {
		Successful []sqsResult  `json:"Successful"`
		Failed     []sqsFailure `json:"Failed"`
	}{Successful: []sqsResult{}, Failed: []sqsFailure{}}
	for _, e := range in.Entries {
		res, ferr := a.append(q, e)
		if ferr != nil {
			out.Failed = append(out.Failed, *ferr)
			continue
		}
		out.Successful = append(out.Successful, res)
	}
	a.reply(w, out)
}

// append spools one message durably.
func (a *SQSAPI) append(q Enqueuer, e sqsEntry) (sqsResult, *sqsFailure) {
	if len(e.MessageBody) == 0 || len(e.MessageBody) > maxBody {
		return sqsResult{}, &sqsFailure{ID: e.ID, SenderFault: true, Code: "InvalidParameterValue", Message: "message body must be 1 byte to 256 KiB"}
	}
	id, err := q.Append([]byte(e.MessageBody))
	if err != nil {
		a.logger.Warn("sqsspool: SQS API could not spool a message", "error", err)
		return sqsResult{}, &sqsFailure{ID: e.ID, Code: "InternalError", Message: err.Error()}
	}
	sum := md5.Sum([]byte(e.MessageBody))
	return sqsResult{ID: e.ID, MessageID: id, MD5OfMessageBody: hex.EncodeToString(sum[:])}, nil
}

func (a *SQSAPI) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(v)
}

func (a *SQSAPI) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", code+";Sender")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
}
