package verify_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/verify"
)

// RunUntilDone is what `make verify` and `make demo` end with: it fails
// while a file is not verified and succeeds, printing every file verified,
// once the registry is healed.
func TestRunUntilDoneReportsEveryFileVerified(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	svcV := e.verifier(verify.Options{})
	svc := &verify.Service{Verifier: svcV, Store: e.reg}
	data := content(1, 2048)
	key := e.upload(data)
	e.upload(content(2, 10))
	require.Equal(t, 2, e.syncDue())
	deleteBehindBack(t, e.sc, key)

	var out bytes.Buffer
	_, err := svc.RunUntilDone(e.ctx, verify.RunOptions{}, 3, &out)
	require.ErrorIs(t, err, verify.ErrNotVerified)
	assert.Contains(t, out.String(), "generic_package_file")

	e.clock.Advance(verify.DefaultBackoffCap)
	require.Equal(t, 1, e.syncDue())
	out.Reset()
	rep, err := svc.RunUntilDone(e.ctx, verify.RunOptions{}, 3, &out)
	require.NoError(t, err, out.String())
	assert.Equal(t, int64(1), rep.Secondary.Matched)
	assert.Regexp(t, `generic_package_file\s+2\s+2\s+2\s+0\s+0\s+0\s+2\s+0`, out.String())
	assert.Regexp(t, `total\s+2\s+2\s+2\s`, out.String())
}
