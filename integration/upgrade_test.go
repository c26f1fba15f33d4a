package integration

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// v010Commit is the commit released as v0.1.0. The upgrade test builds the plugin from it,
// so it needs the repository's history (a clone, not an export of one tree).
const (
	v010Commit  = "f504721cebe0297aa617456def331582ca259fb4"
	v010Version = "v0.1.0"
	v010Command = vaulttest.PluginName + "-" + v010Version
)

// buildV010 builds the v0.1.0 plugin from its commit into dir as v010Command and returns
// its SHA-256.
func buildV010(t *testing.T, dir string) string {
	t.Helper()
	return buildCommit(t, dir, v010Commit, v010Version, v010Command)
}

// buildCommit builds the plugin as it was at commit, versioned version, into dir as
// command, and returns its SHA-256.
func buildCommit(t *testing.T, dir, commit, version, command string) string {
	t.Helper()
	root := vaulttest.RepoRoot(t)
	src := t.TempDir()
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", commit)
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	extract.Stdin = pipe
	var archErr strings.Builder
	archive.Stderr = &archErr
	if err := extract.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s (the upgrade tests build older versions from the repository's history; run them in a clone with history): %v\n%s", commit, err, archErr.String())
	}
	if err := extract.Wait(); err != nil {
		t.Fatalf("extracting %s: %v", version, err)
	}
	out := filepath.Join(dir, command)
	build := exec.Command("go", "build", "-ldflags", "-X "+vaulttest.ModulePath+".Version="+version, "-o", out, "./cmd/"+vaulttest.PluginName)
	build.Dir = src
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", version, err, msg)
	}
	sum, err := vaulttest.FileSHA256(out)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// waitFor polls cond every 100 ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// switchVersion runs the documented upgrade (or downgrade) of the mount: tune the mount to
// the registered version, reload the plugin behind it, and check that version now runs.
func switchVersion(t *testing.T, v *vaulttest.Vault, version string) {
	t.Helper()
	v.MustCLI(t, v.RootToken, "secrets", "tune", "-plugin-version="+version, mount)
	v.MustCLI(t, v.RootToken, "plugin", "reload", "-mounts="+mount+"/") // PUT sys/plugins/reload/backend
	m := v.Do(t, v.RootToken, http.MethodGet, "sys/mounts/"+mount, nil)
	if got, _ := m.Data["running_plugin_version"].(string); got != version {
		t.Fatalf("after the reload %s runs plugin version %q, want %q", mount, got, version)
	}
}

// upgradeView is what an operator compares across an upgrade: the fields role reads of v0.1.0
// and of this build share.
func upgradeView(t *testing.T, v *vaulttest.Vault, name string) map[string]any {
	t.Helper()
	r := v.Do(t, v.RootToken, http.MethodGet, mount+"/roles/"+name, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("reading role %s: status %d: %v", name, r.Status, r.Errors)
	}
	view := map[string]any{}
	for _, k := range []string{"client_id", "rotation_period", "rotation_schedule", "rotation_window", "max_versions",
		"current_version", "last_vault_rotation", "next_vault_rotation"} {
		view[k] = r.Data[k]
	}
	return view
}

