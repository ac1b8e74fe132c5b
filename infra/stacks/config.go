// Package stacks defines geoblob's AWS infrastructure as two CDK stacks: a
// small one in the primary region (the registry's bucket and the forwarding of
// its object events) and the disaster-recovery stack in the secondary region
// (secondary bucket, KMS key, Aurora registry behind RDS Proxy, the functions,
// queues, schedules, alarms and dashboard).
package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"

	"github.com/geoblob/geoblob/shared/datatype"
)

// ErrInvalidConfig is returned (wrapped, naming the parameter) when a stack
// parameter is unusable. Every problem found is reported at once.
var ErrInvalidConfig = errors.New("infra: invalid parameter")

// Config holds every parameter of the stacks. Each field is read from the CDK
// context key named in its comment (cdk.json "context" or `cdk synth -c key=value`).
type Config struct {
	// Prefix starts the names of named resources (event bus, queues, alarms,
	// dashboard, schedules). Context: prefix. Default "geoblob".
	Prefix string
	// Account is the AWS account for both stacks; empty leaves the stacks
	// account-agnostic (resolved at deploy). Context: account, else CDK_DEFAULT_ACCOUNT.
	Account string
	// PrimaryRegion is the region of the registry's bucket. Context: primaryRegion.
	PrimaryRegion string
	// SecondaryRegion is the disaster-recovery region; it holds the secondary
	// bucket, the registry database and the functions. Context: secondaryRegion.
	SecondaryRegion string
	// PrimaryBucket names the registry's existing bucket, which is imported and
	// never modified beyond enabling EventBridge notifications (or the demo
	// bucket to create). Always required: the functions in the other region
	// need its name at synth time. Context: primaryBucket.
	PrimaryBucket string
	// PrimaryKMSKeyARN is the KMS key encrypting the primary bucket when it
	// uses SSE-KMS with a customer managed key; the functions that read the
	// primary get kms:Decrypt on it. Context: primaryKmsKeyArn.
	PrimaryKMSKeyARN string
	// BackfillInventory is the S3 Inventory location backfill reconciles from
	// (s3://bucket/prefix/, see GEOBLOB_BACKFILL_INVENTORY): the stack passes it
	// to backfill and grants backfill s3:GetObject under the prefix and
	// s3:ListBucket on the bucket. Empty: backfill lists the primary.
	// Context: backfillInventory.
	BackfillInventory string
	// CreatePrimaryBucket creates a demo primary bucket named PrimaryBucket
	// instead of importing one. Context: createPrimaryBucket.
	CreatePrimaryBucket bool
	// SecondaryBucket names the secondary bucket; empty lets CloudFormation
	// generate a name. Context: secondaryBucket.
	SecondaryBucket string
	// DataTypes are the enabled data types (GEOBLOB_DATA_TYPES); empty enables
	// every built-in type. Context: dataTypes (comma list or JSON list).
	DataTypes []string
	// BackfillSchedule is the EventBridge Scheduler expression of backfill.
	// Context: backfillSchedule. Default "rate(1 minute)".
	BackfillSchedule string
	// VerifySchedule is the EventBridge Scheduler expression of verify.
	// Context: verifySchedule. Default "rate(5 minutes)".
	VerifySchedule string
	// ReverifyInterval is GEOBLOB_REVERIFY_INTERVAL. Context: reverifyInterval. Default 2160h.
	ReverifyInterval time.Duration
	// CopyConcurrency is GEOBLOB_COPY_CONCURRENCY (copies in flight per
	// function instance). Context: copyConcurrency. Default 10.
	CopyConcurrency int
	// Concurrency caps each function's concurrent executions (reserved
	// concurrency; for queue-driven functions also the event source mapping's
	// maximum concurrency). 0 leaves the function unreserved. Context:
	// concurrency.<function>, e.g. concurrency.onCreate=20.
	Concurrency map[string]int
	// Dispatch makes backfill send sync requests to onCreate through the
	// sync-request queue instead of copying itself (when both functions
	// are deployed), and verify send verification requests to verifyWorker
	// through the verification queue (likewise). Context: dispatch.
	// Default true.
	Dispatch bool
	// SyncWindowOverride sets GEOBLOB_SYNC_WINDOW (see SyncWindow).
	// Context: syncWindow. Default 0: derived from the caps.
	SyncWindowOverride int
	// SyncRequestConcurrency is the maximum concurrency of onCreate's
	// sync-request mapping (see SyncRequestInstances). Context:
	// syncRequestConcurrency. Default 0: derived.
	SyncRequestConcurrency int
	// MaxReceiveCount is how often a message is received before it moves to
	// the dead-letter queue. Context: maxReceiveCount. Default 5.
	MaxReceiveCount int
	// BatchSize is the SQS batch size of the event functions. Context: batchSize. Default 10.
	BatchSize int
	// LogRetentionDays is the CloudWatch Logs retention of every function.
	// Context: logRetentionDays. Default 30.
	LogRetentionDays int
	// LogLevel is GEOBLOB_LOG_LEVEL. Context: logLevel. Default "info".
	LogLevel string
	// AlarmEmail, when set, subscribes this address to the alarm topic. Context: alarmEmail.
	AlarmEmail string
	// OldestUnsyncedAlarmMinutes raises the "oldest unsynced blob" alarm when a
	// blob stays unsynced longer. Context: oldestUnsyncedAlarmMinutes. Default 60.
	OldestUnsyncedAlarmMinutes int
	// RPOObjectiveSeconds is the recovery point objective: the
	// geoblob-rpo-objective alarm fires when the oldest unsynced blob is
	// older (the RPO of geoblob dr-report). Context: rpoObjectiveSeconds.
	// Default DefaultRPOObjectiveSeconds.
	RPOObjectiveSeconds int
	// APIActions sets GEOBLOB_API_ACTIONS=true on the api function: resync
	// and reverify through the operator API and console, audited with the
	// caller's IAM ARN; read-only otherwise. Context: apiActions. Default false.
	APIActions bool
	// DatabaseMinACU and DatabaseMaxACU bound Aurora Serverless v2 capacity.
	// Context: databaseMinAcu (default 0.5), databaseMaxAcu (default 4).
	DatabaseMinACU, DatabaseMaxACU float64
	// DatabaseDeletionProtection protects the registry cluster from deletion.
	// Context: databaseDeletionProtection. Default true.
	DatabaseDeletionProtection bool
	// NatGateways is the number of NAT gateways of the secondary VPC (the
	// functions reach the primary region's S3 and Secrets Manager through
	// them). Context: natGateways. Default 1.
	NatGateways int
	// NoncurrentVersionDays expires noncurrent versions of secondary objects
	// (overwritten or deleted copies) after this many days. Context:
	// noncurrentVersionDays. Default 30.
	NoncurrentVersionDays int
	// PrimaryEndpoint, SecondaryEndpoint and S3PathStyle are passed to the
	// functions as GEOBLOB_PRIMARY_ENDPOINT, GEOBLOB_SECONDARY_ENDPOINT and
	// GEOBLOB_S3_PATH_STYLE (LocalStack only). Context: primaryEndpoint,
	// secondaryEndpoint, s3PathStyle.
	PrimaryEndpoint, SecondaryEndpoint string
	// S3PathStyle: see PrimaryEndpoint.
	S3PathStyle bool
	// ExtraEnv passes further GEOBLOB_* variables to every function (for
	// example GEOBLOB_BACKFILL_BUDGET, GEOBLOB_VERIFY_MODE). Variables the
	// stack sets itself cannot be overridden here. Context: extraEnv (a JSON
	// object, or NAME=value pairs separated by commas).
	ExtraEnv map[string]string
	// LocalInvoke declares GEOBLOB_DATABASE_URL and the S3 endpoint variables
	// with placeholder values so that `sam local invoke --env-vars` can set
	// them (SAM only overrides variables the template declares). Only for
	// the template `make synth-sam` writes; never deploy it. Context: localInvoke.
	LocalInvoke bool
	// AssetRoot is the directory holding <function>/bootstrap for each function
	// (the Makefile builds them into build/). Context: assetRoot. Default "../build".
	AssetRoot string
	// Target is where the stacks deploy: TargetAWS (default) or
	// TargetLocalStack (LocalStack 4.14's free edition: no VPC, no Aurora or
	// RDS Proxy, no custom resources, EventBridge rules instead of Scheduler,
	// the registry a PostgreSQL run beside LocalStack). Context: target.
	Target string
	// Architecture is the functions' CPU architecture: "arm64" or "x86_64".
	// Empty means arm64 on AWS and x86_64 on LocalStack (whose Lambda runs
	// images of the host's architecture). Context: lambdaArchitecture.
	Architecture string
	// RegistrySecretName names the Secrets Manager secret (RDS JSON: host,
	// port, username, password, dbname) of the registry database on
	// LocalStack. The secret is created outside CloudFormation (make
	// deploy-local writes it from the URL it is given) and imported by name,
	// so no credential is in the template. Context: registrySecretName.
	// Default "<prefix>/registry".
	RegistrySecretName string
	// Functions are the functions to deploy; see KnownFunctions. The app
	// fills it from the directories present under functions/. Context:
	// functions (comma list) overrides the discovery.
	Functions []string
}

