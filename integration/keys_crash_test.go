package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// TestKeyCrashAtEachStep kills -9 the plugin process at each step of a private_key_jwt
// key's life (keys.go), at the exact request where the step happens at Auth0:
//
//  1. before-POST: the new key is stored as pending in Vault; the POST that registers its
//     public key has reached Auth0 and is not applied (nor answered);
//  2. after-POST: Auth0 stored the credential; its answer (the credential's id) is lost;
//  3. after-attach: Auth0 applied the PATCH that attaches the new key next to the current
//     one (for the first key: the cutover, token_endpoint_auth_method null); answer lost;
//  4. verifying: the engine's client assertion signed with the new key has reached
//     /oauth/token; it is not answered;
//  5. after-detach: at the end of the overlap, Auth0 applied the PATCH that attaches only
//     the current key; answer lost;
//  6. after-DELETE: Auth0 deleted the previous key's credential; answer lost.
//
// Steps 1–4 are killed during a manual rotate (Vault restarts the plugin and retries the
// request once; the new plugin's scheduler also picks up a pending key at once), steps 5
// and 6 during the scheduler's job that ends the overlap (nothing is in flight from a
// client: the plugin comes back at the next request, the test's role read, and its
// scheduler finds the overlap over). After each kill the engine must converge by itself
// and then: no credential at Auth0 that is not the role's current key or, during the
// overlap, its previous one; never more than two stored; the key creds serves logs in
// (and during the overlap the previous one, after it no longer); versions 1..n, one per
// rotation, and exactly one credential created per version.
//
// The first key (the cutover from the client secret) is killed at one of steps 1–4
// drawn from the seed; then each of steps 1–4 once, in an order drawn from the seed,
// each rotation's overlap end killed at step 5 or 6 (each twice, order drawn from the
// seed). CRASH_SEED repeats a run.
func TestKeyCrashAtEachStep(t *testing.T) {
	t.Parallel()
	crashAtEachStep(t, "private_key_jwt", []string{kcBeforePost, kcAfterPost, kcAfterAttach, kcVerifying})
}

// TestCertCrashAtEachStep is TestKeyCrashAtEachStep for a self_signed_tls_client_auth role:
// the same kills at steps 1–3, 5 and 6 (a certificate is checked by reading its credential
// back, not by a login: there is no step 4), and the same convergence; the application
// logs in by presenting the certificate creds serve to the tenant's mTLS edge.
func TestCertCrashAtEachStep(t *testing.T) {
	t.Parallel()
	crashAtEachStep(t, "self_signed_tls_client_auth", []string{kcBeforePost, kcAfterPost, kcAfterAttach})
}

