package iamcheck_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/minio/madmin-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/iamcheck"
	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/internal/testutil/s3test"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/backfill"
	"github.com/geoblob/geoblob/shared/backfill/backfilltest"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
	geoevents "github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/verify"
)

var update = flag.Bool("update", false, "rewrite testdata/calls.json from the calls the scenario records")

func TestMain(m *testing.M) { pgtest.Main(m) }

// Local bucket names; the policies name them symbolically.
const (
	primaryBucket   = "iam-primary"
	secondaryBucket = "iam-secondary"
	inventoryBucket = "iam-inventory"
	inventoryPrefix = "inv/primary"
)

var localBuckets = map[string]string{iamcheck.Primary: primaryBucket, iamcheck.Secondary: secondaryBucket, iamcheck.Inventory: inventoryBucket}

// partSize is the multipart threshold and part size of the scenario: objects
// of bigSize bytes are copied in two parts.
const (
	partSize = 5 << 20
	bigSize  = partSize + 1<<20
)

// world is one MinIO server (both buckets, the secondary versioned as in
// AWS), a registry database, and every function built as in
// functions/<name>/main.go, each signing as its own MinIO user whose policy
// is its role's statements, each talking through its own recording proxy.
type world struct {
	root     map[string]*s3admin.Bucket // the buckets as MinIO's root user, by name
	rec      *iamcheck.Recorder
	handlers map[string]lambda.Handler
	reg      *registry.Store // the dispatchers' claims (verify's scheduled pass)

	mu     sync.Mutex
	faults map[string]string // key -> S3 operation failed with a 500 while set
}

func newWorld(t *testing.T, pols iamcheck.Policies) *world {
	t.Helper()
	ctx := t.Context()
	srv := s3test.NewMinio(t)
	w := &world{root: map[string]*s3admin.Bucket{}, rec: &iamcheck.Recorder{}, handlers: map[string]lambda.Handler{}, faults: map[string]string{}}
	for _, b := range []string{primaryBucket, secondaryBucket, inventoryBucket} {
		w.root[b] = s3test.Bucket(t, srv.Endpoint(), b)
	}
	require.NoError(t, w.root[secondaryBucket].EnableVersioning(ctx))

	dsn := pgtest.NewDB(t)
	pool := pgtest.Connect(t, dsn)
	require.NoError(t, registry.Migrate(ctx, pool))
	w.reg = registry.New(pool, registry.Options{})

	u, err := url.Parse(srv.Endpoint())
	require.NoError(t, err)
	adm, err := madmin.New(u.Host, s3test.AccessKey, s3test.SecretKey, false)
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, fn := range []string{"onCreate", "onDelete", "backfill", "verify", "verifyWorker", "api"} {
		doc, dropped, err := iamcheck.MinIOPolicy(pols[fn], localBuckets)
		require.NoError(t, err)
		// MinIO has no KMS: the KMS statements are checked by the
		// recorded-calls proof (infra/stacks/iam_proof_test.go) only.
		t.Logf("%s: MinIO policy %s (dropped: %v)", fn, doc, dropped)
		user, secret := "geoblob-"+strings.ToLower(fn), "secret-"+strings.ToLower(fn)+"-0123456789"
		require.NoError(t, adm.AddCannedPolicy(ctx, user, doc))
		require.NoError(t, adm.AddUser(ctx, user, secret))
		_, err = adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{user}, User: user})
		require.NoError(t, err)

		proxy := s3test.NewFaultProxy(t, srv.Endpoint(), w.rule(fn))
		env := map[string]string{
			"GEOBLOB_DATABASE_URL":        dsn,
			"GEOBLOB_PRIMARY_BUCKET":      primaryBucket,
			"GEOBLOB_PRIMARY_REGION":      s3test.Region,
			"GEOBLOB_PRIMARY_ENDPOINT":    proxy.Endpoint(),
			"GEOBLOB_SECONDARY_BUCKET":    secondaryBucket,
			"GEOBLOB_SECONDARY_REGION":    s3test.Region,
			"GEOBLOB_SECONDARY_ENDPOINT":  proxy.Endpoint(),
			"GEOBLOB_S3_PATH_STYLE":       "true",
			"GEOBLOB_MULTIPART_THRESHOLD": fmt.Sprint(partSize),
			"GEOBLOB_PART_SIZE":           fmt.Sprint(partSize),
			"GEOBLOB_COPY_CONCURRENCY":    "4",
		}
		getenv := func(k string) string { return env[k] }
		cfg, err := config.FromEnv(getenv)
		require.NoError(t, err)
		creds := credentials.NewStaticCredentialsProvider(user, secret, "")
		cfg.Primary.Credentials, cfg.Secondary.Credentials = creds, creds
		w.handlers[fn] = build(t, fn, cfg, getenv, logger)
		if fn == "backfill" {
			// The same function configured to reconcile from an S3 Inventory.
			invEnv := map[string]string{"GEOBLOB_BACKFILL_INVENTORY": "s3://" + inventoryBucket + "/" + inventoryPrefix + "/"}
			w.handlers["backfill (inventory)"] = build(t, fn, cfg, func(k string) string {
				if v, ok := invEnv[k]; ok {
					return v
				}
				return env[k]
			}, logger)
		}
	}
	return w
}