// DefaultConfig returns the defaults; regions and the primary bucket have none.
func DefaultConfig() Config {
	return Config{
		Prefix:                     "geoblob",
		BackfillSchedule:           "rate(1 minute)",
		VerifySchedule:             "rate(5 minutes)",
		ReverifyInterval:           2160 * time.Hour,
		CopyConcurrency:            10,
		Concurrency:                map[string]int{"onCreate": 10, "onDelete": 5, "backfill": 1, "verify": 2, "verifyWorker": 10, "migrate": 1, "api": 2},
		MaxReceiveCount:            5,
		BatchSize:                  10,
		Dispatch:                   true,
		LogRetentionDays:           30,
		LogLevel:                   "info",
		OldestUnsyncedAlarmMinutes: 60,
		RPOObjectiveSeconds:        DefaultRPOObjectiveSeconds,
		DatabaseMinACU:             0.5,
		DatabaseMaxACU:             4,
		DatabaseDeletionProtection: true,
		NatGateways:                1,
		NoncurrentVersionDays:      30,
		AssetRoot:                  "../build",
		Target:                     TargetAWS,
	}
}

// Deployment targets (context key target).
const (
	// TargetAWS is real AWS: VPC, Aurora behind RDS Proxy, Scheduler, migrations as a custom resource.
	TargetAWS = "aws"
	// TargetLocalStack is LocalStack 4.14 (free edition); see Config.Target and docs/localstack.md.
	TargetLocalStack = "localstack"
)

