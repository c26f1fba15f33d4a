package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// Storage fails after Auth0 applied a scheduled rotation. The failure is recorded, the
// retries back off, and no retry rotates again at Auth0 while the first rotation's
// outcome is not stored: each one first resolves it. (v0.1.0: 3 Auth0 rotations in 9 s,
// none stored, nothing recorded.)
func TestStorageFailureNeverRotatesAgain(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true, "rotation_period": "1h"})
	e.storage.failPutsUnder(model.SecretStoragePrefix, 1<<30)

	e.advance(time.Hour)
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("%d Auth0 rotations, want 1", n)
	}
	var attempts []time.Time
	for i := 0; i < 24*60; i++ { // a virtual day, minute by minute
		before := e.emu.Stats().Requests
		e.advance(time.Minute)
		if e.emu.Stats().Requests > before {
			attempts = append(attempts, e.clock.Now())
		}
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("%d Auth0 rotations while the first one's outcome was not stored, want 1", n)
	}
	// Backoff from 10s doubling to the 1h cap: 9 attempts in the first hour or so, then
	// one an hour.
	if len(attempts) < 25 || len(attempts) > 35 {
		t.Fatalf("%d attempts to resolve in a day; want about 32, backing off to hourly", len(attempts))
	}
	if last := attempts[len(attempts)-1].Sub(attempts[len(attempts)-2]); last < engine.DefaultRetryCap-time.Minute {
		t.Fatalf("the last attempts were %v apart, want the %v cap", last, engine.DefaultRetryCap)
	}
	for i := 2; i < len(attempts); i++ {
		prev, gap := attempts[i-1].Sub(attempts[i-2]), attempts[i].Sub(attempts[i-1])
		if gap < prev && gap < engine.DefaultRetryCap {
			t.Fatalf("attempt gaps shrink: %v then %v", prev, gap)
		}
	}
	wantContains(t, e.logs.String(), "finishing an earlier rotation", "no new rotation starts until it is resolved")

	// Storage heals: the next attempt reads the secret back and stores it, no rotation.
	e.storage.failPuts.Store(0)
	e.advance(engine.DefaultRetryCap)
	role := e.storedRole("app")
	if role.CurrentVersion() != 2 || role.LastFailure != nil || walCount(t, e.storage) != 0 {
		t.Fatalf("after storage healed: version %d, failure %v, %d entries in flight", role.CurrentVersion(), role.LastFailure, walCount(t, e.storage))
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("%d Auth0 rotations, want 1", n)
	}
	if creds := e.ok(logical.ReadOperation, "creds/app", nil); creds["client_secret"] != e.appSecret(testAppID) {
		t.Fatal("creds do not serve Auth0's secret")
	}
}

// A missing config and a failed write-ahead write are failures like any other: recorded,
// backed off, and nothing is sent to Auth0.
func TestEveryFailureIsRecorded(t *testing.T) {
	t.Run("no config", func(t *testing.T) {
		e := newTestEnv(t)
		e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
		e.ok(logical.DeleteOperation, "config", nil)
		e.advance(time.Hour)
		role := e.storedRole("app")
		if role.LastFailure == nil || !strings.Contains(role.LastFailure.Message, "not configured") {
			t.Fatalf("failure = %+v, want one saying the engine is not configured", role.LastFailure)
		}
		if !role.NextAttempt.Equal(e.clock.Now().Add(engine.DefaultRetryBase)) {
			t.Fatalf("next attempt %v, want now + %v", role.NextAttempt, engine.DefaultRetryBase)
		}
		if n := e.advance(engine.DefaultRetryBase - time.Second); n != 0 {
			t.Fatal("retried before the backoff")
		}
		e.advance(time.Second)
		if r := e.storedRole("app"); r.LastFailure.ConsecutiveFailures != 2 {
			t.Fatalf("consecutive failures = %d, want 2", r.LastFailure.ConsecutiveFailures)
		}
	})
	t.Run("write-ahead entry cannot be written", func(t *testing.T) {
		e := newTestEnv(t)
		e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
		e.storage.failPutsUnder(framework.WALPrefix, 1)
		e.advance(time.Hour)
		if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
			t.Fatalf("%d rotations sent without a write-ahead entry", n)
		}
		role := e.storedRole("app")
		if role.LastFailure == nil || !strings.Contains(role.LastFailure.Message, "recording the rotation before calling Auth0") {
			t.Fatalf("failure = %+v", role.LastFailure)
		}
		e.advance(engine.DefaultRetryBase)
		if n := e.emu.Stats().Rotations[testAppID]; n != 1 || e.storedRole("app").CurrentVersion() != 1 {
			t.Fatal("the retry did not rotate")
		}
	})
}

