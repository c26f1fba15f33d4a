// Package integration runs the plugin in a real Vault (bin/vault, MPL Vault
// 1.13.2, built by `make vault` when missing) against the in-process Auth0
// emulator.
//
// The plugin is built once per package run (TestMain); every test starts its
// own dev server, emulator and mount, so tests run in parallel and a failing
// test's Vault log holds only that test's requests.
package integration

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// pluginVersion is the version the test binary is built with and registered as.
const pluginVersion = "v0.2.0-dev"

var (
	pluginDir string // directory holding the plugin binary: every server's -dev-plugin-dir
	pluginSHA string // SHA-256 of the plugin binary

	releaseDir  string            // the release artifacts for this platform (TestReleaseArtifactRunsOnVault)
	releaseSums map[string]string // their SHA256SUMS: file name -> hash
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// The application of the Vault Agent recipe test is a shell that traps SIGHUP. A shell
	// cannot trap a signal that was ignored when it started, and children inherit ignored
	// signals: under nohup, or a CI runner that ignores SIGHUP, it would never reload. A
	// signal this process catches is reset to its default in the processes it starts; the
	// SIGHUPs caught here are dropped, as they were ignored before.
	if signal.Ignored(syscall.SIGHUP) {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	}
	if _, err := vaulttest.EnsureVaultBinary(); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "vault-plugin-auth0-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sha, err := vaulttest.BuildPluginInto(dir, pluginVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	pluginDir, pluginSHA = dir, sha
	releaseDir = filepath.Join(dir, "release")
	if releaseSums, err = buildRelease(releaseDir); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	return m.Run()
}