// Lambda architectures (context key lambdaArchitecture).
const (
	// ArchARM64 is Graviton, the default on AWS.
	ArchARM64 = "arm64"
	// ArchX8664 is x86-64, the default on LocalStack.
	ArchX8664 = "x86_64"
)

// LocalStack reports whether the stacks target LocalStack.
func (c Config) LocalStack() bool { return c.Target == TargetLocalStack }

// LambdaArchitecture returns the functions' architecture: Architecture, or
// the target's default.
func (c Config) LambdaArchitecture() string {
	switch {
	case c.Architecture != "":
		return c.Architecture
	case c.LocalStack():
		return ArchX8664
	}
	return ArchARM64
}

// SecretName returns RegistrySecretName or its default.
func (c Config) SecretName() string {
	if c.RegistrySecretName != "" {
		return c.RegistrySecretName
	}
	return c.Prefix + "/registry"
}

// ContextGetter returns the raw value of a CDK context key, nil when unset
// (construct.Node().TryGetContext in the app, a map in tests).
type ContextGetter func(key string) any

// ConfigFromContext overlays the context values found through get onto
// DefaultConfig and validates the result.
func ConfigFromContext(get ContextGetter) (Config, error) {
	c := DefaultConfig()
	r := ctxReader{get: get}
	r.str("prefix", &c.Prefix)
	r.str("account", &c.Account)
	r.str("primaryRegion", &c.PrimaryRegion)
	r.str("secondaryRegion", &c.SecondaryRegion)
	r.str("primaryBucket", &c.PrimaryBucket)
	r.str("primaryKmsKeyArn", &c.PrimaryKMSKeyARN)
	r.str("backfillInventory", &c.BackfillInventory)
	r.boolean("createPrimaryBucket", &c.CreatePrimaryBucket)
	r.str("secondaryBucket", &c.SecondaryBucket)
	r.list("dataTypes", &c.DataTypes)
	r.str("backfillSchedule", &c.BackfillSchedule)
	r.str("verifySchedule", &c.VerifySchedule)
	r.duration("reverifyInterval", &c.ReverifyInterval)
	r.integer("copyConcurrency", &c.CopyConcurrency)
	for _, f := range KnownFunctions() {
		n := c.Concurrency[f.Name]
		if r.integer("concurrency."+f.Name, &n) {
			c.Concurrency[f.Name] = n
		}
	}
	r.boolean("dispatch", &c.Dispatch)
	r.boolean("apiActions", &c.APIActions)
	r.integer("syncWindow", &c.SyncWindowOverride)
	r.integer("syncRequestConcurrency", &c.SyncRequestConcurrency)
	r.integer("maxReceiveCount", &c.MaxReceiveCount)
	r.integer("batchSize", &c.BatchSize)
	r.integer("logRetentionDays", &c.LogRetentionDays)
	r.str("logLevel", &c.LogLevel)
	r.str("alarmEmail", &c.AlarmEmail)
	r.integer("oldestUnsyncedAlarmMinutes", &c.OldestUnsyncedAlarmMinutes)
	r.integer("rpoObjectiveSeconds", &c.RPOObjectiveSeconds)
	r.float("databaseMinAcu", &c.DatabaseMinACU)
	r.float("databaseMaxAcu", &c.DatabaseMaxACU)
	r.boolean("databaseDeletionProtection", &c.DatabaseDeletionProtection)
	r.integer("natGateways", &c.NatGateways)
	r.integer("noncurrentVersionDays", &c.NoncurrentVersionDays)
	r.str("primaryEndpoint", &c.PrimaryEndpoint)
	r.str("secondaryEndpoint", &c.SecondaryEndpoint)
	r.boolean("s3PathStyle", &c.S3PathStyle)
	r.env("extraEnv", &c.ExtraEnv)
	r.boolean("localInvoke", &c.LocalInvoke)
	r.str("assetRoot", &c.AssetRoot)
	r.list("functions", &c.Functions)
	r.str("target", &c.Target)
	r.str("lambdaArchitecture", &c.Architecture)
	r.str("registrySecretName", &c.RegistrySecretName)
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var (
	// regionRe matches AWS region names such as us-east-1, eu-central-2,
	// us-gov-west-1, cn-north-1, ap-southeast-7.
	regionRe = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$`)
	// bucketRe is the S3 general purpose bucket naming rule (length checked apart).
	bucketRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`)
	prefixRe    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)
	kmsKeyArnRe = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)
	accountRe   = regexp.MustCompile(`^[0-9]{12}$`)
	scheduleRe  = regexp.MustCompile(`^(rate\([1-9][0-9]* (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$`)
	rateRe      = regexp.MustCompile(`^rate\(([0-9]+) (minute|hour|day)s?\)$`)
	// retentionDays are the values CloudWatch Logs accepts, with their CDK names.
	retentionDays = map[int]awslogs.RetentionDays{
		1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
		7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
		60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
		150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
		400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
		1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
		2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
		3653: awslogs.RetentionDays_TEN_YEARS,
	}
	logLevels = []string{"debug", "info", "warn", "error"}
	envNameRe = regexp.MustCompile(`^GEOBLOB_[A-Z0-9_]+$`)
	// secretNameRe is Secrets Manager's secret name rule.
	secretNameRe = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
	// managedEnv are the variables the stack derives from its parameters and resources.
	managedEnv = []string{
		"GEOBLOB_DATABASE_URL", "GEOBLOB_DATABASE_SECRET_ARN", "GEOBLOB_DATABASE_HOST", "GEOBLOB_DATABASE_SSLMODE",
		"GEOBLOB_DATABASE_RUNTIME_SECRET_ARN",
		"GEOBLOB_PRIMARY_BUCKET", "GEOBLOB_PRIMARY_REGION", "GEOBLOB_PRIMARY_ENDPOINT",
		"GEOBLOB_SECONDARY_BUCKET", "GEOBLOB_SECONDARY_REGION", "GEOBLOB_SECONDARY_ENDPOINT",
		"GEOBLOB_S3_PATH_STYLE", "GEOBLOB_DATA_TYPES", "GEOBLOB_COPY_CONCURRENCY",
		"GEOBLOB_LOG_LEVEL", "GEOBLOB_REVERIFY_INTERVAL", "GEOBLOB_BACKFILL_INVENTORY",
		"GEOBLOB_SYNC_QUEUE_URL", "GEOBLOB_SYNC_WINDOW", "GEOBLOB_VERIFY_QUEUE_URL", "GEOBLOB_VERIFY_WINDOW",
	}
)

