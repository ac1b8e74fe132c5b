package localstack

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/app"
)

func TestSecretJSONIsWhatTheFunctionsRead(t *testing.T) {
	for _, url := range []string{
		"postgres://geoblob:s3cr%40t@postgres:5432/geoblob",
		"postgres://geoblob:pw@db.internal:6543/registry",
	} {
		secret, err := SecretJSON(url)
		require.NoError(t, err, url)
		assert.Contains(t, secret, `"engine":"postgres"`)
		got, err := app.SecretURL(secret, "")
		require.NoError(t, err)
		assert.Equal(t, url, got, "shared/app builds the same URL back from the secret")
	}
	secret, err := SecretJSON("postgresql://u:p@h/db")
	require.NoError(t, err)
	assert.Contains(t, secret, `"port":5432`, "default port")
	for _, bad := range []string{"", "mysql://u:p@h/db", "postgres://h/db", "postgres://u@h/db", "postgres://u:p@h/", "postgres://u:p@h:x/db"} {
		_, err := SecretJSON(bad)
		assert.ErrorIs(t, err, ErrInvalid, bad)
	}
}

// secretsBackend keeps secrets in a map with Secrets Manager's create/put semantics.
type secretsBackend map[string]string

func (b secretsBackend) CreateSecret(_ context.Context, in *secretsmanager.CreateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if _, ok := b[*in.Name]; ok {
		return nil, &smtypes.ResourceExistsException{Message: aws.String("exists")}
	}
	b[*in.Name] = *in.SecretString
	return &secretsmanager.CreateSecretOutput{Name: in.Name}, nil
}

func (b secretsBackend) PutSecretValue(_ context.Context, in *secretsmanager.PutSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	b[*in.SecretId] = *in.SecretString
	return &secretsmanager.PutSecretValueOutput{}, nil
}

func TestPutSecretCreatesThenUpdates(t *testing.T) {
	b := secretsBackend{}
	created, err := PutSecret(t.Context(), b, "geoblob/registry", "postgres://a:b@postgres:5432/geoblob")
	require.NoError(t, err)
	assert.True(t, created)
	created, err = PutSecret(t.Context(), b, "geoblob/registry", "postgres://a:c@postgres:5432/geoblob")
	require.NoError(t, err)
	assert.False(t, created)
	got, err := app.SecretURL(b["geoblob/registry"], "")
	require.NoError(t, err)
	assert.Equal(t, "postgres://a:c@postgres:5432/geoblob", got, "the new value replaced the old one")
	_, err = PutSecret(t.Context(), b, "x", "not a url")
	assert.ErrorIs(t, err, ErrInvalid)
}

type invoker struct{ out *lambda.InvokeOutput }

func (i invoker) Invoke(context.Context, *lambda.InvokeInput, ...func(*lambda.Options)) (*lambda.InvokeOutput, error) {
	return i.out, nil
}

func TestInvokeReportsFunctionErrors(t *testing.T) {
	resp, err := Invoke(t.Context(), invoker{&lambda.InvokeOutput{Payload: []byte(`{"PhysicalResourceId":"x"}`)}}, "migrate", nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"PhysicalResourceId":"x"}`, string(resp))
	_, err = Invoke(t.Context(), invoker{&lambda.InvokeOutput{FunctionError: aws.String("Unhandled"), Payload: []byte(`{"errorMessage":"migrate: connection refused"}`)}}, "migrate", nil)
	require.ErrorIs(t, err, ErrFunction)
	assert.Contains(t, err.Error(), "connection refused")
}

func TestReadOutputs(t *testing.T) {
	o, err := ReadOutputs("testdata/outputs.json")
	require.NoError(t, err)
	v, err := o.Get("GeoblobSecondary", "MigrateFunctionName")
	require.NoError(t, err)
	assert.Equal(t, "GeoblobSecondary-MigrateFunction-4d5e6f", v)
	_, err = o.Get("GeoblobPrimary", "MigrateFunctionName")
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = ReadOutputs("testdata/missing.json")
	assert.Error(t, err)
}