// build wires function fn as functions/<fn>/main.go does.
func build(t *testing.T, fn string, cfg config.Config, getenv func(string) string, logger *slog.Logger) lambda.Handler {
	t.Helper()
	var (
		h       any
		closeFn func()
		err     error
	)
	switch fn {
	case "onCreate":
		h, closeFn, err = app.EventFunction("onCreate", geoevents.KindCreated)(t.Context(), cfg, logger)
	case "onDelete":
		h, closeFn, err = app.EventFunction("onDelete", geoevents.KindRemoved)(t.Context(), cfg, logger)
	case "backfill":
		var svc *backfill.Service
		svc, err = app.BuildBackfill(t.Context(), cfg, getenv, logger, nil)
		if err == nil {
			h, closeFn = svc.Handle, svc.Close
		}
	case "verify", "verifyWorker": // one binary, two functions (infra/stacks)
		var svc *verify.Service
		svc, err = app.BuildVerify(t.Context(), cfg, getenv, logger)
		if err == nil {
			h, closeFn = svc.Handle, svc.Close
		}
	case "api":
		var srv http.Handler
		srv, closeFn, err = app.BuildAPI(t.Context(), cfg, getenv, logger)
		if err == nil {
			h = lambdaurl.Wrap(srv)
		}
	}
	require.NoError(t, err, fn)
	t.Cleanup(closeFn)
	return lambda.NewHandler(h)
}

// rule records every request of function fn and fails the operations set
// in w.faults.
func (w *world) rule(fn string) func(*http.Request) s3test.Fault {
	bucketOf := func(name string) string {
		for sym, local := range localBuckets {
			if local == name {
				return sym
			}
		}
		return ""
	}
	return func(r *http.Request) s3test.Fault {
		c := iamcheck.Classify(r, bucketOf)
		c.Function = fn
		w.rec.Add(c)
		_, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		w.mu.Lock()
		defer w.mu.Unlock()
		if op, ok := w.faults[key]; ok && op == c.Operation {
			return s3test.Fault{Status: http.StatusInternalServerError}
		}
		return s3test.Fault{}
	}
}

func (w *world) fail(key, op string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if op == "" {
		delete(w.faults, key)
	} else {
		w.faults[key] = op
	}
}

func (w *world) invoke(t *testing.T, fn string, payload any) []byte {
	t.Helper()
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	out, err := w.handlers[fn].Invoke(t.Context(), b)
	require.NoError(t, err, "%s", fn)
	return out
}

func (w *world) put(t *testing.T, bucket, key string, size int) {
	t.Helper()
	body := bytes.Repeat([]byte(key[:1]), size)
	s3test.Put(t, w.root[bucket], key, body)
}

func (w *world) delete(t *testing.T, key string) {
	t.Helper()
	require.NoError(t, w.root[primaryBucket].Store().Delete(t.Context(), key))
}

// writeInventory writes an S3 Inventory (CSV) of the primary's objects
// into the inventory bucket.
func (w *world) writeInventory(t *testing.T) {
	t.Helper()
	var entries []backfill.InventoryEntry
	require.NoError(t, w.root[primaryBucket].Store().List(t.Context(), blobstore.ListOptions{}, func(page []blobstore.Object) error {
		for _, o := range page {
			entries = append(entries, backfill.InventoryEntry{Key: o.Key, Size: o.Size, ETag: strings.Trim(o.ETag, `"`)})
		}
		return nil
	}))
	_, err := backfilltest.WriteInventory(primaryBucket, inventoryPrefix, time.Now(), 100, slices.Values(entries),
		func(key string, content []byte) error {
			_, err := w.root[inventoryBucket].Put(t.Context(), key, content, "")
			return err
		})
	require.NoError(t, err)
}

