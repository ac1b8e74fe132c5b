// Package devstack runs geoblob's whole pipeline on one machine: a
// throwaway PostgreSQL cluster with the registry schema, two MinIO processes
// standing in for the primary and the secondary region, and an event
// daemon that plays S3 -> SQS -> Lambda: it takes MinIO's webhook bucket
// notifications into a durable spool (sqsspool.Receiver, the SQS queue's stand-in),
// delivers the spool in SQS-event batches to the same handler the Lambda
// functions run (sqsspool.Queue, the event source mapping, through
// lambda.NewHandler(...).Invoke, the runtime's JSON path) with retries and a
// dead-letter directory, and runs the backfill and verify passes on a
// schedule (Schedules, the EventBridge Scheduler rules).
//
// The state of a stack lives in one directory (by default <repo>/.local/stack):
// stack.json (ports, buckets, credentials), env (shell exports for the user),
// pid and log files of the processes, the PostgreSQL cluster, the MinIO
// data directories, the spool and the dead-letter directory. Up is
// idempotent; Down stops what the pid files name. The same code runs the CLI (cmd/geoblob) and the end-to-end tests
// (e2e/), which start a stack in a temporary directory on free ports.
package devstack
