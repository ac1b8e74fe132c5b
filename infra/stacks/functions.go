package stacks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Trigger says what invokes a function.
type Trigger int

// Triggers.
const (
	// TriggerQueue: an SQS queue (with dead-letter queue) fed by the
	// secondary event bus with the primary bucket's events of EventTypes.
	TriggerQueue Trigger = iota + 1
	// TriggerSchedule: an EventBridge Scheduler schedule (Config.ScheduleFor).
	TriggerSchedule
	// TriggerDeploy: the migrations custom resource, on every deploy that
	// changes the function's code.
	TriggerDeploy
	// TriggerURL: a Lambda function URL with AuthType AWS_IAM (see api.go).
	TriggerURL
	// TriggerRequests: a request queue that another function (its
	// dispatcher) fills with claimed registry rows (see requests.go).
	TriggerRequests
)

// S3Access is the S3 access a function needs. Each flag maps to explicit actions (no
// wildcards) on the named bucket only; see bucketStatements.
type S3Access struct {
	// PrimaryRead: s3:GetObject on the primary's objects and s3:ListBucket on
	// the primary (listing in backfill, and HeadObject/GetObject answer 404
	// instead of 403 on a missing key only with it); kms:Decrypt on
	// PrimaryKMSKeyARN when set.
	PrimaryRead bool
	// SecondaryRead: s3:GetObject on the secondary's objects and
	// s3:ListBucket on the secondary; kms:Decrypt on its key.
	SecondaryRead bool
	// SecondaryWrite: s3:PutObject (also multipart), s3:PutObjectTagging (the
	// checksum tag sent with PutObject), s3:PutObjectVersionTagging (the tag
	// added to the version a multipart upload completed),
	// s3:AbortMultipartUpload, s3:GetObjectVersion (HEAD of the version
	// written) and s3:DeleteObject (removing a write that failed its check)
	// on the secondary's objects, s3:ListBucket on the secondary;
	// kms:GenerateDataKey and kms:Decrypt on its key (multipart uploads
	// under SSE-KMS need both).
	SecondaryWrite bool
	// SecondaryDelete: s3:DeleteObject on the secondary's objects (a delete
	// marker in the versioned bucket; noncurrent versions expire by
	// lifecycle; deleting a missing key succeeds, so no s3:ListBucket).
	SecondaryDelete bool
	// SecondaryList: s3:ListBucket on the secondary (backfill's orphan scan).
	SecondaryList bool
	// InventoryRead: s3:GetObject under Config.BackfillInventory's prefix
	// and s3:ListBucket on its bucket (manifests and CSV files), when set.
	InventoryRead bool
}

// FunctionSpec describes one Lambda function. Adding a function is one entry
// in KnownFunctions plus its directory under functions/.
type FunctionSpec struct {
	// Name is the function's name (and, unless Binary says otherwise, its
	// directory under functions/ and under the asset root).
	Name string
	// Binary, when set, is the directory of the function's code under
	// functions/ and the asset root: a second deployment of another
	// function's binary, with its own role and concurrency.
	Binary string
	// LogicalID is the stable CloudFormation logical id (used by `sam local invoke`).
	LogicalID string
	// Description is the function's description.
	Description string
	// MemoryMB and Timeout size the function.
	MemoryMB int
	Timeout  time.Duration
	// Trigger says what invokes it.
	Trigger Trigger
	// EventTypes are the EventBridge detail-types of S3 events routed to its
	// queue (TriggerQueue only).
	EventTypes []string
	// S3 is the S3 access it needs.
	S3 S3Access
}

