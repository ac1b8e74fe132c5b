// Package iamcheck proves that every geoblob function's IAM role grants
// exactly what the function's AWS calls need, two ways:
//
//   - Recorded calls against AWS's rules: an end-to-end scenario records
//     every S3 request each function makes (Recorder, Classify) into the
//     fixture testdata/calls.json; Required maps each call to the IAM
//     actions AWS's Service Authorization Reference demands, and Check
//     compares them with the role's statements taken from the synthesized
//     CDK template (the infra tests do that): every need granted on the
//     right resource, nothing granted that no call needs.
//   - Enforcement by a real server: the same scenario runs each function
//     as its own MinIO user whose policy is MinIOPolicy of the function's
//     statements (fixture testdata/policies.json, which an infra test keeps
//     equal to the synthesized template).
//
// Both fixtures are rewritten with `make iam-fixtures`; docs/infrastructure.md
// says how to add a call.
package iamcheck

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// Symbolic bucket names used in calls and policies: the real names differ
// per deployment, the roles do not.
const (
	Primary   = "primary"
	Secondary = "secondary"
	// Inventory is the bucket of backfill's S3 Inventory; its object
	// resource "inventory/*" stands for the objects under the configured
	// inventory prefix.
	Inventory = "inventory"
)

// Call is one request as authorisation sees it: the operation and the
// parameters that change which IAM actions it needs. Keys are left out:
// every grant is on a whole bucket or all its objects.
type Call struct {
	// Function is the function that made the call (functions/<name>).
	Function string `json:"function"`
	// Bucket is the symbolic bucket (Primary, Secondary, Inventory).
	Bucket string `json:"bucket"`
	// Operation is the S3 API operation name (PutObject, HeadObject, ...),
	// or "Unknown ..." when Classify does not know the request.
	Operation string `json:"operation"`
	// VersionID: the request names a version (?versionId=).
	VersionID bool `json:"versionId,omitempty"`
	// Tagging: the request sets tags in the x-amz-tagging header.
	Tagging bool `json:"tagging,omitempty"`
	// ChecksumMode: the request asks for the stored checksum (x-amz-checksum-mode).
	ChecksumMode bool `json:"checksumMode,omitempty"`
}

// String renders the call for messages, e.g. "onCreate: PutObject(tagging) on secondary".
func (c Call) String() string {
	var p []string
	if c.VersionID {
		p = append(p, "versionId")
	}
	if c.Tagging {
		p = append(p, "tagging")
	}
	if c.ChecksumMode {
		p = append(p, "checksumMode")
	}
	op := c.Operation
	if len(p) > 0 {
		op += "(" + strings.Join(p, ",") + ")"
	}
	return fmt.Sprintf("%s: %s on %s", c.Function, op, c.Bucket)
}

func compareCalls(a, b Call) int {
	return cmp.Or(cmp.Compare(a.Function, b.Function), cmp.Compare(a.Bucket, b.Bucket),
		cmp.Compare(a.Operation, b.Operation), cmp.Compare(a.String(), b.String()))
}

