// Package sqsspool is the local stand-in for S3 -> SQS -> Lambda: a
// Receiver takes MinIO's webhook POSTs (the SendMessage), a durable spool on
// disk holds them (the queue, with a dead-letter directory), and a Queue
// worker delivers them in batches as SQS event JSON to a function through
// an Invoker, acting on partial batch failures the way an event source
// mapping does. Nothing here runs in Lambda.
package sqsspool
