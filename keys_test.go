package auth0

import (
	"flag"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

var keySeed = flag.Uint64("keys.seed", 0, "seed of TestKeyRotationFaultsSearch; 0 draws one and prints it")

// keyScopes are what a private_key_jwt role needs of the Management API application.
var keyScopes = append(slices.Clone(allScopes), "update:clients",
	"create:client_credentials", "read:client_credentials", "update:client_credentials", "delete:client_credentials")

// newKeyEnv is a configured engine with role "app" rotating private_key_jwt keys of
// testAppID, an application that starts on a client secret.
func newKeyEnv(t *testing.T, extra map[string]interface{}) *testEnv {
	t.Helper()
	e := newTestEnv(t, keyScopes...)
	e.configure()
	// Most tests publish a key as soon as it is attached; TestKeyPublishedAfterPropagation
	// covers the wait.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": 0})
	data := map[string]interface{}{"client_id": testAppID, "credential_type": "private_key_jwt", "allow_auth_method_change": true}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "roles/app", data)
	return e
}

// keyLogsIn reports whether Auth0 (the emulator) accepts a client assertion signed with
// privatePEM, made the way an application makes it: with the emulator's own signer, not
// the engine's.
func (e *testEnv) keyLogsIn(clientID, privatePEM, kid, alg string) bool {
	e.t.Helper()
	key, err := auth0api.ParsePrivateKey(privatePEM)
	if err != nil {
		e.t.Fatal(err)
	}
	host := strings.TrimPrefix(e.emuURL, "http://")
	assertion, err := emulator.SignAssertion(key, alg, kid, clientID, "https://"+host+"/", e.clock.Now(), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"client_assertion_type": {auth0api.ClientAssertionType},
		"client_assertion":      {assertion},
		"audience":              {testAPI},
	}
	resp, err := http.PostForm(e.emuURL+"/oauth/token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	e.t.Fatalf("an assertion login answered %d", resp.StatusCode)
	return false
}

func (e *testEnv) roleStored(name string) bool {
	e.t.Helper()
	role, err := model.LoadRole(e.t.Context(), e.storage, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return role != nil
}

// servedKey is one key as creds serves it.
type servedKey struct{ privatePEM, keyID, kid, alg string }

func (e *testEnv) servedKeys() (current servedKey, previous *servedKey, data map[string]interface{}) {
	e.t.Helper()
	data = e.ok(logical.ReadOperation, "creds/app", nil)
	if _, ok := data["client_secret"]; ok {
		e.t.Fatal("creds of a private_key_jwt role serve a client_secret")
	}
	current = servedKey{data["private_key"].(string), data["key_id"].(string), data["kid"].(string), data["algorithm"].(string)}
	if p, _ := data["previous_private_key"].(string); p != "" {
		previous = &servedKey{p, data["previous_key_id"].(string), data["previous_kid"].(string), current.alg}
	}
	return current, previous, data
}

func (e *testEnv) credentialIDs(clientID string) (stored, attached []string) {
	e.t.Helper()
	creds, attached, ok := e.emu.Credentials(clientID)
	if !ok {
		e.t.Fatalf("client %s missing from emulator", clientID)
	}
	for _, c := range creds {
		stored = append(stored, c.ID)
	}
	slices.Sort(stored)
	attached = slices.Clone(attached)
	slices.Sort(attached)
	return stored, attached
}

// A private_key_jwt role switches a secret application over with its first key, then
// rotates on schedule with a real overlap: each new key is attached next to the current
// one, both log in until overlap_period has passed, and then only the new one does.
// Auth0 never holds more than two credentials, and never one Vault holds no key for.
func TestKeyRotationOverlaps(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"rotation_period": "1h", "overlap_period": "10m"})
	oldSecret := e.appSecret(testAppID)
	if !e.authenticates(testAppID, oldSecret) {
		t.Fatal("the application's secret does not work before the first key")
	}
	resp := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if resp["version"] != 1 || resp["key_id"] == "" {
		t.Fatalf("first rotation answered %v", resp)
	}
	for k, v := range resp {
		if s, ok := v.(string); ok && strings.Contains(s, "PRIVATE KEY") {
			t.Fatalf("rotate answered key material in %s", k)
		}
	}
	if !e.emu.UsesPrivateKeyJWT(testAppID) || e.authenticates(testAppID, oldSecret) {
		t.Fatal("after the first key the application must be on private_key_jwt and its secret refused")
	}
	cur, prev, _ := e.servedKeys()
	if prev != nil || !e.keyLogsIn(testAppID, cur.privatePEM, cur.kid, cur.alg) {
		t.Fatalf("first key: previous %v, logs in %v", prev, prev == nil)
	}

	for round := 2; round <= 5; round++ {
		old := cur
		e.advance(time.Hour)
		cur, prev, _ = e.servedKeys()
		if got := e.storedRole("app").CurrentVersion(); got != round {
			t.Fatalf("round %d: version %d after the scheduled rotation", round, got)
		}
		if prev == nil || prev.keyID != old.keyID {
			t.Fatalf("round %d: creds serve previous %v, want the old key %s during the overlap", round, prev, old.keyID)
		}
		stored, attached := e.credentialIDs(testAppID)
		want := []string{old.keyID, cur.keyID}
		slices.Sort(want)
		if !slices.Equal(stored, want) || !slices.Equal(attached, want) {
			t.Fatalf("round %d during the overlap: stored %v, attached %v; want both %v", round, stored, attached, want)
		}
		if !e.keyLogsIn(testAppID, cur.privatePEM, cur.kid, cur.alg) || !e.keyLogsIn(testAppID, old.privatePEM, old.kid, old.alg) {
			t.Fatalf("round %d: both keys must log in during the overlap", round)
		}
		e.advance(9 * time.Minute)
		if !e.keyLogsIn(testAppID, old.privatePEM, old.kid, old.alg) {
			t.Fatalf("round %d: the old key stopped before overlap_period", round)
		}
		e.advance(time.Minute)
		stored, attached = e.credentialIDs(testAppID)
		if !slices.Equal(stored, []string{cur.keyID}) || !slices.Equal(attached, []string{cur.keyID}) {
			t.Fatalf("round %d after the overlap: stored %v, attached %v; want only %s", round, stored, attached, cur.keyID)
		}
		if e.keyLogsIn(testAppID, old.privatePEM, old.kid, old.alg) || !e.keyLogsIn(testAppID, cur.privatePEM, cur.kid, cur.alg) {
			t.Fatalf("round %d after the overlap: the old key must fail and the new one work", round)
		}
		if _, p, _ := e.servedKeys(); p != nil {
			t.Fatalf("round %d: creds still serve the detached key", round)
		}
		e.advance(50*time.Minute - time.Second)
	}
	if strings.Contains(e.logs.String(), "PRIVATE KEY") {
		t.Fatal("a private key reached the log")
	}
}

