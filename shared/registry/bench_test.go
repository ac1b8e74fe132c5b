package registry_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/registry/registrytest"
)

// Speed targets (>= 5,000/s on a 2-core machine) are checked by reading the
// ops/s and rows/s metrics of:
//
//	go test -run '^$' -bench . -benchtime 3s ./shared/registry/

func benchEvent(i int64) registry.ObjectEvent {
	return registry.ObjectEvent{DataType: "maven_package_file", Key: fmt.Sprintf("com/acme/lib/%d/lib-%d.jar", i, i),
		Size: 1 << 20, ETag: fmt.Sprintf("etag-%d", i), Sequencer: fmt.Sprintf("%X", 0x0055AED6DCD90281+i)}
}

// BenchmarkRecordCreated: single-row upserts of distinct keys, one at a time.
func BenchmarkRecordCreated(b *testing.B) {
	ctx := context.Background()
	s := registrytest.NewStore(b, registry.Options{})
	b.ResetTimer()
	for i := range int64(b.N) {
		if _, err := s.RecordCreated(ctx, benchEvent(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkRecordCreatedParallel: single-row upserts from 4 goroutines per CPU.
func BenchmarkRecordCreatedParallel(b *testing.B) {
	ctx := context.Background()
	s := registrytest.NewStore(b, registry.Options{})
	var next atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.RecordCreated(ctx, benchEvent(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkRecordCreatedBatch: 100 upserts per RecordCreatedBatch call (one
// round trip, one transaction); ops/s counts events.
func BenchmarkRecordCreatedBatch(b *testing.B) {
	const batch = 100
	ctx := context.Background()
	s := registrytest.NewStore(b, registry.Options{})
	events := make([]registry.ObjectEvent, batch)
	b.ResetTimer()
	for i := range int64(b.N) {
		for j := range events {
			events[j] = benchEvent(i*batch + int64(j))
		}
		if _, err := s.RecordCreatedBatch(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkClaimDue: ClaimDue with Limit 100 over pre-inserted pending rows
// spread over 1 or 7 data types; rows/s counts claimed rows.
func BenchmarkClaimDue(b *testing.B) {
	for _, types := range []int{1, 7} {
		b.Run(fmt.Sprintf("types=%d", types), func(b *testing.B) { benchClaimDue(b, types) })
	}
}

func benchClaimDue(b *testing.B, types int) {
	const limit = 100
	ctx := context.Background()
	pool := registrytest.NewPool(b)
	s := registry.New(pool, registry.Options{})
	_, err := pool.Exec(ctx, `
		INSERT INTO blob_registry (data_type, object_key, size, etag, created_at, updated_at)
		SELECT 'type_' || (i % $2), 'key/' || i, 1024, 'etag', now(), now()
		FROM generate_series(1, $1::int) AS i`, b.N*limit, types)
	require.NoError(b, err)
	_, err = pool.Exec(ctx, "VACUUM ANALYZE blob_registry")
	require.NoError(b, err)
	claimed := 0
	b.ResetTimer()
	for range b.N {
		claims, err := s.ClaimDue(ctx, registry.ClaimOptions{Limit: limit})
		if err != nil {
			b.Fatal(err)
		}
		claimed += len(claims)
	}
	b.StopTimer()
	require.Equal(b, b.N*limit, claimed)
	b.ReportMetric(float64(claimed)/b.Elapsed().Seconds(), "rows/s")
}
