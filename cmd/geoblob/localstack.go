package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/geoblob/geoblob/internal/devstack"
	"github.com/geoblob/geoblob/internal/localstack"
	"github.com/geoblob/geoblob/internal/s3admin"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/blobstore"
	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/registry"
)

const localstackUsage = `usage: geoblob localstack <step> [flags]   (run by make deploy-local and make smoke-local)

steps:
  secret   write the registry's PostgreSQL URL as the RDS-shaped secret the stack imports (before the deploy)
  migrate  invoke the deployed migrate function (after the deploy; LocalStack skips the custom resource)
  smoke    upload a package file to the primary bucket, wait for it on the secondary and in the
           registry, delete it, wait for the delete
`

// runLocalStack runs one step of the LocalStack path (internal/localstack).
func runLocalStack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, localstackUsage)
		return flag.ErrHelp
	}
	step, args := args[0], args[1:]
	fs := flag.NewFlagSet("geoblob localstack "+step, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "http://localhost.localstack.cloud:4566", "LocalStack endpoint (AWS APIs other than S3)")
	region := fs.String("region", "us-west-2", "secondary region (where the secret, the functions and the registry live)")
	outputs := fs.String("outputs", ".local/localstack/outputs.json", "stack outputs written by cdk deploy --outputs-file")
	switch step {
	case "secret":
		name := fs.String("name", "geoblob/registry", "secret name (the stack's registrySecretName)")
		dbURL := fs.String("database-url", os.Getenv("GEOBLOB_LOCALSTACK_DATABASE_URL"), "registry URL as the functions reach it (default $GEOBLOB_LOCALSTACK_DATABASE_URL)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg, err := awsConfig(ctx, *region, *endpoint)
		if err != nil {
			return err
		}
		created, err := localstack.PutSecret(ctx, secretsmanager.NewFromConfig(cfg), *name, *dbURL)
		if err != nil {
			return err
		}
		verb := map[bool]string{true: "created", false: "updated"}[created]
		fmt.Fprintf(stdout, "secret %s %s in %s (RDS JSON; the template only names it)\n", *name, verb, *region)
		return nil
	case "migrate":
		if err := fs.Parse(args); err != nil {
			return err
		}
		out, err := localstack.ReadOutputs(*outputs)
		if err != nil {
			return err
		}
		fn, err := out.Get("GeoblobSecondary", "MigrateFunctionName")
		if err != nil {
			return err
		}
		cfg, err := awsConfig(ctx, *region, *endpoint)
		if err != nil {
			return err
		}
		resp, err := localstack.Invoke(ctx, lambda.NewFromConfig(cfg), fn, []byte(`{}`))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "migrations applied by %s: %s\n", fn, resp)
		return nil
	case "smoke":
		s3Endpoint := fs.String("s3-endpoint", "http://s3.localhost.localstack.cloud:4566", "LocalStack's S3 endpoint")
		primaryRegion := fs.String("primary-region", "us-east-1", "primary region")
		dbURL := fs.String("database-url", os.Getenv("GEOBLOB_LOCALSTACK_HOST_DATABASE_URL"), "registry URL as this machine reaches it (default $GEOBLOB_LOCALSTACK_HOST_DATABASE_URL)")
		timeout := fs.Duration("timeout", 3*time.Minute, "longest wait for each step")
		if err := fs.Parse(args); err != nil {
			return err
		}
		out, err := localstack.ReadOutputs(*outputs)
		if err != nil {
			return err
		}
		primaryBucket, err := out.Get("GeoblobPrimary", "PrimaryBucketName")
		if err != nil {
			return err
		}
		secondaryBucket, err := out.Get("GeoblobSecondary", "SecondaryBucketName")
		if err != nil {
			return err
		}
		pool, err := app.NewPool(ctx, *dbURL, 1)
		if err != nil {
			return err
		}
		defer pool.Close()
		catalog, err := datatype.NewCatalog(datatype.Builtin()...)
		if err != nil {
			return err
		}
		bucket := func(region, name string) (devstack.Bucket, error) {
			b, err := s3admin.Open(ctx, blobstore.Location{Bucket: name, Region: region, Endpoint: *s3Endpoint, PathStyle: true})
			if err != nil {
				return devstack.Bucket{}, err
			}
			return devstack.Bucket{Bucket: b}, nil
		}
		primary, err := bucket(*primaryRegion, primaryBucket)
		if err != nil {
			return err
		}
		secondary, err := bucket(*region, secondaryBucket)
		if err != nil {
			return err
		}
		if err := localstack.Smoke(ctx, localstack.SmokeOptions{
			Primary: primary, Secondary: secondary, Catalog: catalog, Timeout: *timeout, Out: stdout,
			Registry: registry.New(pool, registry.Options{Logger: slog.New(slog.DiscardHandler)}),
		}); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "smoke test passed: created and deleted objects replicate through the deployed stack")
		return nil
	default:
		fmt.Fprint(stderr, localstackUsage)
		return fmt.Errorf("unknown localstack step %q", step)
	}
}

// awsConfig loads the default credential chain for region, pointed at endpoint when set.
func awsConfig(ctx context.Context, region, endpoint string) (aws.Config, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws config: %w", err)
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return cfg, nil
}
