package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// rotateFault injects fault into the first rotate-secret call, at phase.
func rotateFault(phase emulator.Phase, fault emulator.Fault) emulator.FaultFunc {
	var fired atomic.Bool
	return func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == phase && strings.HasSuffix(r.URL.Path, "/rotate-secret") && fired.CompareAndSwap(false, true) {
			f := fault
			return &f
		}
		return nil
	}
}

func walCount(t *testing.T, s logical.Storage) int {
	t.Helper()
	ids, err := framework.ListWAL(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// Every fault Auth0 or the network can produce ends with Vault serving the secret Auth0
// accepts, one Auth0 rotation per stored version, and no rotation left in flight.
func TestRotateFaults(t *testing.T) {
	cases := []struct {
		name          string
		scopes        []string
		faults        emulator.FaultFunc
		expireTokens  bool
		wantOK        bool
		wantCode      int // for failures: 0 means a 400 error response
		wantRotations int
		wantVersions  int
		wantSource    string
		wantWarning   bool
	}{
		{name: "500 before applying", faults: rotateFault(emulator.BeforeApply, emulator.Fault{Status: 500}), wantCode: http.StatusBadGateway},
		// A short pause is waited out inside the request: nothing was applied.
		{name: "429 with a short Retry-After", faults: rotateFault(emulator.BeforeApply, emulator.Fault{Status: 429, RetryAfter: 2}), wantOK: true, wantRotations: 1, wantVersions: 2, wantSource: model.SourceRotate},
		{name: "429 with a long Retry-After", faults: rotateFault(emulator.BeforeApply, emulator.Fault{Status: 429, RetryAfter: 60}), wantCode: http.StatusTooManyRequests},
		{name: "connection refused", wantCode: http.StatusBadGateway},
		{name: "applied, then 500", faults: rotateFault(emulator.AfterApply, emulator.Fault{Status: 500}), wantOK: true, wantRotations: 1, wantVersions: 2, wantSource: model.SourceRecovered},
		{name: "applied, then connection dropped", faults: rotateFault(emulator.AfterApply, emulator.Fault{Drop: true}), wantOK: true, wantRotations: 1, wantVersions: 2, wantSource: model.SourceRecovered},
		{name: "applied, then hang past the timeout", faults: rotateFault(emulator.AfterApply, emulator.Fault{Delay: 3 * time.Second}), wantOK: true, wantRotations: 1, wantVersions: 2, wantSource: model.SourceRecovered},
		{name: "token expired mid-run", expireTokens: true, wantOK: true, wantRotations: 1, wantVersions: 2, wantSource: model.SourceRotate},
		{
			// Auth0 lets read:client_credentials read client_secret too.
			name:   "applied, then 500, with read:client_credentials instead of read:client_keys",
			scopes: []string{"read:clients", "read:client_credentials", "update:client_keys"},
			faults: rotateFault(emulator.AfterApply, emulator.Fault{Status: 500}),
			wantOK: true, wantRotations: 1, wantVersions: 2, wantSource: model.SourceRecovered,
		},
		{
			name:   "applied, then 500, without read:client_keys",
			scopes: []string{"read:clients", "update:client_keys"},
			faults: rotateFault(emulator.AfterApply, emulator.Fault{Status: 500}),
			// The first rotation's secret is unknowable: Vault rotates once more and stores that.
			wantOK: true, wantRotations: 2, wantVersions: 2, wantSource: model.SourceRecovered, wantWarning: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.scopes...)
			e.configure()
			e.ok(logical.UpdateOperation, "config", map[string]interface{}{"request_timeout": "1s"})
			// Version 1 is known to Vault (imported, or rotated when import is not allowed).
			if tc.scopes == nil {
				e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true})
			} else {
				e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
				e.ok(logical.UpdateOperation, "rotate/app", nil)
			}
			before := e.emu.Stats().Rotations[testAppID]
			v1 := e.ok(logical.ReadOperation, "creds/app", nil)["client_secret"].(string)

			e.emu.SetFaults(tc.faults)
			if tc.expireTokens {
				e.ok(logical.ReadOperation, "creds/app", nil) // the engine holds a token…
				e.emu.ExpireTokens()                          // …that Auth0 now refuses
			}
			if tc.name == "connection refused" {
				e.ok(logical.UpdateOperation, "config", map[string]interface{}{"domain": "http://127.0.0.1:1", "client_secret": e.mgmtSecret(), "verify_connection": false, "allow_domain_change": true})
			}
			resp, err := e.request(logical.UpdateOperation, "rotate/app", nil)
			e.emu.SetFaults(nil)
			if tc.name == "connection refused" {
				if err := e.tryConfigure(map[string]interface{}{"allow_domain_change": true}); err != nil {
					t.Fatal(err)
				}
			}

			if got := e.emu.Stats().Rotations[testAppID] - before; got != tc.wantRotations {
				t.Fatalf("Auth0 applied %d rotations, want %d", got, tc.wantRotations)
			}
			if n := walCount(t, e.storage); n != 0 {
				t.Fatalf("%d rotations left in flight", n)
			}
			creds := e.ok(logical.ReadOperation, "creds/app", nil)
			if !e.authenticates(testAppID, creds["client_secret"].(string)) {
				t.Fatal("the served secret does not authenticate at Auth0")
			}
			role := e.ok(logical.ReadOperation, "roles/app", nil)
			if tc.wantOK && role["current_version"] != tc.wantVersions {
				t.Fatalf("current_version = %v, want %d", role["current_version"], tc.wantVersions)
			}

			if !tc.wantOK {
				switch {
				case tc.wantCode == 0 && (err != nil || resp == nil || !resp.IsError()):
					t.Fatalf("want an error response, got %v, %v", resp, err)
				case tc.wantCode != 0:
					if code, ok := codedStatus(err); !ok || code != tc.wantCode {
						t.Fatalf("want a %d, got %v, %v", tc.wantCode, resp, err)
					}
					if tc.wantCode == http.StatusTooManyRequests {
						wantContains(t, err.Error(), "nothing was changed; try again after")
					}
				}
				if creds["client_secret"] != v1 || role["current_version"] != 1 {
					t.Fatalf("a failed rotation changed what Vault serves (version %v)", role["current_version"])
				}
				if role["last_rotation_failure"] == nil {
					t.Fatal("the failure was not recorded on the role")
				}
				return
			}
			if err != nil || resp.IsError() {
				t.Fatalf("rotate = %v, %v; want success", resp, err)
			}
			if resp.Data["version"] != tc.wantVersions || creds["version"] != tc.wantVersions {
				t.Fatalf("rotate answered version %v, creds serve %v; want %d", resp.Data["version"], creds["version"], tc.wantVersions)
			}
			if creds["previous_client_secret"] != v1 {
				t.Fatal("previous_client_secret is not version 1")
			}
			versions := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
			if src := versions["2"].(map[string]interface{})["source"]; src != tc.wantSource {
				t.Fatalf("version 2 source = %v, want %s", src, tc.wantSource)
			}
			if _, warned := role["warning"]; warned != tc.wantWarning {
				t.Fatalf("role warning = %v, want present: %v", role["warning"], tc.wantWarning)
			}
			if tc.wantWarning {
				wantContains(t, role["warning"].(string), "read:client_keys")
			}
		})
	}
}