// crashAtEachStep runs the kills of TestKeyCrashAtEachStep for a role of credentialType,
// its rotations killed at rotSteps.
func crashAtEachStep(t *testing.T, credentialType string, rotSteps []string) {
	start := time.Now()
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d (CRASH_SEED=%d repeats the order of the kills)", seed, seed)

	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	// Rotations take a few requests; the default pace (2/s, Auth0's smallest plan) only
	// makes the test slower.
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=50")
	app := f.addApp(t, "key-crash-app-id", "Key Crash App")
	led := newKCLedger(f.emu, app.ClientID, v)
	// rotation_period only so that the role is scheduled: the overlap's end must not start
	// a rotation (see TestKeyUnscheduledRoleRotatesOnlyWhenAsked).
	v.MustCLI(t, root, "write", mount+"/roles/"+kcRole, "client_id="+app.ClientID,
		"credential_type="+credentialType, "allow_auth_method_change=true",
		"rotation_period=1h", "overlap_period="+kcOverlap.String(), "max_versions=100")

	r := &kcRun{t: t, f: f, app: app, led: led, seed: seed, outcomes: map[string][]string{}}
	if credentialType == "self_signed_tls_client_auth" {
		r.edge = emulator.NewMTLSEdge(f.emu, edgeCNAMEKey)
		t.Cleanup(r.edge.Close)
	}
	cutoverStep := rotSteps[rng.IntN(len(rotSteps))]
	order := slices.Clone(rotSteps)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	ovOrder := []string{kcAfterDetach, kcAfterDelete, kcAfterDetach, kcAfterDelete}
	rng.Shuffle(len(ovOrder), func(i, j int) { ovOrder[i], ovOrder[j] = ovOrder[j], ovOrder[i] })
	t.Logf("cutover killed at %s; then rotations killed at %v, their overlap ends at %v", cutoverStep, order, ovOrder)

	r.cycle(cutoverStep, "")
	for i, s := range order {
		r.cycle(s, ovOrder[i])
	}

	// The whole history.
	versions := readKeyVersions(t, v, root, kcRole)
	want := 1 + len(order)
	for i, x := range versions {
		if x.n != i+1 || x.source != "rotate" || x.keyID == "" {
			t.Errorf("versions %s: want 1..%d, each with source rotate and a key", describeKeyVersions(versions), want)
			break
		}
	}
	if len(versions) != want {
		t.Errorf("%d versions, want %d (one per rotation)", len(versions), want)
	}
	stats := f.emu.Stats()
	if got := stats.CredentialsCreated[app.ClientID]; got != want {
		t.Errorf("Auth0 created %d credentials for %d rotations: a key was registered twice", got, want)
	}
	if got := stats.CredentialsDeleted[app.ClientID]; got != want-1 {
		t.Errorf("Auth0 deleted %d credentials, want %d (each replaced key once)", got, want-1)
	}
	if n, at := led.max(); n > emulator.MaxCredentials {
		t.Errorf("Auth0 held %d credentials at once (%s)", n, at)
	}
	for _, s := range append(slices.Clone(rotSteps), kcAfterDetach, kcAfterDelete) {
		t.Logf("step %s: %d kill(s): %s", s, len(r.outcomes[s]), strings.Join(r.outcomes[s], " | "))
	}
	n, _ := led.max()
	t.Logf("%d kills in %v (seed %d); %d versions; Auth0: %d credentials created, %d deleted, at most %d stored at once, %d auth-method PATCHes, %d assertion logins",
		led.kills(), time.Since(start).Round(100*time.Millisecond), seed, len(versions), stats.CredentialsCreated[app.ClientID],
		stats.CredentialsDeleted[app.ClientID], n, stats.AuthMethodPatches[app.ClientID], stats.AssertionLogins[app.ClientID])
}

const (
	kcRole    = "keycrash"
	kcOverlap = 3 * time.Second
	// kcConverge bounds the wait for the engine to finish by itself after a kill.
	kcConverge = 30 * time.Second
)

// The steps at which the plugin is killed.
const (
	kcBeforePost  = "1-before-POST"
	kcAfterPost   = "2-after-POST"
	kcAfterAttach = "3-after-attach-PATCH"
	kcVerifying   = "4-verification-login"
	kcAfterDetach = "5-after-detach-PATCH"
	kcAfterDelete = "6-after-DELETE"
)

// kcEvent is a request of the engine about the application, as Auth0 sees it.
type kcEvent int

const (
	evNone       kcEvent = iota
	evBeforePost         // POST .../credentials received, not applied
	evAfterPost          // POST applied
	evAttach             // PATCH applied that attached a key (or changed nothing)
	evDetach             // PATCH applied that detached a key
	evDelete             // DELETE .../credentials/{id} applied
	evVerify             // /oauth/token received a request of the application
	evPatchSent          // PATCH of the client received
	evDeleteSent         // DELETE .../credentials/{id} received
)

var kcStepEvent = map[string]kcEvent{
	kcBeforePost: evBeforePost, kcAfterPost: evAfterPost, kcAfterAttach: evAttach,
	kcVerifying: evVerify, kcAfterDetach: evDetach, kcAfterDelete: evDelete,
}

// kcArmed is a kill waiting for its event.
type kcArmed struct {
	step  string
	fired chan struct{}
	err   error
}

// kcLedger is the emulator's fault hook: it kills the plugin at the armed steps, in the
// order they were armed, counts the engine's requests, and records how many credentials
// Auth0 ever stored at once.
type kcLedger struct {
	emu      *emulator.Server
	clientID string
	v        *vaulttest.Vault

	mu        sync.Mutex
	queue     []*kcArmed
	attached  []string // after the last applied PATCH
	counts    map[kcEvent]int
	maxStored int
	atMax     string
	killed    int
}

