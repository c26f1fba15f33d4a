package integration

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// The crash tests kill -9 a process at the worst moment of a rotation: Auth0
// has applied rotate-secret (the old secret is dead, the only copy of the new
// one is in the answer) and the answer has not left the emulator. The fault
// that kills also drops the connection, so nobody ever receives that answer.
// The engine must then find the secret Auth0 holds (the write-ahead log entry
// written before the call says a rotation was in flight) and serve it.
//
// TestCrashPluginKillInCommit (commit_crash_test.go) kills the plugin a
// little later instead: the answer goes out, and the kill lands somewhere in
// the engine's multi-entry commit of the new secret (or before or after it).
//
// They are not parallel: Go runs them alone, before the parallel tests, so
// that their timing does not depend on the other tests' load.

// pluginSocket matches the name of a plugin's unix socket, which differs
// for every plugin process.
var pluginSocket = regexp.MustCompile(`plugin\d+`)

// crashIterations is how many crashes each crash test causes;
// CRASH_ITERATIONS overrides it.
func crashIterations(t *testing.T) int {
	if s := os.Getenv("CRASH_ITERATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CRASH_ITERATIONS=%q: want a positive integer", s)
		}
		return n
	}
	return 20
}

// rotation is one rotate-secret that Auth0 applied to the watched
// application.
type rotation struct {
	secret  string // the secret Auth0 issued
	crashed bool   // the fault crashed something here: see answered
	// answered: the crash was armed with armAfterAnswer, so the answer was
	// sent and the crash came delay after it; otherwise (arm) the crash came
	// before the answer, which was dropped.
	answered bool
	delay    time.Duration
	crash    error // what the crash function returned
}

// ledger watches the emulator: it records every rotate-secret applied to one
// application, in order, and crashes the next one once armed. It is the
// reference the engine's versions are checked against.
type ledger struct {
	emu      *emulator.Server
	clientID string

	mu        sync.Mutex
	rotations []rotation
	crash     func() error  // armed crash, nil when disarmed
	fired     chan struct{} // closed when the armed crash has run
	// afterAnswer: the armed crash lets the answer go and runs delay after
	// it (armAfterAnswer), instead of running before it and dropping it.
	afterAnswer bool
	delay       time.Duration
}

func newLedger(emu *emulator.Server, clientID string) *ledger {
	l := &ledger{emu: emu, clientID: clientID}
	emu.SetFaults(l.fault)
	return l
}

// arm makes the next rotate-secret of the application run crash after Auth0
// applied it, then drop the connection. The returned channel is closed once
// crash has returned.
func (l *ledger) arm(crash func() error) <-chan struct{} {
	return l.armMode(crash, false, 0)
}

// armAfterAnswer makes the next rotate-secret of the application be answered
// normally, and run crash, from another goroutine, delay after the emulator
// started writing the answer (delay 0: at once, racing the answer). The
// returned channel is closed once crash has returned.
func (l *ledger) armAfterAnswer(delay time.Duration, crash func() error) <-chan struct{} {
	return l.armMode(crash, true, delay)
}

func (l *ledger) armMode(crash func() error, afterAnswer bool, delay time.Duration) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crash = crash
	l.afterAnswer, l.delay = afterAnswer, delay
	l.fired = make(chan struct{})
	return l.fired
}

func (l *ledger) fault(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
	if p != emulator.AfterApply || clientID != l.clientID || !strings.HasSuffix(r.URL.Path, "/rotate-secret") {
		return nil
	}
	// Auth0 has applied the rotation; the emulator holds no lock here.
	secret, _ := l.emu.ClientSecret(clientID)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rotations = append(l.rotations, rotation{secret: secret})
	if l.crash == nil {
		return nil
	}
	crash, fired, i := l.crash, l.fired, len(l.rotations)-1
	afterAnswer, delay := l.afterAnswer, l.delay
	l.crash = nil
	l.rotations[i].crashed = true
	l.rotations[i].answered = afterAnswer
	l.rotations[i].delay = delay
	run := func() {
		err := crash()
		l.mu.Lock()
		l.rotations[i].crash = err
		l.mu.Unlock()
		close(fired)
	}
	if afterAnswer {
		// Do returns at once and the emulator writes the answer; the crash
		// follows on its own.
		return &emulator.Fault{Do: func() {
			go func() {
				if delay > 0 {
					time.Sleep(delay)
				}
				run()
			}()
		}}
	}
	return &emulator.Fault{Do: run, Drop: true}
}

