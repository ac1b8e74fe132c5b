// Package e2e holds geoblob's end-to-end tests and latency benchmark: a real
// PostgreSQL cluster, two real MinIO processes (primary and secondary
// region) with real webhook bucket notifications, and the functions' handler
// behind the local stack's event receiver and spool (delivered as SQS
// events, as in AWS), all started once per package by
// TestMain in a temporary directory on free ports.
//
//	go test ./e2e/...                                  # the tests
//	go test ./e2e/ -run '^$' -bench EndToEndLatency     # p50/p99 PUT -> synced
package e2e
