// Package localstack holds the steps of the LocalStack path that run on the
// developer's machine around `cdklocal deploy` (make deploy-local and make
// smoke-local): writing the registry secret before the deploy (so no
// credential is ever in the template), running the migrations through the
// deployed migrate function afterwards (LocalStack skips the custom resource
// that does it on AWS), and a smoke test of the deployed chain. The same code
// works against real AWS endpoints.
package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// ErrInvalid is returned (wrapped) for unusable input: a database URL that is
// not postgres://user:pass@host[:port]/db, an outputs file without a value.
var ErrInvalid = errors.New("localstack: invalid input")

// ErrFunction is returned (wrapped) when an invoked function reports an error.
var ErrFunction = errors.New("localstack: function failed")

// rdsSecret is the RDS secret JSON shape shared/app.SecretURL reads.
type rdsSecret struct {
	Engine   string `json:"engine"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Username string `json:"username"`
	Password string `json:"password"`
	DBName   string `json:"dbname"`
}

// SecretJSON converts a PostgreSQL URL into the RDS secret JSON (engine,
// host, port, username, password, dbname).
func SecretJSON(databaseURL string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Hostname() == "" || u.User == nil {
		return "", fmt.Errorf("%w: database URL must be postgres://user:password@host:port/dbname", ErrInvalid)
	}
	pass, _ := u.User.Password()
	s := rdsSecret{Engine: "postgres", Host: u.Hostname(), Port: 5432, Username: u.User.Username(), Password: pass,
		DBName: strings.TrimPrefix(u.Path, "/")}
	if p := u.Port(); p != "" {
		if _, err := fmt.Sscanf(p, "%d", &s.Port); err != nil {
			return "", fmt.Errorf("%w: database URL port %q", ErrInvalid, p)
		}
	}
	if s.Username == "" || s.Password == "" || s.DBName == "" {
		return "", fmt.Errorf("%w: database URL needs a user, a password and a database name", ErrInvalid)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("localstack: secret: %w", err)
	}
	return string(b), nil
}

// SecretWriter creates and updates secrets; *secretsmanager.Client satisfies it.
type SecretWriter interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

var _ SecretWriter = (*secretsmanager.Client)(nil)

// PutSecret stores the registry's URL as the RDS-shaped secret name: it
// creates the secret, or writes a new value when it exists. It returns
// whether it created it.
func PutSecret(ctx context.Context, sm SecretWriter, name, databaseURL string) (created bool, err error) {
	value, err := SecretJSON(databaseURL)
	if err != nil {
		return false, err
	}
	_, err = sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		Description:  aws.String("geoblob registry database (RDS JSON); written by make deploy-local"),
		SecretString: aws.String(value),
	})
	var exists *smtypes.ResourceExistsException
	switch {
	case err == nil:
		return true, nil
	case !errors.As(err, &exists):
		return false, fmt.Errorf("localstack: create secret %s: %w", name, err)
	}
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), SecretString: aws.String(value)}); err != nil {
		return false, fmt.Errorf("localstack: update secret %s: %w", name, err)
	}
	return false, nil
}

// Invoker invokes a Lambda function; *lambda.Client satisfies it.
type Invoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

var _ Invoker = (*lambda.Client)(nil)

// Invoke calls function synchronously with payload and returns its response.
// A function error (unhandled or returned by the handler) is ErrFunction with
// the function's error document.
func Invoke(ctx context.Context, lc Invoker, function string, payload []byte) ([]byte, error) {
	out, err := lc.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(function), Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("localstack: invoke %s: %w", function, err)
	}
	if out.FunctionError != nil {
		return out.Payload, fmt.Errorf("%w: %s: %s: %s", ErrFunction, function, aws.ToString(out.FunctionError), out.Payload)
	}
	return out.Payload, nil
}

// Outputs are the stack outputs `cdk deploy --outputs-file` writes: stack
// name → output name → value.
type Outputs map[string]map[string]string

// ReadOutputs reads a cdk outputs file.
func ReadOutputs(path string) (Outputs, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localstack: outputs: %w", err)
	}
	var o Outputs
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%w: outputs file %s: %v", ErrInvalid, path, err)
	}
	return o, nil
}

// Get returns the output name of stack, or ErrInvalid naming it.
func (o Outputs) Get(stack, name string) (string, error) {
	v := o[stack][name]
	if v == "" {
		return "", fmt.Errorf("%w: stack %s has no output %s (was it deployed with --outputs-file?)", ErrInvalid, stack, name)
	}
	return v, nil
}
