package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
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

// The staged crash tests kill -9 the plugin (TestCrashStagedSwitch) or the
// whole Vault server (TestCrashServerStagedSwitch) at each step of a staged
// role's cycle (staged.go):
//
//	a. published: the next secret is stored and creds offers it as
//	   next_client_secret; nothing happened at Auth0;
//	b. PATCHed: Auth0 applied the PATCH of client_secret, and the answer is
//	   dropped (the kill comes before it is written);
//	c. verifying: the engine's check of the switched secret has reached Auth0
//	   (the GET ?fields=client_secret with read:client_keys, else the token
//	   request of the application at /oauth/token) and is not answered;
//	d. committing: 0–8 ms (commitKillDelay) after the verification's answer
//	   left, so inside the commit (secret, creds, role) or around it.
//
// After the restart the staged secret must become the current version by
// itself (the PATCH is idempotent and the scheduler queues a staged role whose
// switch time has passed), every creds read must let a consumer that tries
// current, then next, authenticate, Auth0 must never see rotate-secret, and
// every secret Auth0 ever held must be a committed version (no orphan).
//
// Each step runs max(1, CRASH_ITERATIONS/5) times, alternating how the
// switch is driven: step a switches by schedule (stage_period 5s) or with
// switch_now after the restart; steps b–d use switch_now on a secret published
// beforehand (stage_period 1h: its stored switch time is an hour away) or
// switch_now that stages and switches in one job. A role that Auth0 holds the
// staged secret of, that records no failure and whose next_switch_time lies
// beyond the wait, has no job due: it is reported STUCK after
// stagedStuckGrace, then switched with switch_now so that the run goes on.
//
// The plugin test's Management application may read secrets
// (read:client_keys: verification by read-back, baseline imported); the
// server test's may not (verification by a token; baseline made by a first
// switch).

const (
	stepPublished = "a-published"
	stepPatched   = "b-patched"
	stepVerifying = "c-verifying"
	stepCommit    = "d-commit"

	stagedRole = "staged"
	// stagedLongPeriod keeps a published secret from switching by itself;
	// stagedShortPeriod (the minimum) lets it switch by schedule.
	stagedLongPeriod  = "1h"
	stagedShortPeriod = "5s"
)

var stagedSteps = []string{stepPublished, stepPatched, stepVerifying, stepCommit}

// The engine's log lines about a staged role (staged.go).
const (
	logStaged      = "staged the next client secret"
	logSwitched    = "switched to the staged client secret"
	logPatchLost   = "Auth0's answer to the staged secret's PATCH was lost"
	logSchedFailed = "scheduled rotation failed"
)

var switchedVersion = regexp.MustCompile(regexp.QuoteMeta(logSwitched) + `.*\bversion=(\d+)`)

// answerMarkKey keys the requestMark that the emulator's wrapper puts in every
// request's context.
type answerMarkKey struct{}

// requestMark lets the fault hook act after the answer to a request has left:
// the wrapper runs after once the emulator's handler returned and the answer
// was flushed. It is set and read on the request's own goroutine.
type requestMark struct{ after func() }

// startStagedEmulator is startEmulator with the given Management API scopes,
// behind a wrapper that runs each request's requestMark.after.
func startStagedEmulator(t *testing.T, scopes []string) (*emulator.Server, string, emulator.Client) {
	t.Helper()
	emu := emulator.New(emulator.Options{CNAMEAPIKey: edgeCNAMEKey})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := &requestMark{}
		emu.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), answerMarkKey{}, m)))
		if m.after != nil {
			_ = http.NewResponseController(w).Flush()
			m.after()
		}
	}))
	t.Cleanup(srv.Close)
	mgmt := emu.AddClient(emulator.Client{
		ClientID: mgmtClientID,
		Name:     "Vault",
		Grants:   map[string][]string{emulator.ManagementGrant: scopes},
	})
	return emu, srv.URL, mgmt
}

// stagedLedger watches the emulator for one application: it records every
// secret Auth0 held for it (the initial one, then each one a PATCH set) and
// crashes at the armed step.
type stagedLedger struct {
	emu      *emulator.Server
	clientID string
	readBack bool // the engine verifies by GET ?fields=client_secret, else by a token

	mu      sync.Mutex
	held    []string // distinct secrets, in the order Auth0 held them
	patches int      // PATCHes of the application Auth0 applied, repeats included
	armed   string   // step whose event crashes next; "" when disarmed
	crash   func() error
	delay   time.Duration // stepCommit: after the verification's answer
	fired   chan struct{}
	err     error // what the crash returned
}

