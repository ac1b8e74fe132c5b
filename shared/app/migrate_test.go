package app_test

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
)

// TestMigrateRegistryMakesTheRuntimeLogin: migrate (as the owner) applies
// the migrations and makes the runtime secret's user a login with the
// secret's password that can write rows but not change the schema; a
// rotated password is applied by the next run.
func TestMigrateRegistryMakesTheRuntimeLogin(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := pgtest.NewDB(t)
	const user = "geoblob_app_migrate_test"
	cfg := config.Config{DatabaseURL: dsn, DatabaseRuntimeSecretARN: "arn:aws:secretsmanager:us-west-2:123456789012:secret:runtime"}
	for _, password := range []string{"first", "rotated"} {
		secret, err := json.Marshal(map[string]any{"username": user, "password": password, "host": "h", "port": 5432})
		require.NoError(t, err)
		require.NoError(t, app.MigrateRegistry(ctx, cfg, slog.New(slog.DiscardHandler), staticSecret(secret)))
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.User = url.UserPassword(user, "rotated")
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `INSERT INTO rejected_events (received_at, object_key, reason) VALUES (now(), 'k', 'test')`)
	assert.NoError(t, err, "the runtime login writes rows")
	_, err = conn.Exec(ctx, `DROP TABLE rejected_events`)
	assert.Error(t, err, "the runtime login cannot change the schema")

	bad := config.Config{DatabaseURL: dsn, DatabaseRuntimeSecretARN: cfg.DatabaseRuntimeSecretARN}
	assert.ErrorIs(t, app.MigrateRegistry(ctx, bad, nil, staticSecret(`{"username":"x"}`)), app.ErrSecret)
}