// snapshot returns a copy of the rotations so far.
func (l *ledger) snapshot() []rotation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]rotation(nil), l.rotations...)
}

// waitFired waits for an armed crash to have run and fails the test if it
// did not within timeout or if it failed.
func (l *ledger) waitFired(t *testing.T, fired <-chan struct{}, timeout time.Duration) rotation {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(timeout):
		t.Fatalf("the armed crash did not happen within %v (no rotate-secret reached Auth0)", timeout)
	}
	rs := l.snapshot()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].crashed {
			if rs[i].crash != nil {
				t.Fatalf("crashing at the rotation failed: %v", rs[i].crash)
			}
			return rs[i]
		}
	}
	t.Fatalf("the crash ran but no crashed rotation is recorded")
	return rotation{}
}

// version is one retained version of a role, with its secret.
type version struct {
	n       int
	source  string
	created time.Time
	secret  string
}

// readVersions reads a role's retained versions (auth0/versions) and each
// one's secret (auth0/creds?version=N), oldest first, through v.
func readVersions(t *testing.T, v *vaulttest.Vault, token, role string) []version {
	t.Helper()
	r := v.Do(t, token, http.MethodGet, mount+"/versions/"+role, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s/versions/%s on %s: status %d: %v", mount, role, v.Addr, r.Status, r.Errors)
	}
	list, _ := r.Data["versions"].(map[string]any)
	var out []version
	for key, x := range list {
		meta, _ := x.(map[string]any)
		n, err := strconv.Atoi(key)
		if err != nil {
			t.Fatalf("versions of %s: key %q is not a number", role, key)
		}
		out = append(out, version{n: n, source: str(t, meta, "source"), created: rfc3339(t, meta, "created_time")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	if len(out) > 0 {
		if cur := num(t, r.Data, "current_version"); cur != out[len(out)-1].n {
			t.Errorf("versions of %s: current_version %d, but the newest listed is %d", role, cur, out[len(out)-1].n)
		}
		if oldest := num(t, r.Data, "oldest_version"); oldest != out[0].n {
			t.Errorf("versions of %s: oldest_version %d, but the oldest listed is %d", role, oldest, out[0].n)
		}
	}
	for i := range out {
		c := v.Do(t, token, http.MethodGet, fmt.Sprintf("%s/creds/%s?version=%d", mount, role, out[i].n), nil)
		if c.Status != http.StatusOK {
			t.Fatalf("GET %s/creds/%s?version=%d: status %d: %v", mount, role, out[i].n, c.Status, c.Errors)
		}
		out[i].secret = str(t, c.Data, "client_secret")
	}
	return out
}

// describe renders versions for failure messages, without secrets.
func describe(vs []version) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%d:%s", v.n, v.source))
	}
	return strings.Join(parts, " ")
}

// accounting is what checkAgainstLedger found.
type accounting struct {
	stored     int // rotations stored as a version
	recovered  int // of which with source "recovered"
	superseded int // crashed rotations whose secret was replaced at Auth0 before any node could learn it
}

// checkAgainstLedger checks a role's versions against every rotation Auth0
// applied, exactly:
//
//   - version numbers are consecutive, and the role holds every version
//     since it was created (max_versions is large enough in these tests);
//   - the first baseline versions are from before the ledger started; every
//     later version holds the secret of one ledger rotation, in the order Auth0
//     applied them: no secret twice, none out of order, none that Auth0 never
//     issued;
//   - a rotation whose answer arrived is stored with source normalSource
//     ("rotate" or "scheduled");
//   - a rotation whose answer was lost (crashed) is stored with source
//     "recovered", unless allowSuperseded and a later rotation replaced its
//     secret at Auth0 before the engine could read it back (Vault itself
//     retries a request whose plugin died, see TestCrashPluginKill);
//   - a rotation answered before a crash (armAfterAnswer) is stored with
//     source normalSource if the engine had stored the secret before it died
//     (the commit completed, or was finished from storage at restart), or
//     "recovered" if it died before (read back from Auth0); the same
//     allowSuperseded exception applies;
//   - the newest version holds the secret Auth0 holds now.
func checkAgainstLedger(t *testing.T, versions []version, baseline int, rotations []rotation, auth0Secret, normalSource string, allowSuperseded bool) accounting {
	t.Helper()
	var acc accounting
	if len(versions) == 0 {
		t.Errorf("the role holds no version at all")
		return acc
	}
	for i := 1; i < len(versions); i++ {
		if versions[i].n != versions[i-1].n+1 {
			t.Errorf("versions are not consecutive: %d follows %d (%s)", versions[i].n, versions[i-1].n, describe(versions))
		}
	}
	if versions[0].n != 1 {
		t.Errorf("the oldest retained version is %d, want 1: a version was trimmed or lost (%s)", versions[0].n, describe(versions))
	}
	seen := map[string]int{}
	for _, v := range versions {
		if prev, dup := seen[v.secret]; dup {
			t.Errorf("versions %d and %d hold the same secret: a rotation was stored twice", prev, v.n)
		}
		seen[v.secret] = v.n
	}

	next := baseline // the next version to match, an index into versions
	for i, r := range rotations {
		if next < len(versions) && versions[next].secret == r.secret {
			v := versions[next]
			switch {
			case r.crashed && r.answered && v.source != "recovered" && v.source != normalSource:
				t.Errorf("rotation %d (answered, then crashed %v later) is version %d with source %q, want %s or recovered", i+1, r.delay, v.n, v.source, normalSource)
			case r.crashed && !r.answered && v.source != "recovered":
				t.Errorf("rotation %d (answer lost) is version %d with source %q, want recovered", i+1, v.n, v.source)
			case !r.crashed && v.source != normalSource:
				t.Errorf("rotation %d (answered) is version %d with source %q, want %s", i+1, v.n, v.source, normalSource)
			}
			if v.source == "recovered" {
				acc.recovered++
			}
			acc.stored++
			next++
			continue
		}
		if n, ok := seen[r.secret]; ok {
			t.Errorf("rotation %d is stored as version %d, out of Auth0's order (%s)", i+1, n, describe(versions))
			continue
		}
		what := "answer lost"
		if r.answered {
			what = fmt.Sprintf("answered, then crashed %v later", r.delay)
		}
		switch {
		case !r.crashed:
			t.Errorf("rotation %d of %d was answered but is not stored: a secret was lost (versions %s)", i+1, len(rotations), describe(versions))
		case i == len(rotations)-1:
			t.Errorf("rotation %d of %d (%s) is the last one and is not stored: Vault does not hold Auth0's secret (versions %s)", i+1, len(rotations), what, describe(versions))
		case !allowSuperseded:
			t.Errorf("rotation %d of %d (%s) is not stored although nothing may rotate before it is recovered (versions %s)", i+1, len(rotations), what, describe(versions))
		default:
			acc.superseded++
		}
	}
	if next != len(versions) {
		for _, v := range versions[next:] {
			t.Errorf("version %d (source %s) holds a secret that matches no rotation Auth0 applied in order", v.n, v.source)
		}
	}
	if latest := versions[len(versions)-1]; latest.secret != auth0Secret {
		t.Errorf("the newest version (%d, %s) is not the secret Auth0 holds", latest.n, latest.source)
	}
	return acc
}

// assertCount checks the totals of a crash test after iteration i: Auth0's
// count of rotations of the application (auth0Total, baseline ones included)
// equals the ledger's plus the baseline, and equals the number of versions
// made by a rotation (source rotate) or recovered from one, plus the crashed
// rotations that a later one superseded before they could be read back.
func assertCount(t *testing.T, i, auth0Total, baseline int, rs []rotation, versions []version, acc accounting) {
	t.Helper()
	if auth0Total != baseline+len(rs) {
		t.Errorf("iteration %d: Auth0 counts %d rotations, the test saw %d+%d", i, auth0Total, baseline, len(rs))
	}
	made := 0
	for _, v := range versions {
		if v.source == "rotate" || v.source == "recovered" {
			made++
		}
	}
	if made+acc.superseded != auth0Total {
		t.Errorf("iteration %d: %d versions from rotations (%s) and %d superseded rotations for %d Auth0 rotations",
			i, made, describe(versions), acc.superseded, auth0Total)
	}
}

// served is what waitServed saw.
type served struct {
	version int           // the version that served the expected secret
	took    time.Duration // from the first read to that one
	stale   int           // answers before it that served another secret
	failed  int           // answers before it that were errors
	errs    []string      // those errors
}

// waitServed polls auth0/creds/<role> through v until it serves want with a
// version above after. Each read is also a request to the mount, which is
// what makes Vault restart a dead plugin.
func waitServed(t *testing.T, v *vaulttest.Vault, token, role, want string, after int, timeout time.Duration) served {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var s served
	var last string
	for {
		r, err := v.TryDo(token, http.MethodGet, mount+"/creds/"+role, nil, 10*time.Second)
		switch {
		case err != nil:
			last = err.Error()
			s.failed++
			s.errs = append(s.errs, last)
		case r.Status != http.StatusOK:
			last = fmt.Sprintf("status %d: %v", r.Status, r.Errors)
			s.failed++
			s.errs = append(s.errs, last)
		default:
			ver := num(t, r.Data, "version")
			if r.Data["client_secret"] == want && ver > after {
				s.version, s.took = ver, time.Since(start)
				return s
			}
			last = fmt.Sprintf("version %d, the expected secret: %v", ver, r.Data["client_secret"] == want)
			s.stale++
		}
		if time.Now().After(deadline) {
			t.Fatalf("creds/%s did not serve Auth0's secret within %v; last answer: %s", role, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCrashPluginKill kills -9 the plugin process right after Auth0 applied
// a rotation, again and again on one dev server.
//
// What Vault 1.13 does (see the server log at trace level): the request in
// flight fails with gRPC "Unavailable ... EOF" (500). The next request to the
// mount fails the same way if Vault has not yet noticed the process exit
// ("connection refused" on the plugin's socket), or finds the plugin shut
// down: then Vault starts a new plugin process, calls Initialize (the plugin
// starts its scheduler, whose first act is to reconcile rotations left in
// flight) and retries that request on it. So the test keeps reading creds
// until it serves Auth0's secret. Initialize finds the rotation left in
// flight before it returns, and creds reads of that role wait for its
// reconciliation: a read that served the previous (dead) secret fails the
// test. (Vault would also retry the rotate request itself had
// it seen "plugin is shut down" there; that was never observed, but would be
// safe, and the checks below accept it and say so.)
//
// The last crash is left alone, with no request at all: Vault's rollback
// manager, which sends every mount a request once a minute, restarts the
// plugin by itself and the secret is reconciled without any client asking.
func TestCrashPluginKill(t *testing.T) {
	iterations := crashIterations(t)
	f := newFixture(t)
	v, root := f.v, f.v.RootToken
	f.configure(t)
	app := f.addApp(t, "crash-app-id", "Crash App")
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+app.ClientID, "max_versions=100")
	f.rotate(t, root, "myapp") // version 1, the baseline
	led := newLedger(f.emu, app.ClientID)
	baseRotations := f.rotations(app.ClientID)

	// crashOnce kills the plugin at a rotation requested through the API and
	// returns the crashed rotation, the request's answer and the plugin pids.
	crashOnce := func(i int) (rotation, *vaulttest.Response, []int) {
		t.Helper()
		pids, err := v.PluginPIDs()
		if err != nil || len(pids) == 0 {
			t.Fatalf("iteration %d: no plugin process before the crash (%v, %v)", i, pids, err)
		}
		fired := led.arm(func() error {
			_, err := v.KillPlugins(10 * time.Second)
			return err
		})
		resp, err := v.TryDo(root, http.MethodPut, mount+"/rotate/myapp", nil, time.Minute)
		killed := led.waitFired(t, fired, 30*time.Second)
		switch {
		case err != nil:
			t.Fatalf("iteration %d: rotate: %v (the server itself must survive a plugin crash)", i, err)
		case resp.Status == http.StatusOK:
			t.Logf("iteration %d: Vault retried the rotate request whose plugin died on a new plugin process: %s", i, resp.Raw)
		}
		return killed, resp, pids
	}

	// check verifies the state after the crash of iteration i.
	retried := 0
	check := func(i int, before []version, killed rotation, resp *vaulttest.Response) {
		t.Helper()
		want, _ := f.emu.ClientSecret(app.ClientID)
		if code := authenticate(t, f.emuURL, app.ClientID, want); code != http.StatusOK {
			t.Fatalf("iteration %d: Auth0's own current secret gets status %d, want 200", i, code)
		}
		after := readVersions(t, v, root, "myapp")
		rs := led.snapshot()
		acc := checkAgainstLedger(t, after, 1, rs, want, "rotate", true)
		assertCount(t, i, f.rotations(app.ClientID), baseRotations, rs, after, acc)
		newVersions := after[len(before):]
		if resp.Status == http.StatusOK {
			// Vault retried the request on a new plugin process, which rotated
			// again: the crashed rotation is recovered, or superseded by the
			// retry if that took the role's lock first. checkAgainstLedger has
			// checked which; the retry's own rotation must be the newest.
			retried++
			if len(newVersions) == 0 || newVersions[len(newVersions)-1].source != "rotate" {
				t.Errorf("iteration %d: Vault retried the rotate request, but the new versions are %s", i, describe(newVersions))
			}
		} else if len(newVersions) != 1 || newVersions[0].source != "recovered" || newVersions[0].secret != killed.secret {
			// The request failed: the crashed rotation must be this iteration's
			// one new version, recovered from Auth0.
			t.Errorf("iteration %d: new versions %s; want exactly one, source recovered, holding the secret of the crashed rotation", i, describe(newVersions))
		}
		if t.Failed() {
			t.Fatalf("iteration %d failed", i)
		}
	}

	var stale, failed int
	var slowest time.Duration
	readErrors := map[string]int{}
	start := time.Now()
	for i := 1; i < iterations; i++ {
		before := readVersions(t, v, root, "myapp")
		killed, resp, oldPIDs := crashOnce(i)
		want, _ := f.emu.ClientSecret(app.ClientID)
		got := waitServed(t, v, root, "myapp", want, before[len(before)-1].n, time.Minute)
		if got.stale > 0 {
			t.Errorf("iteration %d: %d creds reads served the previous (dead) secret before the reconciliation", i, got.stale)
		}
		stale += got.stale
		failed += got.failed
		slowest = max(slowest, got.took)
		for _, e := range got.errs {
			readErrors[pluginSocket.ReplaceAllString(strings.Join(strings.Fields(e), " "), "plugin*")]++
		}
		if newPIDs, _ := v.PluginPIDs(); len(newPIDs) == 0 || newPIDs[0] == oldPIDs[0] {
			t.Errorf("iteration %d: plugin processes %v after the kill of %v: not restarted", i, newPIDs, oldPIDs)
		}
		check(i, before, killed, resp)
	}
	t.Logf("%d plugin kills with client requests in %v: each time creds served the secret Auth0 accepts, recovered from Auth0 as a new version; "+
		"slowest %v from the first read; %d reads served the previous (dead) secret before reconciliation stored the new one, %d reads failed",
		iterations-1, time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond), stale, failed)
	for e, count := range readErrors {
		t.Logf("%d reads right after a kill failed with: %s", count, e)
	}

	// The last crash: no request until the rollback manager has restarted the
	// plugin and reconciliation has had time to run.
	i := iterations
	before := readVersions(t, v, root, "myapp")
	killed, resp, oldPIDs := crashOnce(i)
	idle := time.Now()
	deadline := idle.Add(90 * time.Second)
	for {
		if pids, err := v.PluginPIDs(); err == nil && len(pids) > 0 && pids[0] != oldPIDs[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("iteration %d: with no requests, no new plugin process within %v of the kill", i, 90*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	restarted := time.Since(idle)
	if resp.Status == http.StatusOK {
		t.Logf("iteration %d: Vault retried the rotate request at once, so the plugin was restarted by that, not by the rollback manager", i)
	}
	// The plugin runs again, so reads from now on cannot be what restarts it.
	want, _ := f.emu.ClientSecret(app.ClientID)
	got := waitServed(t, v, root, "myapp", want, before[len(before)-1].n, 30*time.Second)
	if got.failed > 0 {
		t.Errorf("iteration %d: %d reads failed after the rollback manager had restarted the plugin: %v", i, got.failed, got.errs)
	}
	check(i, before, killed, resp)
	t.Logf("iteration %d, no requests after the kill: the rollback manager restarted the plugin %v later and it reconciled the rotation by itself",
		i, restarted.Round(time.Millisecond))
	if retried > 0 {
		t.Logf("in %d of %d crashes Vault retried the rotate request on the new plugin process (Auth0 then rotated twice)", retried, iterations)
	}
}

// TestCrashServerKill kills -9 a whole Vault server (and its plugin
// process) right after Auth0 applied a rotation: a production-style server
// with file storage, initialised and unsealed with one key. Each time the
// server is started again on the same storage and unsealed; the mount starts
// during unseal, Vault calls the plugin's Initialize and the plugin
// reconciles the rotation left in flight.
func TestCrashServerKill(t *testing.T) {
	iterations := crashIterations(t)
	emu, emuURL, mgmt := startEmulator(t)
	n := vaulttest.StartNode(t, vaulttest.NodeConfig{Name: "file", Storage: vaulttest.StorageFile, PluginDir: pluginDir})
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: n.Vault}
	key, root := n.Init(t)
	n.Unseal(t, key, time.Minute)
	n.WaitHealth(t, time.Minute, vaulttest.HealthActive)
	n.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	n.Mount(t, mount, pluginVersion)
	f.configure(t)
	app := f.addApp(t, "crash-app-id", "Crash App")
	n.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+app.ClientID, "max_versions=100")
	f.rotate(t, root, "myapp") // version 1, the baseline
	led := newLedger(emu, app.ClientID)
	baseRotations := f.rotations(app.ClientID)

	var stale, failed int
	var slowest, slowestRestart time.Duration
	start := time.Now()
	for i := 1; i <= iterations; i++ {
		before := readVersions(t, n.Vault, root, "myapp")
		fired := led.arm(func() error { return n.Kill(10 * time.Second) })
		resp, err := n.TryDo(root, http.MethodPut, mount+"/rotate/myapp", nil, time.Minute)
		killed := led.waitFired(t, fired, 30*time.Second)
		if err == nil {
			t.Fatalf("iteration %d: the rotate request was answered (%d %s) by a server killed while serving it", i, resp.Status, resp.Raw)
		}
		if n.Running() {
			t.Fatalf("iteration %d: the server survived the kill", i)
		}

		restart := time.Now()
		n.Start(t)
		n.Unseal(t, key, time.Minute)
		n.WaitHealth(t, time.Minute, vaulttest.HealthActive)
		slowestRestart = max(slowestRestart, time.Since(restart))
		want, _ := emu.ClientSecret(app.ClientID)
		got := waitServed(t, n.Vault, root, "myapp", want, before[len(before)-1].n, time.Minute)
		if got.stale > 0 {
			t.Errorf("iteration %d: %d creds reads served the previous (dead) secret before the reconciliation", i, got.stale)
		}
		stale += got.stale
		failed += got.failed
		slowest = max(slowest, got.took)
		if code := authenticate(t, emuURL, app.ClientID, want); code != http.StatusOK {
			t.Fatalf("iteration %d: the secret creds serves (version %d) gets status %d at Auth0, want 200", i, got.version, code)
		}

		after := readVersions(t, n.Vault, root, "myapp")
		rs := led.snapshot()
		// Nothing can rotate between the crash and the reconciliation at start:
		// every rotation must be stored.
		acc := checkAgainstLedger(t, after, 1, rs, want, "rotate", false)
		assertCount(t, i, f.rotations(app.ClientID), baseRotations, rs, after, acc)
		newVersions := after[len(before):]
		if len(newVersions) != 1 || newVersions[0].source != "recovered" || newVersions[0].secret != killed.secret {
			t.Errorf("iteration %d: new versions %s; want exactly one, source recovered, holding the secret of the crashed rotation", i, describe(newVersions))
		}
		if t.Failed() {
			t.Fatalf("iteration %d failed", i)
		}
	}
	t.Logf("%d server kills in %v (%d server starts): each time, after restart and unseal, creds served the secret Auth0 accepts, recovered as a new version; "+
		"slowest restart to active %v, slowest from active to the right secret %v; %d reads served the previous (dead) secret first, %d reads failed",
		iterations, time.Since(start).Round(time.Millisecond), n.Starts(), slowestRestart.Round(time.Millisecond), slowest.Round(time.Millisecond), stale, failed)
}