// ttl of a private_key_jwt role's creds points at the next key, and is at most max_ttl:
// by default a quarter of overlap_period, so that a manual rotation reaches consumers
// well before the previous key is detached.
func TestKeyCredsTTL(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"rotation_period": "1h", "overlap_period": "10m"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if _, _, data := e.servedKeys(); data["ttl"] != int64(150) {
		t.Fatalf("ttl %v, want 150 (max_ttl: a quarter of overlap_period)", data["ttl"])
	}
	e.clock.Advance(59 * time.Minute)
	if _, _, data := e.servedKeys(); data["ttl"] != int64(60) {
		t.Fatalf("a minute before the next rotation: ttl %v, want 60", data["ttl"])
	}
}

// Binding an application that still authenticates with a secret needs consent; without
// it the write is refused, nothing is stored, and nothing changes at Auth0.
func TestKeyRoleNeedsConsentToSwitch(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configure()
	msg := e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "credential_type": "private_key_jwt"})
	wantContains(t, msg, "allow_auth_method_change=true", "client secret")
	if e.roleStored("app") || e.emu.UsesPrivateKeyJWT(testAppID) {
		t.Fatal("a refused role write stored the role or changed the application")
	}
	// Consent given later, then withdrawn before the first rotation: refused at rotation.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "credential_type": "private_key_jwt", "allow_auth_method_change": true})
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"allow_auth_method_change": false})
	msg = e.userError(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, msg, "allow_auth_method_change=true")
	if e.emu.UsesPrivateKeyJWT(testAppID) || !e.authenticates(testAppID, e.appSecret(testAppID)) {
		t.Fatal("a refused rotation switched the application")
	}
	if stored, _ := e.credentialIDs(testAppID); len(stored) != 0 {
		t.Fatalf("a refused rotation registered credentials %v", stored)
	}
}