// KnownFunctions lists every function geoblob can deploy, in deploy order.
func KnownFunctions() []FunctionSpec {
	return []FunctionSpec{
		{
			Name: "onCreate", LogicalID: "OnCreateFunction",
			Description: "geoblob: copy each new primary blob to the secondary and checksum it",
			// 1,769 MB is one full vCPU: SHA-256 and the copy stream are CPU bound.
			MemoryMB: 1769, Timeout: 10 * time.Minute,
			Trigger: TriggerQueue, EventTypes: []string{"Object Created"},
			S3: S3Access{PrimaryRead: true, SecondaryWrite: true},
		},
		{
			Name: "onDelete", LogicalID: "OnDeleteFunction",
			Description: "geoblob: delete the secondary copy of a removed or expired primary blob",
			MemoryMB:    512, Timeout: 2 * time.Minute,
			// "Object Deleted" covers DeleteObject and lifecycle expiration (detail.reason).
			Trigger: TriggerQueue, EventTypes: []string{"Object Deleted"},
			S3: S3Access{PrimaryRead: true, SecondaryDelete: true},
		},
		{
			Name: "backfill", LogicalID: "BackfillFunction",
			Description: "geoblob: registry consistency, pending and failed syncs, orphan removal",
			MemoryMB:    1769, Timeout: 15 * time.Minute,
			Trigger: TriggerSchedule,
			// effectiveS3 drops SecondaryWrite while backfill dispatches its copies to onCreate.
			S3: S3Access{PrimaryRead: true, SecondaryWrite: true, SecondaryDelete: true, SecondaryList: true, InventoryRead: true},
		},
		{
			Name: "verify", LogicalID: "VerifyFunction",
			Description: "geoblob: checksum primaries, re-read and compare secondaries",
			MemoryMB:    1769, Timeout: 15 * time.Minute,
			Trigger: TriggerSchedule,
			S3:      S3Access{PrimaryRead: true, SecondaryRead: true},
		},
		{
			// The verify binary again: Handle tells the SQS events of the
			// verification queue (worker) from schedules (dispatcher). A
			// function of its own so that its reserved concurrency caps the
			// workers alone and only the dispatcher may send to the queue.
			Name: "verifyWorker", Binary: "verify", LogicalID: "VerifyWorkerFunction",
			Description: "geoblob: check the rows the verify pass dispatched (verification queue)",
			MemoryMB:    1769, Timeout: 15 * time.Minute,
			Trigger: TriggerRequests,
			S3:      S3Access{PrimaryRead: true, SecondaryRead: true},
		},
		{
			Name: "migrate", LogicalID: "MigrateFunction",
			Description: "geoblob: apply the registry migrations (CloudFormation custom resource)",
			// Lambda's maximum, as the Provider framework's handler that
			// waits for it: a migration that rebuilds indexes of a large
			// registry takes minutes (00750: 6 min 40 s at 11.7M rows on 2
			// cores; docs/operations.md, "Upgrading").
			MemoryMB: 256, Timeout: 15 * time.Minute,
			Trigger: TriggerDeploy,
		},
		{
			Name: APIFunction, LogicalID: "ApiFunction",
			Description: "geoblob: operator API and console behind a function URL (AWS_IAM)",
			// Bulk resync/reverify runs inside the request (batched, resumable).
			MemoryMB: 512, Timeout: 5 * time.Minute,
			Trigger: TriggerURL,
			// Read-only; its secondary grants (list and head for the health
			// check's probe, no kms:Decrypt: it reads no object) are in api.go.
			S3: S3Access{PrimaryRead: true},
		},
	}
}

// binary is the directory of spec's code under functions/ and the asset root.
func (spec FunctionSpec) binary() string {
	if spec.Binary != "" {
		return spec.Binary
	}
	return spec.Name
}

// KnownFunctionNames returns the names of KnownFunctions.
func KnownFunctionNames() []string {
	var names []string
	for _, f := range KnownFunctions() {
		names = append(names, f.Name)
	}
	return names
}

// DiscoverFunctions returns the known functions whose source directory
// functions/<name> (holding a main.go) exists under repoRoot, in KnownFunctions order.
func DiscoverFunctions(repoRoot string) ([]string, error) {
	var found []string
	for _, f := range KnownFunctions() {
		_, err := os.Stat(filepath.Join(repoRoot, "functions", f.binary(), "main.go"))
		switch {
		case err == nil:
			found = append(found, f.Name)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("infra: discover functions: %w", err)
		}
	}
	return found, nil
}

// selectedFunctions returns the specs of the configured functions, checking
// that each has a bootstrap binary under the asset root (Code_FromAsset would
// panic on a missing directory).
func selectedFunctions(c Config) ([]FunctionSpec, error) {
	var specs []FunctionSpec
	var errs []error
	for _, f := range KnownFunctions() {
		if !slices.Contains(c.Functions, f.Name) {
			continue
		}
		bootstrap := filepath.Join(c.AssetRoot, f.binary(), "bootstrap")
		if st, err := os.Stat(bootstrap); err != nil || st.IsDir() {
			errs = append(errs, fmt.Errorf("%w: assetRoot: %s is missing: build the functions first (make lambdas)", ErrInvalidConfig, bootstrap))
			continue
		}
		specs = append(specs, f)
	}
	return specs, errors.Join(errs...)
}
