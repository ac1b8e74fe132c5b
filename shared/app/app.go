// Package app wires geoblob's dependencies from a validated configuration:
// S3 clients and blob stores for the primary and secondary buckets, the
// PostgreSQL pool and registry, the data-type catalog, the replication engine
// and the Lambda handler. Functions build it once per cold start; the local
// stack reuses it.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsarn "github.com/aws/aws-sdk-go-v2/aws/arn"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/dispatch"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/handler"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// App holds everything a geoblob function needs, built once.
type App struct {
	Config    config.Config
	Logger    *slog.Logger
	Pool      *pgxpool.Pool
	Registry  *registry.Store
	Primary   *blobstore.Store
	Secondary *blobstore.Store
	Catalog   *datatype.Catalog
	Engine    *replication.Engine
	// Handler accepts events of either kind; use NewHandler for a function
	// that expects one kind.
	Handler *handler.Handler
}

// Option adjusts what Build wires.
type Option func(*options)

type options struct {
	copies replication.CopyObserver
}

// WithCopies makes the engine report every finished copy to o (latency and
// bytes metrics: metrics.EMFCopies in Lambda, prom.Copies locally).
func WithCopies(o replication.CopyObserver) Option {
	return func(opts *options) { opts.copies = o }
}

// Build creates the App. It does not connect to the database (the pool
// connects on first use, so a database that is down at cold start fails the
// first event, which is retried, not the function's init). It does not run
// migrations. Errors are wrapped with "app:".
func Build(ctx context.Context, cfg config.Config, logger *slog.Logger, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if logger == nil {
		logger = slog.Default()
	}
	catalog, err := cfg.Catalog()
	if err != nil {
		return nil, fmt.Errorf("app: catalog: %w", err)
	}
	storeOpts := blobstore.Options{
		MultipartThreshold: cfg.MultipartThreshold,
		PartSize:           cfg.PartSize,
		Logger:             logger,
	}
	primary, secondary, err := openBuckets(ctx, cfg, storeOpts)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	dsn, err := DatabaseURL(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	pool, err := NewPool(ctx, dsn, cfg.CopyConcurrency)
	if err != nil {
		return nil, err
	}
	a := &App{
		Config:    cfg,
		Logger:    logger,
		Pool:      pool,
		Registry:  registry.New(pool, registry.Options{KeyPrefixes: catalog.Prefixes(), Logger: logger}),
		Primary:   primary,
		Secondary: secondary,
		Catalog:   catalog,
	}
	a.Engine, err = replication.New(replication.Options{
		Registry:    a.Registry,
		Primary:     a.Primary,
		Secondary:   a.Secondary,
		Catalog:     catalog,
		Concurrency: cfg.CopyConcurrency,
		Brake:       cfg.Brake,
		SentinelKey: cfg.SentinelKey,
		Logger:      logger,
		Copies:      o.copies,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("app: %w", err)
	}
	a.Handler, err = a.NewHandler("", events.KindUnknown)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return a, nil
}

// NewHandler returns a handler for the function named function that expects
// events of kind expect (KindUnknown: either kind).
func (a *App) NewHandler(function string, expect events.Kind) (*handler.Handler, error) {
	h, err := handler.New(a.Engine, handler.Options{
		PrimaryBucket: a.Config.Primary.Name,
		Function:      function,
		Expect:        expect,
		Logger:        a.Logger,
		Rejecter:      a.Registry,
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return h, nil
}

// Close releases the database pool.
func (a *App) Close() {
	if a.Pool != nil {
		a.Pool.Close()
	}
}

// Location is where bucket b is and how to reach it (blobstore.NewClient
// builds its client).
func Location(b config.Bucket, pathStyle bool) blobstore.Location {
	return blobstore.Location{Bucket: b.Name, Region: b.Region, Endpoint: b.Endpoint, PathStyle: pathStyle, Credentials: b.Credentials}
}

// openBuckets opens the stores of the primary and secondary buckets.
func openBuckets(ctx context.Context, cfg config.Config, opts blobstore.Options) (primary, secondary *blobstore.Store, err error) {
	if primary, err = blobstore.Open(ctx, Location(cfg.Primary, cfg.PathStyle), opts); err != nil {
		return nil, nil, err
	}
	if secondary, err = blobstore.Open(ctx, Location(cfg.Secondary, cfg.PathStyle), opts); err != nil {
		return nil, nil, err
	}
	return primary, secondary, nil
}

// AWSConfig is the AWS SDK configuration of the clients that are not a
// bucket's (SQS, Secrets Manager): region when not empty, else cfg.Region
// (else the SDK's own lookup), and cfg.Credentials when set, else the
// default credential chain.
func AWSConfig(ctx context.Context, cfg config.Config, region string) (aws.Config, error) {
	if region == "" {
		region = cfg.Region
	}
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	if cfg.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("app: aws config: %w", err)
	}
	return awsCfg, nil
}

// Dispatcher returns the sender of request messages to the SQS queue at
// queueURL (GEOBLOB_SYNC_QUEUE_URL, GEOBLOB_VERIFY_QUEUE_URL), with the
// clients' AWS configuration (AWSConfig; the SQS endpoint may be set with
// AWS_ENDPOINT_URL_SQS, as the local stack does).
func Dispatcher(ctx context.Context, cfg config.Config, queueURL string) (*dispatch.SQS, error) {
	awsCfg, err := AWSConfig(ctx, cfg, "")
	if err != nil {
		return nil, err
	}
	return dispatch.NewSQS(sqs.NewFromConfig(awsCfg), queueURL, 0), nil
}

// SecretGetter reads a Secrets Manager secret; *secretsmanager.Client
// satisfies it.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ SecretGetter = (*secretsmanager.Client)(nil)

// ErrSecret: the database secret is unusable (missing fields, not JSON).
var ErrSecret = errors.New("app: database secret")

// DatabaseURL returns the registry's PostgreSQL URL: GEOBLOB_DATABASE_URL when
// set (as is), else one built from the Secrets Manager secret (RDS JSON:
// host, port, username, password, dbname) with GEOBLOB_DATABASE_HOST
// overriding the host and TLS verified (WithTLS: GEOBLOB_DATABASE_SSLMODE,
// GEOBLOB_DATABASE_CA_FILE).
// sm may be nil, in which case a client is created for the secret's region.
func DatabaseURL(ctx context.Context, cfg config.Config, sm SecretGetter) (string, error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, nil
	}
	if cfg.DatabaseSecretARN == "" {
		return "", fmt.Errorf("app: %w: neither GEOBLOB_DATABASE_URL nor GEOBLOB_DATABASE_SECRET_ARN is set", config.ErrInvalid)
	}
	secret, err := readSecret(ctx, cfg, "GEOBLOB_DATABASE_SECRET_ARN", cfg.DatabaseSecretARN, sm)
	if err != nil {
		return "", err
	}
	u, err := SecretURL(secret, cfg.DatabaseHost)
	if err != nil {
		return "", err
	}
	return WithTLS(u, cfg.DatabaseSSLMode, cfg.DatabaseCAFile)
}

// WithTLS returns dsn with TLS settings: sslmode (default verify-full: the
// server's certificate must chain to a trusted CA and name the host we
// dialled) and, when caFile is set, sslrootcert=caFile (those CAs only);
// otherwise the system trust store is used. RDS Proxy presents ACM
// certificates that chain to the Amazon roots of the system store, so no
// bundle needs to ship with the functions; a direct Aurora connection needs
// the RDS CA bundle in caFile.
func WithTLS(dsn, sslmode, caFile string) (string, error) {
	if sslmode == "" {
		sslmode = "verify-full"
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("%w: database URL: %v", ErrSecret, redact(err))
	}
	q := u.Query()
	q.Set("sslmode", sslmode)
	if caFile != "" && sslmode != "disable" {
		q.Set("sslrootcert", caFile)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// readSecret returns the string of the Secrets Manager secret id (named by
// variable in errors). sm may be nil: a client for the secret's region is
// made (AWSConfig: the secret's region, cfg's credentials).
func readSecret(ctx context.Context, cfg config.Config, variable, id string, sm SecretGetter) (string, error) {
	if sm == nil {
		region := ""
		if a, err := awsarn.Parse(id); err == nil {
			region = a.Region
		}
		awsCfg, err := AWSConfig(ctx, cfg, region)
		if err != nil {
			return "", fmt.Errorf("app: secrets manager: %w", err)
		}
		sm = secretsmanager.NewFromConfig(awsCfg)
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("app: read secret %s=%s: %w", variable, id, err)
	}
	return aws.ToString(out.SecretString), nil
}

// MigrateRegistry is the migrate function's work: it connects as the
// registry's owner (GEOBLOB_DATABASE_URL or _SECRET_ARN), applies the
// migrations and, when GEOBLOB_DATABASE_RUNTIME_SECRET_ARN is set, makes
// that secret's user the runtime login (registry.EnsureRuntimeLogin: DML
// only, with the secret's current password). sm may be nil.
func MigrateRegistry(ctx context.Context, cfg config.Config, logger *slog.Logger, sm SecretGetter) error {
	dsn, err := DatabaseURL(ctx, cfg, sm)
	if err != nil {
		return err
	}
	pool, err := NewPool(ctx, dsn, 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := registry.MigrateWithLogger(ctx, pool, logger); err != nil {
		return err
	}
	if cfg.DatabaseRuntimeSecretARN == "" {
		return nil
	}
	secret, err := readSecret(ctx, cfg, "GEOBLOB_DATABASE_RUNTIME_SECRET_ARN", cfg.DatabaseRuntimeSecretARN, sm)
	if err != nil {
		return err
	}
	var creds dbSecret
	if err := json.Unmarshal([]byte(secret), &creds); err != nil || creds.Username == "" || creds.Password == "" {
		return fmt.Errorf("%w: GEOBLOB_DATABASE_RUNTIME_SECRET_ARN: needs username and password", ErrSecret)
	}
	return registry.EnsureRuntimeLogin(ctx, pool, creds.Username, creds.Password)
}

// dbSecret is the RDS secret JSON format. Port may be a number or a string.
type dbSecret struct {
	Host     string          `json:"host"`
	Port     json.RawMessage `json:"port"`
	Username string          `json:"username"`
	Password string          `json:"password"`
	DBName   string          `json:"dbname"`
}

// SecretURL turns an RDS-format secret into a postgres:// URL; hostOverride,
// when set, replaces the secret's host (e.g. an RDS Proxy endpoint).
func SecretURL(secret, hostOverride string) (string, error) {
	var s dbSecret
	if err := json.Unmarshal([]byte(secret), &s); err != nil {
		return "", fmt.Errorf("%w: not JSON: %v", ErrSecret, err)
	}
	if hostOverride != "" {
		s.Host = hostOverride
	}
	port := strings.Trim(string(s.Port), `"`)
	if port == "" {
		port = "5432"
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("%w: port %q is not a number", ErrSecret, port)
	}
	var missing []string
	for name, v := range map[string]string{"host": s.Host, "username": s.Username, "password": s.Password} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: missing %s", ErrSecret, strings.Join(missing, ", "))
	}
	if s.DBName == "" {
		s.DBName = "postgres"
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(s.Username, s.Password),
		Host:   net.JoinHostPort(s.Host, port),
		Path:   "/" + s.DBName,
	}
	return u.String(), nil
}

// NewPool creates a pgx pool sized for copyConcurrency workers (one
// connection each plus headroom, at most 20). It does not connect yet.
func NewPool(ctx context.Context, dsn string, copyConcurrency int) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("app: %w: database URL: %v", config.ErrInvalid, redact(err))
	}
	pc.MaxConns = int32(min(max(copyConcurrency+2, 4), 20))
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("app: database pool: %w", err)
	}
	return pool, nil
}

// redact keeps passwords out of error messages (pgx quotes the DSN in parse errors).
func redact(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			return msg[:i+3] + "****" + msg[i+j:]
		}
	}
	return msg
}