// While the previous key is attached, a manual rotation is refused with what to do;
// end_overlap=true detaches it first.
func TestKeyRotationDuringOverlap(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"overlap_period": "1h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	msg := e.userError(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, msg, "overlap_period", "end_overlap=true")
	first := e.storedRole("app").Version(1).KeyID
	resp := e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{"end_overlap": true})
	if resp["version"] != 3 {
		t.Fatalf("rotate with end_overlap answered %v", resp)
	}
	stored, _ := e.credentialIDs(testAppID)
	if slices.Contains(stored, first) || len(stored) != 2 {
		t.Fatalf("stored %v: the first key must be gone, versions 2 and 3 attached", stored)
	}
}

// Role fields are validated before anything is stored.
func TestKeyRoleFields(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configure()
	base := map[string]interface{}{"client_id": testAppID, "credential_type": "private_key_jwt", "allow_auth_method_change": true}
	with := func(k string, v interface{}) map[string]interface{} {
		d := map[string]interface{}{}
		for key, val := range base {
			d[key] = val
		}
		d[k] = v
		return d
	}
	for _, c := range []struct {
		data map[string]interface{}
		want string
	}{
		{with("key_bits", 1024), "key_bits must be 2048, 3072 or 4096"},
		{with("algorithm", "HS256"), "algorithm must be RS256, RS384 or PS256"},
		{with("credential_type", "password"), "credential_type must be"},
		{with("rotation_strategy", "staged"), "do not apply"},
		{with("import_current_secret", true), "do not apply"},
		{map[string]interface{}{"client_id": testAppID, "overlap_period": "1h"}, "only with credential_type=private_key_jwt"},
		{map[string]interface{}{"client_id": testAppID, "credential_type": "private_key_jwt", "allow_auth_method_change": true, "rotation_period": "1h"}, "overlap_period (24h0m0s) must be shorter than rotation_period"},
	} {
		msg := e.userError(logical.UpdateOperation, "roles/app", c.data)
		wantContains(t, msg, c.want)
		if e.roleStored("app") {
			t.Fatalf("%v: a refused write stored the role", c.data)
		}
	}
	e.ok(logical.UpdateOperation, "roles/app", base)
	data := e.ok(logical.ReadOperation, "roles/app", nil)
	if data["credential_type"] != "private_key_jwt" || data["key_bits"] != 2048 || data["algorithm"] != "RS256" || data["overlap_period"] != int64(86400) {
		t.Fatalf("role read %v", data)
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	msg := e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"credential_type": "client_secret"})
	wantContains(t, msg, "cannot change once the role has a version")
}

// keyFaultSteps are the Management API requests of a key rotation, where faults land.
// keyFaultStep is a request of a credential rotation that a fault can hit.
type keyFaultStep struct {
	name   string
	method string
	suffix string // of the path
}