// The write-ahead entry is written after the rate-limit wait: a rotation parked in the
// limiter has none, so the rollback manager cannot mistake it for one left by a crash.
func TestWriteAheadEntryComesAfterRateLimitWait(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.clock.autoAdvance = false
	e.b.Limiter.Observe(&http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"120"}}}, e.clock.Now())

	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ok(logical.UpdateOperation, "rotate/app", nil)
	}()
	e.clock.awaitTimer(time.Minute) // the rotation waits in the rate limiter
	if n := walCount(t, e.storage); n != 0 {
		t.Fatalf("%d write-ahead entries while the rotation waits for the rate limit", n)
	}
	e.clock.Advance(2 * time.Minute)
	<-done
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 || walCount(t, e.storage) != 0 {
		t.Fatalf("%d rotations, %d entries left", n, walCount(t, e.storage))
	}
}

// Vault's rollback manager hands over the entry of a rotation that is still live (its
// answer is slow). Reconciliation waits for the role's lock, then finds the entry gone:
// one rotate request is one Auth0 rotation, also without read:client_keys.
func TestRollbackOfLiveRotationDoesNothing(t *testing.T) {
	e := newTestEnv(t, "read:clients", "update:client_keys")
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	e.emu.SetFaults(rotateFault(emulator.BeforeApply, emulator.Fault{Do: func() {
		close(inFlight)
		<-release
	}}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ok(logical.UpdateOperation, "rotate/app", nil)
	}()
	<-inFlight
	if n := walCount(t, e.storage); n != 1 {
		t.Fatalf("%d entries while the rotation is in flight, want 1", n)
	}
	walRead := make(chan struct{})
	var once sync.Once
	hook := func(key string) {
		if strings.HasPrefix(key, framework.WALPrefix) {
			once.Do(func() { close(walRead) })
		}
	}
	e.storage.onGet.Store(&hook)
	rolledBack := make(chan error)
	go func() {
		resp, err := e.b.HandleRequest(t.Context(), &logical.Request{
			Operation: logical.RollbackOperation, Storage: e.storage, Data: map[string]interface{}{"immediate": true},
		})
		if err == nil && resp != nil && resp.IsError() {
			err = resp.Error()
		}
		rolledBack <- err
	}()
	// The rollback manager has read the entry (it is old enough to reconcile) while the
	// rotation that wrote it is still waiting for Auth0's answer.
	<-walRead
	close(release)
	<-done
	if err := <-rolledBack; err != nil {
		t.Fatal(err)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 2 {
		t.Fatalf("%d Auth0 rotations for 2 rotate requests", n)
	}
	if v := e.storedRole("app").CurrentVersion(); v != 2 || walCount(t, e.storage) != 0 {
		t.Fatalf("version %d, %d entries left", v, walCount(t, e.storage))
	}
	if creds := e.ok(logical.ReadOperation, "creds/app", nil); !e.authenticates(testAppID, creds["client_secret"].(string)) {
		t.Fatal("the served secret does not authenticate")
	}
}

// While a role has an unresolved rotation, no trigger starts another Auth0 change: a
// manual rotate resolves it first and fails if it cannot.
func TestUnresolvedRotationBlocksNewOnes(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.AfterApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") || p == emulator.BeforeApply && r.Method == http.MethodGet {
			return &emulator.Fault{Status: http.StatusInternalServerError}
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if _, err := e.request(logical.UpdateOperation, "rotate/app", nil); err == nil {
			t.Fatal("rotate succeeded against a failing Auth0")
		}
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("%d Auth0 rotations for 3 requests while the first was unresolved, want 1", n)
	}
	e.emu.SetFaults(nil)
	got := e.ok(logical.UpdateOperation, "rotate/app", nil)
	// Version 2 is the first rotation, read back; version 3 this one.
	if got["version"] != 3 || e.emu.Stats().Rotations[testAppID] != 2 {
		t.Fatalf("rotate answered version %v after %d Auth0 rotations", got["version"], e.emu.Stats().Rotations[testAppID])
	}
	v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if v["2"].(map[string]interface{})["source"] != model.SourceRecovered || v["3"].(map[string]interface{})["source"] != model.SourceRotate {
		t.Fatalf("versions = %v", v)
	}
}

// A crash after Vault stored the rotated secret but before the commit finished is
// completed from storage at the next start: no read-back, no second rotation (the
// Management application here cannot read secrets back).
func TestCommitCutShortIsFinishedFromStorage(t *testing.T) {
	for _, cut := range []string{model.CredsStoragePrefix, model.RoleStoragePrefix} {
		t.Run("crash before writing "+cut, func(t *testing.T) {
			e := newTestEnv(t, "read:clients", "update:client_keys")
			e.configureWithRole(nil)
			e.ok(logical.UpdateOperation, "rotate/app", nil)
			e.storage.failPutsUnder(cut, 1<<30)
			if _, err := e.request(logical.UpdateOperation, "rotate/app", nil); err == nil {
				t.Fatal("rotate succeeded with storage failing")
			}
			e.b.Cleanup(t.Context()) // the plugin dies
			e.storage.failPuts.Store(0)

			b2 := restartBackend(t, e, logical.TestSystemView())
			<-b2.Sched.Load().Loaded
			if n := e.emu.Stats().Rotations[testAppID]; n != 2 {
				t.Fatalf("%d Auth0 rotations, want 2", n)
			}
			creds := e.ok(logical.ReadOperation, "creds/app", nil)
			if creds["version"] != 2 || creds["client_secret"] != e.appSecret(testAppID) || walCount(t, e.storage) != 0 {
				t.Fatalf("after restart creds serve version %v; %d entries left", creds["version"], walCount(t, e.storage))
			}
			v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
			if v["2"].(map[string]interface{})["source"] != model.SourceRotate {
				t.Fatalf("version 2 = %v, want the rotation's own source", v["2"])
			}
			wantContains(t, e.logs.String(), "finished storing a rotation a crash interrupted")
		})
	}
}

// The first rotation of a role that holds no secret yet fails with an unknown outcome
// (a 503: Auth0 may or may not have applied it). Vault remembered a hash of the secret
// Auth0 held before, so reading back tells that nothing was applied: no version is stored
// for a rotation that did not happen. (Before: the unchanged secret was stored as version
// 1, "recovered", without any Auth0 rotation.)
func TestFirstRotationWithUnknownOutcomeStoresNothingUnapplied(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.emu.SetFaults(rotateFault(emulator.BeforeApply, emulator.Fault{Status: http.StatusServiceUnavailable}))
	if _, err := e.request(logical.UpdateOperation, "rotate/app", nil); err == nil {
		t.Fatal("rotate succeeded against a failing Auth0")
	}
	if v := e.storedRole("app").CurrentVersion(); v != 0 || walCount(t, e.storage) != 0 {
		t.Fatalf("version %d stored, %d entries left, for a rotation Auth0 did not apply", v, walCount(t, e.storage))
	}
	got := e.ok(logical.UpdateOperation, "rotate/app", nil)
	v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if got["version"] != 1 || v["1"].(map[string]interface{})["source"] != model.SourceRotate || e.emu.Stats().Rotations[testAppID] != 1 {
		t.Fatalf("then: version %v, versions %v", got["version"], v)
	}
}

// Granting a missing scope takes effect at the next rotation: a 403 sends the engine for a
// fresh Management API token once, since the cached one keeps the scopes it was issued
// with for up to a day. The refusal itself changed nothing at Auth0.
func TestGrantedScopeTakesEffectWithoutReconfiguring(t *testing.T) {
	e := newTestEnv(t, "read:clients", "read:client_keys")
	e.configureWithRole(nil)
	wantContains(t, e.userError(logical.UpdateOperation, "rotate/app", nil), "update:client_keys")
	if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
		t.Fatalf("a refused rotate-secret rotated %d times", n)
	}
	if err := e.emu.SetGrant(testMgmtID, emulator.ManagementGrant, allScopes); err != nil {
		t.Fatal(err)
	}
	data := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if data["version"] != 1 {
		t.Fatalf("rotation after the grant: version %v", data["version"])
	}
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if !e.authenticates(testAppID, creds["client_secret"].(string)) {
		t.Fatal("the rotated secret does not authenticate")
	}
}
