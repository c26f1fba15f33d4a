package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// rotatedLine is what the plugin logs (through its server's log) for every
// rotation it stores.
const rotatedLine = "rotated client secret"

// becameActiveLine is what Vault logs when a node becomes the active one.
const becameActiveLine = "acquired lock, enabling active operation"

// TestHAFailover runs the engine on a 3-node Vault cluster with integrated
// storage and kills -9 the active node (server and plugin process) in the
// middle of a scheduled rotation: Auth0 has applied it, the answer is lost.
// A standby must take over, reconcile that rotation (source "recovered"),
// go on rotating on schedule, and every Auth0 rotation must be exactly one
// stored version, readable through every surviving node.
func TestHAFailover(t *testing.T) {
	start := time.Now()
	emu, emuURL, mgmt := startEmulator(t)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt}
	app := f.addApp(t, "ha-app-id", "HA App")
	led := newLedger(emu, app.ClientID)

	c := vaulttest.StartCluster(t, vaulttest.ClusterOptions{
		PluginBinary:            filepath.Join(pluginDir, vaulttest.PluginName),
		PerformanceMultiplier:   haPerformanceMultiplier(t),
		ServerStabilizationTime: 2 * time.Second,
		NoVoterWait:             true, // until the kill below
	})
	root := c.RootToken
	leader := c.Active(t, time.Minute)
	t.Logf("cluster of %d nodes up in %v; active node %s", len(c.Nodes), time.Since(start).Round(time.Millisecond), leader.Name)

	// Register once and mount once, on the active node: the catalog and the
	// mount table are replicated; each node runs the binary from its own
	// plugin_directory.
	leader.RegisterPlugin(t, leader.PluginDir, c.PluginSHA256, pluginVersion)
	leader.Mount(t, mount, pluginVersion)
	f.v = leader.Vault
	f.configure(t)
	leader.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+app.ClientID, "rotation_period=5s", "max_versions=100")

	// A couple of scheduled rotations on the first active node, and every
	// node a raft voter, so that two nodes keep a quorum after the kill.
	waitRotations(t, led, 2, 30*time.Second)
	c.WaitVoters(t, len(c.Nodes), 90*time.Second)
	t.Logf("%d raft voters after %v", len(c.Nodes), time.Since(start).Round(time.Millisecond))

	// Kill the active node at its next scheduled rotation, after Auth0
	// applied it. Which node is active is looked up then: raft may have
	// moved leadership by itself meanwhile.
	var victim *vaulttest.Node
	fired := led.arm(func() error {
		if victim = c.ActiveNow(); victim == nil {
			return fmt.Errorf("no active node at the rotation")
		}
		return victim.Kill(10 * time.Second)
	})
	killed := led.waitFired(t, fired, 30*time.Second)
	leader = victim
	killedAt := time.Now()
	crashed := len(led.snapshot()) // ledger position = version number of the crashed rotation
	t.Logf("killed active node %s at rotation %d (Auth0 applied it, the answer was dropped)", leader.Name, crashed)

	newLeader := c.Active(t, 90*time.Second)
	if newLeader == leader {
		t.Fatalf("the killed node %s is reported active", leader.Name)
	}
	failover := time.Since(killedAt)
	t.Logf("new active node %s after %v", newLeader.Name, failover.Round(time.Millisecond))
	survivors := c.Running()
	var standby *vaulttest.Node
	for _, n := range survivors {
		if n != newLeader {
			standby = n
		}
	}
	if len(survivors) != 2 || standby == nil {
		t.Fatalf("want 2 running nodes after the kill, have %d", len(survivors))
	}

	// The new active node reconciles the crashed rotation and goes on
	// rotating on schedule: two more rotations after the recovered one.
	waitRotations(t, led, crashed+2, 60*time.Second)
	waitVersion(t, newLeader.Vault, root, crashed+2, 30*time.Second)

	// While rotations go on, creds through every surviving node (the standby
	// forwards to the active node) serve a secret Auth0 accepts. A rotation
	// between the read and the login can make the login fail; then the read
	// must have been superseded by a newer version.
	for _, n := range survivors {
		assertCredsWork(t, n, root, app.ClientID, emuURL)
	}

	// Stop the schedule, through the standby (forwarded), to compare a
	// settled state. The write waits for a rotation in flight (the role lock).
	standby.MustCLI(t, root, "write", mount+"/roles/myapp", "rotation_period=0")
	auth0Secret := f.secret(t, app.ClientID)
	var served []string
	for _, n := range survivors {
		r := n.Do(t, root, http.MethodGet, mount+"/creds/myapp", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("creds through %s: status %d: %v", n.Name, r.Status, r.Errors)
		}
		secret := str(t, r.Data, "client_secret")
		served = append(served, fmt.Sprintf("%s: version %d", n.Name, num(t, r.Data, "version")))
		if secret != auth0Secret {
			t.Errorf("creds through %s serve version %d, which is not the secret Auth0 holds", n.Name, num(t, r.Data, "version"))
		}
		if code := authenticate(t, emuURL, app.ClientID, secret); code != http.StatusOK {
			t.Errorf("the secret served through %s gets status %d at Auth0, want 200", n.Name, code)
		}
	}

	versions := readVersions(t, standby.Vault, root, "myapp")
	rs := led.snapshot()
	acc := checkAgainstLedger(t, versions, 0, rs, auth0Secret, "scheduled", false)
	auth0Rotations := f.rotations(app.ClientID)
	if auth0Rotations != len(rs) {
		t.Errorf("Auth0 counts %d rotations of %s, the ledger %d", auth0Rotations, app.ClientID, len(rs))
	}
	bySource := map[string]int{}
	for _, v := range versions {
		bySource[v.source]++
	}
	if n := bySource["scheduled"] + bySource["recovered"]; n != auth0Rotations || n != len(versions) {
		t.Errorf("%d versions (%v) for %d Auth0 rotations: want every rotation stored once, as scheduled or recovered", len(versions), bySource, auth0Rotations)
	}
	if bySource["recovered"] != 1 {
		t.Errorf("%d recovered versions, want 1: the rotation in flight when the active node died (versions %s)", bySource["recovered"], describe(versions))
	}
	if crashed <= len(versions) {
		v := versions[crashed-1]
		if v.n != crashed || v.source != "recovered" || v.secret != killed.secret {
			t.Errorf("version %d is %d/%s; want the crashed rotation's secret, recovered", crashed, v.n, v.source)
		}
	}
	// Rotations after the recovered one were made after the old active node
	// died: by the new one.
	after := 0
	for _, v := range versions[crashed:] {
		if v.source != "scheduled" || !v.created.After(killedAt) {
			t.Errorf("version %d: source %s, created %v; want scheduled, after the kill at %v", v.n, v.source, v.created, killedAt)
		}
		after++
	}
	if after < 2 {
		t.Errorf("%d scheduled rotations after the failover, want at least 2 (versions %s)", after, describe(versions))
	}

	// Only an active node rotates: the surviving standby never logged a
	// rotation (in Vault OSS a standby does not even start the plugin),
	// unless raft made it active for a while by itself; the new active node
	// did.
	if strings.Contains(standby.Logs(), becameActiveLine) {
		t.Logf("standby %s was active for a while (raft moved leadership by itself); not checking that it never rotated", standby.Name)
	} else {
		if got := strings.Count(standby.Logs(), rotatedLine); got != 0 {
			t.Errorf("standby %s, never active, logged %d rotations; only the active node may rotate", standby.Name, got)
		}
		if pids, err := standby.PluginPIDs(); err != nil || len(pids) > 0 {
			t.Errorf("standby %s, never active, runs plugin processes %v (%v); Vault OSS standbys do not start plugins", standby.Name, pids, err)
		}
	}
	if got := strings.Count(newLeader.Logs(), rotatedLine); got < 2 {
		t.Errorf("new active node %s logged %d rotations, want at least 2", newLeader.Name, got)
	}
	if !strings.Contains(newLeader.Logs(), "recovered the application's secret from Auth0") {
		t.Errorf("new active node %s did not log the recovery of the rotation in flight", newLeader.Name)
	}

	t.Logf("failover in %v; %d Auth0 rotations = %d versions (%v: %d stored, %d recovered); served: %s; total %v",
		failover.Round(time.Millisecond), auth0Rotations, len(versions), bySource, acc.stored, acc.recovered,
		strings.Join(served, ", "), time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}

	t.Run("upgrade", func(t *testing.T) {
		testHAUpgrade(t, f, c, newLeader, standby, app.ClientID, versions[len(versions)-1])
	})
}

