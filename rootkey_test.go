package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// newRootKeyEnv is an engine whose config switched the Management API application to
// private_key_jwt with the client secret given once, and role "app" of an immediate
// secret.
func newRootKeyEnv(t *testing.T, extra map[string]interface{}) (*testEnv, string) {
	t.Helper()
	e := newTestEnv(t, keyScopes...)
	secret := e.mgmtSecret()
	data := map[string]interface{}{"credential_type": "private_key_jwt", "propagation_wait": 0}
	for k, v := range extra {
		data[k] = v
	}
	if err := e.tryConfigure(data); err != nil {
		t.Fatalf("config with credential_type=private_key_jwt: %v", err)
	}
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
	return e, secret
}

// rootKeyLogsIn reports whether a Management API token is granted for the key stored as
// version n of the mount's key.
func (e *testEnv) rootKeyLogsIn(n int) bool {
	e.t.Helper()
	sec, err := model.LoadSecret(e.t.Context(), e.storage, engine.RootKeyName, nil, n)
	if err != nil || sec == nil {
		e.t.Fatalf("the mount's key version %d: %v", n, err)
	}
	cfg := *e.storedConfig()
	cfg.PrivateKey = sec.PrivateKey
	cfg.RootKey = cfg.RootKey.Clone()
	cfg.RootKey.Versions = []*model.VersionMeta{{Version: n, KeyID: sec.KeyID, KID: sec.KID, Algorithm: sec.Algorithm}}
	return auth0api.VerifyCredentials(e.t.Context(), e.b.SettingsOf(&cfg)) == nil
}

// Switching the mount to private_key_jwt with its client secret: Vault registers and
// attaches its own key, the application leaves its secret (Auth0 refuses it), the config
// holds no secret, and the engine goes on working with the key.
func TestRootKeyFromOneTimeSecret(t *testing.T) {
	e, secret := newRootKeyEnv(t, nil)
	cfg := e.storedConfig()
	if cfg.ClientSecret != "" || cfg.PendingClientSecret != "" || !cfg.HasKey() {
		t.Fatalf("config after the switch: secret kept %v, has key %v", cfg.ClientSecret != "", cfg.HasKey())
	}
	if !e.emu.UsesPrivateKeyJWT(testMgmtID) || e.mgmtAuthenticates(secret) {
		t.Fatal("the Management API application must be on private_key_jwt and its secret refused")
	}
	read := e.ok(logical.ReadOperation, "config", nil)
	if read["credential_type"] != "private_key_jwt" || read["key_id"] != cfg.RootKey.Current().KeyID || read["kid"] == "" {
		t.Fatalf("config read %v", read)
	}
	for k, v := range read {
		if s, ok := v.(string); ok && (strings.Contains(s, "PRIVATE KEY") || s == secret) {
			t.Fatalf("config read shows key material or the secret in %s", k)
		}
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if n := e.emu.Stats().Rotations[testAppID]; n != 2 {
		t.Fatalf("%d rotations of the role's application through the key-authenticated client, want 2", n)
	}
	if strings.Contains(e.logs.String(), "PRIVATE KEY") || strings.Contains(e.logs.String(), secret) {
		t.Fatal("key material or the old secret reached the log")
	}
}

// While the mount's first key waits out propagation_wait after the switch (Auth0 already
// refuses the client secret), the mount keeps working: the engine authenticates with the
// pending key, and goes on with the key once it is committed. (Found by TestSimulation's
// root rotations: every Management API call failed until the key was published.)
func TestRootKeySwitchWorksBeforePublication(t *testing.T) {
	for _, wait := range []string{"30s", "2m"} {
		t.Run(wait, func(t *testing.T) {
			e, secret := newRootKeyEnv(t, map[string]interface{}{"propagation_wait": wait})
			cfg := e.storedConfig()
			if cfg.HasKey() || cfg.RootKey.PendingKey == nil || e.mgmtAuthenticates(secret) {
				t.Fatalf("after the switch: key in use %v, pending %v, secret still accepted %v", cfg.HasKey(), cfg.RootKey.PendingKey != nil, e.mgmtAuthenticates(secret))
			}
			e.ok(logical.UpdateOperation, "roles/other", map[string]interface{}{"client_id": testApp2ID})
			e.ok(logical.UpdateOperation, "rotate/app", nil)
			d, _ := time.ParseDuration(wait)
			e.advance(d)
			if cfg := e.storedConfig(); !cfg.HasKey() || cfg.RootKey.PendingKey != nil {
				t.Fatalf("%s after the switch the key is still pending (%+v)", wait, cfg.RootKey.PendingKey)
			}
			e.ok(logical.UpdateOperation, "rotate/app", nil)
			if n := e.emu.Stats().Rotations[testAppID]; n != 2 {
				t.Fatalf("%d rotations of the role's application, want 2", n)
			}
		})
	}
}

// rotate-root of a mount on private_key_jwt rotates its key with an overlap: both keys
// work until root_overlap_period has passed, then only the new one, and Auth0 keeps only
// it.
func TestRootKeyRotation(t *testing.T) {
	e, _ := newRootKeyEnv(t, map[string]interface{}{"root_overlap_period": "10m"})
	first := e.storedConfig().RootKey.Current()
	resp := e.ok(logical.UpdateOperation, "config/rotate-root", nil)
	cfg := e.storedConfig()
	second := cfg.RootKey.Current()
	if second.Version != 2 || resp["key_id"] != second.KeyID || resp["overlap_until"] == nil {
		t.Fatalf("rotate-root answered %v; key now %+v", resp, second)
	}
	_, attached := e.credentialIDs(testMgmtID)
	if want := []string{first.KeyID, second.KeyID}; !engine.SameSet(attached, want) {
		t.Fatalf("attached %v during the overlap, want %v", attached, want)
	}
	if !e.rootKeyLogsIn(1) || !e.rootKeyLogsIn(2) {
		t.Fatal("both keys must work during the overlap")
	}
	wantContains(t, e.userError(logical.UpdateOperation, "config/rotate-root", nil), "stays attached at Auth0 until")
	e.advance(10 * time.Minute)
	stored, attached := e.credentialIDs(testMgmtID)
	if !slices.Equal(stored, []string{second.KeyID}) || !slices.Equal(attached, stored) {
		t.Fatalf("after the overlap Auth0 stores %v, attaches %v; want only %s", stored, attached, second.KeyID)
	}
	if e.rootKeyLogsIn(1) || !e.rootKeyLogsIn(2) {
		t.Fatal("after the overlap the old key must be refused and the new one work")
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "config/rotate-root", map[string]interface{}{"end_overlap": true})
	e.ok(logical.UpdateOperation, "config/rotate-root", map[string]interface{}{"end_overlap": true})
	if v := e.storedConfig().RootKey.Current().Version; v != 4 {
		t.Fatalf("version %d after two rotate-root end_overlap=true, want 4", v)
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
}

// A mount on a client secret migrates in one write, and its roles go on.
func TestRootKeyMigration(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	secret := e.mgmtSecret()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"credential_type": "private_key_jwt", "propagation_wait": 0})
	if cfg := e.storedConfig(); !cfg.HasKey() || cfg.ClientSecret != "" || e.mgmtAuthenticates(secret) {
		t.Fatal("the migration did not leave the mount on its key alone")
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{"client_secret": "x"}),
		"client_secret applies only with credential_type=client_secret")
}

