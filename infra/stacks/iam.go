package stacks

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// effectiveS3 is the S3 access spec's function gets in configuration c:
// while backfill dispatches its copies to onCreate (requestQueues), it
// never writes to the secondary itself, so it gets no SecondaryWrite;
// while verify dispatches its checks to verifyWorker, it reads no object,
// so it gets no S3 access at all.
func effectiveS3(c Config, spec FunctionSpec) S3Access {
	a := spec.S3
	if spec.Name == "backfill" && dispatching(c) {
		a.SecondaryWrite = false
	}
	if spec.Name == "verify" && verifyDispatching(c) {
		a = S3Access{}
	}
	return a
}

// dispatching reports whether backfill sends sync requests to onCreate
// (both deployed and dispatch on), the condition under which
// requestQueues creates the sync-request queue.
func dispatching(c Config) bool {
	return c.Dispatch && slices.Contains(c.Functions, "backfill") && slices.Contains(c.Functions, "onCreate")
}

// inventoryLocation splits Config.BackfillInventory (s3://bucket/prefix) into
// its bucket and key prefix; both are empty when it is not set.
func inventoryLocation(c Config) (bucket, prefix string, err error) {
	if c.BackfillInventory == "" {
		return "", "", nil
	}
	rest, ok := strings.CutPrefix(c.BackfillInventory, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !ok || ValidateBucketName(bucket) != nil || strings.ContainsAny(prefix, "*?") {
		return "", "", fmt.Errorf("%q must be s3://<bucket>/<prefix>/ (an S3 Inventory destination) or s3://<bucket>/.../manifest.json", c.BackfillInventory)
	}
	if strings.HasSuffix(prefix, "manifest.json") {
		// .../<config>/<timestamp>/manifest.json: the data files are in
		// .../<config>/data/, so grant the configuration's folder.
		prefix = path.Dir(path.Dir(prefix)) + "/"
	}
	return bucket, prefix, nil
}