// upgradeVersion is the plugin version TestHAFailover upgrades to.
const upgradeVersion = "v0.2.0"

// testHAUpgrade upgrades the mount to another plugin version on the running
// cluster, the way docs/HA.md says: the new binary, under its own file name,
// into every node's plugin_directory; register it once (through a standby:
// forwarded); tune the mount to it; reload. The role's versions survive and
// the engine rotates under the new version.
func testHAUpgrade(t *testing.T, f *fixture, c *vaulttest.Cluster, active, standby *vaulttest.Node, clientID string, latest version) {
	root := c.RootToken
	buildDir := t.TempDir()
	sha, err := vaulttest.BuildPluginInto(buildDir, upgradeVersion)
	if err != nil {
		t.Fatal(err)
	}
	command := vaulttest.PluginName + "-" + upgradeVersion
	for _, n := range c.Nodes { // the dead node too: it may come back
		data, err := os.ReadFile(filepath.Join(buildDir, vaulttest.PluginName))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.PluginDir, command), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	standby.MustCLI(t, root, "plugin", "register", "-sha256="+sha, "-version="+upgradeVersion, "-command="+command, "secret", vaulttest.PluginName)
	active.MustCLI(t, root, "secrets", "tune", "-plugin-version="+upgradeVersion, mount+"/")
	active.MustCLI(t, root, "plugin", "reload", "-plugin="+vaulttest.PluginName)

	for _, n := range c.Running() {
		r := n.Do(t, root, http.MethodGet, "sys/mounts/"+mount, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("sys/mounts/%s through %s: status %d: %v", mount, n.Name, r.Status, r.Errors)
		}
		for field, want := range map[string]string{"plugin_version": upgradeVersion, "running_plugin_version": upgradeVersion, "running_sha256": sha} {
			if got, _ := r.Data[field].(string); got != want {
				t.Errorf("sys/mounts/%s through %s: %s = %q, want %q", mount, n.Name, field, got, want)
			}
		}
	}
	creds := dataOf(t, standby.MustCLIJSON(t, root, "read", mount+"/creds/myapp"))
	if num(t, creds, "version") != latest.n || str(t, creds, "client_secret") != latest.secret {
		t.Errorf("after the upgrade creds serve version %d, want the same version %d and secret as before", num(t, creds, "version"), latest.n)
	}
	before := f.rotations(clientID)
	d := dataOf(t, standby.MustCLIJSON(t, root, "write", "-f", mount+"/rotate/myapp"))
	if got := num(t, d, "version"); got != latest.n+1 {
		t.Errorf("rotation under %s: version %d, want %d", upgradeVersion, got, latest.n+1)
	}
	if got := f.rotations(clientID) - before; got != 1 {
		t.Errorf("rotation under %s: Auth0 saw %d rotations, want 1", upgradeVersion, got)
	}
	creds = dataOf(t, standby.MustCLIJSON(t, root, "read", mount+"/creds/myapp"))
	if str(t, creds, "client_secret") != f.secret(t, clientID) {
		t.Errorf("after a rotation under %s creds do not serve the secret Auth0 holds", upgradeVersion)
	}
	if code := authenticate(t, f.emuURL, clientID, str(t, creds, "client_secret")); code != http.StatusOK {
		t.Errorf("after a rotation under %s the served secret gets status %d at Auth0", upgradeVersion, code)
	}
}

