package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Error describes a failed store operation. It always wraps the underlying
// cause (Err) and, when the failure has a meaning of its own, one of this
// package's sentinels (Kind), so errors.Is(err, ErrNotFound) works through it.
type Error struct {
	Op     string // store operation: "head", "open", "put", "delete", "list", "checksum"
	Bucket string
	Key    string
	Kind   error // ErrNotFound, ErrNoSuchBucket, ErrSizeMismatch or nil
	Err    error // underlying cause (provider, transport or reader error); may be nil when Kind says it all

	retryable bool
}

// Error returns "blobstore: <op> <bucket>/<key>: <kind>: <cause>".
func (e *Error) Error() string {
	s := fmt.Sprintf("blobstore: %s %s/%s", e.Op, e.Bucket, e.Key)
	if e.Kind != nil {
		s += ": " + kindText(e.Kind)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func kindText(kind error) string {
	switch {
	case errors.Is(kind, ErrNotFound):
		return "not found"
	case errors.Is(kind, ErrNoSuchBucket):
		return "bucket does not exist"
	case errors.Is(kind, ErrSizeMismatch):
		return "size mismatch"
	default:
		return kind.Error()
	}
}

// Unwrap returns the sentinel kind (if any) and the cause (if any).
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Retryable reports whether repeating the same operation later may succeed
// (transport failures, throttling, 5xx, and ErrNoSuchBucket: a missing
// bucket is an outage to fix, not a verdict on the object). It is false for
// ErrNotFound, for a caller-supplied body of the wrong size and for other
// client errors (4xx).
func (e *Error) Retryable() bool { return e.retryable }

// IsRetryable reports whether err is worth retrying. For errors returned by
// this package the decision was taken at the edge from the error's type
// (see Error.Retryable); other errors are classified with the SDK's
// type-based retry rules. Cancellation is never retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.retryable
	}
	return classifyRetryable(err)
}

// classifyRetryable decides by type whether a provider or transport error is
// transient.
func classifyRetryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
}

// isNotFound maps provider errors to ErrNotFound: typed S3 errors, their
// codes, or a bare HTTP 404 (HEAD responses carry no body, so a HEAD of a
// key in a missing bucket looks the same: Store.Head tells them apart).
func isNotFound(err error) bool {
	if isNoSuchBucket(err) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchVersion":
			return true
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 404
}

// opHeadBucket is the Op of HeadBucket errors: a 404 there is the bucket's.
const opHeadBucket = "head-bucket"

// isNoSuchBucket reports a missing bucket (as opposed to a missing key).
func isNoSuchBucket(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchBucket"
}

// opError maps a provider error for op on bucket/key to an *Error.
func opError(op, bucket, key string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Bucket: bucket, Key: key, Err: err}
	switch {
	case isNoSuchBucket(err), op == opHeadBucket && isNotFound(err):
		e.Kind, e.retryable = ErrNoSuchBucket, true
		return e
	case isNotFound(err):
		e.Kind = ErrNotFound
		return e
	}
	e.retryable = classifyRetryable(err)
	return e
}

// sizeError reports that the body did not hold the announced number of
// bytes. A body cut short by the transport (io.ErrUnexpectedEOF) is
// retryable; a clean EOF before size or extra bytes mean the caller's size
// is wrong, which repeating will not fix.
func sizeError(op, bucket, key string, want, got int64, cause error) error {
	detail := fmt.Errorf("want %d bytes, got %d", want, got)
	if cause != nil && !errors.Is(cause, io.EOF) {
		detail = fmt.Errorf("want %d bytes, got %d: %w", want, got, cause)
	}
	return &Error{
		Op: op, Bucket: bucket, Key: key,
		Kind:      ErrSizeMismatch,
		Err:       detail,
		retryable: errors.Is(cause, io.ErrUnexpectedEOF),
	}
}
