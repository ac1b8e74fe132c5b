// Package config reads geoblob's configuration from environment variables.
// Every variable is listed in Reference (the README's table is checked against
// it); an invalid value fails at start with an error naming the variable.
package config

import (
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
)

// ErrInvalid is returned (wrapped, naming the variable) for unusable configuration.
var ErrInvalid = errors.New("config: invalid")

// Var documents one environment variable.
type Var struct {
	Name        string
	Default     string
	Description string
}

// Bucket locates one bucket.
type Bucket struct {
	Name     string
	Region   string
	Endpoint string
	// Credentials, when set, sign this bucket's requests instead of the AWS
	// default credential chain. FromEnv sets it to Config.Credentials;
	// code may replace it (e.g. a test that gives each function its own S3
	// user).
	Credentials aws.CredentialsProvider
}

// Config is geoblob's validated configuration.
type Config struct {
	DatabaseURL       string
	DatabaseSecretARN string
	DatabaseHost      string
	// DatabaseSSLMode and DatabaseCAFile set TLS for URLs built from the
	// secret (GEOBLOB_DATABASE_URL carries its own sslmode).
	DatabaseSSLMode string
	DatabaseCAFile  string
	// DatabaseRuntimeSecretARN (migrate only) names the runtime login's secret.
	DatabaseRuntimeSecretARN string

	Primary   Bucket
	Secondary Bucket
	PathStyle bool

	// Region is AWS_REGION (else AWS_DEFAULT_REGION): the region of the
	// AWS clients that are not a bucket's (SQS).
	Region string
	// Credentials sign every AWS request (both buckets, the queues): the
	// static AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
	// read through getenv (Lambda sets them for the function's role; the
	// local stack's getenv supplies its own), so no caller ever has to put
	// credentials into the process environment. Nil when getenv has no key
	// pair: the clients then use the AWS default credential chain.
	Credentials aws.CredentialsProvider

	// Types are the enabled data types, with pattern overrides applied.
	Types []datatype.Type
	// KeyPrefixes limit replication to keys under them (empty: all keys).
	KeyPrefixes []string

	CopyConcurrency    int
	MultipartThreshold int64
	PartSize           int64
	SyncTimeout        time.Duration
	ReverifyInterval   time.Duration
	LogLevel           slog.Level

	// Brake is the delete budget (GEOBLOB_DELETE_BRAKE*, GEOBLOB_DELETE_GRACE).
	Brake registry.BrakePolicy
	// SentinelKey must exist on the primary before deletes propagate.
	SentinelKey string
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$`)

// FromEnv reads and validates the configuration through getenv (os.Getenv in
// production). Every problem found is reported, each naming its variable.
func FromEnv(getenv func(string) string) (Config, error) {
	r := reader{NewEnv(getenv, ErrInvalid)}
	c := Config{
		DatabaseURL:              r.Str("GEOBLOB_DATABASE_URL"),
		DatabaseSecretARN:        r.Str("GEOBLOB_DATABASE_SECRET_ARN"),
		DatabaseHost:             r.Str("GEOBLOB_DATABASE_HOST"),
		DatabaseSSLMode:          r.sslMode("GEOBLOB_DATABASE_SSLMODE"),
		DatabaseCAFile:           r.Str("GEOBLOB_DATABASE_CA_FILE"),
		DatabaseRuntimeSecretARN: r.Str("GEOBLOB_DATABASE_RUNTIME_SECRET_ARN"),
		PathStyle:                r.Bool("GEOBLOB_S3_PATH_STYLE", false),
		CopyConcurrency:          int(r.Int("GEOBLOB_COPY_CONCURRENCY", 10, 1, 10_000)),
		// S3 multipart: parts are 5 MiB..5 GiB; a single PUT takes at most 5 GiB.
		MultipartThreshold: r.Int("GEOBLOB_MULTIPART_THRESHOLD", 16<<20, 5<<20, 5<<30),
		PartSize:           r.Int("GEOBLOB_PART_SIZE", 8<<20, 5<<20, 5<<30),
		SyncTimeout:        r.Duration("GEOBLOB_SYNC_TIMEOUT", 30*time.Minute),
		ReverifyInterval:   r.Duration("GEOBLOB_REVERIFY_INTERVAL", 90*24*time.Hour),
		LogLevel:           r.level("GEOBLOB_LOG_LEVEL"),
		Brake: registry.BrakePolicy{
			Disabled:       !r.Bool("GEOBLOB_DELETE_BRAKE", true),
			Window:         r.Duration("GEOBLOB_DELETE_BRAKE_WINDOW", registry.DefaultBrakeWindow),
			MaxDeletes:     r.Int("GEOBLOB_DELETE_BRAKE_MAX_DELETES", registry.DefaultBrakeMaxDeletes, 0, 1<<40),
			TypeMaxDeletes: r.Int("GEOBLOB_DELETE_BRAKE_TYPE_MAX_DELETES", registry.DefaultBrakeTypeMaxDeletes, 0, 1<<40),
			MaxFraction:    r.fraction("GEOBLOB_DELETE_BRAKE_MAX_FRACTION", registry.DefaultBrakeMaxFraction),
			MinDeletes:     r.Int("GEOBLOB_DELETE_BRAKE_MIN_DELETES", registry.DefaultBrakeMinDeletes, 0, 1<<40),
			Grace:          r.durationOrZero("GEOBLOB_DELETE_GRACE"),
		},
		SentinelKey: r.Str("GEOBLOB_PRIMARY_SENTINEL_KEY"),
	}
	if c.DatabaseURL == "" && c.DatabaseSecretARN == "" {
		r.Fail("GEOBLOB_DATABASE_URL", "is required (or set GEOBLOB_DATABASE_SECRET_ARN)")
	}
	defaultRegion := getenv("AWS_REGION")
	if defaultRegion == "" {
		defaultRegion = getenv("AWS_DEFAULT_REGION")
	}
	c.Region = defaultRegion
	c.Primary = r.bucket("PRIMARY", defaultRegion)
	c.Secondary = r.bucket("SECONDARY", defaultRegion)
	if c.Primary.Name != "" && c.Primary == c.Secondary {
		r.Fail("GEOBLOB_SECONDARY_BUCKET", "must differ from the primary bucket (same name, region and endpoint)")
	}
	c.Credentials = credentialsFrom(getenv)
	c.Primary.Credentials, c.Secondary.Credentials = c.Credentials, c.Credentials
	c.Types = r.types()
	for _, p := range strings.Split(r.Str("GEOBLOB_KEY_PREFIXES"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.KeyPrefixes = append(c.KeyPrefixes, p)
		}
	}
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Catalog builds the data-type catalog of the enabled types, limited to the
// selected key prefixes.
func (c Config) Catalog() (*datatype.Catalog, error) {
	cat, err := datatype.NewCatalog(c.Types...)
	if err != nil {
		return nil, err
	}
	return cat.WithPrefixes(c.KeyPrefixes...), nil
}

type reader struct{ *Env }

// credentialsFrom returns static credentials from the AWS_* key pair (and
// session token) getenv holds, or nil when it holds no pair.
func credentialsFrom(getenv func(string) string) aws.CredentialsProvider {
	id, secret := strings.TrimSpace(getenv("AWS_ACCESS_KEY_ID")), strings.TrimSpace(getenv("AWS_SECRET_ACCESS_KEY"))
	if id == "" || secret == "" {
		return nil
	}
	return credentials.NewStaticCredentialsProvider(id, secret, strings.TrimSpace(getenv("AWS_SESSION_TOKEN")))
}

// sslMode reads a libpq sslmode that never falls back to plain text
// silently (allow and prefer do); default verify-full.
func (r *reader) sslMode(name string) string {
	switch v := r.Str(name); v {
	case "":
		return "verify-full"
	case "verify-full", "verify-ca", "require", "disable":
		return v
	default:
		r.Fail(name, "must be verify-full, verify-ca, require or disable, got %q", v)
		return "verify-full"
	}
}

func (r *reader) level(name string) slog.Level {
	var l slog.Level
	v := r.Str(name)
	if v == "" {
		return slog.LevelInfo
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.Fail(name, "must be debug, info, warn or error, got %q", v)
	}
	return l
}

// fraction reads a number from 0 to 1, def when unset.
func (r *reader) fraction(name string, def float64) float64 {
	v := r.Str(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 {
		r.Fail(name, "must be a number from 0 to 1, got %q", v)
		return def
	}
	return f
}

// durationOrZero reads a Go duration that may be 0 (the default).
func (r *reader) durationOrZero(name string) time.Duration {
	if v := r.Str(name); v == "0" || v == "" {
		return 0
	}
	return r.Duration(name, 0)
}

func (r *reader) bucket(side, defaultRegion string) Bucket {
	prefix := "GEOBLOB_" + side + "_"
	b := Bucket{
		Name:     r.Str(prefix + "BUCKET"),
		Region:   r.Str(prefix + "REGION"),
		Endpoint: r.Str(prefix + "ENDPOINT"),
	}
	if b.Region == "" {
		b.Region = defaultRegion
	}
	switch {
	case b.Name == "":
		r.Fail(prefix+"BUCKET", "is required")
	case !bucketName.MatchString(b.Name):
		r.Fail(prefix+"BUCKET", "%q is not a valid S3 bucket name", b.Name)
	}
	if b.Region == "" {
		r.Fail(prefix+"REGION", "is required (or set AWS_REGION)")
	}
	if b.Endpoint != "" && !strings.HasPrefix(b.Endpoint, "http://") && !strings.HasPrefix(b.Endpoint, "https://") {
		r.Fail(prefix+"ENDPOINT", "must be an http:// or https:// URL, got %q", b.Endpoint)
	}
	return b
}

func (r *reader) types() []datatype.Type {
	types := datatype.Builtin()
	if v := r.Str("GEOBLOB_EXTRA_TYPES"); v != "" {
		var extra []datatype.Type
		if err := json.Unmarshal([]byte(v), &extra); err != nil {
			r.Fail("GEOBLOB_EXTRA_TYPES", "must be a JSON list of {name, patterns, examples}: %v", err)
		}
		types = append(types, extra...)
	}
	if v := r.Str("GEOBLOB_TYPE_PATTERNS"); v != "" {
		var patterns map[string][]string
		if err := json.Unmarshal([]byte(v), &patterns); err != nil {
			r.Fail("GEOBLOB_TYPE_PATTERNS", "must be a JSON object of type name to pattern list: %v", err)
		}
		for name, ps := range patterns {
			found := false
			for i := range types {
				if types[i].Name == name {
					types[i].Patterns = ps
					types[i] = types[i].KeepMatchingExamples()
					found = true
				}
			}
			if !found {
				r.Fail("GEOBLOB_TYPE_PATTERNS", "names unknown data type %q", name)
			}
		}
	}
	if v := r.Str("GEOBLOB_DATA_TYPES"); v != "" {
		selected, err := datatype.Select(types, strings.Split(v, ","))
		if err != nil {
			r.Fail("GEOBLOB_DATA_TYPES", "%v", err)
		} else {
			types = selected
		}
	}
	if len(types) == 0 {
		r.Fail("GEOBLOB_DATA_TYPES", "enables no data type")
	}
	if _, err := datatype.NewCatalog(types...); err != nil {
		r.Fail("GEOBLOB_TYPE_PATTERNS", "gives an unusable catalog: %v", err)
	}
	return types
}