func newStagedLedger(emu *emulator.Server, clientID string, readBack bool) *stagedLedger {
	initial, ok := emu.ClientSecret(clientID)
	if !ok {
		panic("no client " + clientID)
	}
	l := &stagedLedger{emu: emu, clientID: clientID, readBack: readBack, held: []string{initial}}
	emu.SetFaults(l.fault)
	return l
}

// arm makes the next event of step (b, c or d) run crash.
func (l *stagedLedger) arm(step string, delay time.Duration, crash func() error) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed, l.crash, l.delay, l.err = step, crash, delay, nil
	l.fired = make(chan struct{})
	return l.fired
}

// takeLocked disarms and returns the function that runs the armed crash.
func (l *stagedLedger) takeLocked() func() {
	crash, fired := l.crash, l.fired
	l.armed, l.crash = "", nil
	return func() {
		err := crash()
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(fired)
	}
}

// verification reports whether r is the engine's check of a switched secret.
func (l *stagedLedger) verification(r *http.Request) bool {
	if !l.readBack {
		return r.URL.Path == "/oauth/token"
	}
	if r.Method != http.MethodGet || r.URL.Path != "/api/v2/clients/"+l.clientID {
		return false
	}
	for _, f := range strings.Split(r.URL.Query().Get("fields"), ",") {
		if f == "client_secret" {
			return r.URL.Query().Get("include_fields") != "false"
		}
	}
	return false
}

func (l *stagedLedger) fault(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
	if clientID != l.clientID {
		return nil
	}
	switch {
	case p == emulator.AfterApply && r.Method == http.MethodPatch:
		// Applied and committed; the emulator holds no lock here.
		secret, _ := l.emu.ClientSecret(clientID)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.patches++
		if secret != l.held[len(l.held)-1] {
			l.held = append(l.held, secret)
		}
		if l.armed == stepPatched {
			return &emulator.Fault{Do: l.takeLocked(), Drop: true}
		}
	case p == emulator.BeforeApply && l.verification(r):
		l.mu.Lock()
		defer l.mu.Unlock()
		switch l.armed {
		case stepVerifying:
			return &emulator.Fault{Do: l.takeLocked(), Drop: true}
		case stepCommit:
			m, ok := r.Context().Value(answerMarkKey{}).(*requestMark)
			if !ok {
				return nil
			}
			run, delay := l.takeLocked(), l.delay
			m.after = func() {
				go func() {
					if delay > 0 {
						time.Sleep(delay)
					}
					run()
				}()
			}
		}
	}
	return nil
}

// state returns the secrets Auth0 held and the PATCH count.
func (l *stagedLedger) state() ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.held...), l.patches
}

// waitFired waits for the armed crash to have run without error.
func (l *stagedLedger) waitFired(t *testing.T, fired <-chan struct{}, timeout time.Duration) {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(timeout):
		t.Fatalf("the armed crash did not happen within %v", timeout)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		t.Fatalf("crashing failed: %v", l.err)
	}
}

// stagedTarget is what a staged crash test kills.
type stagedTarget struct {
	name string // "plugin" or "server"
	v    *vaulttest.Vault
	// prepare returns the kill for the next crash; it is called right before
	// the crash is armed, so that the kill follows its event closely.
	prepare func(t *testing.T) func() error
	// restart brings Vault back after a kill; nil when the next request does
	// (a plugin is restarted by Vault on demand).
	restart func(t *testing.T)
}

// stagedStats are a step's totals.
type stagedStats struct {
	iterations int
	outcomes   map[string]int
	reads      int // creds reads after the kill
	failed     int // of which failed (the plugin or server was down)
	viol       int // of which a consumer trying current, then next, would fail
	nextOnly   int // of which Auth0's secret was offered as next only (current not yet switched)
	stuck      int // iterations where the engine did not switch by itself
	slowest    time.Duration
}