// Classify names the S3 operation of a path-style request (as geoblob's
// clients send them locally) and the parameters that matter for
// authorisation. bucketOf maps the request's real bucket name to its
// symbolic name ("" for an unknown bucket, kept as the real name).
func Classify(r *http.Request, bucketOf func(string) string) Call {
	bucket, key := splitPath(r.URL.EscapedPath())
	q := r.URL.Query()
	q.Del("x-id") // the SDK's operation hint (?x-id=PutObject), not a parameter
	has := func(k string) bool { _, ok := q[k]; return ok }
	c := Call{Bucket: bucket}
	if sym := bucketOf(bucket); sym != "" {
		c.Bucket = sym
	}
	c.VersionID = q.Get("versionId") != ""
	c.Tagging = r.Header.Get("x-amz-tagging") != ""
	c.ChecksumMode = strings.EqualFold(r.Header.Get("x-amz-checksum-mode"), "ENABLED")
	m := r.Method
	switch {
	case key == "" && m == http.MethodGet && q.Get("list-type") == "2":
		c.Operation = "ListObjectsV2"
	case key == "" && m == http.MethodGet && has("versions"):
		c.Operation = "ListObjectVersions"
	case key == "" && m == http.MethodGet && has("uploads"):
		c.Operation = "ListMultipartUploads"
	case key == "" && m == http.MethodGet && has("location"):
		c.Operation = "GetBucketLocation"
	case key == "" && m == http.MethodGet && has("notification"):
		c.Operation = "GetBucketNotificationConfiguration"
	case key == "" && m == http.MethodGet && len(q) == 0:
		c.Operation = "ListObjects"
	case key == "" && m == http.MethodHead:
		c.Operation = "HeadBucket"
	case key == "":
		c.Operation = "Unknown bucket request " + m + " ?" + queryKeys(q)
	case has("tagging") && m == http.MethodPut:
		c.Operation = "PutObjectTagging"
	case has("tagging") && m == http.MethodGet:
		c.Operation = "GetObjectTagging"
	case has("tagging") && m == http.MethodDelete:
		c.Operation = "DeleteObjectTagging"
	case has("attributes") && m == http.MethodGet:
		c.Operation = "GetObjectAttributes"
	case m == http.MethodPut && has("uploadId") && has("partNumber") && r.Header.Get("x-amz-copy-source") != "":
		c.Operation = "UploadPartCopy"
	case m == http.MethodPut && has("uploadId") && has("partNumber"):
		c.Operation = "UploadPart"
	case m == http.MethodPost && has("uploads"):
		c.Operation = "CreateMultipartUpload"
	case m == http.MethodPost && has("uploadId"):
		c.Operation = "CompleteMultipartUpload"
	case m == http.MethodDelete && has("uploadId"):
		c.Operation = "AbortMultipartUpload"
	case m == http.MethodGet && has("uploadId"):
		c.Operation = "ListParts"
	case m == http.MethodPut && r.Header.Get("x-amz-copy-source") != "":
		c.Operation = "CopyObject"
	case m == http.MethodPut && len(q) == 0:
		c.Operation = "PutObject"
	case m == http.MethodGet && onlyKeys(q, "versionId", "partNumber"):
		c.Operation = "GetObject"
	case m == http.MethodHead && onlyKeys(q, "versionId", "partNumber"):
		c.Operation = "HeadObject"
	case m == http.MethodDelete && onlyKeys(q, "versionId"):
		c.Operation = "DeleteObject"
	default:
		c.Operation = "Unknown object request " + m + " ?" + queryKeys(q)
	}
	return c
}

func onlyKeys(q url.Values, allowed ...string) bool {
	for k := range q {
		if !slices.Contains(allowed, k) {
			return false
		}
	}
	return true
}

func queryKeys(q url.Values) string {
	var ks []string
	for k := range q {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, "&")
}

// splitPath splits a path-style request path "/bucket/key" into bucket and key.
func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// Recorder collects the distinct calls of every function. It is safe for
// concurrent use.
type Recorder struct {
	mu    sync.Mutex
	calls map[Call]int
}

// Add records one call.
func (r *Recorder) Add(c Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = map[Call]int{}
	}
	r.calls[c]++
}

// Calls returns the distinct calls recorded so far, sorted.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Call, 0, len(r.calls))
	for c := range r.calls {
		out = append(out, c)
	}
	slices.SortFunc(out, compareCalls)
	return out
}

// Count returns how often c was recorded.
func (r *Recorder) Count(c Call) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[c]
}

// Fixture file names under FixtureDir.
const (
	CallsFile    = "calls.json"
	PoliciesFile = "policies.json"
)

// FixtureDir is this package's testdata directory (found from the source
// file's location, so the infra module's tests find it too).
func FixtureDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata")
}

// ReadCalls reads the recorded calls fixture.
func ReadCalls() ([]Call, error) {
	var calls []Call
	if err := readJSON(CallsFile, &calls); err != nil {
		return nil, err
	}
	return calls, nil
}

// WriteCalls rewrites the recorded calls fixture.
func WriteCalls(calls []Call) error { return writeJSON(CallsFile, calls) }

// CallsOf returns the calls of function.
func CallsOf(calls []Call, function string) []Call {
	var out []Call
	for _, c := range calls {
		if c.Function == function {
			out = append(out, c)
		}
	}
	return out
}

func readJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(FixtureDir(), name))
	if err != nil {
		return fmt.Errorf("iamcheck: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("iamcheck: %s: %w", name, err)
	}
	return nil
}

func writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("iamcheck: %s: %w", name, err)
	}
	if err := os.MkdirAll(FixtureDir(), 0o755); err != nil {
		return fmt.Errorf("iamcheck: %w", err)
	}
	if err := os.WriteFile(filepath.Join(FixtureDir(), name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("iamcheck: %w", err)
	}
	return nil
}
