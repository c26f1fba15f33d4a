package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

func TestRotate(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	original := e.appSecret(testAppID)

	for want := 1; want <= 2; want++ {
		got := e.ok(logical.UpdateOperation, "rotate/app", nil)
		if len(got) != 2 || got["version"] != want || got["last_vault_rotation"] == nil {
			t.Fatalf("rotation %d answered %v; want exactly version and last_vault_rotation", want, got)
		}
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 2 {
		t.Fatalf("Auth0 saw %d rotations, want 2", n)
	}
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	current, previous := creds["client_secret"].(string), creds["previous_client_secret"].(string)
	if current != e.appSecret(testAppID) || creds["version"] != 2 {
		t.Fatalf("creds serve version %v, not Auth0's current secret", creds["version"])
	}
	if !e.authenticates(testAppID, current) {
		t.Fatal("the served secret does not authenticate at Auth0")
	}
	if e.authenticates(testAppID, previous) || e.authenticates(testAppID, original) {
		t.Fatal("a rotated-away secret still authenticates")
	}
	role := e.ok(logical.ReadOperation, "roles/app", nil)
	if role["current_version"] != 2 || role["last_vault_rotation"] == nil || role["last_rotation_failure"] != nil {
		t.Fatalf("role after rotations = %v", role)
	}
}

func TestRotateScheduledRoleAnswersNextRotation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "24h"})
	got := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if got["next_vault_rotation"] == nil {
		t.Fatalf("rotate of a scheduled role = %v, want next_vault_rotation", got)
	}
}

func TestRotateTrimsToMaxVersions(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"max_versions": 3})
	for i := 0; i < 5; i++ {
		e.ok(logical.UpdateOperation, "rotate/app", nil)
	}
	v := e.ok(logical.ReadOperation, "versions/app", nil)
	if v["current_version"] != 5 || v["oldest_version"] != 3 || len(v["versions"].(map[string]interface{})) != 3 {
		t.Fatalf("versions = %v; want 3..5", v)
	}
	// Lowering max_versions trims at once, oldest first; numbers go on from the latest.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"max_versions": 1})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	v = e.ok(logical.ReadOperation, "versions/app", nil)
	if v["current_version"] != 6 || v["oldest_version"] != 6 {
		t.Fatalf("versions = %v; want only 6", v)
	}
	if e.ok(logical.ReadOperation, "creds/app", nil)["previous_client_secret"] != "" {
		t.Fatal("previous_client_secret served although max_versions=1 retains none")
	}
}

func TestRotateFailures(t *testing.T) {
	cases := []struct {
		name      string
		scopes    []string
		fault     *emulator.Fault
		role      string
		wantCode  int // 0: an error response (400)
		wantParts []string
	}{
		{name: "unknown role", role: "nope", wantParts: []string{`role "nope" does not exist`, "vault write <mount>/roles/nope"}},
		{name: "missing scope", scopes: []string{"read:clients"}, wantParts: []string{"Insufficient scope", "update:client_keys", "grant the missing scope"}},
		{name: "application gone", fault: &emulator.Fault{Status: http.StatusNotFound}, wantParts: []string{"Auth0 has no such application"}},
		{name: "auth0 down", fault: &emulator.Fault{Status: http.StatusServiceUnavailable}, wantCode: http.StatusBadGateway, wantParts: []string{`rotating the secret of role "app"`, "503"}},
		{name: "rate limited", fault: &emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 2}, wantCode: http.StatusTooManyRequests, wantParts: []string{"rate limit"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.scopes...)
			e.configureWithRole(map[string]interface{}{"import_current_secret": len(tc.scopes) == 0})
			if tc.fault != nil {
				e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
					if p == emulator.BeforeApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") {
						return tc.fault
					}
					return nil
				})
			}
			role := tc.role
			if role == "" {
				role = "app"
			}
			before := e.appSecret(testAppID)
			resp, err := e.request(logical.UpdateOperation, "rotate/"+role, nil)
			var msg string
			if tc.wantCode == 0 {
				if err != nil || resp == nil || !resp.IsError() {
					t.Fatalf("want an error response, got %v, %v", resp, err)
				}
				msg = resp.Error().Error()
			} else {
				if code, ok := codedStatus(err); !ok || code != tc.wantCode {
					t.Fatalf("want a %d, got %v, %v", tc.wantCode, resp, err)
				}
				msg = err.Error()
			}
			wantContains(t, msg, tc.wantParts...)
			if e.appSecret(testAppID) != before {
				t.Fatal("Auth0's secret changed although the rotation failed before applying")
			}
			if tc.role != "" {
				return
			}
			// Nothing changed but the failure record.
			got := e.ok(logical.ReadOperation, "roles/app", nil)
			failure, ok := got["last_rotation_failure"].(map[string]interface{})
			if !ok || failure["consecutive_failures"] != 1 || !strings.Contains(failure["message"].(string), tc.wantParts[0]) {
				t.Fatalf("last_rotation_failure = %v", got["last_rotation_failure"])
			}
			wantVersion := 0
			if len(tc.scopes) == 0 {
				wantVersion = 1
			}
			if got["current_version"] != wantVersion {
				t.Fatalf("current_version = %v, want %d", got["current_version"], wantVersion)
			}
		})
	}
}