// Storage fails after Auth0 applied the rotation: the rotation stays recorded, and
// reconciliation later reads the secret back and stores it.
func TestStorageFailureAfterRotationIsRecovered(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.storage.failPuts.Store(1000)
	resp, err := e.request(logical.UpdateOperation, "rotate/app", nil)
	if err == nil || (resp != nil && !resp.IsError()) {
		t.Fatalf("rotate with storage down = %v, %v; want an error", resp, err)
	}
	wantContains(t, err.Error(), "storing it failed", "will read it back from Auth0")
	if n := walCount(t, e.storage); n != 1 {
		t.Fatalf("%d rotations recorded in flight, want 1", n)
	}
	e.storage.failPuts.Store(0)

	// Vault's rollback manager hands old entries to the backend; "immediate" skips the age.
	if _, err := e.b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.RollbackOperation, Path: "", Storage: e.storage, Data: map[string]interface{}{"immediate": true},
	}); err != nil {
		t.Fatal(err)
	}
	if n := walCount(t, e.storage); n != 0 {
		t.Fatalf("%d rotations still in flight after reconciliation", n)
	}
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != e.appSecret(testAppID) || creds["version"] != 2 {
		t.Fatalf("after reconciliation creds serve version %v, not Auth0's secret", creds["version"])
	}
	if e.emu.Stats().Rotations[testAppID] != 1 {
		t.Fatal("reconciliation rotated again although it could read the secret back")
	}
}

