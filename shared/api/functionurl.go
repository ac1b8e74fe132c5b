package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/geoblob/geoblob/shared/config"
	"github.com/geoblob/geoblob/shared/health"
	"github.com/geoblob/geoblob/shared/registry"
)

// IAMCaller names the caller of a request that came through a Lambda
// function URL with AuthType AWS_IAM: the IAM ARN AWS verified (request
// context authorizer.iam.userArn). It returns "" outside a function URL.
func IAMCaller(r *http.Request) string {
	req, ok := lambdaurl.RequestFromContext(r.Context())
	if !ok || req.RequestContext.Authorizer == nil || req.RequestContext.Authorizer.IAM == nil {
		return ""
	}
	return req.RequestContext.Authorizer.IAM.UserARN
}

// functionIdentity is the audit identity in functions/api: the caller's IAM
// ARN. A request without one can only come from outside the function URL
// (AWS_IAM refuses unsigned requests), so it is named as such.
func functionIdentity(r *http.Request) string {
	if arn := IAMCaller(r); arn != "" {
		return arn
	}
	return "unauthenticated"
}

// bulkMargin is kept free before the invocation deadline when a bulk
// operation runs inside a request.
const bulkMargin = 15 * time.Second

// FunctionOptions are what the api function's handler is made of
// (app.BuildAPI wires them from configuration).
type FunctionOptions struct {
	// Config is the validated configuration; Getenv reads
	// GEOBLOB_API_ACTIONS and the health thresholds.
	Config config.Config
	Getenv func(string) string
	// Registry is the registry the API reads and changes.
	Registry *registry.Store
	// Health is the health check, with a read-only secondary probe (the api
	// role may not write) and the SQS dead-letter queues.
	Health *health.Checker
	Logger *slog.Logger
}

// NewFunction returns the api function's handler (functions/api): actions
// as GEOBLOB_API_ACTIONS says, audited with the caller's IAM ARN, and bulk
// operations run inside the invocation (what its deadline cuts short is
// resumed by the next action request). It is served with lambdaurl.Wrap.
func NewFunction(o FunctionOptions) (http.Handler, error) {
	actions, err := ActionsFromEnv(o.Getenv)
	if err != nil {
		return nil, err
	}
	hopts, _, err := health.OptionsFromEnv(o.Getenv)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	var types []string
	for _, t := range o.Config.Types {
		types = append(types, t.Name)
	}
	reg, logger := o.Registry, o.Logger
	srv, err := New(Options{
		Registry:       reg,
		DataTypes:      types,
		ActionsEnabled: actions,
		Identity:       functionIdentity,
		DeadLetters:    o.Health.DeadLetters(),
		Health:         o.Health.Run,
		RunBulk: func(ctx context.Context, id int64) {
			runBulkInInvocation(ctx, reg, id, logger)
		},
		BackfillMaxAge:   hopts.BackfillMaxAge,
		VerifyMaxAge:     hopts.VerifyMaxAge,
		ReverifyInterval: o.Config.ReverifyInterval,
		Brake:            o.Config.Brake,
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	return srv, nil
}

// bulkRunner is the part of the registry that runs bulk operations.
type bulkRunner interface {
	RunBulk(ctx context.Context, id int64, o registry.BulkOptions) (registry.BulkOperation, error)
	ResumeBulk(ctx context.Context, o registry.BulkOptions) (int, error)
}

var _ bulkRunner = (*registry.Store)(nil)

// runBulkInInvocation runs operation id, then any other operation whose
// runner stopped (an earlier invocation's deadline), until the invocation's
// deadline minus bulkMargin. Lambda freezes a process between invocations,
// so nothing may run after the response.
func runBulkInInvocation(ctx context.Context, reg bulkRunner, id int64, logger *slog.Logger) {
	dl, ok := ctx.Deadline()
	ctx = context.WithoutCancel(ctx) // a client that goes away does not cut a batch short
	if ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-bulkMargin))
		defer cancel()
	}
	opts := registry.BulkOptions{Owner: "api-function"}
	if op, err := reg.RunBulk(ctx, id, opts); err != nil {
		logger.ErrorContext(ctx, "api: bulk operation", "id", id, "error", err)
	} else {
		logger.InfoContext(ctx, "api: bulk operation", "id", id, "state", op.State, "changed", op.Changed)
	}
	if n, err := reg.ResumeBulk(ctx, opts); err != nil {
		logger.ErrorContext(ctx, "api: resume bulk operations", "error", err)
	} else if n > 0 {
		logger.InfoContext(ctx, "api: resumed bulk operations", "count", n)
	}
}