var keyFaultSteps = []keyFaultStep{
	{"list credentials", http.MethodGet, "/credentials"},
	{"create credential", http.MethodPost, "/credentials"},
	{"read auth methods", http.MethodGet, ""},
	{"attach", http.MethodPatch, ""},
	{"delete credential", http.MethodDelete, ""},
}

// faultOnce is a fault hook that fails clientID's first request of step in phase, in the
// way kind says (0: the connection dropped, 1: a 503, 2: a 400), and records in fired
// that it did.
func faultOnce(clientID string, step keyFaultStep, phase emulator.Phase, kind int, fired *atomic.Bool) emulator.FaultFunc {
	return func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if fired.Load() || p != phase || id != clientID || r.Method != step.method || !strings.HasSuffix(r.URL.Path, step.suffix) || step.suffix == "" && strings.HasSuffix(r.URL.Path, "/credentials") {
			return nil
		}
		if step.method == http.MethodDelete && !strings.Contains(r.URL.Path, "/credentials/") {
			return nil
		}
		if !fired.CompareAndSwap(false, true) {
			return nil
		}
		switch kind {
		case 0:
			return &emulator.Fault{Drop: true}
		case 1:
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return &emulator.Fault{Status: http.StatusBadRequest, Message: "Bad Request"}
	}
}

// Faults at every step of key rotations (an answer lost after Auth0 applied the change, a
// refusal, a 5xx, a storage write that fails, a restart) never leave Auth0 holding a
// credential Vault does not hold the key of, never more than two, and always a current key
// that logs in once the engine has caught up. The faults are drawn from a seed (printed;
// -keys.seed repeats it).
func TestKeyRotationFaultsSearch(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"rotation_period": "1h", "overlap_period": "10m"})
	attachedFaultsSearch(t, e, func() (string, bool) {
		cur, _, _ := e.servedKeys()
		return cur.keyID, e.keyLogsIn(testAppID, cur.privatePEM, cur.kid, cur.alg)
	})
}

