package replicationtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/shared/datatype"
	"github.com/geoblob/geoblob/shared/events"
	"github.com/geoblob/geoblob/shared/registry"
	"github.com/geoblob/geoblob/shared/replication"
)

// NonMatchingKeys are object keys that no built-in data type may claim.
var NonMatchingKeys = []string{
	"README.md",
	"tmp/upload-7f3a/part-0001",
	"npm/left-pad/-/left-pad-1.3.0.tar", // npm wants .tgz
	"nuget/newtonsoft.json/13.0.3/readme.txt",
	"pypi/requests/2.32.3/requests-2.32.3.exe",
	"Maven/com/example/app/1.0.0/app-1.0.0.jar", // patterns are case-sensitive
}

// RunConformance checks that every data type of catalog (default: every
// built-in type, so a newly added type is covered with no new test code)
// replicates through the engine: each example key is uploaded to the
// primary, a created event applied (row synced, secondary bytes equal,
// SHA-256 recorded), then a removed event applied (secondary copy gone, row
// a synced tombstone). It also checks that every type has an example and
// that keys of no type are ignored. newEnv must return a fresh environment
// whose Catalog is catalog.
func RunConformance(t *testing.T, catalog *datatype.Catalog, newEnv func(t *testing.T) *Env) {
	if catalog == nil {
		c, err := datatype.BuiltinCatalog()
		require.NoError(t, err)
		catalog = c
	}
	types := catalog.Types()
	require.NotEmpty(t, types, "catalog has no data types")

	t.Run("every type has examples", func(t *testing.T) {
		t.Parallel()
		for _, typ := range types {
			assert.NotEmpty(t, typ.Examples, "data type %s has no example keys: the conformance suite can not cover it", typ.Name)
		}
	})

	t.Run("keys of no type are ignored", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t)
		for i, key := range NonMatchingKeys {
			if _, ok := env.Catalog.Match(key); ok {
				continue // a configured catalog may legitimately claim it
			}
			env.PutPrimary(t, key, Content(key, 64))
			env.RequireOutcome(t, CreatedEvent(key, 64, fmt.Sprintf("%016X", i+1)), replication.OutcomeIgnored, key)
			_, copied := env.SecondaryBytes(t, key)
			assert.False(t, copied, "ignored key %q must not be copied", key)
			assert.False(t, env.HasRow(t, key), "ignored key %q must have no registry row", key)
		}
	})

	for _, typ := range types {
		t.Run(typ.Name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			for i, key := range typ.Examples {
				got, ok := env.Catalog.Match(key)
				require.True(t, ok, "example %q matches no type", key)
				require.Equal(t, typ.Name, got.Name, "example %q is claimed by another type", key)

				body := Content(key, 1000+i*517)
				env.PutPrimary(t, key, body)
				env.RequireOutcome(t, CreatedEvent(key, int64(len(body)), fmt.Sprintf("%016X", 2*i+10)), replication.OutcomeSynced, key)

				copied, ok := env.SecondaryBytes(t, key)
				require.True(t, ok, "no secondary copy of %q", key)
				assert.Equal(t, body, copied, "secondary bytes of %q", key)
				row := env.Row(t, key)
				assert.Equal(t, typ.Name, row.DataType)
				assert.Equal(t, registry.StateSynced, row.State, key)
				assert.Equal(t, SHA256(body), row.PrimarySHA256, key)
				assert.Equal(t, int64(len(body)), row.Size, key)
				assert.False(t, row.Tombstoned(), key)

				env.DeletePrimary(t, key)
				env.RequireOutcome(t, RemovedEvent(key, fmt.Sprintf("%016X", 2*i+11)), replication.OutcomeDeleted, key)
				_, ok = env.SecondaryBytes(t, key)
				assert.False(t, ok, "secondary copy of %q survived its deletion", key)
				row = env.Row(t, key)
				assert.True(t, row.Tombstoned(), key)
				assert.Equal(t, registry.StateSynced, row.State, key)
			}
		})
	}
}

// CreatedEvent is an ObjectCreated:Put event for key on the primary bucket.
func CreatedEvent(key string, size int64, sequencer string) events.ObjectEvent {
	return events.ObjectEvent{
		Kind: events.KindCreated, EventName: "ObjectCreated:Put", Source: events.SourceS3,
		Bucket: PrimaryBucket, Key: key, Size: size, Sequencer: sequencer, EventTime: time.Now().UTC(),
	}
}

// RemovedEvent is an ObjectRemoved:Delete event for key on the primary bucket.
func RemovedEvent(key, sequencer string) events.ObjectEvent {
	return events.ObjectEvent{
		Kind: events.KindRemoved, EventName: "ObjectRemoved:Delete", Source: events.SourceS3,
		Bucket: PrimaryBucket, Key: key, Sequencer: sequencer, EventTime: time.Now().UTC(),
	}
}
