// Package localstack runs geoblob's whole pipeline on one machine: a
// throwaway PostgreSQL cluster with the registry schema, two MinIO processes
// standing in for the primary and the secondary region, and an event
// receiver that takes MinIO's webhook bucket notifications and hands each
// body, unchanged, to the same handler the Lambda functions run (through
// lambda.NewHandler(...).Invoke, the runtime's JSON path).
//
// The state of a stack lives in one directory (by default <repo>/.local/stack):
// stack.json (ports, buckets, credentials), env (shell exports for the user),
// pid and log files of the processes, the PostgreSQL cluster and the MinIO
// data and queue directories. Up is idempotent; Down stops what the pid files
// name. The same code runs the CLI (cmd/geoblob) and the end-to-end tests
// (e2e/), which start a stack in a temporary directory on free ports.
package localstack