// onSecondary reports whether key has a current version on the secondary.
func (w *world) onSecondary(t *testing.T, key string) bool {
	t.Helper()
	_, err := w.root[secondaryBucket].Store().Head(t.Context(), key)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}

// sequencer orders the scenario's events: later events carry greater sequencers.
var sequencer atomic.Int64

// sqsBatch wraps one EventBridge S3 event per key in an SQS batch, as the
// functions' queues deliver them in AWS; created objects carry their size
// and ETag as read from the primary.
func (w *world) sqsBatch(t *testing.T, detailType string, keys ...string) events.SQSEvent {
	t.Helper()
	var ev events.SQSEvent
	for _, key := range keys {
		object := map[string]any{"key": key, "sequencer": fmt.Sprintf("%016X", sequencer.Add(1))}
		reason := "DeleteObject"
		if detailType == "Object Created" {
			reason = "PutObject"
			head, err := w.root[primaryBucket].Store().Head(t.Context(), key)
			require.NoError(t, err)
			object["size"], object["etag"] = head.Size, strings.Trim(head.ETag, `"`)
		}
		body, err := json.Marshal(map[string]any{
			"version": "0", "id": "evt-" + object["sequencer"].(string), "detail-type": detailType, "source": "aws.s3",
			"account": "123456789012", "time": "2026-11-30T12:00:00Z", "region": s3test.Region,
			"resources": []string{"arn:aws:s3:::" + primaryBucket},
			"detail": map[string]any{
				"version": "0", "bucket": map[string]any{"name": primaryBucket}, "object": object, "reason": reason,
			},
		})
		require.NoError(t, err)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: key, Body: string(body), EventSource: "aws:sqs"})
	}
	return ev
}

