package replication_test

import (
	"testing"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/replication/replicationtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestConformance runs the data-type conformance suite over every built-in type.
func TestConformance(t *testing.T) {
	t.Parallel()
	replicationtest.RunConformance(t, nil, func(t *testing.T) *replicationtest.Env {
		return replicationtest.NewEnv(t, replicationtest.EnvOptions{})
	})
}
