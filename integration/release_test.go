package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// releaseVersion is what the release artifacts of this test are built as.
const releaseVersion = "v0.2.0-release-test"

// buildRelease runs scripts/release.sh for this machine's platform into dir, with the
// release toolchain, and returns its SHA256SUMS (file name -> hash). The second,
// from-scratch build is left to make release. TestMain runs it before any test starts, so
// that a cold compile with the release toolchain does not compete with timed tests.
func buildRelease(dir string) (map[string]string, error) {
	root, err := vaulttest.FindRepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("./scripts/release.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION="+releaseVersion, "DIST="+dir,
		"RELEASE_PLATFORMS="+runtime.GOOS+"/"+runtime.GOARCH, "RELEASE_CHECK_REPRODUCIBLE=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("scripts/release.sh: %w\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			return nil, fmt.Errorf("SHA256SUMS line %q is not \"<sha256>  <file>\"", sc.Text())
		}
		sums[fields[1]] = fields[0]
	}
	return sums, sc.Err()
}

// The release artifact, built by scripts/release.sh with the release toolchain, registered
// in a real Vault exactly as docs/UPGRADE.md says, with the hash SHA256SUMS gives: on this
// Vault (1.13.2, which passes GODEBUG=x509sha1=1 to plugins) through its launcher. The
// engine then works end to end: config, role, rotate, creds that Auth0 accepts.
func TestReleaseArtifactRunsOnVault(t *testing.T) {
	t.Parallel()
	dir, sums := releaseDir, releaseSums
	binary := "vault-plugin-auth0_" + releaseVersion + "_" + runtime.GOOS + "_" + runtime.GOARCH
	launcher := binary + ".launcher.sh"
	for _, name := range []string{binary, launcher} {
		sum, err := vaulttest.FileSHA256(filepath.Join(dir, name))
		if err != nil || sums[name] != sum {
			t.Fatalf("SHA256SUMS has %q for %s, the file hashes to %q (%v)", sums[name], name, sum, err)
		}
	}

	emu, emuURL, mgmt := startEmulator(t)
	v := vaulttest.StartDevServer(t, dir)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: v}
	root := v.RootToken

	// The binary itself: Vault 1.13 hands it GODEBUG=x509sha1=1, which a Go 1.27 program
	// refuses at start. A Vault that does not (1.16 and later) runs it directly.
	v.MustCLI(t, root, "plugin", "register", "-sha256="+sums[binary], "-version="+releaseVersion, "-command="+binary, "secret", "direct")
	if _, err := v.CLI(t, root, "secrets", "enable", "-path=direct", "-plugin-version="+releaseVersion, "direct"); err != nil {
		if !strings.Contains(v.Logs(), `removed GODEBUG "x509sha1" set to old value "1"`) {
			t.Fatalf("the release binary did not start, for another reason than x509sha1: %v", err)
		}
	}

	v.MustCLI(t, root, "plugin", "register", "-sha256="+sums[launcher], "-version="+releaseVersion, "-command="+launcher, "secret", vaulttest.PluginName)
	v.MustCLI(t, root, "secrets", "enable", "-path="+mount, "-plugin-version="+releaseVersion, vaulttest.PluginName)
	m := v.Do(t, root, http.MethodGet, "sys/mounts/"+mount, nil)
	if got, _ := m.Data["running_plugin_version"].(string); got != releaseVersion {
		t.Fatalf("%s runs plugin version %q, want %q", mount, got, releaseVersion)
	}
	f.configure(t)
	app := f.addApp(t, "myapp-id", "My App")
	f.createRole(t, "myapp", app.ClientID)
	f.rotate(t, root, "myapp")
	creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/myapp"))
	if authenticate(t, emuURL, app.ClientID, str(t, creds, "client_secret")) != http.StatusOK {
		t.Fatal("the secret the release build serves does not authenticate")
	}

	// The launcher runs only the binary it was made for.
	other := t.TempDir()
	if err := copyFile(filepath.Join(dir, launcher), filepath.Join(other, launcher)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, binary), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(other, launcher)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to run it") {
		t.Fatalf("the launcher ran a binary whose hash is not the release's: %v %s", err, out)
	}
}