// ValidateBucketName reports whether name follows the S3 general purpose
// bucket naming rules (3-63 characters, lower-case letters, digits, dots and
// hyphens, starting and ending with a letter or digit, no "..", not an IP
// address, no reserved prefix or suffix).
func ValidateBucketName(name string) error {
	switch {
	case len(name) < 3 || len(name) > 63:
		return fmt.Errorf("%q must be 3 to 63 characters long", name)
	case !bucketRe.MatchString(name):
		return fmt.Errorf("%q may hold only lower-case letters, digits, dots and hyphens, and must start and end with a letter or digit", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%q must not contain two adjacent dots", name)
	case net.ParseIP(name) != nil:
		return fmt.Errorf("%q must not be formatted as an IP address", name)
	case strings.HasPrefix(name, "xn--") || strings.HasPrefix(name, "sthree-") || strings.HasPrefix(name, "amzn-s3-demo-"):
		return fmt.Errorf("%q starts with a prefix S3 reserves", name)
	case strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3") || strings.HasSuffix(name, ".mrap") || strings.HasSuffix(name, "--x-s3"):
		return fmt.Errorf("%q ends with a suffix S3 reserves", name)
	}
	return nil
}

// Validate reports every unusable parameter, each naming its context key.
func (c Config) Validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, key, fmt.Sprintf(format, args...)))
	}
	if !prefixRe.MatchString(c.Prefix) {
		fail("prefix", "%q must be 1-20 lower-case letters, digits or hyphens, starting with a letter", c.Prefix)
	}
	if c.Account != "" && !accountRe.MatchString(c.Account) {
		fail("account", "%q must be a 12-digit AWS account id", c.Account)
	}
	for key, region := range map[string]string{"primaryRegion": c.PrimaryRegion, "secondaryRegion": c.SecondaryRegion} {
		switch {
		case region == "":
			fail(key, "is required (e.g. -c %s=us-east-1)", key)
		case !regionRe.MatchString(region):
			fail(key, "%q is not an AWS region name such as us-east-1", region)
		}
	}
	if c.PrimaryRegion != "" && c.PrimaryRegion == c.SecondaryRegion {
		fail("secondaryRegion", "must differ from primaryRegion (%s): a regional outage must not take both copies", c.PrimaryRegion)
	}
	if c.PrimaryBucket == "" {
		fail("primaryBucket", "is required: name the registry's existing bucket (or, with createPrimaryBucket=true, the demo bucket to create)")
	} else if err := ValidateBucketName(c.PrimaryBucket); err != nil {
		fail("primaryBucket", "%v", err)
	}
	if _, _, err := inventoryLocation(c); err != nil {
		fail("backfillInventory", "%v", err)
	}
	if c.PrimaryKMSKeyARN != "" && !kmsKeyArnRe.MatchString(c.PrimaryKMSKeyARN) {
		fail("primaryKmsKeyArn", "%q must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", c.PrimaryKMSKeyARN)
	}
	if c.SecondaryBucket != "" {
		if err := ValidateBucketName(c.SecondaryBucket); err != nil {
			fail("secondaryBucket", "%v", err)
		} else if c.SecondaryBucket == c.PrimaryBucket {
			fail("secondaryBucket", "must differ from primaryBucket")
		}
	}
	if len(c.DataTypes) > 0 {
		if _, err := datatype.Select(datatype.Builtin(), c.DataTypes); err != nil {
			fail("dataTypes", "%v (known: %s)", err, strings.Join(BuiltinDataTypes(), ", "))
		}
	}
	for key, expr := range map[string]string{"backfillSchedule": c.BackfillSchedule, "verifySchedule": c.VerifySchedule} {
		if !scheduleRe.MatchString(expr) {
			fail(key, "%q must be an EventBridge Scheduler expression such as rate(5 minutes) or cron(0 3 * * ? *)", expr)
		} else if m := rateRe.FindStringSubmatch(expr); m != nil {
			n, _ := strconv.Atoi(m[1])
			singular := strings.HasSuffix(expr, m[2]+")")
			if (n == 1) != singular {
				fail(key, "%q: use the singular unit with 1 and the plural otherwise, e.g. rate(1 minute), rate(5 minutes)", expr)
			}
		}
	}
	if c.ReverifyInterval <= 0 {
		fail("reverifyInterval", "must be a positive Go duration such as 2160h, got %s", c.ReverifyInterval)
	}
	if c.CopyConcurrency < 1 || c.CopyConcurrency > 10_000 {
		fail("copyConcurrency", "must be from 1 to 10000, got %d", c.CopyConcurrency)
	}
	known := KnownFunctionNames()
	for name, n := range c.Concurrency {
		if !slices.Contains(known, name) {
			fail("concurrency."+name, "names no function (known: %s)", strings.Join(known, ", "))
		}
		if n < 0 || n > 1000 {
			fail("concurrency."+name, "must be from 0 (unreserved) to 1000, got %d", n)
		}
	}
	if c.SyncWindowOverride < 0 || c.SyncWindowOverride > 1_000_000 {
		fail("syncWindow", "must be from 0 (derived: concurrency.onCreate x copyConcurrency) to 1000000, got %d", c.SyncWindowOverride)
	}
	c.validateMappingConcurrency(fail)
	if c.MaxReceiveCount < 1 || c.MaxReceiveCount > 1000 {
		fail("maxReceiveCount", "must be from 1 to 1000, got %d", c.MaxReceiveCount)
	}
	if c.BatchSize < 1 || c.BatchSize > 10 {
		fail("batchSize", "must be from 1 to 10 (SQS standard queue without a long batching window), got %d", c.BatchSize)
	}
	if _, ok := retentionDays[c.LogRetentionDays]; !ok {
		fail("logRetentionDays", "%d is not a CloudWatch Logs retention (one of %v)", c.LogRetentionDays, slices.Sorted(maps.Keys(retentionDays)))
	}
	if !slices.Contains(logLevels, strings.ToLower(c.LogLevel)) {
		fail("logLevel", "%q must be one of %s", c.LogLevel, strings.Join(logLevels, ", "))
	}
	if c.AlarmEmail != "" {
		if _, err := mail.ParseAddress(c.AlarmEmail); err != nil {
			fail("alarmEmail", "%q is not an e-mail address", c.AlarmEmail)
		}
	}
	if c.OldestUnsyncedAlarmMinutes < 1 {
		fail("oldestUnsyncedAlarmMinutes", "must be at least 1, got %d", c.OldestUnsyncedAlarmMinutes)
	}
	if c.RPOObjectiveSeconds < 60 {
		fail("rpoObjectiveSeconds", "must be at least 60 (the metric is written once a minute), got %d", c.RPOObjectiveSeconds)
	}
	if c.DatabaseMinACU < 0 || c.DatabaseMinACU > 256 || c.DatabaseMaxACU < 1 || c.DatabaseMaxACU > 256 || c.DatabaseMinACU > c.DatabaseMaxACU {
		fail("databaseMinAcu", "and databaseMaxAcu must satisfy 0 <= min <= max, 1 <= max <= 256, got %g..%g", c.DatabaseMinACU, c.DatabaseMaxACU)
	}
	if c.NatGateways < 0 || c.NatGateways > 3 {
		fail("natGateways", "must be from 0 to 3, got %d", c.NatGateways)
	}
	if c.NoncurrentVersionDays < 1 {
		fail("noncurrentVersionDays", "must be at least 1, got %d", c.NoncurrentVersionDays)
	}
	for key, ep := range map[string]string{"primaryEndpoint": c.PrimaryEndpoint, "secondaryEndpoint": c.SecondaryEndpoint} {
		if ep != "" && !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			fail(key, "%q must be an http:// or https:// URL", ep)
		}
	}
	for k := range c.ExtraEnv {
		switch {
		case !envNameRe.MatchString(k):
			fail("extraEnv", "%q is not a GEOBLOB_* variable name", k)
		case slices.Contains(managedEnv, k):
			fail("extraEnv", "%s is set by the stack from its own parameters", k)
		}
	}
	if c.AssetRoot == "" {
		fail("assetRoot", "is required")
	}
	if c.Target != TargetAWS && c.Target != TargetLocalStack {
		fail("target", "%q must be %s or %s", c.Target, TargetAWS, TargetLocalStack)
	}
	if c.Architecture != "" && c.Architecture != ArchARM64 && c.Architecture != ArchX8664 {
		fail("lambdaArchitecture", "%q must be %s or %s", c.Architecture, ArchARM64, ArchX8664)
	}
	if c.RegistrySecretName != "" && !secretNameRe.MatchString(c.RegistrySecretName) {
		fail("registrySecretName", "%q must be 1-512 characters of letters, digits and /_+=.@-", c.RegistrySecretName)
	}
	for _, f := range c.Functions {
		if !slices.Contains(known, f) {
			fail("functions", "%q is not a known function (known: %s)", f, strings.Join(known, ", "))
		}
	}
	if !slices.Contains(c.Functions, "migrate") && len(c.Functions) > 0 {
		fail("functions", "must include migrate: the registry schema is applied by it during deploy")
	}
	return errors.Join(errs...)
}

