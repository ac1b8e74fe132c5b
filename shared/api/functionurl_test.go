package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/api"
)

// A request that came through the function URL (the event AWS sends, run
// through lambdaurl as functions/api does) is attributed to the IAM ARN AWS
// verified; any other request to nobody.
func TestIAMCallerFromFunctionURLEvent(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../testdata/sam/api-url.json")
	require.NoError(t, err)
	var seen string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = api.IAMCaller(r)
		_, _ = io.WriteString(w, "ok")
	})
	out, err := lambda.NewHandler(lambdaurl.Wrap(h)).Invoke(context.Background(), raw)
	require.NoError(t, err)
	assert.True(t, bytes.HasSuffix(out, []byte("ok")), "%q", out)
	assert.Equal(t, "arn:aws:iam::123456789012:user/operator", seen)

	var ev events.LambdaFunctionURLRequest
	require.NoError(t, json.Unmarshal(raw, &ev))
	ev.RequestContext.Authorizer = nil
	noAuth, err := json.Marshal(ev)
	require.NoError(t, err)
	_, err = lambda.NewHandler(lambdaurl.Wrap(h)).Invoke(context.Background(), noAuth)
	require.NoError(t, err)
	assert.Empty(t, seen, "no IAM authorizer, no identity")

	r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/api/v1/status", nil)
	require.NoError(t, err)
	assert.Empty(t, api.IAMCaller(r), "outside a function URL")
}
