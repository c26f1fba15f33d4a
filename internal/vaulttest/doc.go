// Package vaulttest runs a real Vault (the binary built into bin/vault by
// `make vault`) for tests, benchmarks and crash tests of vault-plugin-auth0.
//
// Every helper that takes a testing.TB fails the test on error and releases
// what it started with t.Cleanup: dev servers and agents are stopped (their
// plugin processes with them) and temporary directories are removed. The
// error-returning variants (FindRepoRoot, EnsureVaultBinary, BuildPluginInto)
// exist for TestMain functions and scripts that have no testing.TB.
//
// Vault processes never see the caller's VAULT_* environment or home
// directory: each gets its own HOME, so nothing is read from or written to
// ~/.vault-token.
package vaulttest