// BuiltinDataTypes returns the names of the built-in data types.
func BuiltinDataTypes() []string {
	var names []string
	for _, t := range datatype.Builtin() {
		names = append(names, t.Name)
	}
	return names
}

type ctxReader struct {
	get  ContextGetter
	errs []error
}

func (r *ctxReader) fail(key, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%w: %s %s", ErrInvalidConfig, key, fmt.Sprintf(format, args...)))
}

// raw returns the value as a trimmed string, whatever JSON type it came as.
func (r *ctxReader) raw(key string) (string, bool) {
	v := r.get(key)
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return strings.TrimSpace(x), true
	case *string:
		if x == nil {
			return "", false
		}
		return strings.TrimSpace(*x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case []any:
		parts := make([]string, 0, len(x))
		for _, p := range x {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, ","), true
	case []string:
		return strings.Join(x, ","), true
	}
	return fmt.Sprint(v), true
}

func (r *ctxReader) str(key string, dst *string) {
	if v, ok := r.raw(key); ok {
		*dst = v
	}
}

func (r *ctxReader) list(key string, dst *[]string) {
	v, ok := r.raw(key)
	if !ok {
		return
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	*dst = out
}

// env reads a JSON object of strings, or NAME=value pairs separated by commas.
func (r *ctxReader) env(key string, dst *map[string]string) {
	v := r.get(key)
	out := map[string]string{}
	switch x := v.(type) {
	case nil:
		return
	case map[string]any:
		for k, val := range x {
			out[k] = fmt.Sprint(val)
		}
	default:
		s, _ := r.raw(key)
		if strings.HasPrefix(s, "{") {
			if err := json.Unmarshal([]byte(s), &out); err != nil {
				r.fail(key, "must be a JSON object of strings: %v", err)
				return
			}
			break
		}
		for _, pair := range strings.Split(s, ",") {
			if pair = strings.TrimSpace(pair); pair == "" {
				continue
			}
			name, val, ok := strings.Cut(pair, "=")
			if !ok {
				r.fail(key, "%q must be NAME=value", pair)
				return
			}
			out[strings.TrimSpace(name)] = strings.TrimSpace(val)
		}
	}
	*dst = out
}

// parsed sets *dst to the key's value read by parse; an absent or empty
// value leaves *dst alone, and a value parse refuses is recorded as
// "must be <want>". It reports whether *dst was set.
func parsed[T any](r *ctxReader, key string, dst *T, parse func(string) (T, error), want string) bool {
	v, ok := r.raw(key)
	if !ok || v == "" {
		return false
	}
	x, err := parse(v)
	if err != nil {
		r.fail(key, "must be %s, got %q", want, v)
		return false
	}
	*dst = x
	return true
}

func (r *ctxReader) boolean(key string, dst *bool) {
	parsed(r, key, dst, strconv.ParseBool, "true or false")
}

func (r *ctxReader) integer(key string, dst *int) bool {
	return parsed(r, key, dst, strconv.Atoi, "an integer")
}

func (r *ctxReader) float(key string, dst *float64) {
	parsed(r, key, dst, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }, "a number")
}

func (r *ctxReader) duration(key string, dst *time.Duration) {
	parsed(r, key, dst, time.ParseDuration, "a Go duration such as 2160h")
}
