package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

func TestGenerateClientSecret(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s, err := engine.GenerateClientSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != engine.RootSecretLength || strings.Trim(s, engine.RootSecretAlphabet) != "" {
			t.Fatalf("secret %q: wrong length or alphabet", s)
		}
		if seen[s] {
			t.Fatal("a secret repeated")
		}
		seen[s] = true
	}
}

// storedConfig reads the config as stored.
func (e *testEnv) storedConfig() *model.ConfigEntry {
	e.t.Helper()
	cfg, err := model.LoadConfig(e.t.Context(), e.storage)
	if err != nil || cfg == nil {
		e.t.Fatalf("config: %v, %v", cfg, err)
	}
	return cfg
}

// mgmtAuthenticates reports whether secret obtains a Management API token.
func (e *testEnv) mgmtAuthenticates(secret string) bool {
	e.t.Helper()
	return auth0api.VerifyCredentials(e.t.Context(), e.b.SettingsOf(e.storedConfig().WithSecret(secret))) == nil
}

func TestRotateRoot(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	old := e.mgmtSecret()

	got := e.ok(logical.UpdateOperation, "config/rotate-root", nil)
	if len(got) != 1 || got["last_root_rotation"] == nil {
		t.Fatalf("rotate-root answered %v; want only last_root_rotation", got)
	}
	if n := e.emu.Stats().SecretPatches[testMgmtID]; n != 1 {
		t.Fatalf("Auth0 saw %d secret changes, want 1", n)
	}
	cfg := e.storedConfig()
	if cfg.ClientSecret != e.mgmtSecret() || cfg.ClientSecret == old || cfg.PendingClientSecret != "" {
		t.Fatal("the stored root secret is not the one Auth0 holds, or a pending one remains")
	}
	if e.mgmtAuthenticates(old) || !e.mgmtAuthenticates(cfg.ClientSecret) {
		t.Fatal("the old root secret still works, or the new one does not")
	}
	// The mount switched to the new secret at once: roles still rotate.
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	read := e.ok(logical.ReadOperation, "config", nil)
	if read["last_root_rotation"] != got["last_root_rotation"] {
		t.Fatalf("config read last_root_rotation = %v", read["last_root_rotation"])
	}
	if strings.Contains(e.logs.String(), cfg.ClientSecret) || strings.Contains(e.logs.String(), old) {
		t.Fatal("a root secret appears in the logs")
	}
}

func TestRotateRootFailures(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		e := newTestEnv(t)
		wantContains(t, e.userError(logical.UpdateOperation, "config/rotate-root", nil), "not configured yet")
	})
	t.Run("missing scope", func(t *testing.T) {
		e := newTestEnv(t, "read:clients")
		e.configure()
		old := e.mgmtSecret()
		msg := e.userError(logical.UpdateOperation, "config/rotate-root", nil)
		wantContains(t, msg, "Insufficient scope", "update:client_keys")
		if cfg := e.storedConfig(); cfg.ClientSecret != old || cfg.PendingClientSecret != "" {
			t.Fatal("a refused root rotation changed the stored config")
		}
		if !e.mgmtAuthenticates(old) {
			t.Fatal("the old secret stopped working")
		}
	})
	t.Run("answer lost after Auth0 applied it", func(t *testing.T) {
		e := newTestEnv(t)
		e.configureWithRole(nil)
		e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
			if p == emulator.AfterApply && r.Method == http.MethodPatch {
				return &emulator.Fault{Drop: true}
			}
			return nil
		})
		e.ok(logical.UpdateOperation, "config/rotate-root", nil)
		e.emu.SetFaults(nil)
		cfg := e.storedConfig()
		if cfg.ClientSecret != e.mgmtSecret() || cfg.PendingClientSecret != "" {
			t.Fatal("after a lost answer the stored root secret is not Auth0's")
		}
		e.ok(logical.UpdateOperation, "rotate/app", nil)
	})
}