func failedItems(t *testing.T, out []byte) []string {
	t.Helper()
	var resp events.SQSEventResponse
	require.NoError(t, json.Unmarshal(out, &resp))
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// Keys of the scenario (each matches a built-in data type).
const (
	smallKey       = "npm/iam-small/-/iam-small-1.0.0.tgz"
	deletedKey     = "npm/iam-deleted/-/iam-deleted-1.0.0.tgz"
	bigKey         = "maven/com/acme/iam-big/1.0.0/iam-big-1.0.0.jar"
	badTagKey      = "maven/com/acme/iam-badtag/1.0.0/iam-badtag-1.0.0.jar"
	badPartKey     = "maven/com/acme/iam-badpart/1.0.0/iam-badpart-1.0.0.jar"
	lateKey        = "npm/iam-late/-/iam-late-1.0.0.tgz"
	lateBigKey     = "maven/com/acme/iam-late-big/1.0.0/iam-late-big-1.0.0.jar"
	lateBadPartKey = "maven/com/acme/iam-late-badpart/1.0.0/iam-late-badpart-1.0.0.jar"
	orphanKey      = "npm/iam-orphan/-/iam-orphan-1.0.0.tgz"
	lostDelKey     = "npm/iam-lost-delete/-/iam-lost-delete-1.0.0.tgz"
	neverSynced    = "generic/iam/1.0.0/never.bin"
)

// scenario runs every function through each of its S3 code paths and
// asserts the outcomes (objects on the secondary, function reports).
func (w *world) scenario(t *testing.T) {
	// onCreate: small copies (PutObject with the checksum tag header),
	// multipart copies (tag by version id, HEAD by version id), a copy whose
	// tagging fails (the unverified object is removed) and one whose part
	// upload fails (the upload is aborted).
	for _, k := range []string{smallKey, deletedKey, lostDelKey} {
		w.put(t, primaryBucket, k, 10<<10)
	}
	for _, k := range []string{bigKey, badTagKey, badPartKey} {
		w.put(t, primaryBucket, k, bigSize)
	}
	w.fail(badTagKey, "PutObjectTagging")
	w.fail(badPartKey, "UploadPart")
	out := w.invoke(t, "onCreate", w.sqsBatch(t, "Object Created", smallKey, deletedKey, lostDelKey, bigKey, badTagKey, badPartKey))
	assert.ElementsMatch(t, []string{badTagKey, badPartKey}, failedItems(t, out))
	w.fail(badTagKey, "")
	w.fail(badPartKey, "")
	for _, k := range []string{smallKey, deletedKey, lostDelKey, bigKey} {
		assert.True(t, w.onSecondary(t, k), "onCreate copied %s", k)
	}
	assert.False(t, w.onSecondary(t, badTagKey), "an object whose checksum tag failed is not left current")
	assert.False(t, w.onSecondary(t, badPartKey), "a failed multipart upload leaves no object")

	// onDelete: HEAD-guarded delete of the secondary copy.
	w.delete(t, deletedKey)
	out = w.invoke(t, "onDelete", w.sqsBatch(t, "Object Deleted", deletedKey, neverSynced))
	assert.Empty(t, failedItems(t, out))
	assert.False(t, w.onSecondary(t, deletedKey), "onDelete removed the copy")

	// backfill: objects no event announced (small and multipart), a delete
	// no event announced, an orphan on the secondary.
	w.put(t, primaryBucket, lateKey, 3<<10)
	w.put(t, primaryBucket, lateBigKey, bigSize)
	w.put(t, primaryBucket, lateBadPartKey, bigSize)
	w.put(t, secondaryBucket, orphanKey, 100)
	w.delete(t, lostDelKey)
	w.fail(lateBadPartKey, "UploadPart")
	out = w.invoke(t, "backfill", map[string]any{"phases": []string{"recover", "reconcile", "sync", "orphans"}, "orphans": "delete"})
	w.fail(lateBadPartKey, "")
	var brep backfill.Report
	require.NoError(t, json.Unmarshal(out, &brep), "%s", out)
	assert.GreaterOrEqual(t, brep.Sync.Synced, int64(2), "%s", out)
	assert.GreaterOrEqual(t, brep.Sync.Failed, int64(1), "%s", out)
	assert.False(t, w.onSecondary(t, lateBadPartKey), "a failed multipart upload leaves no object")
	assert.True(t, w.onSecondary(t, lateKey), "backfill copied %s", lateKey)
	assert.True(t, w.onSecondary(t, lateBigKey), "backfill copied %s", lateBigKey)
	assert.False(t, w.onSecondary(t, lostDelKey), "backfill propagated the lost delete")
	assert.False(t, w.onSecondary(t, orphanKey), "backfill deleted the orphan")

	// backfill reconciling from an S3 Inventory (manifest and CSV files read
	// from the inventory bucket instead of listing the primary).
	w.writeInventory(t)
	out = w.invoke(t, "backfill (inventory)", map[string]any{"phases": []string{"reconcile"}})
	brep = backfill.Report{}
	require.NoError(t, json.Unmarshal(out, &brep), "%s", out)
	assert.Equal(t, "inventory", brep.Reconcile.Source, "%s", out)
	assert.Positive(t, brep.Reconcile.Listed, "%s", out)

	// verifyWorker: verification requests as verify's scheduled pass
	// dispatches them (a secondary and a primary claim), in an SQS event.
	secs, err := w.reg.ClaimSecondary(t.Context(), registry.VerifyClaimOptions{Limit: 1, ReverifyInterval: 24 * time.Hour})
	require.NoError(t, err)
	pris, err := w.reg.ClaimPrimary(t.Context(), registry.VerifyClaimOptions{Limit: 1, ReverifyInterval: time.Microsecond})
	require.NoError(t, err)
	require.Len(t, secs, 1)
	require.Len(t, pris, 1)
	var reqs events.SQSEvent
	for i, c := range append(secs, pris...) {
		side := geoevents.SideSecondary
		if i == 1 {
			side = geoevents.SidePrimary
		}
		body, err := geoevents.EncodeVerifyRequests([]geoevents.VerifyRequest{{DataType: c.DataType, Key: c.ObjectKey,
			Side: side, Generation: c.Generation, ClaimedAt: c.ClaimedAt()}})
		require.NoError(t, err)
		reqs.Records = append(reqs.Records, events.SQSMessage{MessageId: fmt.Sprint(i), Body: string(body), EventSource: "aws:sqs"})
	}
	out = w.invoke(t, "verifyWorker", reqs)
	assert.Empty(t, failedItems(t, out))
	row, err := w.reg.Get(t.Context(), secs[0].DataType, secs[0].ObjectKey)
	require.NoError(t, err)
	assert.Equal(t, registry.VerificationSucceeded, row.VerificationState, "the worker verified %s", secs[0].ObjectKey)

	// verify: fast mode reads stored checksums (HEAD in checksum mode) and
	// falls back to reading the bytes (multipart copies, primaries).
	out = w.invoke(t, "verify", map[string]any{"mode": "fast"})
	var vrep verify.Report
	require.NoError(t, json.Unmarshal(out, &vrep), "%s", out)
	assert.GreaterOrEqual(t, vrep.Secondary.Matched, int64(3), "%s", out) // and one by verifyWorker above
	assert.Positive(t, vrep.Secondary.Fast, "%s", out)
	assert.Zero(t, vrep.Secondary.Errors+vrep.Primary.Errors+vrep.Secondary.Mismatched, "%s", out)

	// api: the health check's read-only probes (GET /api/v1/health through
	// the function URL event AWS sends).
	url, err := os.ReadFile("../../testdata/sam/api-url.json")
	require.NoError(t, err)
	out = w.invoke(t, "api", json.RawMessage(url))
	// A streamed function URL response: JSON prelude, 8 NUL bytes, body.
	_, body, ok := bytes.Cut(out, make([]byte, 8))
	require.True(t, ok, "%q", out)
	var rep health.Report
	require.NoError(t, json.Unmarshal(body, &rep), "%s", body)
	status := map[string]health.Result{}
	for _, c := range rep.Checks {
		status[c.Name] = c
	}
	assert.Equal(t, health.StatusOK, status[health.CheckPrimary].Status, "%+v", status[health.CheckPrimary])
	assert.Equal(t, health.StatusOK, status[health.CheckSecondary].Status, "%+v", status[health.CheckSecondary])
	// The bucket has no notification configuration; the read is allowed.
	assert.Contains(t, status[health.CheckNotifications].Detail, "sends no ObjectCreated notifications")
}

// TestScenario runs every function against MinIO, each as its own user
// limited to its role's statements (proof 2: enforcement by a real server),
// records every S3 request each one makes and checks the recording against
// testdata/calls.json, which the infra test checks against the synthesized
// template (proof 1). `go test ./internal/iamcheck -run TestScenario -update`
// (or `make iam-fixtures`) rewrites the fixture.
func TestScenario(t *testing.T) {
	pols, err := iamcheck.ReadPolicies()
	require.NoError(t, err)
	w := newWorld(t, pols)
	w.scenario(t)
	got := w.rec.Calls()
	for _, c := range got {
		assert.NotContains(t, c.Operation, "Unknown", "unclassified request %s: teach iamcheck.Classify", c)
	}
	if *update {
		require.NoError(t, iamcheck.WriteCalls(got))
		return
	}
	want, err := iamcheck.ReadCalls()
	require.NoError(t, err)
	assert.Equal(t, want, got, "the functions' S3 calls changed: run `make iam-fixtures` and check the grants (docs/infrastructure.md)")
}

// TestEnforcementFailsWithOneActionRemoved is the other half of proof 2:
// with one action removed from a role, MinIO refuses the call and the
// function's work fails. (MinIO does not check the x-amz-tagging header of
// PutObject, so the tagging case uses a multipart copy, whose
// PutObjectTagging call it does check.)
func TestEnforcementFailsWithOneActionRemoved(t *testing.T) {
	pols, err := iamcheck.ReadPolicies()
	require.NoError(t, err)
	cut := iamcheck.Policies{}
	for fn, sts := range pols {
		cut[fn] = sts
	}
	cut["onCreate"] = iamcheck.Without(pols["onCreate"], "s3:PutObjectTagging")
	cut["onDelete"] = iamcheck.Without(pols["onDelete"], "s3:DeleteObject")
	cut["verify"] = iamcheck.Without(pols["verify"], "s3:GetObject")
	cut["backfill"] = iamcheck.Without(pols["backfill"], "s3:ListBucket")
	w := newWorld(t, cut)

	w.put(t, primaryBucket, bigKey, bigSize)
	w.put(t, primaryBucket, smallKey, 1000)
	out := w.invoke(t, "onCreate", w.sqsBatch(t, "Object Created", bigKey, smallKey))
	assert.Equal(t, []string{bigKey}, failedItems(t, out), "without s3:PutObjectTagging the multipart copy's tagging is refused")
	assert.False(t, w.onSecondary(t, bigKey))

	w.delete(t, smallKey)
	out = w.invoke(t, "onDelete", w.sqsBatch(t, "Object Deleted", smallKey))
	assert.Equal(t, []string{smallKey}, failedItems(t, out), "without s3:DeleteObject the secondary copy cannot be deleted")
	assert.True(t, w.onSecondary(t, smallKey))

	_, err = w.handlers["backfill"].Invoke(t.Context(), []byte(`{"phases":["reconcile"]}`))
	assert.Error(t, err, "without s3:ListBucket backfill cannot list the primary")

	out = w.invoke(t, "verify", map[string]any{"mode": "deep"})
	var vrep verify.Report
	require.NoError(t, json.Unmarshal(out, &vrep))
	assert.Positive(t, vrep.Secondary.Errors+vrep.Primary.Errors+vrep.Primary.Missing, "without s3:GetObject verify cannot read: %s", out)
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
