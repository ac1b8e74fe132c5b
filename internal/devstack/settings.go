package devstack

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Default ports and names of the user's stack, fixed so printed instructions
// stay valid between runs.
const (
	DefaultPostgresPort  = 9432
	DefaultPrimaryPort   = 9100
	DefaultSecondaryPort = 9200
	DefaultEventsPort    = 9300

	DefaultPrimaryBucket   = "geoblob-primary"
	DefaultSecondaryBucket = "geoblob-secondary"
	DefaultPrimaryRegion   = "us-east-1"
	DefaultSecondaryRegion = "eu-west-1"
	DefaultAccessKey       = "geoblob"
	DefaultSecretKey       = "geoblob-local-secret"
	DefaultDatabase        = "geoblob"

	// WebhookID is the MinIO notification target id (ARN arn:minio:sqs::<id>:webhook).
	WebhookID = "GEOBLOB"
)

// ErrNotUp is returned (wrapped) when a command needs a stack that is not running.
var ErrNotUp = errors.New("devstack: stack is not up (run `geoblob up` or `make up`)")

// Ports are the TCP ports of a stack on 127.0.0.1. MinIO's console listens on
// the S3 port + 1.
type Ports struct {
	Postgres  int `json:"postgres"`
	Primary   int `json:"primary"`
	Secondary int `json:"secondary"`
	Events    int `json:"events"`
	Console   int `json:"console,omitempty"` // 0: Events + 100 (see ConsolePort)
}

// Settings describe one stack; Up records them in <Dir>/stack.json.
type Settings struct {
	// Dir is the state directory (absolute).
	Dir             string `json:"dir"`
	Ports           Ports  `json:"ports"`
	PrimaryBucket   string `json:"primary_bucket"`
	SecondaryBucket string `json:"secondary_bucket"`
	PrimaryRegion   string `json:"primary_region"`
	SecondaryRegion string `json:"secondary_region"`
	AccessKey       string `json:"access_key"`
	SecretKey       string `json:"secret_key"`
	Database        string `json:"database"`
	// EventsToken is the per-stack secret MinIO's webhook sends to the
	// event receiver (MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>); Up generates it
	// once and keeps it in stack.json (0600).
	EventsToken string `json:"events_token"`
}

// DefaultSettings returns the user's stack settings in dir.
func DefaultSettings(dir string) Settings {
	return Settings{
		Dir:             dir,
		Ports:           Ports{Postgres: DefaultPostgresPort, Primary: DefaultPrimaryPort, Secondary: DefaultSecondaryPort, Events: DefaultEventsPort, Console: DefaultConsolePort},
		PrimaryBucket:   DefaultPrimaryBucket,
		SecondaryBucket: DefaultSecondaryBucket,
		PrimaryRegion:   DefaultPrimaryRegion,
		SecondaryRegion: DefaultSecondaryRegion,
		AccessKey:       DefaultAccessKey,
		SecretKey:       DefaultSecretKey,
		Database:        DefaultDatabase,
	}
}

func (s Settings) validate() error {
	var errs []string
	if !filepath.IsAbs(s.Dir) {
		errs = append(errs, fmt.Sprintf("state dir %q must be absolute", s.Dir))
	}
	p := s.Ports
	for name, port := range map[string]int{"postgres": p.Postgres, "primary": p.Primary, "secondary": p.Secondary, "events": p.Events} {
		if port <= 0 || port >= 65535 {
			errs = append(errs, fmt.Sprintf("%s port %d out of range", name, port))
		}
	}
	if s.PrimaryBucket == "" || s.SecondaryBucket == "" || s.AccessKey == "" || len(s.SecretKey) < 8 || s.Database == "" {
		errs = append(errs, "buckets, access key, secret key (8+ chars) and database are required")
	}
	if len(errs) > 0 {
		return fmt.Errorf("devstack: invalid settings: %s", strings.Join(errs, "; "))
	}
	return nil
}

// PrimaryEndpoint is the S3 URL of the primary region's MinIO.
func (s Settings) PrimaryEndpoint() string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.Ports.Primary)
}

// SecondaryEndpoint is the S3 URL of the secondary region's MinIO.
func (s Settings) SecondaryEndpoint() string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.Ports.Secondary)
}

// EventsURL is where MinIO posts bucket notifications.
func (s Settings) EventsURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/minio/events", s.Ports.Events)
}

// EventsAddr is the listen address of the event receiver.
func (s Settings) EventsAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.Ports.Events) }

// DatabaseURL is the registry's PostgreSQL URL.
func (s Settings) DatabaseURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Ports.Postgres, s.Database)
}

// Paths inside the state directory.
func (s Settings) path(name string) string { return filepath.Join(s.Dir, name) }

// PostgresDir holds the PostgreSQL cluster.
func (s Settings) PostgresDir() string { return s.path("postgres") }

// MinioDir holds the data, queue, pid and log files of one MinIO process
// ("primary" or "secondary").
func (s Settings) MinioDir(side string) string { return s.path("minio-" + side) }

// SpoolDir is the event daemon's durable queue of webhook bodies (the
// stand-in for the SQS queue).
func (s Settings) SpoolDir() string { return s.path("events-spool") }

// DeadLetterDir receives spooled messages that failed too often (the
// stand-in for the SQS dead-letter queue).
func (s Settings) DeadLetterDir() string { return s.path("events-dlq") }

