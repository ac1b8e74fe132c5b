package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/geoblob/geoblob/internal/testutil/pgtest"
	"github.com/geoblob/geoblob/shared/app"
	"github.com/geoblob/geoblob/shared/config"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a server certificate and key (PEM) for the DNS names.
func (ca testCA) issue(t *testing.T, dnsNames ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeServerFile writes a file the PostgreSQL server (OS user postgres
// when the tests run as root) can read and nobody else can.
func writeServerFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
	if os.Geteuid() != 0 {
		return
	}
	u, err := user.Lookup("postgres")
	require.NoError(t, err)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	require.NoError(t, os.Chown(path, uid, gid))
}

// TestRegistryTLSIsVerified starts PostgreSQL with TLS (a certificate for
// "localhost" from a CA made here) and connects through DatabaseURL, the
// way the functions do with the Secrets Manager secret: the right host
// name is accepted; a host name the certificate does not name, and a
// server whose CA is not trusted, are refused, so a man in the middle
// cannot pose as the registry.
func TestRegistryTLSIsVerified(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cluster := pgtest.NewCluster(t)
	ca := newTestCA(t, "geoblob test CA")
	certPEM, keyPEM := ca.issue(t, "localhost")
	dir := cluster.Dir()
	writeServerFile(t, filepath.Join(dir, "server.crt"), certPEM)
	writeServerFile(t, filepath.Join(dir, "server.key"), keyPEM)
	admin, err := pgx.Connect(ctx, cluster.DSN("postgres"))
	require.NoError(t, err)
	for _, stmt := range []string{
		"ALTER SYSTEM SET ssl_cert_file = '" + filepath.Join(dir, "server.crt") + "'",
		"ALTER SYSTEM SET ssl_key_file = '" + filepath.Join(dir, "server.key") + "'",
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()",
	} {
		_, err := admin.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, admin.Close(ctx))
	require.Eventually(t, func() bool {
		c, err := pgx.Connect(ctx, strings.Replace(cluster.DSN("postgres"), "sslmode=disable", "sslmode=require", 1))
		if err != nil {
			return false
		}
		_ = c.Close(ctx)
		return true
	}, 10*time.Second, 50*time.Millisecond, "the server never offered TLS; log: %s", logTail(cluster.LogFile()))

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.pem, 0o600))
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	require.NoError(t, os.WriteFile(otherCA, newTestCA(t, "someone else").pem, 0o600))

	secret, err := json.Marshal(map[string]any{"host": "registry.invalid", "port": cluster.Port(), "username": "postgres", "password": "unused", "dbname": "postgres"})
	require.NoError(t, err)
	connect := func(host, caFile string) error {
		cfg := config.Config{DatabaseSecretARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry", DatabaseHost: host, DatabaseCAFile: caFile}
		dsn, err := app.DatabaseURL(ctx, cfg, staticSecret(secret))
		require.NoError(t, err)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, dsn)
		if err != nil {
			return err
		}
		var ssl bool
		require.NoError(t, conn.QueryRow(cctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl))
		assert.True(t, ssl, "the connection uses TLS")
		return conn.Close(cctx)
	}

	assert.NoError(t, connect("localhost", caFile), "the host the certificate names, signed by the trusted CA")
	err = connect("127.0.0.1", caFile)
	require.Error(t, err, "a host name the certificate does not name must be refused")
	assert.ErrorContains(t, err, "certificate")
	err = connect("localhost", otherCA)
	require.Error(t, err, "a certificate from an untrusted CA must be refused")
	assert.ErrorContains(t, err, "certificate")
	err = connect("localhost", "")
	require.Error(t, err, "the default (system roots) does not trust a private CA")
	assert.ErrorContains(t, err, "certificate")
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}