// attachedFaultsSearch is the search of TestKeyRotationFaultsSearch for role "app" of e,
// of any kind that attaches credentials; servedLogsIn reads creds and answers the Auth0
// credential id served and whether the application logs in with what is served.
func attachedFaultsSearch(t *testing.T, e *testEnv, servedLogsIn func() (string, bool)) {
	seed := rand.Uint64()
	if s := *keySeed; s != 0 {
		seed = s
	}
	t.Logf("seed %d (go test -run %s -keys.seed=%d repeats it)", seed, t.Name(), seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	e.ok(logical.UpdateOperation, "rotate/app", nil)

	// At least 30 rounds, and on until 5 of them hit a fault (a round's fault fires only
	// if its step comes within the round's advance): a seed with few hits runs longer
	// rather than failing the search.
	firedTotal := 0
	round := 0
	for ; round < 30 || firedTotal < 5 && round < 200; round++ {
		step := keyFaultSteps[rng.IntN(len(keyFaultSteps))]
		phase := emulator.Phase(rng.IntN(2))
		kind := rng.IntN(3)
		var fired atomic.Bool
		e.emu.SetFaults(faultOnce(testAppID, step, phase, kind, &fired))
		if rng.IntN(4) == 0 {
			e.storage.failPutsUnder([]string{model.SecretStoragePrefix, model.CredsStoragePrefix, model.RoleStoragePrefix}[rng.IntN(3)], 1)
		}
		e.advance(time.Duration(1+rng.IntN(70)) * time.Minute)
		if fired.Load() {
			firedTotal++
		}
		e.emu.SetFaults(nil)
		if rng.IntN(5) == 0 {
			e.b.Cleanup(t.Context())
			e.b = restartBackend(t, e, logical.TestSystemView())
		}
		// Let the engine catch up: retries come within the backoff cap.
		for i := 0; i < 20 && e.storedRole("app").LastFailure != nil; i++ {
			e.advance(time.Hour)
		}
		role := e.storedRole("app")
		if role.LastFailure != nil || role.PendingKey != nil {
			t.Fatalf("round %d (%s %s, kind %d): the engine did not recover: failure %+v, pending %+v", round, step.name, phase, kind, role.LastFailure, role.PendingKey)
		}
		stored, attached := e.credentialIDs(testAppID)
		held := map[string]bool{role.Current().KeyID: true}
		if ov := role.Overlap; ov != nil {
			for _, id := range ov.CredentialIDs {
				held[id] = true
			}
		}
		if len(stored) > 2 {
			t.Fatalf("round %d: %d credentials at Auth0", round, len(stored))
		}
		for _, id := range stored {
			if !held[id] {
				t.Fatalf("round %d (%s %s, kind %d): Auth0 holds credential %s that is neither current nor in overlap (%v)", round, step.name, phase, kind, id, held)
			}
		}
		if !slices.Contains(attached, role.Current().KeyID) {
			t.Fatalf("round %d: the current key %s is not attached (%v)", round, role.Current().KeyID, attached)
		}
		if id, ok := servedLogsIn(); id != role.Current().KeyID || !ok {
			t.Fatalf("round %d (%s %s, kind %d): the served credential %s (current %s) does not log in", round, step.name, phase, kind, id, role.Current().KeyID)
		}
	}
	if firedTotal < 5 {
		t.Fatalf("only %d of %d rounds hit a fault: the search tests nothing", firedTotal, round)
	}
	t.Logf("%d rounds hit a fault; %d credentials created, %d deleted", firedTotal, e.emu.Stats().CredentialsCreated[testAppID], e.emu.Stats().CredentialsDeleted[testAppID])
}

// When Auth0's answer to a credential's creation is lost after it applied, the rotation
// does not register a second credential: it finds the first by its name and finishes
// with it.
func TestKeyCreationAnswerLost(t *testing.T) {
	e := newKeyEnv(t, nil)
	var dropped atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.AfterApply && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/credentials") && dropped.CompareAndSwap(false, true) {
			return &emulator.Fault{Drop: true}
		}
		return nil
	})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if !dropped.Load() {
		t.Fatal("the fault never fired")
	}
	role := e.storedRole("app")
	stored, attached := e.credentialIDs(testAppID)
	if role.CurrentVersion() != 1 || len(stored) != 1 || !slices.Equal(attached, stored) || stored[0] != role.Current().KeyID {
		t.Fatalf("version %d, stored %v, attached %v", role.CurrentVersion(), stored, attached)
	}
	if n := e.emu.Stats().CredentialsCreated[testAppID]; n != 1 {
		t.Fatalf("%d credentials created; the lost one must be adopted", n)
	}
	wantContains(t, e.logs.String(), "looking for it by name")
}

// A role without a schedule rotates only when asked: the end of an overlap detaches the
// previous key and starts nothing.
func TestKeyUnscheduledRoleRotatesOnlyWhenAsked(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"overlap_period": "10m"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	for i := 0; i < 48; i++ {
		e.advance(time.Hour)
	}
	role := e.storedRole("app")
	if role.CurrentVersion() != 2 || role.Overlap != nil || role.PendingKey != nil {
		t.Fatalf("after 48h: version %d, overlap %+v, pending %+v; want version 2 and nothing under way", role.CurrentVersion(), role.Overlap, role.PendingKey)
	}
	if n := e.emu.Stats().CredentialsCreated[testAppID]; n != 2 {
		t.Fatalf("%d credentials created; an unscheduled role must make only the 2 asked for", n)
	}
}