// The upgrade procedure of docs/UPGRADE.md on a real Vault, from the released v0.1.0 built
// from its commit to this build, registered side by side: roles, versions, schedules and a
// rotation left in flight by v0.1.0 survive; the downgrade back to v0.1.0 is refused
// cleanly (errors, no rotation, no empty secret) and undone by upgrading again, with a
// staged rotation still pending.
func TestUpgradeFromV010(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v010SHA := buildV010(t, dir)
	if err := copyFile(filepath.Join(pluginDir, vaulttest.PluginName), filepath.Join(dir, vaulttest.PluginName)); err != nil {
		t.Fatal(err)
	}

	emu, emuURL, mgmt := startEmulator(t)
	v := vaulttest.StartDevServer(t, dir)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: v}
	root := v.RootToken
	v.MustCLI(t, root, "plugin", "register", "-sha256="+v010SHA, "-version="+v010Version, "-command="+v010Command, "secret", vaulttest.PluginName)
	v.MustCLI(t, root, "secrets", "enable", "-path="+mount, "-plugin-version="+v010Version, vaulttest.PluginName)

	// v0.1.0 at work.
	f.configure(t)
	for _, id := range []string{"app-id", "nightly-id", "inflight-id", "ticker-id", "staged-id"} {
		f.addApp(t, id, id)
	}
	v.MustCLI(t, root, "write", mount+"/roles/app", "client_id=app-id", "rotation_period=1h")
	v.MustCLI(t, root, "write", mount+"/roles/nightly", "client_id=nightly-id", "rotation_schedule=0 3 * * *", "rotation_window=1h")
	v.MustCLI(t, root, "write", mount+"/roles/inflight", "client_id=inflight-id")
	v.MustCLI(t, root, "write", mount+"/roles/ticker", "client_id=ticker-id", "rotation_period=5s", "max_versions=100")
	for i := 0; i < 3; i++ {
		f.rotate(t, root, "app")
	}
	f.rotate(t, root, "nightly")
	f.rotate(t, root, "inflight")

	// A rotation v0.1.0 leaves in flight: Auth0 applies it, the answer is lost and reading
	// the secret back fails, so only its write-ahead entry knows.
	var faulty atomic.Bool
	emu.SetFaults(func(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
		if clientID != "inflight-id" || !faulty.Load() {
			return nil
		}
		if p == emulator.AfterApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") {
			return &emulator.Fault{Drop: true}
		}
		if p == emulator.BeforeApply && r.Method == http.MethodGet {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})
	faulty.Store(true)
	if _, err := v.CLI(t, root, "write", "-f", mount+"/rotate/inflight"); err == nil {
		t.Fatal("v0.1.0 reported success for a rotation whose answer was lost")
	}
	inflightAtAuth0 := f.secret(t, "inflight-id")
	inflightRotations := f.rotations("inflight-id")

	before := map[string]map[string]any{"app": upgradeView(t, v, "app"), "nightly": upgradeView(t, v, "nightly")}
	versionsBefore := map[string][]version{
		"app":      readVersions(t, v, root, "app"),
		"nightly":  readVersions(t, v, root, "nightly"),
		"inflight": readVersions(t, v, root, "inflight"),
	}

	// Upgrade: register this build beside v0.1.0, tune, reload.
	v.RegisterPlugin(t, dir, pluginSHA, pluginVersion)
	seen := len(v.Logs())
	faulty.Store(false)
	switchVersion(t, v, pluginVersion)

	for name, want := range before {
		if got := upgradeView(t, v, name); !reflect.DeepEqual(got, want) {
			t.Errorf("role %s changed across the upgrade:\n before %v\n after  %v", name, want, got)
		}
	}
	for _, name := range []string{"app", "nightly"} {
		if got := readVersions(t, v, root, name); !reflect.DeepEqual(got, versionsBefore[name]) {
			t.Errorf("versions of %s changed across the upgrade: %s -> %s", name, describe(versionsBefore[name]), describe(got))
		}
	}
	for _, name := range []string{"app", "nightly"} {
		creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/"+name))
		if authenticate(t, emuURL, str(t, creds, "client_id"), str(t, creds, "client_secret")) != http.StatusOK {
			t.Errorf("after the upgrade the secret of %s does not authenticate", name)
		}
	}
	// The rotation v0.1.0 left in flight is resolved by this build, from Auth0, without
	// another rotation.
	got := readVersions(t, v, root, "inflight")
	if len(got) != len(versionsBefore["inflight"])+1 || !reflect.DeepEqual(got[:len(got)-1], versionsBefore["inflight"]) {
		t.Fatalf("versions of inflight after the upgrade: %s, want %s plus the recovered one", describe(got), describe(versionsBefore["inflight"]))
	}
	if last := got[len(got)-1]; last.source != "recovered" || last.secret != inflightAtAuth0 {
		t.Fatalf("newest version of inflight: source %s, holds Auth0's secret: %v", last.source, last.secret == inflightAtAuth0)
	}
	if n := f.rotations("inflight-id"); n != inflightRotations {
		t.Fatalf("recovering inflight rotated it again at Auth0 (%d rotations, %d before)", n, inflightRotations)
	}
	logs := v.Logs()[seen:]
	for _, line := range []string{"moved role to the current storage layout", "recovered the application's secret from Auth0"} {
		if !strings.Contains(logs, line) {
			t.Errorf("the upgraded plugin did not log %q", line)
		}
	}
	// The period schedule runs on under this build.
	tickerAt := num(t, upgradeView(t, v, "ticker"), "current_version")
	waitFor(t, 30*time.Second, "a scheduled rotation of ticker after the upgrade", func() bool {
		return num(t, upgradeView(t, v, "ticker"), "current_version") > tickerAt
	})

	// A staged rotation, pending across what follows.
	v.MustCLI(t, root, "write", mount+"/roles/staged", "client_id=staged-id", "rotation_strategy=staged", "stage_period=1h")
	f.rotate(t, root, "staged")
	stagedBefore := v.Do(t, root, http.MethodGet, mount+"/roles/staged", nil).Data
	if stagedBefore["next_version"] == nil {
		t.Fatalf("role staged has nothing staged: %v", stagedBefore)
	}
	credsBefore := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/app"))

	// Downgrade: v0.1.0 cannot read what this build wrote, so it refuses every role
	// instead of serving an empty secret, and rotates nothing, not even ticker, which falls
	// due while v0.1.0 runs.
	// Counted once v0.1.0 runs: until the reload stops it, this build rotates ticker every
	// 5s. What Auth0 holds then must be a version this build stored (checked after the
	// upgrade below), so that no rotation of v0.1.0's start hides before the count.
	seen = len(v.Logs())
	switchVersion(t, v, v010Version)
	rotationsBefore := emu.Stats().Rotations
	tickerAtDowngrade := f.secret(t, "ticker-id")
	for _, name := range []string{"app", "ticker", "staged"} {
		r := v.Do(t, root, http.MethodGet, mount+"/creds/"+name, nil)
		if r.Status == http.StatusOK || r.Data["client_secret"] != nil {
			t.Fatalf("v0.1.0 served creds/%s after the downgrade: status %d", name, r.Status)
		}
	}
	if _, err := v.CLI(t, root, "write", "-f", mount+"/rotate/app"); err == nil {
		t.Fatal("v0.1.0 rotated a role written by this build")
	}
	// v0.1.0's queue loads with nothing scheduled: it could read none of the roles.
	var queueLine string
	waitFor(t, 30*time.Second, "v0.1.0 to load its rotation queue", func() bool {
		queueLine = benchQueueLoaded.FindString(v.Logs()[seen:])
		return queueLine != ""
	})
	if !strings.Contains(queueLine, "scheduled=0") || !strings.Contains(v.Logs()[seen:], "could not load role for scheduling") {
		t.Fatalf("v0.1.0 scheduled roles written by this build: %s", queueLine)
	}
	if after := emu.Stats().Rotations; !reflect.DeepEqual(after, rotationsBefore) {
		t.Fatalf("Auth0 saw rotations while v0.1.0 ran on this build's storage: %v -> %v", rotationsBefore, after)
	}

	// Upgrading again undoes the downgrade: nothing was changed, the staged secret is still
	// pending and switches on request.
	switchVersion(t, v, pluginVersion)
	if !slices.ContainsFunc(readVersions(t, v, root, "ticker"), func(x version) bool { return x.secret == tickerAtDowngrade }) {
		t.Fatal("when v0.1.0 took over, Auth0 held a secret of ticker that is none of this build's versions: v0.1.0 rotated it")
	}
	credsAfter := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/app"))
	if credsAfter["client_secret"] != credsBefore["client_secret"] || credsAfter["version"] != credsBefore["version"] {
		t.Fatalf("creds/app changed across the downgrade and upgrade: version %v -> %v", credsBefore["version"], credsAfter["version"])
	}
	stagedAfter := v.Do(t, root, http.MethodGet, mount+"/roles/staged", nil).Data
	for _, k := range []string{"next_version", "next_switch_time", "current_version"} {
		if stagedAfter[k] != stagedBefore[k] {
			t.Fatalf("staged role's %s changed across the downgrade and upgrade: %v -> %v", k, stagedBefore[k], stagedAfter[k])
		}
	}
	v.MustCLI(t, root, "write", mount+"/rotate/staged", "switch_now=true")
	staged := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/staged"))
	if staged["version"] != stagedBefore["next_version"] || authenticate(t, emuURL, "staged-id", str(t, staged, "client_secret")) != http.StatusOK {
		t.Fatalf("the staged secret did not become current after the upgrade: version %v, staged %v", staged["version"], stagedBefore["next_version"])
	}
	f.rotate(t, root, "app")
	creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/app"))
	if num(t, creds, "version") != num(t, credsBefore, "version")+1 || authenticate(t, emuURL, "app-id", str(t, creds, "client_secret")) != http.StatusOK {
		t.Fatalf("rotating app after the upgrade: version %v", creds["version"])
	}
}