// A crash between any two steps leaves a config from which the next start finishes the
// rotation, with a working engine and the old secret dead.
func TestRotateRootCrashAtEachStep(t *testing.T) {
	for _, step := range []string{engine.RootStepPendingStored, engine.RootStepPatched, engine.RootStepVerified} {
		t.Run(step, func(t *testing.T) {
			e := newTestEnv(t)
			e.configureWithRole(nil)
			old := e.mgmtSecret()
			died := make(chan struct{})
			e.b.RootStepHook = func(s string) {
				if s == step {
					close(died)
					select {} // the process is gone: nothing after this point runs
				}
			}
			go e.request(logical.UpdateOperation, "config/rotate-root", nil) //nolint:errcheck
			<-died
			if e.storedConfig().PendingClientSecret == "" {
				t.Fatal("no pending secret stored before Auth0 was told")
			}

			b2 := restartBackend(t, e, logical.TestSystemView())
			<-b2.Sched.Load().Loaded
			cfg := e.storedConfig()
			if cfg.PendingClientSecret != "" || cfg.ClientSecret == old {
				t.Fatalf("after restart: pending left = %v, still the old secret = %v", cfg.PendingClientSecret != "", cfg.ClientSecret == old)
			}
			if cfg.ClientSecret != e.mgmtSecret() || e.mgmtAuthenticates(old) {
				t.Fatal("the stored root secret is not the one Auth0 accepts, or the old one still works")
			}
			wantContains(t, e.logs.String(), "finished an interrupted root rotation")
			// The restarted engine works with the new secret.
			resp, err := b2.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "rotate/app", Storage: e.storage})
			if err != nil || resp.IsError() {
				t.Fatalf("rotate after recovery: %v, %v", resp, err)
			}
		})
	}
}

// Auth0 refuses the pending secret when it is set again: the rotation is rolled back and
// the old secret keeps working.
func TestResolvePendingRootRollsBack(t *testing.T) {
	e := newTestEnv(t, "read:clients", "read:client_keys") // no update:client_keys
	e.configure()
	cfg := e.storedConfig()
	cfg.PendingClientSecret = "never-set-at-auth0"
	if err := model.StoreConfig(t.Context(), e.storage, cfg); err != nil {
		t.Fatal(err)
	}
	_, resp, err := e.b.RunRootJob(t.Context(), e.storage, engine.TriggerReconcile)
	if err != nil || resp == nil || !resp.IsError() {
		t.Fatalf("a rolled-back root rotation answered %v, %v; want an error response", resp, err)
	}
	wantContains(t, resp.Error().Error(), "rolled back", "current one stays in use")
	got := e.storedConfig()
	if got.PendingClientSecret != "" || got.ClientSecret != e.mgmtSecret() {
		t.Fatal("the rotation was not rolled back to the working secret")
	}
	if got.RootFailures.LastFailure == nil || got.RootFailures.NextAttempt.IsZero() {
		t.Fatalf("the rollback was not recorded as a failure with a next attempt: %+v", got.RootFailures)
	}
	wantContains(t, e.logs.String(), "rolled back a root rotation")
}

func TestScheduledRootRotation(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	old := e.mgmtSecret()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": "5s"})
	read := e.ok(logical.ReadOperation, "config", nil)
	if read["root_rotation_period"] != int64(5) || read["next_root_rotation"] == nil {
		t.Fatalf("config = %v", read)
	}
	if n := e.advance(4 * time.Second); n != 0 || e.emu.Stats().SecretPatches[testMgmtID] != 0 {
		t.Fatal("the root rotated before its period")
	}
	if n := e.advance(time.Second); n != 1 || e.emu.Stats().SecretPatches[testMgmtID] != 1 {
		t.Fatalf("%d jobs ran, %d root secret changes at Auth0; want the scheduled root rotation", n, e.emu.Stats().SecretPatches[testMgmtID])
	}
	if e.storedConfig().ClientSecret != e.mgmtSecret() {
		t.Fatal("the new root secret is not current")
	}
	if e.mgmtAuthenticates(old) {
		t.Fatal("the old root secret still works")
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": 0})
	if _, queued := e.b.Sched.Load().Queue.Due(engine.RootQueueKey); queued {
		t.Fatal("root rotation still queued after it was turned off")
	}
}

// Auth0 may take up to 30 s to accept a new secret everywhere; during that window each
// token request sees the old or the new secret at random. Root rotation proves the new
// secret before making it current, and the mount keeps working right after it.
func TestRotateRootDuringPropagation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.emu.SetPropagationDelay(30 * time.Second)
	old := e.mgmtSecret()
	start := e.clock.Now()
	e.ok(logical.UpdateOperation, "config/rotate-root", nil)
	cfg := e.storedConfig()
	if cfg.ClientSecret != e.mgmtSecret() || cfg.ClientSecret == old {
		t.Fatal("the stored root secret is not Auth0's new one")
	}
	// Right after, inside the window: role rotations still work (a refused token is asked
	// for again until Auth0 accepts the new secret).
	for i := 0; i < 5; i++ {
		e.ok(logical.UpdateOperation, "rotate/app", nil)
	}
	e.clock.Set(start.Add(31 * time.Second))
	if e.mgmtAuthenticates(old) || !e.mgmtAuthenticates(cfg.ClientSecret) {
		t.Fatal("after the window the old root secret works, or the new one does not")
	}
	if n := e.emu.Stats().SecretPatches[testMgmtID]; n != 1 {
		t.Fatalf("%d root secret changes at Auth0, want 1", n)
	}
}

