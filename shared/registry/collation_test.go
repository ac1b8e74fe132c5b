package registry_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/registry"
)

// TestKeysInByteOrderOnALinguisticDatabase runs the registry on a database
// whose default collation is linguistic (ICU en-US, as Aurora's en_US):
// object_key is COLLATE "C" (00750), so a key-prefix list comes in byte
// order, S3's, as on the C databases the other tests use, and events for
// one key still meet one row (the unique key index serves ON CONFLICT).
func TestKeysInByteOrderOnALinguisticDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin := pgtest.NewDB(t)
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	name := fmt.Sprintf("icu_%d", time.Now().UnixNano())
	_, err = conn.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE template0 ENCODING 'UTF8'
		LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`)
	require.NoError(t, err, "an ICU database (Debian's postgresql is built with ICU)")
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), `DROP DATABASE `+name+` WITH (FORCE)`)
			_ = c.Close(context.Background())
		}
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	pool := pgtest.Connect(t, u.String())
	require.NoError(t, registry.Migrate(ctx, pool))
	var linguistic bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT 'a' < 'B'`).Scan(&linguistic))
	require.True(t, linguistic, "the database's default collation orders a before B")

	s := registry.New(pool, registry.Options{})
	keys := []string{"k/a", "k/B", "k/_x", "k/é", "k/Z", "k/a"}
	for _, k := range keys {
		_, err := s.RecordCreated(ctx, registry.ObjectEvent{DataType: "npm", Key: k, Size: 1})
		require.NoError(t, err)
	}
	var got []string
	q := registry.PageQuery{Filter: registry.Filter{DataType: "npm", KeyPrefix: "k/"}, Limit: 2}
	for {
		p, err := s.ListPage(ctx, q)
		require.NoError(t, err)
		for _, e := range p.Entries {
			got = append(got, e.ObjectKey)
		}
		if p.Next == "" {
			break
		}
		q.After = p.Next
	}
	want := []string{"k/B", "k/Z", "k/_x", "k/a", "k/é"} // bytes: 'B' < 'Z' < '_' < 'a' < 0xC3
	assert.Equal(t, want, got, "one row per key, in byte order")
	assert.True(t, slices.IsSorted(got))
}
