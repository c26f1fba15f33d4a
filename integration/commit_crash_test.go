package integration

import (
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// The lines the engine logs when it resolves, at start, a rotation a crash
// left in flight (recovery.go resolveWALLocked and recoverLocked).
const (
	logFinished = "finished storing a rotation a crash interrupted"
	logReadBack = "recovered the application's secret from Auth0"
)

// maxCommitKillDelay bounds the random delay between Auth0's answer and the
// kill in TestCrashPluginKillInCommit.
const maxCommitKillDelay = 8 * time.Millisecond

// commitKillDelay draws a delay in [0, maxCommitKillDelay], in whole
// microseconds, skewed towards short ones (maxCommitKillDelay·u², u uniform:
// half of them under a quarter of the maximum). On a dev server the whole
// commit takes a millisecond or two after the answer, with much jitter, and
// the window before the secret entry is written is the narrowest; a uniform
// delay would mostly land after the request was answered.
func commitKillDelay(rng *rand.Rand) time.Duration {
	u := rng.Float64()
	return (time.Duration(u*u*float64(maxCommitKillDelay)) / time.Microsecond) * time.Microsecond
}

// crashSeed is the seed of a crash test's random delays: CRASH_SEED, or else
// the clock.
func crashSeed(t *testing.T) uint64 {
	if s := os.Getenv("CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CRASH_SEED=%q: want an unsigned integer", s)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// commitOutcome is where a kill inside a rotation's commit landed, as the
// stored version and the engine's log tell it.
type commitOutcome string

const (
	// The rotate request was answered (200): the kill came after the whole
	// request.
	outcomeAnswered commitOutcome = "committed, request answered"
	// The request failed, but the role entry (the commit point) was written:
	// at start the engine found a version recording the write-ahead entry (or
	// no entry at all) and had nothing to do.
	outcomeCommitted commitOutcome = "committed, request failed"
	// The secret entry was written, the role entry not: the engine finished
	// the commit from storage at start.
	outcomeFinished commitOutcome = "finished from storage"
	// Not even the secret entry was written: the engine read the secret back
	// from Auth0 at start.
	outcomeReadBack commitOutcome = "read back from Auth0"
)

// commitKill is one iteration of TestCrashPluginKillInCommit, kept until the
// engine's log lines about it are all written.
type commitKill struct {
	i        int
	delay    time.Duration
	answered bool   // the rotate request got 200
	retried  bool   // Vault retried the rotate request on a new plugin process
	source   string // of the version holding the crashed rotation's secret
	versions string // this iteration's new versions
	logFrom  int    // offset in the server log where the iteration started
}

// TestCrashPluginKillInCommit kills -9 the plugin process a random 0–8 ms
// (commitKillDelay) after Auth0 answered rotate-secret, the answer delivered normally, again
// and again on one dev server. The kill lands at different points of the
// engine's multi-entry commit (rotation.go commitVersion: secrets/<role>/<n>,
// then creds/<role>, then roles/<role>, the commit point, then the delete of
// the write-ahead entry), or before the plugin read the answer, or after the
// whole request. Whatever the point, after the plugin restarts creds must
// serve Auth0's current secret without ever serving a stale one, versions
// must be consecutive and every Auth0 rotation stored exactly once.
//
// The test logs where the kills landed: committed (the stored version has
// source rotate and the engine had nothing to resolve), finished from storage
// (source rotate and the engine logged logFinished) or read back (source
// recovered, logged logReadBack). CRASH_SEED repeats a run's delays.
func TestCrashPluginKillInCommit(t *testing.T) {
	iterations := crashIterations(t)
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill delays 0–%v after the answer, seed %d (CRASH_SEED=%d repeats them)", maxCommitKillDelay, seed, seed)

	f := newFixture(t)
	v, root := f.v, f.v.RootToken
	f.configure(t)
	app := f.addApp(t, "crash-app-id", "Crash App")
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+app.ClientID, "max_versions=100")
	f.rotate(t, root, "myapp") // version 1, the baseline
	led := newLedger(f.emu, app.ClientID)
	baseRotations := f.rotations(app.ClientID)

	counts := map[commitOutcome]int{}
	var retried, stale, failed int
	var slowest time.Duration
	readErrors := map[string]int{}

	// classify decides where the kill of k landed from the server log between
	// offsets k.logFrom and to, which must hold every line the engine wrote
	// about k.
	classify := func(k commitKill, logs string, to int) commitOutcome {
		t.Helper()
		seg := logs[k.logFrom:to]
		finished, readBack := strings.Count(seg, logFinished), strings.Count(seg, logReadBack)
		var o commitOutcome
		switch {
		case k.source == "recovered" && readBack == 1 && finished == 0:
			o = outcomeReadBack
		case k.source == "rotate" && finished == 1 && readBack == 0:
			o = outcomeFinished
		case k.source == "rotate" && finished == 0 && readBack == 0 && k.answered:
			o = outcomeAnswered
		case k.source == "rotate" && finished == 0 && readBack == 0:
			o = outcomeCommitted
		default:
			t.Errorf("iteration %d (kill %v after the answer): the crashed rotation is stored with source %q, but the engine logged %q %d times and %q %d times",
				k.i, k.delay, k.source, logFinished, finished, logReadBack, readBack)
			return "inconsistent"
		}
		note := ""
		if k.retried {
			note = "; Vault retried the rotate request"
		}
		t.Logf("iteration %d: kill %v after the answer: %s (new versions %s%s)", k.i, k.delay, o, k.versions, note)
		return o
	}

	var pending *commitKill // the previous iteration, not yet classified
	start := time.Now()
	for i := 1; i <= iterations; i++ {
		before := readVersions(t, v, root, "myapp")
		pids, err := v.PluginPIDs()
		if err != nil || len(pids) == 0 {
			t.Fatalf("iteration %d: no plugin process before the crash (%v, %v)", i, pids, err)
		}
		logs := v.Logs()
		if pending != nil {
			// Every line about the previous iteration was written before its
			// creds read was answered, long before this point.
			counts[classify(*pending, logs, len(logs))]++
		}
		k := commitKill{i: i, delay: commitKillDelay(rng), logFrom: len(logs)}
		ledgerFrom := len(led.snapshot())

		// The pids are found beforehand, so that the kill follows the delay
		// closely.
		fired := led.armAfterAnswer(k.delay, func() error { return vaulttest.KillProcesses(pids, 10*time.Second) })
		resp, err := v.TryDo(root, http.MethodPut, mount+"/rotate/myapp", nil, time.Minute)
		killed := led.waitFired(t, fired, 30*time.Second)
		if err != nil {
			t.Fatalf("iteration %d: rotate: %v (the server itself must survive a plugin crash)", i, err)
		}
		k.answered = resp.Status == http.StatusOK

		want, _ := f.emu.ClientSecret(app.ClientID)
		got := waitServed(t, v, root, "myapp", want, before[len(before)-1].n, time.Minute)
		if got.stale > 0 {
			t.Errorf("iteration %d (kill %v after the answer): %d creds reads served a secret other than Auth0's current one after the kill", i, k.delay, got.stale)
		}
		stale += got.stale
		failed += got.failed
		slowest = max(slowest, got.took)
		for _, e := range got.errs {
			readErrors[pluginSocket.ReplaceAllString(strings.Join(strings.Fields(e), " "), "plugin*")]++
		}
		if newPIDs, _ := v.PluginPIDs(); len(newPIDs) == 0 || newPIDs[0] == pids[0] {
			t.Errorf("iteration %d: plugin processes %v after the kill of %v: not restarted", i, newPIDs, pids)
		}
		if code := authenticate(t, f.emuURL, app.ClientID, want); code != http.StatusOK {
			t.Fatalf("iteration %d: the secret creds serves (version %d) gets status %d at Auth0, want 200", i, got.version, code)
		}

		after := readVersions(t, v, root, "myapp")
		rs := led.snapshot()
		acc := checkAgainstLedger(t, after, 1, rs, want, "rotate", true)
		assertCount(t, i, f.rotations(app.ClientID), baseRotations, rs, after, acc)
		newRotations, newVersions := rs[ledgerFrom:], after[len(before):]
		k.versions = describe(newVersions)
		switch {
		case k.answered && len(newRotations) == 2:
			// The request failed on the killed plugin and Vault retried it on
			// the new one, which resolved the crashed rotation first and then
			// rotated again (see TestCrashPluginKill).
			k.answered, k.retried = false, true
			retried++
			if len(newVersions) != 2 || newVersions[0].secret != killed.secret || newVersions[1].source != "rotate" {
				t.Errorf("iteration %d: Vault retried the rotate request; new versions %s, want the crashed rotation's then a rotate", i, k.versions)
			}
		case len(newRotations) != 1:
			t.Errorf("iteration %d: Auth0 applied %d rotations, want 1 (rotate answered %d)", i, len(newRotations), resp.Status)
		case len(newVersions) != 1 || newVersions[0].secret != killed.secret:
			t.Errorf("iteration %d (kill %v after the answer): new versions %s; want exactly one, holding the secret of the crashed rotation", i, k.delay, k.versions)
		case k.answered && newVersions[0].source != "rotate":
			t.Errorf("iteration %d: the rotate request was answered, but its version has source %q", i, newVersions[0].source)
		}
		if len(newVersions) > 0 {
			k.source = newVersions[0].source
		}
		if t.Failed() {
			logs := v.Logs()
			classify(k, logs, len(logs))
			t.Fatalf("iteration %d failed (kill %v after the answer, seed %d)", i, k.delay, seed)
		}
		pending = &k
	}
	// The last iteration: wait for the line its outcome calls for; a kill
	// whose commit completed logs none, so give that case a moment.
	deadline := time.Now().Add(time.Second)
	if pending.source == "recovered" {
		deadline = time.Now().Add(10 * time.Second)
	}
	for {
		seg := v.Logs()[pending.logFrom:]
		if strings.Contains(seg, logReadBack) || strings.Contains(seg, logFinished) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs := v.Logs()
	counts[classify(*pending, logs, len(logs))]++

	t.Logf("%d plugin kills 0–%v after Auth0's answer in %v (seed %d): each time creds served the secret Auth0 accepts and every Auth0 rotation is stored once; "+
		"slowest %v from the first read; %d reads served a stale secret, %d reads failed",
		iterations, maxCommitKillDelay, time.Since(start).Round(time.Millisecond), seed, slowest.Round(time.Millisecond), stale, failed)
	t.Logf("where the kills landed: %d committed (%d after the request was answered, %d with the request failed), %d finished from storage, %d read back from Auth0",
		counts[outcomeAnswered]+counts[outcomeCommitted], counts[outcomeAnswered], counts[outcomeCommitted], counts[outcomeFinished], counts[outcomeReadBack])
	if retried > 0 {
		t.Logf("in %d of %d crashes Vault retried the rotate request on the new plugin process (Auth0 then rotated twice)", retried, iterations)
	}
	for e, count := range readErrors {
		t.Logf("%d reads right after a kill failed with: %s", count, e)
	}
	if n := counts["inconsistent"]; n > 0 {
		t.Errorf("%d iterations could not be classified", n)
	}
}