// Auth0 may take a while to apply a change of the attached keys everywhere (the emulator:
// each login sees the old or the new set at random for 30 s). A new key is served only
// propagation_wait after it was attached, so an application that only ever signs with the
// key creds serve never fails; with propagation_wait=0 the same application fails.
func TestKeyPublishedAfterPropagation(t *testing.T) {
	run := func(t *testing.T, wait string) (logins, failures int) {
		e := newKeyEnv(t, map[string]interface{}{"rotation_period": "10m", "overlap_period": "2m"})
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": wait})
		e.ok(logical.UpdateOperation, "rotate/app", map[string]interface{}{})
		e.advance(30 * time.Second) // the first key: the cut-over
		e.emu.SetPropagationDelay(30 * time.Second)
		e.advance(time.Minute)
		start := e.clock.Now()
		for e.clock.Now().Sub(start) < 35*time.Minute {
			e.advance(2 * time.Second)
			cur, _, _ := e.servedKeys()
			logins++
			if !e.keyLogsIn(testAppID, cur.privatePEM, cur.kid, cur.alg) {
				failures++
			}
		}
		if v := e.storedRole("app").CurrentVersion(); v < 4 {
			t.Fatalf("version %d after 35m of 10m rotations", v)
		}
		return logins, failures
	}
	logins, failures := run(t, "30s")
	if failures != 0 {
		t.Fatalf("%d of %d logins with the served key failed with propagation_wait=30s", failures, logins)
	}
	t.Logf("propagation_wait=30s: 0 of %d logins with the served key failed over 3 rotations", logins)
	logins, failures = run(t, "0s")
	if failures == 0 {
		t.Fatalf("0 of %d logins failed with propagation_wait=0: the test does not see propagation", logins)
	}
	t.Logf("propagation_wait=0: %d of %d logins failed", failures, logins)
}

// An end of overlap cut short at Auth0 (the detach fails) leaves creds no longer serving
// the previous key, which may already be detached; the next attempt finishes the detach.
func TestKeyEndOfOverlapCutShort(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"overlap_period": "10m"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if _, prev, _ := e.servedKeys(); prev == nil {
		t.Fatal("no previous key during the overlap")
	}
	var failed atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.AfterApply && r.Method == http.MethodPatch && failed.CompareAndSwap(false, true) {
			return &emulator.Fault{Drop: true} // detached, answer lost
		}
		return nil
	})
	e.clock.Advance(10 * time.Minute)
	e.runDue()
	if !failed.Load() {
		t.Fatal("the fault never fired")
	}
	if _, prev, _ := e.servedKeys(); prev != nil {
		t.Fatalf("creds serve previous key %s while its detach was cut short", prev.keyID)
	}
	e.emu.SetFaults(nil)
	e.advance(time.Hour)
	role := e.storedRole("app")
	stored, attached := e.credentialIDs(testAppID)
	if role.Overlap != nil || len(stored) != 1 || len(attached) != 1 || stored[0] != role.Current().KeyID {
		t.Fatalf("after the retry: overlap %+v, stored %v, attached %v", role.Overlap, stored, attached)
	}
}

// While a key waits for propagation_wait, creds say when it is served: the first key in
// the error of a role with nothing to serve yet, a later one in ttl (which sat at 1 second
// before: the rotation it counted to had started).
func TestKeyCredsDuringPropagation(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"rotation_period": "1h", "overlap_period": "20m"})
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": "30s"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", nil), "its first key is attached at Auth0 and is served from", "(in 30s)")
	e.advance(30 * time.Second)
	first, _, _ := e.servedKeys()

	e.advance(time.Hour) // the next rotation starts, an hour after the first key was served; its key waits
	cur, _, data := e.servedKeys()
	if cur.keyID != first.keyID || data["ttl"] != int64(30) {
		t.Fatalf("during propagation_wait: serving %s (first %s), ttl %v; want the first key and ttl 30 (its publication)", cur.keyID, first.keyID, data["ttl"])
	}
	e.advance(30 * time.Second)
	if cur, prev, data := e.servedKeys(); cur.keyID == first.keyID || prev == nil || prev.keyID != first.keyID {
		t.Fatalf("after propagation_wait: serving %s (first %s), previous %v; ttl %v", cur.keyID, first.keyID, prev, data["ttl"])
	}
}