// The cutover cut short: Auth0 applied the PATCH that attached the first key and switched
// the application off its secret, and its answer was lost. The write fails; Auth0 now
// refuses the stored secret, and the next root job finishes with the pending key.
func TestRootKeyCutoverAnswerLost(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configureWithRole(nil)
	var dropped atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if id == testMgmtID && p == emulator.AfterApply && r.Method == http.MethodPatch && dropped.CompareAndSwap(false, true) {
			return &emulator.Fault{Drop: true}
		}
		return nil
	})
	e.try(logical.UpdateOperation, "config", map[string]interface{}{"credential_type": "private_key_jwt", "propagation_wait": 0}) //nolint:errcheck // it fails: the answer is lost
	if !dropped.Load() {
		t.Fatal("the fault never fired")
	}
	if !e.emu.UsesPrivateKeyJWT(testMgmtID) || e.storedConfig().HasKey() {
		t.Fatal("want Auth0 switched and the config not yet committed")
	}
	for i := 0; i < 10 && !e.storedConfig().HasKey(); i++ {
		e.advance(time.Minute)
	}
	cfg := e.storedConfig()
	if !cfg.HasKey() || cfg.RootKey.PendingKey != nil {
		t.Fatalf("the root job did not finish the cutover: %+v", cfg.RootKey)
	}
	stored, _ := e.credentialIDs(testMgmtID)
	if len(stored) != 1 || stored[0] != cfg.RootKey.Current().KeyID {
		t.Fatalf("Auth0 stores %v", stored)
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil)
}

