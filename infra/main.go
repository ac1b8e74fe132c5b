// Command infra is geoblob's CDK app (cdk.json runs it with `go run .`). Its
// parameters are CDK context values: see docs/infrastructure.md and
// stacks.Config.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/geoblob/geoblob/infra/stacks"
)

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "geoblob infra: synth failed:\n%v\n", err)
		os.Exit(1)
	}
}

func run() error {
	app := awscdk.NewApp(nil)
	get := func(key string) any { return app.Node().TryGetContext(jsii.String(key)) }
	cfg, err := stacks.ConfigFromContext(get)
	if err != nil {
		return err
	}
	if cfg.Account == "" {
		cfg.Account = os.Getenv("GEOBLOB_ACCOUNT")
	}
	if len(cfg.Functions) == 0 {
		// Deploy every function whose source exists (the app runs in infra/).
		if cfg.Functions, err = stacks.DiscoverFunctions(".."); err != nil {
			return err
		}
	}
	if _, err := stacks.Build(app, cfg); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
