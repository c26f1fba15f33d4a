package vaulttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

const (
	// ModulePath is the Go module path of the plugin.
	ModulePath = "github.com/vault-plugin-auth0/vault-plugin-auth0"
	// PluginName is the plugin's name in Vault's catalog (type "secret") and
	// the file name of its binary.
	PluginName = "vault-plugin-auth0"
)

// FindRepoRoot walks up from the working directory to the directory holding
// the plugin module's go.mod.
func FindRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module "+ModulePath)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", ModulePath)
		}
		dir = parent
	}
}

// RepoRoot returns the repository root (the directory of the plugin's go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := FindRepoRoot()
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return root
}

var vaultBinMu sync.Mutex

// EnsureVaultBinary returns the Vault binary to run: $VAULT_BIN when set (an installed
// Vault; it must be executable), else <repo>/bin/vault, building it with `make vault`
// first when it is missing. Builds are serialised within the
// process by a mutex and across processes (`go test ./...` runs packages in
// parallel) by an exclusive lock on bin/.vault-build.lock, and the binary's
// presence is re-checked once the lock is held, so it is built at most once.
func EnsureVaultBinary() (string, error) {
	if bin := os.Getenv("VAULT_BIN"); bin != "" {
		if !isExecutable(bin) {
			return "", fmt.Errorf("VAULT_BIN=%s is not an executable file", bin)
		}
		return bin, nil
	}
	root, err := FindRepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin", "vault")
	if isExecutable(bin) {
		return bin, nil
	}

	vaultBinMu.Lock()
	defer vaultBinMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(root, "bin", ".vault-build.lock"))
	if err != nil {
		return "", fmt.Errorf("locking the vault build: %w", err)
	}
	defer unlock()
	if isExecutable(bin) {
		return bin, nil
	}

	// The Makefile names the file target by its absolute path ($(CURDIR)/bin/vault);
	// the phony `vault` target depends on it.
	cmd := exec.Command("make", "vault")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("make vault: %w\n%s", err, out)
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("make vault succeeded but %s is missing\n%s", bin, out)
	}
	return bin, nil
}

// VaultBinary returns the path of the Vault binary, building it when missing
// (a cold build takes several minutes). It never skips the test.
func VaultBinary(t testing.TB) string {
	t.Helper()
	bin, err := EnsureVaultBinary()
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return bin
}

// BuildPluginInto builds ./cmd/vault-plugin-auth0 with Version set to version
// into dir/vault-plugin-auth0 and returns the binary's SHA-256 (hex).
func BuildPluginInto(dir, version string) (sha256hex string, err error) {
	root, err := FindRepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, PluginName)
	cmd := exec.Command("go", "build",
		"-ldflags", "-X "+ModulePath+".Version="+version,
		"-o", out, "./cmd/"+PluginName)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the plugin: %w\n%s", err, msg)
	}
	return FileSHA256(out)
}

// BuildPlugin builds the plugin with the given version into a fresh temporary
// directory, suitable as a dev server's plugin directory, and returns that
// directory and the binary's SHA-256 (hex).
func BuildPlugin(t testing.TB, version string) (dir, sha256hex string) {
	t.Helper()
	dir = t.TempDir()
	sum, err := BuildPluginInto(dir, version)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	return dir, sum
}

// FileSHA256 returns the hex SHA-256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	return fi.Mode().IsRegular() && fi.Size() > 0 && fi.Mode().Perm()&0o111 != 0
}
