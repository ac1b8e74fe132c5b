// Package config reads geoblob's configuration from environment variables.
// Every variable is listed in Reference (the README's table is checked against
// it); an invalid value fails at start with an error naming the variable.
package config

import (
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/geoblob/geoblob/shared/datatype"
)

// ErrInvalid is returned (wrapped, naming the variable) for unusable configuration.
var ErrInvalid = errors.New("config: invalid")

// Var documents one environment variable.
type Var struct {
	Name        string
	Default     string
	Description string
}

// Reference lists every environment variable geoblob reads, in README order.
var Reference = []Var{
	{"GEOBLOB_DATABASE_URL", "", "PostgreSQL URL of the registry (postgres://user:pass@host:port/db). Required unless GEOBLOB_DATABASE_SECRET_ARN is set."},
	{"GEOBLOB_DATABASE_SECRET_ARN", "", "Secrets Manager secret, by ARN or name (RDS JSON format: host, port, username, password, dbname), used instead of GEOBLOB_DATABASE_URL."},
	{"GEOBLOB_DATABASE_HOST", "", "Host that overrides the secret's host (e.g. the RDS Proxy endpoint)."},
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
}

// Bucket locates one bucket.
type Bucket struct {
	Name     string
	Region   string
	Endpoint string
}

// Config is geoblob's validated configuration.
type Config struct {
	DatabaseURL       string
	DatabaseSecretARN string
	DatabaseHost      string

	Primary   Bucket
	Secondary Bucket
	PathStyle bool

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
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$`)

// FromEnv reads and validates the configuration through getenv (os.Getenv in
// production). Every problem found is reported, each naming its variable.
func FromEnv(getenv func(string) string) (Config, error) {
	r := reader{NewEnv(getenv, ErrInvalid)}
	c := Config{
		DatabaseURL:       r.Str("GEOBLOB_DATABASE_URL"),
		DatabaseSecretARN: r.Str("GEOBLOB_DATABASE_SECRET_ARN"),
		DatabaseHost:      r.Str("GEOBLOB_DATABASE_HOST"),
		PathStyle:         r.Bool("GEOBLOB_S3_PATH_STYLE", false),
		CopyConcurrency:   int(r.Int("GEOBLOB_COPY_CONCURRENCY", 10, 1, 10_000)),
		// S3 multipart: parts are 5 MiB..5 GiB; a single PUT takes at most 5 GiB.
		MultipartThreshold: r.Int("GEOBLOB_MULTIPART_THRESHOLD", 16<<20, 5<<20, 5<<30),
		PartSize:           r.Int("GEOBLOB_PART_SIZE", 8<<20, 5<<20, 5<<30),
		SyncTimeout:        r.Duration("GEOBLOB_SYNC_TIMEOUT", 30*time.Minute),
		ReverifyInterval:   r.Duration("GEOBLOB_REVERIFY_INTERVAL", 90*24*time.Hour),
		LogLevel:           r.level("GEOBLOB_LOG_LEVEL"),
	}
	if c.DatabaseURL == "" && c.DatabaseSecretARN == "" {
		r.Fail("GEOBLOB_DATABASE_URL", "is required (or set GEOBLOB_DATABASE_SECRET_ARN)")
	}
	defaultRegion := getenv("AWS_REGION")
	if defaultRegion == "" {
		defaultRegion = getenv("AWS_DEFAULT_REGION")
	}
	c.Primary = r.bucket("PRIMARY", defaultRegion)
	c.Secondary = r.bucket("SECONDARY", defaultRegion)
	if c.Primary.Name != "" && c.Primary == c.Secondary {
		r.Fail("GEOBLOB_SECONDARY_BUCKET", "must differ from the primary bucket (same name, region and endpoint)")
	}
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