// EventsPIDFile is the event daemon's pid file.
func (s Settings) EventsPIDFile() string { return s.path("events.pid") }

// EventsLogFile is the event daemon's log file.
func (s Settings) EventsLogFile() string { return s.path("events.log") }

// EnvFile is the shell file of exports Up writes for the user.
func (s Settings) EnvFile() string { return s.path("env") }

func (s Settings) stateFile() string { return s.path("stack.json") }

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// Env returns the variables the functions read (config.FromEnv) for this
// stack, followed by the AWS_* variables for the aws CLI and SDKs.
func (s Settings) Env() []EnvVar {
	return []EnvVar{
		{"GEOBLOB_DATABASE_URL", s.DatabaseURL()},
		{"GEOBLOB_PRIMARY_BUCKET", s.PrimaryBucket},
		{"GEOBLOB_PRIMARY_REGION", s.PrimaryRegion},
		{"GEOBLOB_PRIMARY_ENDPOINT", s.PrimaryEndpoint()},
		{"GEOBLOB_SECONDARY_BUCKET", s.SecondaryBucket},
		{"GEOBLOB_SECONDARY_REGION", s.SecondaryRegion},
		{"GEOBLOB_SECONDARY_ENDPOINT", s.SecondaryEndpoint()},
		{"GEOBLOB_S3_PATH_STYLE", "true"},
		{"AWS_ACCESS_KEY_ID", s.AccessKey},
		{"AWS_SECRET_ACCESS_KEY", s.SecretKey},
		{"AWS_REGION", s.PrimaryRegion},
	}
}

// Getenv looks a variable up in Env, falling back to fallback (os.Getenv, or
// nil for none) for the others, so config.FromEnv(s.Getenv(os.Getenv)) reads
// the stack's configuration and credentials (config.Config.Credentials)
// plus any GEOBLOB_* tuning the user set. The caller's AWS_SESSION_TOKEN
// never pairs with the stack's key pair: it reads as empty.
func (s Settings) Getenv(fallback func(string) string) func(string) string {
	env := map[string]string{"AWS_SESSION_TOKEN": ""}
	for _, v := range s.Env() {
		env[v.Name] = v.Value
	}
	return func(name string) string {
		if v, ok := env[name]; ok {
			return v
		}
		if fallback != nil {
			return fallback(name)
		}
		return ""
	}
}

// EnvFileContent renders the env file: shell exports of Env, plus
// AWS_ENDPOINT_URL_S3 pointing at the primary for the aws CLI.
func (s Settings) EnvFileContent() string {
	var b strings.Builder
	b.WriteString("# geoblob local stack: `source " + shellQuote(s.EnvFile()) + "`\n")
	b.WriteString("# The GEOBLOB_* variables are what the Lambda functions read; AWS_* serve the aws CLI.\n")
	for _, v := range s.Env() {
		fmt.Fprintf(&b, "export %s=%s\n", v.Name, shellQuote(v.Value))
	}
	fmt.Fprintf(&b, "# aws CLI v2 / SDKs: talk to the primary region's MinIO by default\nexport AWS_ENDPOINT_URL_S3=%s\n", shellQuote(s.PrimaryEndpoint()))
	return b.String()
}

func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@=", r))
	}) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// withEventsToken returns s with an events token: s's own, the one stack.json
// in s.Dir already holds (MinIO may be running with it), or a new random one.
func (s Settings) withEventsToken() (Settings, error) {
	if s.EventsToken != "" {
		return s, nil
	}
	if old, err := LoadSettings(s.Dir); err == nil && old.EventsToken != "" {
		s.EventsToken = old.EventsToken
		return s, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return s, fmt.Errorf("devstack: events token: %w", err)
	}
	s.EventsToken = hex.EncodeToString(b)
	return s, nil
}

// save writes stack.json and env.
func (s Settings) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("devstack: encode settings: %w", err)
	}
	if err := os.WriteFile(s.stateFile(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("devstack: write %s: %w", s.stateFile(), err)
	}
	if err := os.WriteFile(s.EnvFile(), []byte(s.EnvFileContent()), 0o600); err != nil {
		return fmt.Errorf("devstack: write %s: %w", s.EnvFile(), err)
	}
	return nil
}

// LoadSettings reads the settings Up recorded in dir. It returns an error
// wrapping ErrNotUp when there are none.
func LoadSettings(dir string) (Settings, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Settings{}, fmt.Errorf("devstack: state dir %q: %w", dir, err)
	}
	b, err := os.ReadFile(filepath.Join(abs, "stack.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Settings{}, fmt.Errorf("%w: no %s", ErrNotUp, filepath.Join(abs, "stack.json"))
	}
	if err != nil {
		return Settings{}, fmt.Errorf("devstack: read settings: %w", err)
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, fmt.Errorf("devstack: decode %s: %w", filepath.Join(abs, "stack.json"), err)
	}
	return s, nil
}

// FreeSettings returns settings for a throwaway stack in dir (absolute) on
// ports that were free a moment ago (tests).
func FreeSettings(dir string) (Settings, error) {
	s := DefaultSettings(dir)
	var ports [5]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Settings{}, fmt.Errorf("devstack: find free port: %w", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	s.Ports = Ports{Postgres: ports[0], Primary: ports[1], Secondary: ports[2], Events: ports[3], Console: ports[4]}
	return s, nil
}
