package registry

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RuntimeRole is the database role (created by the migrations) whose
// members may read and write the registry's rows but not change the schema.
// The runtime functions log in as a member; only migrate uses the owner.
const RuntimeRole = "geoblob_runtime"

// ErrRoleName: a login name that is not a plain lower-case identifier.
var ErrRoleName = errors.New("registry: invalid role name")

var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// EnsureRuntimeLogin makes user a login role with password and a member of
// RuntimeRole, with no other privilege (creating it, or resetting the
// password and attributes of an existing one). It runs as the schema owner
// after Migrate (the migrate function does it with the runtime secret's
// credentials), so a rotated or recreated secret is applied on the next
// deploy. It refuses to touch the role it is connected as.
func EnsureRuntimeLogin(ctx context.Context, pool *pgxpool.Pool, user, password string) error {
	if !roleName.MatchString(user) || user == RuntimeRole {
		return fmt.Errorf("%w: %q", ErrRoleName, user)
	}
	if password == "" {
		return fmt.Errorf("registry: runtime login %s: empty password", user)
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var current string
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT current_user, EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, user).Scan(&current, &exists); err != nil {
			return err
		}
		if current == user {
			return fmt.Errorf("%w: %q is the role migrate connects as", ErrRoleName, user)
		}
		ident := pgx.Identifier{user}.Sanitize()
		// Utility statements take no parameters: quote the password as a literal.
		var lit string
		if err := tx.QueryRow(ctx, `SELECT quote_literal($1)`, password).Scan(&lit); err != nil {
			return err
		}
		verb := "CREATE"
		if exists {
			verb = "ALTER"
		}
		stmts := []string{
			fmt.Sprintf("%s ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD %s", verb, ident, lit),
			fmt.Sprintf("GRANT %s TO %s", pgx.Identifier{RuntimeRole}.Sanitize(), ident),
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: runtime login %s: %w", user, err)
	}
	return nil
}