func newKCLedger(emu *emulator.Server, clientID string, v *vaulttest.Vault) *kcLedger {
	l := &kcLedger{emu: emu, clientID: clientID, v: v, counts: map[kcEvent]int{}}
	emu.SetFaults(l.fault)
	return l
}

// arm queues a kill at step's next event; the channel is closed once it ran.
func (l *kcLedger) arm(step string) *kcArmed {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := &kcArmed{step: step, fired: make(chan struct{})}
	l.queue = append(l.queue, a)
	return a
}

func (l *kcLedger) snapshot() map[kcEvent]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[kcEvent]int{}
	for k, n := range l.counts {
		out[k] = n
	}
	return out
}

func (l *kcLedger) max() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxStored, l.atMax
}

func (l *kcLedger) kills() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.killed
}

func (l *kcLedger) classify(p emulator.Phase, r *http.Request) kcEvent {
	path := r.URL.Path
	switch {
	case path == "/oauth/token":
		// The engine's check asks for a token for the Management API, which the
		// application is not granted: Auth0 authenticates the assertion, then answers 403
		// (which the engine counts as accepted), so there is no AfterApply.
		if p == emulator.BeforeApply {
			return evVerify
		}
	case r.Method == http.MethodPost && path == "/api/v2/clients/"+l.clientID+"/credentials":
		if p == emulator.BeforeApply {
			return evBeforePost
		}
		return evAfterPost
	case p == emulator.BeforeApply && r.Method == http.MethodPatch && path == "/api/v2/clients/"+l.clientID:
		return evPatchSent
	case p == emulator.BeforeApply && r.Method == http.MethodDelete && strings.HasPrefix(path, "/api/v2/clients/"+l.clientID+"/credentials/"):
		return evDeleteSent
	case p == emulator.AfterApply && r.Method == http.MethodPatch && path == "/api/v2/clients/"+l.clientID:
		_, now := auth0Keys(l.emu, l.clientID)
		l.mu.Lock()
		before := l.attached
		l.attached = now
		l.mu.Unlock()
		for _, id := range before {
			if !slices.Contains(now, id) {
				return evDetach
			}
		}
		return evAttach
	case p == emulator.AfterApply && r.Method == http.MethodDelete && strings.HasPrefix(path, "/api/v2/clients/"+l.clientID+"/credentials/"):
		return evDelete
	}
	return evNone
}