// A rotation in flight when the plugin dies is finished when the mount starts again.
func TestRotationInFlightAtCrashIsReconciledAtStart(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	crashed := make(chan struct{})
	e.emu.SetFaults(rotateFault(emulator.AfterApply, emulator.Fault{Do: func() { close(crashed) }, Delay: time.Hour}))
	go e.request(logical.UpdateOperation, "rotate/app", nil) //nolint:errcheck // "dies" while waiting
	<-crashed
	e.emu.SetFaults(nil)
	// The plugin process is gone: nothing of it runs on; storage keeps the log entry.
	if n := walCount(t, e.storage); n != 1 {
		t.Fatalf("%d rotations recorded in flight, want 1", n)
	}

	// Reading the secret back is slow; creds must wait for it rather than serve version 1,
	// which Auth0 has already killed.
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.BeforeApply && r.Method == http.MethodGet {
			return &emulator.Fault{Delay: 500 * time.Millisecond}
		}
		return nil
	})
	b2 := restartBackend(t, e, logical.TestSystemView())
	resp, err := b2.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/app", Storage: e.storage})
	if err != nil || resp.IsError() {
		t.Fatalf("creds right after the restart: %v, %v", resp, err)
	}
	if resp.Data["client_secret"] != e.appSecret(testAppID) || resp.Data["version"] != 2 {
		t.Fatalf("creds right after the restart served version %v, not the secret Auth0 holds", resp.Data["version"])
	}
	<-b2.Sched.Load().Loaded
	creds, _ := model.LoadCreds(t.Context(), e.storage, "app")
	if cur := creds.Current; cur.Secret != e.appSecret(testAppID) || cur.Source != model.SourceRecovered || cur.Version != 2 {
		t.Fatalf("after restart the role holds version %d (%s), not Auth0's secret", cur.Version, cur.Source)
	}
	if n := walCount(t, e.storage); n != 0 {
		t.Fatalf("%d rotations still in flight", n)
	}
}

// A log entry whose rotation never reached Auth0 reconciles to nothing.
func TestReconcileWithoutChangeStoresNothing(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	if _, err := framework.PutWAL(t.Context(), e.storage, engine.WALKindRotation, &engine.RotationWAL{Role: "app", ClientID: testAppID}); err != nil {
		t.Fatal(err)
	}
	if _, err := framework.PutWAL(t.Context(), e.storage, engine.WALKindRotation, &engine.RotationWAL{Role: "gone", ClientID: "x"}); err != nil {
		t.Fatal(err)
	}
	pending, err := e.b.PendingRotations(t.Context(), e.storage)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending rotations = %v, %v; want 2", pending, err)
	}
	e.b.ReconcilePending(t.Context(), e.storage, pending)
	if n := walCount(t, e.storage); n != 0 {
		t.Fatalf("%d entries left", n)
	}
	if v := e.ok(logical.ReadOperation, "versions/app", nil); v["current_version"] != 1 {
		t.Fatalf("reconciling an unapplied rotation stored a version: %v", v)
	}
}