// stagedRun drives one staged crash test.
type stagedRun struct {
	t      *testing.T
	f      *fixture
	target stagedTarget
	token  string
	app    emulator.Client
	led    *stagedLedger
	rng    *rand.Rand
	seed   uint64
	stats  map[string]*stagedStats
	labels map[string]string // secret -> label, for messages without secrets

	// the iteration in progress, for messages
	step string
	i    int
	errs int // failures reported with errorf
}

// errorf reports a failure of the iteration in progress.
func (r *stagedRun) errorf(format string, args ...any) {
	r.t.Helper()
	r.errs++
	r.t.Errorf(format, args...)
}

func (r *stagedRun) label(secret string) string {
	switch {
	case secret == "":
		return "none"
	case r.labels[secret] != "":
		return r.labels[secret]
	}
	return "an unknown secret"
}

func (r *stagedRun) auth0Secret() string {
	s, _ := r.f.emu.ClientSecret(r.app.ClientID)
	return s
}

// credsView is one creds read.
type credsView struct {
	ok                  bool
	err                 string
	version, next       int
	cur, nextSec, prev  string
	heldBefore, heldAft string
}

// readCreds reads creds/<role> once and checks that a consumer trying
// client_secret, then next_client_secret, gets through at Auth0: Auth0's
// secret (read right before and right after, in case a PATCH fell between)
// must be one of them.
func (r *stagedRun) readCreds(st *stagedStats) credsView {
	t := r.t
	t.Helper()
	var c credsView
	c.heldBefore = r.auth0Secret()
	resp, err := r.target.v.TryDo(r.token, http.MethodGet, mount+"/creds/"+stagedRole, nil, 10*time.Second)
	c.heldAft = r.auth0Secret()
	if st != nil {
		st.reads++
	}
	switch {
	case err != nil:
		c.err = err.Error()
	case resp.Status != http.StatusOK:
		c.err = fmt.Sprintf("status %d: %v", resp.Status, resp.Errors)
	default:
		c.ok = true
		c.version = num(t, resp.Data, "version")
		c.cur = str(t, resp.Data, "client_secret")
		c.prev, _ = resp.Data["previous_client_secret"].(string)
		if s, ok := resp.Data["next_client_secret"].(string); ok {
			c.nextSec = s
			c.next = num(t, resp.Data, "next_version")
		}
	}
	if !c.ok {
		if st != nil {
			st.failed++
		}
		return c
	}
	held := func(s string) bool { return s != "" && (s == c.heldBefore || s == c.heldAft) }
	switch {
	case held(c.cur):
	case held(c.nextSec):
		if st != nil {
			st.nextOnly++
		}
	default:
		if st != nil {
			st.viol++
		}
		r.errorf("step %s, iteration %d: STALE creds: current %s (version %d), next %s (version %d), previous %s, while Auth0 held %s (then %s): a consumer trying current, then next, fails",
			r.step, r.i, r.label(c.cur), c.version, r.label(c.nextSec), c.next, r.label(c.prev), r.label(c.heldBefore), r.label(c.heldAft))
	}
	return c
}

// roleView is one read of roles/<role>.
type roleView struct {
	current, next int       // next: the staged version, 0 when none
	switchAt      time.Time // next_switch_time, when staged
	failure       string
}

func (r *stagedRun) readRole() (roleView, error) {
	resp, err := r.target.v.TryDo(r.token, http.MethodGet, mount+"/roles/"+stagedRole, nil, 10*time.Second)
	if err != nil {
		return roleView{}, err
	}
	if resp.Status != http.StatusOK {
		return roleView{}, fmt.Errorf("status %d: %v", resp.Status, resp.Errors)
	}
	var v roleView
	v.current = num(r.t, resp.Data, "current_version")
	if _, ok := resp.Data["next_version"]; ok {
		v.next = num(r.t, resp.Data, "next_version")
		v.switchAt = rfc3339(r.t, resp.Data, "next_switch_time")
	}
	if f, ok := resp.Data["last_rotation_failure"]; ok {
		v.failure = fmt.Sprint(f)
	}
	return v, nil
}

// write sends PUT path with body (nil: none), failing on a transport error.
func (r *stagedRun) write(path string, body map[string]any) *vaulttest.Response {
	r.t.Helper()
	resp, err := r.target.v.TryDo(r.token, http.MethodPut, mount+"/"+path, body, time.Minute)
	if err != nil {
		r.t.Fatalf("step %s, iteration %d: PUT %s: %v", r.step, r.i, path, err)
	}
	return resp
}