func TestRotateFailureThenSuccessClearsFailure(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		return &emulator.Fault{Status: http.StatusInternalServerError}
	})
	for i := 0; i < 2; i++ {
		if _, err := e.request(logical.UpdateOperation, "rotate/app", nil); err == nil {
			t.Fatal("rotation against a failing Auth0 succeeded")
		}
	}
	failure := e.ok(logical.ReadOperation, "roles/app", nil)["last_rotation_failure"].(map[string]interface{})
	if failure["consecutive_failures"] != 2 {
		t.Fatalf("consecutive_failures = %v, want 2", failure["consecutive_failures"])
	}
	e.emu.SetFaults(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	// The 500s left the outcome unknown; the success first read the secret back, found
	// version 1 still current at Auth0, then rotated.
	if got := e.ok(logical.ReadOperation, "roles/app", nil); got["last_rotation_failure"] != nil || got["current_version"] != 2 {
		t.Fatalf("after a success: %v", got)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("%d rotations applied at Auth0, want 1", n)
	}
}

// A lost response must not make the engine rotate again behind the caller's back: it
// reads the secret back instead.
func TestRotateIsNeverReplayed(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.AfterApply {
			return &emulator.Fault{Drop: true}
		}
		return nil
	})
	got := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("Auth0 applied %d rotations for one request; rotate-secret was replayed", n)
	}
	if got["version"] != 1 {
		t.Fatalf("version = %v", got["version"])
	}
}

func TestRotateRetriesStorageWrites(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.storage.failPuts.Store(engine.StoreAttempts - 1)
	got := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if got["version"] != 1 {
		t.Fatalf("version = %v", got["version"])
	}
	if creds := e.ok(logical.ReadOperation, "creds/app", nil); creds["client_secret"] != e.appSecret(testAppID) {
		t.Fatal("the rotated secret was not stored after transient storage errors")
	}
}

func TestConcurrentRotationsSerialize(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"max_versions": 100})
	const n = 20
	var wg sync.WaitGroup
	versions := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.request(logical.UpdateOperation, "rotate/app", nil)
			if err != nil || resp.IsError() {
				t.Errorf("rotate: %v %v", resp, err)
				return
			}
			versions <- resp.Data["version"].(int)
		}()
	}
	wg.Wait()
	close(versions)
	seen := map[int]bool{}
	for v := range versions {
		seen[v] = true
	}
	for v := 1; v <= n; v++ {
		if !seen[v] {
			t.Fatalf("version %d missing from %v", v, seen)
		}
	}
	if got := e.emu.Stats().Rotations[testAppID]; got != n {
		t.Fatalf("Auth0 rotations = %d, want %d", got, n)
	}
	// Every stored version is a secret Auth0 issued, in order: only the last one works.
	list := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if len(list) != n {
		t.Fatalf("%d versions stored, want %d", len(list), n)
	}
	for v := 1; v <= n; v++ {
		secret := e.ok(logical.ReadOperation, "creds/app", map[string]interface{}{"version": v})["client_secret"].(string)
		if works := e.authenticates(testAppID, secret); works != (v == n) {
			t.Fatalf("version %d authenticates = %v", v, works)
		}
	}
}

// Auth0's burst limit answers 429 with no Retry-After and a reset of the current second.
// Manual rotations wait a sane minimum and retry inside their requests: all succeed, each
// exactly once at Auth0.
func TestRotateThroughBurstLimit(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.emu.SetRateLimitBucket(2, 2) // Auth0's free plan
	for i := 1; i <= 6; i++ {
		if got := e.ok(logical.UpdateOperation, "rotate/app", nil); got["version"] != i {
			t.Fatalf("rotation %d answered version %v", i, got["version"])
		}
	}
	st := e.emu.Stats()
	if st.Rotations[testAppID] != 6 || st.RateLimited == 0 {
		t.Fatalf("%d rotations, %d answered 429; want 6 and some 429s", st.Rotations[testAppID], st.RateLimited)
	}
}

// With Auth0's propagation window on, an immediate rotation is stored at once; the new
// secret is accepted everywhere once the window has passed, and the old one no more.
func TestRotateDuringPropagation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.emu.SetPropagationDelay(30 * time.Second)
	start := e.clock.Now()
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	current, previous := creds["client_secret"].(string), creds["previous_client_secret"].(string)
	accepted := map[string]int{}
	for i := 0; i < 40; i++ {
		for _, s := range []string{current, previous} {
			if e.authenticates(testAppID, s) {
				accepted[s]++
			}
		}
	}
	if accepted[current] == 0 || accepted[previous] == 0 {
		t.Fatalf("inside the window: current accepted %d/40, previous %d/40; want both sometimes", accepted[current], accepted[previous])
	}
	e.clock.Set(start.Add(31 * time.Second))
	if !e.authenticates(testAppID, current) || e.authenticates(testAppID, previous) {
		t.Fatal("after the window the current secret is refused, or the previous one accepted")
	}
}
