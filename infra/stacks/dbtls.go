package stacks

// databaseSSLMode is GEOBLOB_DATABASE_SSLMODE of the functions. In AWS the
// registry is reached through RDS Proxy with RequireTLS: verify-full checks
// the proxy's certificate chain (ACM, chaining to the Amazon roots in the
// runtime's system trust store) and that it names the proxy endpoint we
// dial, so no CA bundle ships with the functions. LocalStack's PostgreSQL
// container speaks no TLS.
func databaseSSLMode(c Config) string {
	if c.LocalStack() {
		return "disable"
	}
	return "verify-full"
}