const (
	// stagedSwitchTimeout bounds the wait for the staged version to become
	// current after the restart: a failed attempt is retried after 10s.
	stagedSwitchTimeout = 60 * time.Second
	// stagedStuckGrace: a role that Auth0 has switched, that records no
	// failure (so no next attempt) and whose next_switch_time is beyond
	// stagedSwitchTimeout, has no job due before then; after this long (the
	// first retry backoff) the wait gives up on it.
	stagedStuckGrace = 10 * time.Second
)

// waitSwitched polls creds (checking every read) and the role until the role's
// current version is want, nothing is staged, and creds serves version want
// holding Auth0's secret. It returns how long that took, or, with
// detectStuck, a description of the state once the role is stuck (see
// stagedStuckGrace).
func (r *stagedRun) waitSwitched(st *stagedStats, want int, detectStuck bool) (time.Duration, string) {
	t := r.t
	t.Helper()
	start := time.Now()
	deadline := start.Add(stagedSwitchTimeout)
	var last string
	var failures []string
	for {
		c := r.readCreds(st)
		if c.ok {
			rv, err := r.readRole()
			switch {
			case err != nil:
				last = "role read: " + err.Error()
			case rv.failure != "" && (len(failures) == 0 || failures[len(failures)-1] != rv.failure):
				failures = append(failures, rv.failure)
				fallthrough
			default:
				holds := r.auth0Secret()
				if rv.current == want && rv.next == 0 && c.version == want && c.cur == holds && c.nextSec == "" {
					for _, f := range failures {
						t.Logf("step %s, iteration %d: the role recorded a failure on the way: %s", r.step, r.i, f)
					}
					return time.Since(start), ""
				}
				last = fmt.Sprintf("role current_version %d, next_version %d, next_switch_time %s, last_rotation_failure %q; creds version %d client_secret %s, next_client_secret %s (version %d), previous %s; Auth0 holds %s",
					rv.current, rv.next, rv.switchAt.Format(time.RFC3339), rv.failure, c.version, r.label(c.cur), r.label(c.nextSec), c.next, r.label(c.prev), r.label(holds))
				// Auth0 holds the staged version, whether creds offers it as next
				// or (the commit stopped between creds and the role) as current.
				stagedHeld := c.next == rv.next && c.nextSec == holds || c.version == rv.next && c.cur == holds
				if detectStuck && time.Since(start) > stagedStuckGrace && rv.next != 0 && rv.failure == "" &&
					stagedHeld && rv.switchAt.After(deadline) {
					return time.Since(start), last
				}
			}
		} else {
			last = c.err
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %s, iteration %d: the staged version %d did not become current within %v; last: %s", r.step, r.i, want, stagedSwitchTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// engineLines returns the plugin's INFO and higher log lines in logs.
func engineLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "secrets.vault-plugin-auth0") && (strings.Contains(l, "[INFO]") || strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERROR]")) &&
			!strings.Contains(l, "mTLS") {
			if i := strings.Index(l, "vault-plugin-auth0: "); i >= 0 {
				l = l[:strings.Index(l, " ")] + " " + l[i+len("vault-plugin-auth0: "):]
			}
			out = append(out, l)
		}
	}
	return out
}

