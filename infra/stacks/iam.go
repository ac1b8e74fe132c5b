package stacks

import "slices"

// effectiveS3 is the S3 access spec's function gets in configuration c:
// while backfill dispatches its copies to onCreate (syncQueue), it never
// writes to the secondary itself, so it gets no SecondaryWrite.
func effectiveS3(c Config, spec FunctionSpec) S3Access {
	a := spec.S3
	if spec.Name == "backfill" && dispatching(c) {
		a.SecondaryWrite = false
	}
	return a
}

// dispatching reports whether backfill sends sync requests to onCreate
// (both deployed and dispatch on), the condition under which syncQueue
// creates the queue.
func dispatching(c Config) bool {
	return c.Dispatch && slices.Contains(c.Functions, "backfill") && slices.Contains(c.Functions, "onCreate")
}
