package config

// Reference is the one list of the environment variables geoblob's
// functions read, with their defaults, in README order: the shared
// configuration (FromEnv) and each function's own settings (backfill,
// verify, health check, API). The README's configuration tables are checked
// against it, and a test checks that it holds exactly the variables the
// readers read. Defaults are documentation; each reader applies its own.
var Reference = []Var{
	// Shared configuration (FromEnv).
	{"GEOBLOB_DATABASE_URL", "", "PostgreSQL URL of the registry (postgres://user:pass@host:port/db). Required unless GEOBLOB_DATABASE_SECRET_ARN is set."},
	{"GEOBLOB_DATABASE_SECRET_ARN", "", "Secrets Manager secret, by ARN or name (RDS JSON format: host, port, username, password, dbname), used instead of GEOBLOB_DATABASE_URL."},
	{"GEOBLOB_DATABASE_HOST", "", "Host that overrides the secret's host (e.g. the RDS Proxy endpoint)."},
	{"GEOBLOB_DATABASE_SSLMODE", "verify-full", "TLS to the registry when the URL is built from the secret: verify-full (certificate chain and host name), verify-ca, require or disable (local stacks without TLS only)."},
	{"GEOBLOB_DATABASE_CA_FILE", "(system roots)", "PEM file of the CAs the registry's certificate must chain to (e.g. the RDS CA bundle for a direct Aurora connection); empty uses the system trust store, which holds the Amazon roots RDS Proxy certificates chain to."},
	{"GEOBLOB_DATABASE_RUNTIME_SECRET_ARN", "", "migrate only: secret (RDS JSON) of the runtime login, which migrate creates or updates as a DML-only member of geoblob_runtime with the secret's current password."},
	{"GEOBLOB_PRIMARY_BUCKET", "", "Primary bucket (the package registry's bucket). Required."},
	{"GEOBLOB_PRIMARY_REGION", "AWS_REGION", "Region of the primary bucket."},
	{"GEOBLOB_PRIMARY_ENDPOINT", "", "S3 endpoint URL of the primary (LocalStack, MinIO); empty for AWS."},
	{"GEOBLOB_SECONDARY_BUCKET", "", "Secondary (disaster-recovery) bucket. Required."},
	{"GEOBLOB_SECONDARY_REGION", "AWS_REGION", "Region of the secondary bucket."},
	{"GEOBLOB_SECONDARY_ENDPOINT", "", "S3 endpoint URL of the secondary; empty for AWS."},
	{"GEOBLOB_S3_PATH_STYLE", "false", "Path-style S3 addressing (true for LocalStack and MinIO)."},
	{"GEOBLOB_DATA_TYPES", "(all built-in)", "Comma-separated data types to replicate; others are ignored and counted."},
	{"GEOBLOB_TYPE_PATTERNS", "", `JSON object overriding key patterns per type, e.g. {"npm_package_file":["^packages/npm/.+\\.tgz$"]}.`},
	{"GEOBLOB_EXTRA_TYPES", "", `JSON list of extra types: [{"name":"helm_chart_file","patterns":["^helm/.+\\.tgz$"],"examples":["helm/c/c-1.0.0.tgz"]}].`},
	{"GEOBLOB_KEY_PREFIXES", "", "Comma-separated key prefixes this secondary replicates (selective sync, events and backfill alike); empty means every key of the enabled types."},
	{"GEOBLOB_COPY_CONCURRENCY", "10", "Copies in flight at once per function instance (event and backfill copies together)."},
	{"GEOBLOB_MULTIPART_THRESHOLD", "16777216", "Objects larger than this many bytes are copied with multipart upload."},
	{"GEOBLOB_PART_SIZE", "8388608", "Multipart part size in bytes (raised automatically to stay within 10,000 parts)."},
	{"GEOBLOB_SYNC_TIMEOUT", "30m", "A row in state started longer than this is considered abandoned and retried; keep it above the function timeout (Lambda: at most 15m)."},
	{"GEOBLOB_REVERIFY_INTERVAL", "2160h", "Re-verify each blob after this long (90 days, like Geo)."},
	{"GEOBLOB_LOG_LEVEL", "info", "debug, info, warn or error."},
	{"GEOBLOB_DELETE_BRAKE", "true", "Delete brake: propagate deletes to the secondary through a budget; when it is exceeded the brake trips and deletes are held for an operator (false: no budget; grace and guards still apply)."},
	{"GEOBLOB_DELETE_BRAKE_WINDOW", "1h", "Sliding window of the delete budget."},
	{"GEOBLOB_DELETE_BRAKE_MAX_DELETES", "1000", "Deletes of all types together the secondary may receive within the window (0: no absolute limit)."},
	{"GEOBLOB_DELETE_BRAKE_TYPE_MAX_DELETES", "1000", "Deletes of one data type within the window (0: no absolute limit)."},
	{"GEOBLOB_DELETE_BRAKE_MAX_FRACTION", "0.05", "Deletes within the window as a fraction of the rows, per data type and overall (0: no fraction limit)."},
	{"GEOBLOB_DELETE_BRAKE_MIN_DELETES", "50", "Deletes the fraction limit always allows (so routine deletes in a small type do not trip it)."},
	{"GEOBLOB_DELETE_GRACE", "0", "A delete reaches the secondary only once its tombstone is this old (e.g. 24h); a create within it cancels the delete. 0: at once."},
	{"GEOBLOB_PRIMARY_SENTINEL_KEY", "", "Object that must exist on the primary before any delete is propagated; if it is missing the brake trips (empty: only HeadBucket is checked)."},
	// Backfill (backfill.ConfigFromEnv).
	{Name: "GEOBLOB_BACKFILL_BUDGET", Default: "10m", Description: "Work time per backfill invocation; the cursor is saved and the next invocation resumes. Capped by the Lambda deadline minus 30 s."},
	{Name: "GEOBLOB_BACKFILL_PHASES", Default: "recover,reconcile,sync", Description: "Phases a scheduled invocation runs, in order: recover, reconcile, sync, orphans."},
	{Name: "GEOBLOB_BACKFILL_INVENTORY", Default: "", Description: "S3 Inventory location (s3://bucket/prefix/ or s3://bucket/.../manifest.json, CSV format) used by reconcile instead of listing the primary bucket. The newest manifest under a prefix is used."},
	{Name: "GEOBLOB_BACKFILL_BATCH_SIZE", Default: "10000", Description: "Listed objects registered per transaction (bulk COPY + INSERT ON CONFLICT)."},
	{Name: "GEOBLOB_BACKFILL_CLAIM_SIZE", Default: "50", Description: "Due rows claimed per sync round (FOR UPDATE SKIP LOCKED, fair across data types)."},
	{Name: "GEOBLOB_BACKFILL_MAX_ATTEMPTS", Default: "10", Description: "Failed sync attempts after which a row is quarantined: still counted, resynced only on request."},
	{Name: "GEOBLOB_BACKFILL_SECONDARY_ORPHANS", Default: "off", Description: "Secondary objects with no primary counterpart: off, report (dry run: count and log) or delete."},
	{Name: "GEOBLOB_BACKFILL_RELIST_INTERVAL", Default: "1h", Description: "A completed listing pass of the primary is not started again before this long (reconcile skips until then; sync goes on)."},
	{Name: "GEOBLOB_SYNC_DISPATCH_LEASE", Default: "5m", Description: "A dispatched sync request keeps its row from being sent again (and counts in GEOBLOB_SYNC_WINDOW) this long; a request no worker took up by then (lost, dead-lettered) is sent again. Duplicates are harmless; keep it above the queue's usual wait."},
	{Name: "GEOBLOB_SYNC_QUEUE_URL", Default: "", Description: "SQS queue of sync requests consumed by onCreate. When set, backfill's sync phase dispatches claimed rows there instead of copying them itself, so event and backfill copies share onCreate's reserved concurrency."},
	{Name: "GEOBLOB_SYNC_WINDOW", Default: "100", Description: "Most sync work in flight the dispatcher fills up to: requests sent and not yet taken by a worker (live dispatch leases) plus rows in state started (event copies and dispatched requests being copied together); set it to onCreate's reserved concurrency x GEOBLOB_COPY_CONCURRENCY, the shared copy cap."},
	// Verification (verify.OptionsFromEnv).
	{Name: "GEOBLOB_VERIFY_MODE", Default: "deep", Description: "Verification mode of every data type: deep (re-read and SHA-256 every byte) or fast (compare the full-object SHA-256 S3 stores; deep when there is none)."},
	{Name: "GEOBLOB_VERIFY_TYPE_MODES", Default: "", Description: `JSON object of per-type modes overriding GEOBLOB_VERIFY_MODE, e.g. {"maven_package_file":"fast"}.`},
	{Name: "GEOBLOB_VERIFY_CONCURRENCY", Default: "10", Description: "Objects verified at once per function instance."},
	{Name: "GEOBLOB_VERIFY_BATCH_SIZE", Default: "20", Description: "Rows claimed per registry round trip."},
	{Name: "GEOBLOB_VERIFY_BUDGET", Default: "10m", Description: "A pass stops claiming work after this long and the next pass resumes."},
	{Name: "GEOBLOB_VERIFY_TIMEOUT", Default: "1h", Description: "A verification claim older than this is considered stuck and recovered."},
	{Name: "GEOBLOB_VERIFY_REVERIFY_SPREAD", Default: "10%", Description: "Rows come due for reverification up to this much before GEOBLOB_REVERIFY_INTERVAL (a duration or a percentage of it), spread evenly by row."},
	{Name: "GEOBLOB_VERIFY_BACKOFF_CAP", Default: "24h", Description: "Longest wait before a secondary that keeps failing verification is resynced again."},
	{Name: "GEOBLOB_VERIFY_PRIMARY", Default: "true", Description: "Also checksum primaries that have no checksum and re-verify primaries after the interval."},
	{Name: "GEOBLOB_VERIFY_QUEUE_URL", Default: "", Description: "SQS queue of verification requests consumed by the verify workers. When set, the scheduled verify pass claims due rows and dispatches them there instead of checking them itself, so verification scales with the workers' reserved concurrency."},
	{Name: "GEOBLOB_VERIFY_WINDOW", Default: "100", Description: "Most verification claims in flight (queued and running) the verify dispatcher fills up to; set it to the verify workers' reserved concurrency x GEOBLOB_VERIFY_CONCURRENCY, their cap."},
	// Health check (health.OptionsFromEnv).
	{Name: "GEOBLOB_DEAD_LETTER_QUEUES", Default: "", Description: "Comma-separated SQS dead-letter queue URLs the health check counts (AWS; the stack sets it on the api function). Locally the event daemon's dead-letter directory is counted."},
	{Name: "GEOBLOB_HEALTH_BACKFILL_MAX_AGE", Default: "10m", Description: "Health check: the last backfill pass must have succeeded within this long."},
	{Name: "GEOBLOB_HEALTH_VERIFY_MAX_AGE", Default: "30m", Description: "Health check: the last verify pass must have succeeded within this long."},
	// Operator API (api.ActionsFromEnv).
	{Name: "GEOBLOB_API_ACTIONS", Default: "false", Description: "Allow resync and reverify (single and bulk) through the API and console; read-only when false. The local stack's console enables them; in AWS set the stack parameter."},
}