// iteration crashes once at step and checks the aftermath.
func (r *stagedRun) iteration(step string, i int) {
	t := r.t
	t.Helper()
	r.step, r.i = step, i
	st := r.stats[step]
	st.iterations++
	errsBefore := r.errs

	before := readVersions(t, r.target.v, r.token, stagedRole)
	oldV := before[len(before)-1]
	r.labels[oldV.secret] = fmt.Sprintf("v%d", oldV.n)
	n := oldV.n + 1
	_, patchesBefore := r.led.state()
	logFrom := len(r.target.v.Logs())

	// Step a alternates between a switch by schedule after the restart and a
	// switch_now; steps b–d between switch_now on a published secret and
	// switch_now that stages and switches in one go.
	scheduled := step == stepPublished && i%2 == 1
	publish := step == stepPublished || i%2 == 0
	how := "switch_now staging and switching at once"
	switch {
	case scheduled:
		how = "published with stage_period " + stagedShortPeriod + ", switched by schedule"
		r.write("roles/"+stagedRole, map[string]any{"stage_period": stagedShortPeriod})
	case step == stepPublished:
		how = "published, switch_now after the restart"
	case publish:
		how = "published, then switch_now"
	}
	var staged string
	if publish {
		resp := r.write("rotate/"+stagedRole, nil)
		if resp.Status != http.StatusOK || num(t, resp.Data, "next_version") != n {
			t.Fatalf("step %s, iteration %d: publishing: status %d %s, want next_version %d", step, i, resp.Status, resp.Raw, n)
		}
		c := r.readCreds(nil)
		if !c.ok || c.next != n || c.nextSec == "" || c.cur != oldV.secret || c.version != oldV.n {
			t.Fatalf("step %s, iteration %d: after publishing, creds: %s version %d client_secret %s next_version %d (next_client_secret set: %v)",
				step, i, c.err, c.version, r.label(c.cur), c.next, c.nextSec != "")
		}
		staged = c.nextSec
		r.labels[staged] = fmt.Sprintf("v%d", n)
	}

	kill := r.target.prepare(t)
	var answered *vaulttest.Response
	if step == stepPublished {
		if err := kill(); err != nil {
			t.Fatalf("step %s, iteration %d: kill: %v", step, i, err)
		}
	} else {
		var delay time.Duration
		if step == stepCommit {
			delay = commitKillDelay(r.rng)
			how += fmt.Sprintf(", kill %v after the verification's answer", delay)
		}
		fired := r.led.arm(step, delay, kill)
		resp, err := r.target.v.TryDo(r.token, http.MethodPut, mount+"/rotate/"+stagedRole, map[string]any{"switch_now": true}, time.Minute)
		r.led.waitFired(t, fired, 30*time.Second)
		switch {
		case err != nil && r.target.restart == nil:
			t.Fatalf("step %s, iteration %d: switch_now: %v (the server itself must survive a plugin crash)", step, i, err)
		case err == nil && r.target.restart != nil && step != stepCommit:
			t.Fatalf("step %s, iteration %d: switch_now was answered (%d %s) by a server killed while serving it", step, i, resp.Status, resp.Raw)
		case err == nil && resp.Status == http.StatusOK:
			answered = resp
		}
	}

	if r.target.restart != nil {
		r.target.restart(t)
	}
	want := n
	if answered != nil {
		// The kill came after the whole request (step d), or Vault retried
		// the request on a new plugin process.
		if v := num(t, answered.Data, "version"); v != n {
			t.Logf("step %s, iteration %d: switch_now answered version %d (Vault retried it on the new plugin after the commit of %d?)", step, i, v, n)
			want = v
		}
	}
	if step == stepPublished && !scheduled {
		// Once Vault serves again, creds must still offer the staged secret.
		deadline := time.Now().Add(time.Minute)
		for {
			c := r.readCreds(st)
			if c.ok {
				if c.next != n || c.nextSec != staged {
					r.errorf("step %s, iteration %d: after the restart creds offers next %s (version %d), want the staged v%d", step, i, r.label(c.nextSec), c.next, n)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %s, iteration %d: creds did not answer within a minute of the kill: %s", step, i, c.err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		resp := r.write("rotate/"+stagedRole, map[string]any{"switch_now": true})
		if resp.Status != http.StatusOK || num(t, resp.Data, "version") != n {
			r.errorf("step %s, iteration %d: switch_now after the restart: status %d %s, want version %d", step, i, resp.Status, resp.Raw, n)
		}
	}
	took, stuck := r.waitSwitched(st, want, true)
	if stuck != "" {
		st.stuck++
		t.Errorf("step %s, iteration %d (%s): STUCK: %v after the restart the engine has not switched and has no job due before next_switch_time: %s; engine log since the iteration began:\n\t%s",
			step, i, how, took.Round(time.Millisecond), stuck, strings.Join(engineLines(r.target.v.Logs()[logFrom:]), "\n\t"))
		resp := r.write("rotate/"+stagedRole, map[string]any{"switch_now": true})
		if resp.Status != http.StatusOK || num(t, resp.Data, "version") != n {
			r.errorf("step %s, iteration %d: switch_now to unstick the role: status %d %s, want version %d", step, i, resp.Status, resp.Raw, n)
		}
		more, _ := r.waitSwitched(st, want, false)
		took += more
	} else {
		st.slowest = max(st.slowest, took)
	}
	if scheduled {
		r.write("roles/"+stagedRole, map[string]any{"stage_period": stagedLongPeriod})
	}

	// (i) the staged version is current, Auth0 holds it and accepts it, and
	// the old one is previous.
	held, patches := r.led.state()
	holds := r.auth0Secret()
	if staged == "" {
		// Staged and switched by one job: the secret is the one this
		// iteration's PATCHes set.
		if len(held) < 2 {
			t.Fatalf("step %s, iteration %d: Auth0 never held a second secret", step, i)
		}
		staged = held[len(held)-1-(want-n)]
		r.labels[staged] = fmt.Sprintf("v%d", n)
	}
	if code := authenticate(t, r.f.emuURL, r.app.ClientID, holds); code != http.StatusOK {
		r.errorf("step %s, iteration %d: Auth0's own secret gets status %d at /oauth/token", step, i, code)
	}
	c := r.readCreds(st)
	switch {
	case !c.ok:
		r.errorf("step %s, iteration %d: creds after the switch: %s", step, i, c.err)
	case c.version != want || c.cur != holds:
		r.errorf("step %s, iteration %d: creds serves %s (version %d), Auth0 holds %s", step, i, r.label(c.cur), c.version, r.label(holds))
	case want == n && c.prev != oldV.secret:
		r.errorf("step %s, iteration %d: previous_client_secret is %s, want %s", step, i, r.label(c.prev), r.label(oldV.secret))
	}
	if code := authenticate(t, r.f.emuURL, r.app.ClientID, c.cur); code != http.StatusOK {
		r.errorf("step %s, iteration %d: the secret creds serves gets status %d at /oauth/token", step, i, code)
	}
	after := readVersions(t, r.target.v, r.token, stagedRole)
	r.checkVersions(after, held)
	if len(after) < n {
		t.Fatalf("step %s, iteration %d: versions %s, want version %d", step, i, describe(after), n)
	}
	if v := after[n-1]; v.source != "staged" || v.secret != staged {
		r.errorf("step %s, iteration %d: version %d has source %s and holds %s, want source staged and the staged secret", step, i, v.n, v.source, r.label(v.secret))
	}
	if after[n-2].secret != oldV.secret {
		r.errorf("step %s, iteration %d: version %d changed", step, i, n-1)
	}

	// Where the kill landed: the PATCHes of the staged secret after the kill
	// tell whether the switch was done again.
	redone := patches - patchesBefore - 1
	if step == stepPublished {
		redone = patches - patchesBefore
	}
	var outcome string
	switch {
	case stuck != "":
		outcome = "STUCK until a manual switch_now (engine did not retry)"
	case step == stepPublished && scheduled:
		outcome = "switched by schedule after the restart"
	case step == stepPublished:
		outcome = "switched by switch_now after the restart"
	case answered != nil && want != n:
		outcome = "request retried by Vault after the commit (one more version)"
	case answered != nil && redone > 0:
		outcome = "switch redone, request answered (Vault retried it)"
	case answered != nil:
		outcome = "committed, request answered"
	case redone > 0:
		outcome = "switch redone after the restart (same secret PATCHed again)"
	default:
		outcome = "committed before the kill, request failed"
	}
	if step != stepCommit && step != stepPublished && redone == 0 && answered == nil {
		r.errorf("step %s, iteration %d: the switch was never redone after the kill, yet it committed", step, i)
	}
	st.outcomes[outcome]++
	logs := r.target.v.Logs()[logFrom:]
	var switchedN int
	for _, m := range switchedVersion.FindAllStringSubmatch(logs, -1) {
		if m[1] == strconv.Itoa(n) {
			switchedN++
		}
	}
	t.Logf("step %s, iteration %d: %s; restart→switched %v; %s; %d PATCH(es) after the kill, %d %q line(s) for v%d, %d %q, %d %q",
		step, i, how, took.Round(time.Millisecond), outcome, redone, switchedN, logSwitched, n,
		strings.Count(logs, logPatchLost), logPatchLost, strings.Count(logs, logSchedFailed), logSchedFailed)
	if r.errs > errsBefore {
		t.Fatalf("step %s, iteration %d failed (seed %d)", step, i, r.seed)
	}
}

// checkVersions checks (iii): no rotate-secret, and the secrets Auth0 ever held
// are exactly the initial one and the committed staged versions, in order.
func (r *stagedRun) checkVersions(versions []version, held []string) {
	t := r.t
	t.Helper()
	for k, v := range versions {
		if v.n != k+1 {
			r.errorf("step %s, iteration %d: versions are not 1..n: %s", r.step, r.i, describe(versions))
			break
		}
	}
	var staged []version
	for _, v := range versions {
		switch v.source {
		case "staged":
			staged = append(staged, v)
		case "import":
			if v.n != 1 || v.secret != held[0] {
				r.errorf("step %s, iteration %d: version %d (import) is not Auth0's initial secret", r.step, r.i, v.n)
			}
		default:
			r.errorf("step %s, iteration %d: version %d has source %q", r.step, r.i, v.n, v.source)
		}
	}
	stats := r.f.emu.Stats()
	if n := stats.Rotations[r.app.ClientID]; n != 0 {
		r.errorf("step %s, iteration %d: Auth0 applied %d rotate-secret to the application", r.step, r.i, n)
	}
	if n := stats.SecretPatches[r.app.ClientID]; n != len(staged) {
		r.errorf("step %s, iteration %d: Auth0 counts %d PATCHes that changed the secret, for %d staged versions", r.step, r.i, n, len(staged))
	}
	if len(held) != 1+len(staged) {
		r.errorf("step %s, iteration %d: Auth0 held %d distinct secrets, want the initial one and %d committed staged versions (%s): an orphan secret",
			r.step, r.i, len(held), len(staged), describe(versions))
	}
	for k, v := range staged {
		if k+1 < len(held) && held[k+1] != v.secret {
			r.errorf("step %s, iteration %d: staged version %d is not secret %d Auth0 held (it held %s)", r.step, r.i, v.n, k+2, r.label(held[k+1]))
		}
	}
}

// runStagedCrashes sets up the role (a baseline version 1) and crashes at each
// step in turn.
func runStagedCrashes(t *testing.T, f *fixture, target stagedTarget, token string, readBack bool) {
	per := max(1, crashIterations(t)/5)
	seed := crashSeed(t)
	t.Logf("%s kills, %d per step, verification by %s; step d kill delays 0–%v after the verification's answer, seed %d (CRASH_SEED=%d repeats them)",
		target.name, per, map[bool]string{true: "read-back", false: "token"}[readBack], maxCommitKillDelay, seed, seed)

	f.configure(t)
	app := f.addApp(t, "staged-crash-app-id", "Staged Crash App")
	led := newStagedLedger(f.emu, app.ClientID, readBack)
	r := &stagedRun{t: t, f: f, target: target, token: token, app: app, led: led,
		rng: rand.New(rand.NewPCG(seed, 0)), seed: seed, stats: map[string]*stagedStats{}, labels: map[string]string{}}
	for _, s := range stagedSteps {
		r.stats[s] = &stagedStats{outcomes: map[string]int{}}
	}
	args := []string{"write", mount + "/roles/" + stagedRole, "client_id=" + app.ClientID, "rotation_strategy=staged",
		"stage_period=" + stagedLongPeriod, "max_versions=100"}
	if readBack {
		target.v.MustCLI(t, token, append(args, "import_current_secret=true")...)
	} else {
		target.v.MustCLI(t, token, args...)
		resp := r.write("rotate/"+stagedRole, map[string]any{"switch_now": true})
		if resp.Status != http.StatusOK || num(t, resp.Data, "version") != 1 {
			t.Fatalf("baseline switch: status %d %s", resp.Status, resp.Raw)
		}
	}
	r.checkVersions(readVersions(t, target.v, token, stagedRole), func() []string { h, _ := led.state(); return h }())
	if t.Failed() {
		t.FailNow()
	}

	logFrom := len(target.v.Logs())
	start := time.Now()
	for i := 1; i <= per; i++ {
		for _, s := range stagedSteps {
			r.iteration(s, i)
		}
	}
	elapsed := time.Since(start)
	logs := target.v.Logs()[logFrom:]

	for _, s := range stagedSteps {
		st := r.stats[s]
		var outs []string
		for o, c := range st.outcomes {
			outs = append(outs, fmt.Sprintf("%d %s", c, o))
		}
		sort.Strings(outs)
		t.Logf("step %s: %d %s kills: %s; %d creds reads after the kill (%d failed while down, %d served Auth0's secret only as next, %d stale); slowest restart→switched %v (stuck ones excluded)",
			s, st.iterations, target.name, strings.Join(outs, ", "), st.reads, st.failed, st.nextOnly, st.viol, st.slowest.Round(time.Millisecond))
	}
	held, patches := led.state()
	t.Logf("%d %s kills in %v (seed %d): Auth0 held %d distinct secrets (%d PATCHes, %d rotate-secret); engine log: %d %q, %d %q, %d %q, %d %q",
		per*len(stagedSteps), target.name, elapsed.Round(time.Millisecond), seed, len(held), patches, f.emu.Stats().Rotations[app.ClientID],
		strings.Count(logs, logStaged), logStaged, strings.Count(logs, logSwitched), logSwitched,
		strings.Count(logs, logPatchLost), logPatchLost, strings.Count(logs, logSchedFailed), logSchedFailed)
}

// TestCrashStagedSwitch kills -9 the plugin process at each step of a staged
// role's cycle, on a dev server; the Management application may read secrets,
// so the engine verifies a switch by reading the secret back.
func TestCrashStagedSwitch(t *testing.T) {
	emu, emuURL, mgmt := startStagedEmulator(t, []string{"read:clients", "read:client_keys", "update:client_keys"})
	v := vaulttest.StartDevServer(t, pluginDir)
	v.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	v.Mount(t, mount, pluginVersion)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: v}
	var pids []int
	target := stagedTarget{
		name: "plugin",
		v:    v,
		prepare: func(t *testing.T) func() error {
			t.Helper()
			// A plugin killed by the previous iteration may still be
			// restarting; wait for the new one.
			deadline := time.Now().Add(30 * time.Second)
			for {
				now, err := v.PluginPIDs()
				if err == nil && len(now) > 0 && (len(pids) == 0 || now[0] != pids[0]) {
					pids = now
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new plugin process (%v, %v; killed before: %v)", now, err, pids)
				}
				time.Sleep(50 * time.Millisecond)
			}
			kill := pids
			return func() error { return vaulttest.KillProcesses(kill, 10*time.Second) }
		},
	}
	runStagedCrashes(t, f, target, v.RootToken, true)
}

// TestCrashServerStagedSwitch kills -9 the whole Vault server (file storage,
// one unseal key, as TestCrashServerKill) at each step of a staged role's
// cycle, then starts and unseals it again; the Management application may not
// read secrets, so the engine verifies a switch with a token.
func TestCrashServerStagedSwitch(t *testing.T) {
	emu, emuURL, mgmt := startStagedEmulator(t, []string{"read:clients", "update:client_keys"})
	n := vaulttest.StartNode(t, vaulttest.NodeConfig{Name: "file", Storage: vaulttest.StorageFile, PluginDir: pluginDir})
	key, root := n.Init(t)
	n.Unseal(t, key, time.Minute)
	n.WaitHealth(t, time.Minute, vaulttest.HealthActive)
	n.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	n.Mount(t, mount, pluginVersion)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: n.Vault}
	f.v.RootToken = root
	var slowestRestart time.Duration
	target := stagedTarget{
		name: "server",
		v:    n.Vault,
		prepare: func(t *testing.T) func() error {
			t.Helper()
			// The processes are found beforehand (n.Kill would scan /proc
			// first), so that the kill follows its event closely.
			plugins, err := n.PluginPIDs()
			if err != nil || len(plugins) == 0 {
				t.Fatalf("no plugin process before the crash (%v, %v)", plugins, err)
			}
			pids := append([]int{n.PID()}, plugins...)
			return func() error { return vaulttest.KillProcesses(pids, 10*time.Second) }
		},
		restart: func(t *testing.T) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); n.Running(); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the server survived the kill")
				}
			}
			start := time.Now()
			n.Start(t)
			n.Unseal(t, key, time.Minute)
			n.WaitHealth(t, time.Minute, vaulttest.HealthActive)
			slowestRestart = max(slowestRestart, time.Since(start))
		},
	}
	runStagedCrashes(t, f, target, root, false)
	t.Logf("%d server starts; slowest restart to active %v", n.Starts(), slowestRestart.Round(time.Millisecond))
}