func (l *kcLedger) fault(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
	if clientID != l.clientID {
		return nil
	}
	ev := l.classify(p, r)
	if ev == evNone {
		return nil
	}
	if ev == evAfterPost {
		stored, attached := auth0Keys(l.emu, l.clientID)
		l.mu.Lock()
		if len(stored) > l.maxStored {
			l.maxStored, l.atMax = len(stored), fmt.Sprintf("stored %v, attached %v", stored, attached)
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[ev]++
	if len(l.queue) == 0 || kcStepEvent[l.queue[0].step] != ev {
		return nil
	}
	a := l.queue[0]
	l.queue = l.queue[1:]
	l.killed++
	return &emulator.Fault{Drop: true, Do: func() {
		// The plugin making this request dies before Auth0's answer could reach it.
		_, a.err = l.v.KillPlugins(10 * time.Second)
		close(a.fired)
	}}
}

// kcRun drives TestKeyCrashAtEachStep and TestCertCrashAtEachStep.
type kcRun struct {
	t        *testing.T
	f        *fixture
	app      emulator.Client
	led      *kcLedger
	seed     uint64
	outcomes map[string][]string
	// edge is the tenant's mTLS edge, for a certificate role's logins; nil for keys.
	edge *emulator.MTLSEdge
}

// logsIn logs the application in with what c serves (its previous credential with
// previous): a client assertion signed with the key, or the certificate presented to the
// tenant's edge. It answers the status and, on a failure, why.
func (r *kcRun) logsIn(c keyCreds, previous bool) (int, string) {
	r.t.Helper()
	if r.edge == nil {
		if previous {
			return keyLoginPEM(r.t, r.f.emuURL, r.app.ClientID, c.prevPEM, c.alg, c.prevKID)
		}
		return keyLoginPEM(r.t, r.f.emuURL, r.app.ClientID, c.privatePEM, c.alg, c.kid)
	}
	cert, key := c.cert, c.privatePEM
	if previous {
		cert, key = c.prevCert, c.prevPEM
	}
	code, err := mtlsLogin(r.edge, r.app.ClientID, cert, key)
	if err != nil {
		r.t.Fatal(err)
	}
	return code, ""
}

// waitFired waits for an armed kill to have happened.
func (r *kcRun) waitFired(a *kcArmed, timeout time.Duration) {
	r.t.Helper()
	select {
	case <-a.fired:
	case <-time.After(timeout):
		role, err := readKeyRole(r.f.v, r.f.v.RootToken, kcRole)
		r.t.Fatalf("the kill at step %s did not happen within %v (seed %d); role: %s %v", a.step, timeout, r.seed, role, err)
	}
	if a.err != nil {
		r.t.Fatalf("killing the plugin at step %s: %v", a.step, a.err)
	}
}

// converge polls the role (a request: it brings a killed plugin back) until done accepts
// it, and returns it with what the role showed on the way (failures it recorded, a
// pending key).
func (r *kcRun) converge(step string, done func(keyRoleView) bool) (keyRoleView, time.Duration, []string) {
	r.t.Helper()
	start := time.Now()
	var failures []string
	var last keyRoleView
	var lastErr error
	for {
		role, err := readKeyRole(r.f.v, r.f.v.RootToken, kcRole)
		lastErr = err
		if err == nil {
			last = role
			if role.failure != "" && !slices.Contains(failures, "last_rotation_failure "+role.failure) {
				failures = append(failures, "last_rotation_failure "+role.failure)
			}
			if note := fmt.Sprintf("pending_version %d seen", role.pending); role.pending != 0 && !slices.Contains(failures, note) {
				failures = append(failures, note)
			}
			// The invariants that hold at any time outside a rotation: no orphan.
			if role.pending == 0 {
				if p := kcInvariant(r.f.emu, r.app.ClientID, role); p != "" {
					r.t.Errorf("step %s (seed %d), while converging: %s", step, r.seed, p)
				}
			}
			if done(role) {
				return role, time.Since(start), failures
			}
		}
		if time.Since(start) > kcConverge {
			r.t.Fatalf("step %s (seed %d): the engine did not converge within %v after the kill; last role: %s (read error %v); failures recorded: %v; engine log:\n\t%s",
				step, r.seed, kcConverge, last, lastErr, failures, strings.Join(engineLines(r.f.v.Logs()), "\n\t"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kcInvariant checks what must hold whenever no key is pending, even in the middle of an
// overlap's end: every stored credential is one Vault holds a key for, at most two, and
// the current key stored and attached.
func kcInvariant(emu *emulator.Server, clientID string, role keyRoleView) string {
	stored, attached := auth0Keys(emu, clientID)
	var problems []string
	for _, id := range stored {
		if !slices.Contains(role.known(), id) {
			problems = append(problems, "ORPHAN credential "+id+": neither the current key nor a previous one")
		}
	}
	if len(stored) > emulator.MaxCredentials {
		problems = append(problems, fmt.Sprintf("%d credentials stored", len(stored)))
	}
	if role.keyID != "" && (!slices.Contains(stored, role.keyID) || !slices.Contains(attached, role.keyID)) {
		problems = append(problems, "the current key "+role.keyID+" is not stored and attached")
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("%s (Auth0 stores %v, attaches %v; role: %s)", strings.Join(problems, "; "), stored, attached, role)
}

// cycle makes one rotation, killed at rotStep, and, unless ovStep is "", kills its
// overlap's end at ovStep; it checks the state after each recovery.
func (r *kcRun) cycle(rotStep, ovStep string) {
	t := r.t
	t.Helper()
	v, root := r.f.v, r.f.v.RootToken
	before, err := readKeyRole(v, root, kcRole)
	if err != nil {
		t.Fatal(err)
	}
	if before.pending != 0 || len(before.previousIDs) != 0 {
		t.Fatalf("before the rotation killed at %s: role %s, want no pending key and no overlap", rotStep, before)
	}
	n := before.current + 1
	var prevCreds keyCreds
	if before.current > 0 {
		if prevCreds, err = readKeyCreds(v, root, kcRole); err != nil {
			t.Fatal(err)
		}
	}
	counts := r.led.snapshot()
	rot := r.led.arm(rotStep)
	var ov *kcArmed
	if ovStep != "" {
		ov = r.led.arm(ovStep)
	}

	// The rotation, killed at rotStep.
	began := time.Now()
	resp, err := v.TryDo(root, http.MethodPut, mount+"/rotate/"+kcRole, nil, time.Minute)
	r.waitFired(rot, 30*time.Second)
	var answer string
	switch {
	case err != nil:
		answer = "rotate failed: " + err.Error()
	case resp.Status == http.StatusOK:
		answer = fmt.Sprintf("rotate answered 200 version %v", resp.Data["version"])
		if got, _ := keyInt(resp.Data["version"]); got != n {
			t.Errorf("step %s (seed %d): rotate answered version %d, want %d", rotStep, r.seed, got, n)
		}
	default:
		answer = fmt.Sprintf("rotate answered %d %q", resp.Status, strings.Join(strings.Fields(strings.Join(resp.Errors, " ")), " "))
	}
	if err != nil || resp.Status != http.StatusOK {
		answer += " (the plugin died under it and Vault did not retry it), so the restarted plugin finished the pending key by itself"
	}
	role, _, failures := r.converge(rotStep, func(x keyRoleView) bool { return x.pending == 0 && x.current == n })
	after := r.led.snapshot()
	outcome := fmt.Sprintf("v%d: %s; converged %v after the request began; after the kill Auth0 saw %s",
		n, answer, time.Since(began).Round(time.Millisecond), kcRedone(rotStep, counts, after))
	if len(failures) > 0 {
		outcome += fmt.Sprintf("; on the way the role showed %v", failures)
	}

	// The key creds serves is the role's, logs in, and the previous one still does
	// during the overlap.
	creds, err := readKeyCreds(v, root, kcRole)
	switch {
	case err != nil:
		t.Errorf("step %s (seed %d): creds after recovery: %v", rotStep, r.seed, err)
	case creds.version != n || creds.keyID != role.keyID || creds.kid != role.kid || creds.hasSecret:
		t.Errorf("step %s (seed %d): creds serve version %d key_id %s kid %s (client_secret field: %v), role says version %d key_id %s kid %s",
			rotStep, r.seed, creds.version, creds.keyID, creds.kid, creds.hasSecret, role.current, role.keyID, role.kid)
	default:
		if code, desc := r.logsIn(creds, false); code != http.StatusOK {
			t.Errorf("step %s (seed %d): the key creds serve (version %d) gets status %d: %s", rotStep, r.seed, n, code, desc)
		}
		if before.current > 0 {
			inOverlap := time.Now().Before(role.overlapUntil.Add(-500 * time.Millisecond))
			switch {
			case !inOverlap:
				outcome += "; (overlap over before it could be checked)"
			case creds.prevKeyID != before.keyID || creds.prevPEM != prevCreds.privatePEM:
				t.Errorf("step %s (seed %d): during the overlap creds serve previous_key_id %s, want the replaced key %s", rotStep, r.seed, creds.prevKeyID, before.keyID)
			case !slices.Equal(role.previousIDs, []string{before.keyID}):
				t.Errorf("step %s (seed %d): role's previous_key_ids %v, want [%s]", rotStep, r.seed, role.previousIDs, before.keyID)
			default:
				if code, desc := r.logsIn(creds, true); code != http.StatusOK {
					t.Errorf("step %s (seed %d): during the overlap the previous key gets status %d: %s", rotStep, r.seed, code, desc)
				}
			}
		}
	}
	r.outcomes[rotStep] = append(r.outcomes[rotStep], outcome)
	if before.current == 0 {
		// The cutover: no previous key, so no overlap.
		if len(role.previousIDs) != 0 {
			t.Errorf("after the cutover the role has previous keys %v", role.previousIDs)
		}
		r.checkSettled(rotStep, n, nil)
		return
	}

	// The overlap's end, by the scheduler, killed at ovStep.
	counts = r.led.snapshot()
	if ov != nil {
		r.waitFired(ov, kcOverlap+kcConverge)
	}
	role, took, failures := r.converge(ovStep, func(x keyRoleView) bool {
		return x.pending == 0 && x.current == n && len(x.previousIDs) == 0
	})
	if ovStep == "" {
		return
	}
	outcome = fmt.Sprintf("v%d's overlap end: converged %v after the kill; after it Auth0 saw %s",
		n, took.Round(time.Millisecond), kcRedone(ovStep, counts, r.led.snapshot()))
	if len(failures) > 0 {
		outcome += fmt.Sprintf("; on the way the role showed %v", failures)
	}
	if role.current != n {
		t.Errorf("step %s (seed %d): the overlap's end changed the version to %d", ovStep, r.seed, role.current)
	}
	r.outcomes[ovStep] = append(r.outcomes[ovStep], outcome)
	r.checkSettled(ovStep, n, &prevCreds)
}

// checkSettled checks the state between rotations: Auth0 stores and attaches exactly the
// current key, creds serve it without a previous key, it logs in, and the replaced key
// (replaced, when given) no longer does.
func (r *kcRun) checkSettled(step string, n int, replaced *keyCreds) {
	t := r.t
	t.Helper()
	role, err := readKeyRole(r.f.v, r.f.v.RootToken, kcRole)
	if err != nil {
		t.Fatal(err)
	}
	stored, attached := auth0Keys(r.f.emu, r.app.ClientID)
	if role.current != n || role.pending != 0 || len(role.previousIDs) != 0 ||
		!slices.Equal(stored, []string{role.keyID}) || !slices.Equal(attached, []string{role.keyID}) {
		t.Errorf("step %s (seed %d): settled state: role %s; Auth0 stores %v and attaches %v; want version %d, only its key stored and attached",
			step, r.seed, role, stored, attached, n)
	}
	creds, err := readKeyCreds(r.f.v, r.f.v.RootToken, kcRole)
	if err != nil {
		t.Fatalf("step %s: creds: %v", step, err)
	}
	if creds.version != n || creds.keyID != role.keyID || creds.prevPEM != "" || creds.prevKeyID != "" {
		t.Errorf("step %s (seed %d): settled creds: version %d key_id %s previous_key_id %q (previous_private_key set: %v), want version %d key_id %s and no previous key",
			step, r.seed, creds.version, creds.keyID, creds.prevKeyID, creds.prevPEM != "", n, role.keyID)
	}
	if code, desc := r.logsIn(creds, false); code != http.StatusOK {
		t.Errorf("step %s (seed %d): the current key (version %d) gets status %d: %s", step, r.seed, n, code, desc)
	}
	if replaced != nil {
		if code, _ := r.logsIn(*replaced, false); code != http.StatusUnauthorized {
			t.Errorf("step %s (seed %d): the replaced key (version %d) gets status %d after its overlap ended, want 401", step, r.seed, replaced.version, code)
		}
	}
	if t.Failed() {
		t.Fatalf("step %s failed (seed %d); engine log:\n\t%s", step, r.seed, strings.Join(engineLines(r.f.v.Logs()), "\n\t"))
	}
}

// kcRedone describes the engine's requests between two snapshots of the ledger's counts,
// the killed one included.
func kcRedone(step string, before, after map[kcEvent]int) string {
	names := []struct {
		ev   kcEvent
		name string
	}{{evBeforePost, "POST sent"}, {evAfterPost, "POST applied"}, {evPatchSent, "PATCH sent"}, {evAttach, "attach PATCH applied"},
		{evVerify, "verification login"}, {evDetach, "detach PATCH applied"}, {evDeleteSent, "DELETE sent"}, {evDelete, "DELETE applied"}}
	var parts []string
	for _, x := range names {
		if d := after[x.ev] - before[x.ev]; d > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", d, x.name))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ") + " (the killed one included)"
}