// Auth0's token endpoint is limited or failing (429, or 500 "Global limit has been
// reached") for the first seconds of the new root secret's verification: verification
// keeps polling, one token request per poll, and the rotation completes; neither answer
// counts as a refusal.
func TestRotateRootWhileTokenEndpointIsLimited(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newTestEnv(t)
			e.configureWithRole(nil)
			limitedUntil := e.clock.Now().Add(3500 * time.Millisecond)
			limited := 0
			e.emu.SetFaults(func(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
				if p == emulator.BeforeApply && r.URL.Path == "/oauth/token" && e.emu.Stats().SecretPatches[testMgmtID] == 1 && e.clock.Now().Before(limitedUntil) {
					limited++
					return &emulator.Fault{Status: status}
				}
				return nil
			})
			before := e.emu.Stats().TokenRequests[testMgmtID]
			e.ok(logical.UpdateOperation, "config/rotate-root", nil)
			if cfg := e.storedConfig(); cfg.ClientSecret != e.mgmtSecret() || cfg.PendingClientSecret != "" {
				t.Fatal("the rotation did not complete")
			}
			// Polls a second apart: 4 limited, then one accepted; plus the token of the client
			// that sent the PATCH. Never two requests for one poll.
			if n := e.emu.Stats().TokenRequests[testMgmtID] - before; limited != 4 || n != 6 {
				t.Fatalf("%d limited token requests, %d in all; want 4 and 6", limited, n)
			}
		})
	}
}

// rotate-root whose PATCH answer is lost, and whose resolution is refused by Auth0 and
// rolled back, answers an error saying so (before: 200), records the failure, and the
// root schedule goes on with backoff (before: it stopped for good).
func TestRotateRootEndingInRollbackFails(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": "24h"})
	old := e.mgmtSecret()
	patches := 0
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
		if p != emulator.BeforeApply || r.Method != http.MethodPatch || clientID != testMgmtID {
			return nil
		}
		patches++
		if patches == 1 {
			return &emulator.Fault{Drop: true} // lost: Vault cannot know it was not applied
		}
		return &emulator.Fault{Status: http.StatusForbidden}
	})
	wantContains(t, e.userError(logical.UpdateOperation, "config/rotate-root", nil), "rolled back", "current one stays in use")
	cfg := e.storedConfig()
	if cfg.ClientSecret != old || cfg.PendingClientSecret != "" || e.mgmtSecret() != old {
		t.Fatal("the rollback did not keep the working secret")
	}
	f := cfg.RootFailures
	if f.LastFailure == nil || f.LastFailure.ConsecutiveFailures != 1 || !f.NextAttempt.After(e.clock.Now()) {
		t.Fatalf("root failure = %+v", f)
	}
	if due, ok := e.b.Sched.Load().Queue.Due(engine.RootQueueKey); !ok || !due.Equal(cfg.NextRootRotation) {
		t.Fatalf("root queued at %v (%v), want its schedule %v", due, ok, cfg.NextRootRotation)
	}
	read := e.ok(logical.ReadOperation, "config", nil)
	if read["last_root_rotation_failure"] == nil {
		t.Fatal("config read does not show the root rotation failure")
	}
	e.emu.SetFaults(nil)
	e.ok(logical.UpdateOperation, "config/rotate-root", nil)
	if e.storedConfig().RootFailures.LastFailure != nil {
		t.Fatal("a successful root rotation did not clear the failure")
	}
}