// A key the operator registered and attached already: the mount takes it with its
// credential id, and never held a secret.
func TestRootKeyFromOperatorKey(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	privatePEM, publicPEM, err := auth0api.GenerateRSAKey(2048)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.emu.AddCredential(testMgmtID, emulator.CredentialSpec{Name: "operator", PEM: publicPEM})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.emu.AttachCredentials(testMgmtID, info.ID); err != nil {
		t.Fatal(err)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"domain": e.emuURL, "client_id": testMgmtID, "rate_limit": testRateLimit,
		"credential_type": "private_key_jwt", "private_key": privatePEM, "key_id": info.ID})
	cfg := e.storedConfig()
	if !cfg.HasKey() || cfg.RootKey.Current().KeyID != info.ID || cfg.RootKey.Current().KID != info.KeyID || cfg.ClientSecret != "" {
		t.Fatalf("config %+v", cfg.RootKey.Current())
	}
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{"private_key": privatePEM}), "private_key needs key_id")
	wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{"private_key": privatePEM, "key_id": "cred_nope"}), "has no credential cred_nope")
}

// Faults at every step of the mount's key rotations (an answer lost after Auth0 applied
// the change, a 5xx, a refusal, a storage write that fails, a restart) never leave Auth0
// holding a credential of the Management API application that the mount holds no key for,
// never more than two, and always a key in use that obtains a Management API token, with
// the roles rotating through it, once the engine has caught up. Seeded: -keys.seed
// repeats a run.
func TestRootKeyFaultsSearch(t *testing.T) {
	seed := rand.Uint64()
	if s := *keySeed; s != 0 {
		seed = s
	}
	t.Logf("seed %d (go test -run %s -keys.seed=%d repeats it)", seed, t.Name(), seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	e, _ := newRootKeyEnv(t, map[string]interface{}{"root_overlap_period": "10m", "root_rotation_period": "1h"})

	fired := 0
	for round := 0; round < 30; round++ {
		step := keyFaultSteps[rng.IntN(len(keyFaultSteps))]
		phase := emulator.Phase(rng.IntN(2))
		kind := rng.IntN(3)
		var hit atomic.Bool
		e.emu.SetFaults(faultOnce(testMgmtID, step, phase, kind, &hit))
		if rng.IntN(4) == 0 {
			e.storage.failPutsUnder([]string{model.SecretStoragePrefix, model.ConfigStoragePath}[rng.IntN(2)], 1)
		}
		e.advance(time.Duration(1+rng.IntN(70)) * time.Minute)
		if hit.Load() {
			fired++
		}
		e.emu.SetFaults(nil)
		if rng.IntN(5) == 0 {
			e.b.Cleanup(t.Context())
			e.b = restartBackend(t, e, logical.TestSystemView())
		}
		for i := 0; i < 20 && e.storedConfig().RootFailures.LastFailure != nil; i++ {
			e.advance(time.Hour)
		}
		cfg := e.storedConfig()
		r := cfg.RootKey
		if cfg.RootFailures.LastFailure != nil || r.PendingKey != nil || !cfg.HasKey() {
			t.Fatalf("round %d (%s %s, kind %d): the engine did not recover: failure %+v, pending %+v", round, step.name, phase, kind, cfg.RootFailures.LastFailure, r.PendingKey)
		}
		held := map[string]bool{r.Current().KeyID: true}
		if ov := r.Overlap; ov != nil {
			for _, id := range ov.CredentialIDs {
				held[id] = true
			}
		}
		stored, attached := e.credentialIDs(testMgmtID)
		if len(stored) > 2 {
			t.Fatalf("round %d: %d credentials at Auth0", round, len(stored))
		}
		for _, id := range stored {
			if !held[id] {
				t.Fatalf("round %d (%s %s, kind %d): Auth0 holds credential %s of the Management API application, neither in use nor in the overlap (%v)", round, step.name, phase, kind, id, held)
			}
		}
		if !slices.Contains(attached, r.Current().KeyID) || !e.rootKeyLogsIn(r.Current().Version) {
			t.Fatalf("round %d (%s %s, kind %d): the key in use (%s) is not attached or obtains no token", round, step.name, phase, kind, r.Current().KeyID)
		}
		e.ok(logical.UpdateOperation, "rotate/app", nil)
		if cfg.ClientSecret != "" || cfg.PendingClientSecret != "" {
			t.Fatalf("round %d: the config holds a secret", round)
		}
	}
	if fired < 5 {
		t.Fatalf("only %d of 30 rounds hit a fault: the search tests nothing", fired)
	}
	t.Logf("%d rounds hit a fault; version %d; %d credentials created, %d deleted", fired, e.storedConfig().RootKey.Current().Version,
		e.emu.Stats().CredentialsCreated[testMgmtID], e.emu.Stats().CredentialsDeleted[testMgmtID])
}