// haPerformanceMultiplier is raft's performance_multiplier for the HA test;
// HA_RAFT_MULTIPLIER overrides it.
func haPerformanceMultiplier(t *testing.T) int {
	if s := os.Getenv("HA_RAFT_MULTIPLIER"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10 {
			t.Fatalf("HA_RAFT_MULTIPLIER=%q: want 1 to 10", s)
		}
		return n
	}
	return 2
}

// waitRotations waits until the ledger holds at least n rotations.
func waitRotations(t *testing.T, led *ledger, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(led.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("Auth0 saw %d rotations after %v, want at least %d", len(led.snapshot()), timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitVersion waits until the role's current version, read through v, is at
// least n.
func waitVersion(t *testing.T, v *vaulttest.Vault, token string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		r, err := v.TryDo(token, http.MethodGet, mount+"/versions/myapp", nil, 10*time.Second)
		switch {
		case err != nil:
			last = err.Error()
		case r.Status != http.StatusOK:
			last = fmt.Sprintf("status %d: %v", r.Status, r.Errors)
		default:
			cur := num(t, r.Data, "current_version")
			if cur >= n {
				return
			}
			last = fmt.Sprintf("current_version %d", cur)
		}
		if time.Now().After(deadline) {
			t.Fatalf("current version not %d after %v; last: %s", n, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertCredsWork reads creds through node n and logs in at Auth0 with the
// secret. If Auth0 refuses it, a scheduled rotation must have replaced it in
// between: the version must have moved on, and the next read is tried.
func assertCredsWork(t *testing.T, n *vaulttest.Node, token, clientID, emuURL string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r := n.Do(t, token, http.MethodGet, mount+"/creds/myapp", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("creds through %s: status %d: %v", n.Name, r.Status, r.Errors)
		}
		ver := num(t, r.Data, "version")
		if authenticate(t, emuURL, clientID, str(t, r.Data, "client_secret")) == http.StatusOK {
			return
		}
		again := n.Do(t, token, http.MethodGet, mount+"/creds/myapp", nil)
		if again.Status != http.StatusOK || num(t, again.Data, "version") <= ver || attempt == 3 {
			t.Fatalf("creds through %s served version %d, which Auth0 refuses, and no newer version replaced it (attempt %d)", n.Name, ver, attempt)
		}
	}
}
