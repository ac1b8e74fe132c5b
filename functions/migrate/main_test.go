package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newHandler(calls *int, err error) handler {
	return handler{
		migrate: func(context.Context) error { *calls++; return err },
		logger:  slog.New(slog.DiscardHandler),
	}
}

func TestHandleRequestTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		requestType cfn.RequestType
		wantCalls   int
	}{
		{cfn.RequestCreate, 1},
		{cfn.RequestUpdate, 1},
		{cfn.RequestDelete, 0},
		{"", 1}, // direct invocation
	} {
		t.Run(string(tc.requestType), func(t *testing.T) {
			t.Parallel()
			calls := 0
			resp, err := newHandler(&calls, nil).handle(context.Background(), cfn.Event{RequestType: tc.requestType})
			require.NoError(t, err)
			assert.Equal(t, tc.wantCalls, calls)
			assert.Equal(t, physicalResourceID, resp.PhysicalResourceID)
		})
	}
}

func TestHandleFailure(t *testing.T) {
	t.Parallel()
	calls := 0
	boom := errors.New("boom")
	_, err := newHandler(&calls, boom).handle(context.Background(), cfn.Event{RequestType: cfn.RequestCreate})
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 1, calls)
}

// TestProviderFrameworkPayload runs the handler through the Lambda JSON path
// with the sample event of testdata/sam and checks the Provider framework's
// response shape.
func TestProviderFrameworkPayload(t *testing.T) {
	t.Parallel()
	calls := 0
	h := newHandler(&calls, nil)
	payload := []byte(`{"RequestType":"Update","ServiceToken":"arn:aws:lambda:us-west-2:123456789012:function:f",
		"ResponseURL":"https://example.invalid","StackId":"arn:aws:cloudformation:us-west-2:123456789012:stack/GeoblobSecondary/x",
		"RequestId":"r","LogicalResourceId":"migrateMigrations","PhysicalResourceId":"geoblob-registry-schema",
		"ResourceType":"Custom::GeoblobMigrations","ResourceProperties":{"BootstrapSha256":"abc"},
		"OldResourceProperties":{"BootstrapSha256":"def"}}`)
	out, err := lambda.NewHandler(h.handle).Invoke(context.Background(), payload)
	require.NoError(t, err)
	var resp map[string]any
	require.NoError(t, json.Unmarshal(out, &resp))
	assert.Equal(t, "geoblob-registry-schema", resp["PhysicalResourceId"])
	assert.Equal(t, 1, calls)
}
