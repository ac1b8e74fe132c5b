package devstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// UpAndPrint runs Up for the CLI and prints the endpoints, credentials,
// buckets and the env file to out.
func UpAndPrint(ctx context.Context, s Settings, events EventsRunner, out io.Writer, logger *slog.Logger) (*Stack, error) {
	fmt.Fprintf(out, "geoblob local stack in %s\n", s.Dir)
	st, err := Up(ctx, UpOptions{Settings: s, Events: events, Detach: true, Out: out, Logger: logger})
	if err != nil {
		return nil, err
	}
	PrintAccess(out, st.Settings)
	return st, nil
}

// PrintAccess prints how to reach the stack.
func PrintAccess(out io.Writer, s Settings) {
	fmt.Fprintf(out, `
primary    %s  bucket %s  region %s
secondary  %s  bucket %s  region %s
registry   %s
console    %s   (operator console: status per data type, registry, resync/reverify)
access key %s
secret key %s
env file   %s   (source it: GEOBLOB_* for the functions, AWS_* for the aws CLI)
`, s.PrimaryEndpoint(), s.PrimaryBucket, s.PrimaryRegion,
		s.SecondaryEndpoint(), s.SecondaryBucket, s.SecondaryRegion,
		s.DatabaseURL(), s.ConsoleURL(), s.AccessKey, s.SecretKey, s.EnvFile())
}

// PrintHowTo prints how to upload and delete by hand and how to stop.
func PrintHowTo(out io.Writer, s Settings) {
	fmt.Fprintf(out, `
Upload or delete by hand; the secondary follows with no further command:
  go run ./cmd/geoblob cp ./some.jar maven/com/example/app/2.0.0/app-2.0.0.jar
  go run ./cmd/geoblob rm maven/com/example/app/2.0.0/app-2.0.0.jar
  go run ./cmd/geoblob status
or with the aws CLI:
  source %s
  aws s3 cp ./some.tgz s3://%s/npm/some/-/some-1.0.0.tgz --endpoint-url %s
  aws s3 ls --recursive s3://%s/ --endpoint-url %s --region %s
  (credentials: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s)
Stop the stack with: make down   (state stays in %s; make clean removes it)

Operator console: %s
`, s.EnvFile(), s.PrimaryBucket, s.PrimaryEndpoint(), s.SecondaryBucket, s.SecondaryEndpoint(), s.SecondaryRegion,
		s.AccessKey, s.SecretKey, s.PrimaryRegion, s.Dir, s.ConsoleURL())
}

// Copy uploads a local file to the primary bucket of the stack in dir.
func Copy(ctx context.Context, dir, file, key string, out io.Writer) error {
	s, err := LoadSettings(dir)
	if err != nil {
		return err
	}
	if key == "" || key[len(key)-1] == '/' {
		key += filepath.Base(file)
	}
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	n, err := s.Bucket(Primary).PutFile(ctx, key, file)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "upload: %s to s3://%s/%s (%s)\n", file, s.PrimaryBucket, key, HumanBytes(n))
	return nil
}

// Remove deletes key from the primary bucket of the stack in dir.
func Remove(ctx context.Context, dir, key string, out io.Writer) error {
	s, err := LoadSettings(dir)
	if err != nil {
		return err
	}
	if err := s.Bucket(Primary).Delete(ctx, key); err != nil {
		return err
	}
	fmt.Fprintf(out, "delete: s3://%s/%s\n", s.PrimaryBucket, key)
	return nil
}
