package integration

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// TestRotateRootPluginKillAtEachStep kills -9 the plugin process at each step of a root
// rotation: after the pending secret is stored (as the PATCH arrives), after Auth0 applied
// the PATCH, and after the new secret was verified (as Auth0 issues the token for it). Each
// time the restarted plugin finishes the rotation: Auth0 holds a new secret, the old one is
// refused, the new one works, and the engine rotates roles with it.
//
// The killed plugin never answers rotate-root, but the request may still succeed: Vault
// 1.13 retries a request once on a new plugin process when the call failed because the
// plugin had shut down (builtin/plugin/backend.go, lazyLoadBackend). Which error Vault
// sees is a race between the broken gRPC call and go-plugin noticing the process exit:
// usually the former (no retry, an error), under load sometimes the latter (a retry).
func TestRotateRootPluginKillAtEachStep(t *testing.T) {
	isSecretPatch := func(r *http.Request, clientID string) bool {
		return r.Method == http.MethodPatch && clientID == mgmtClientID
	}
	steps := []struct {
		name string
		// at decides, from the emulator's hook, whether the kill happens now; patched
		// tells whether Auth0 has applied the PATCH.
		at func(p emulator.Phase, r *http.Request, clientID string, patched bool) bool
	}{
		{"after storing pending", func(p emulator.Phase, r *http.Request, id string, _ bool) bool {
			return p == emulator.BeforeApply && isSecretPatch(r, id)
		}},
		{"after PATCH", func(p emulator.Phase, r *http.Request, id string, _ bool) bool {
			return p == emulator.AfterApply && isSecretPatch(r, id)
		}},
		{"after verification", func(p emulator.Phase, r *http.Request, id string, patched bool) bool {
			return p == emulator.AfterApply && patched && r.URL.Path == "/oauth/token" && id == mgmtClientID
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			f, _ := newRotatedApp(t)
			v, root := f.v, f.v.RootToken
			old := f.secret(t, mgmtClientID)

			var fired atomic.Bool
			var patches atomic.Int32 // secret PATCHes Auth0 applied
			var once sync.Once
			killed := make(chan error, 1)
			f.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
				if p == emulator.AfterApply && isSecretPatch(r, id) {
					defer patches.Add(1)
				}
				if fired.Load() || !step.at(p, r, id, patches.Load() > 0) {
					return nil
				}
				var fault *emulator.Fault
				once.Do(func() {
					fired.Store(true)
					fault = &emulator.Fault{Drop: true, Do: func() {
						_, err := v.KillPlugins(10 * time.Second)
						killed <- err
					}}
				})
				return fault
			})
			resp, err := v.TryDo(root, http.MethodPut, mount+"/config/rotate-root", nil, time.Minute)
			select {
			case err := <-killed:
				if err != nil {
					t.Fatalf("killing the plugin: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("the kill never fired (rotate-root answered %v, %v)", resp, err)
			}
			f.emu.SetFaults(nil)
			if err == nil && resp.Status == http.StatusOK {
				// Only a retry on a new plugin process can answer 200, and that retry
				// finished the interrupted rotation and rotated once more.
				if !retriedAfterShutdown(v.Logs(), "config/rotate-root") {
					t.Fatalf("rotate-root answered 200 although its plugin was killed, and Vault did not retry it: %s", resp.Raw)
				}
				if n := patches.Load(); n != 2 {
					t.Fatalf("Vault retried rotate-root on a new plugin process and it answered 200, but Auth0 applied %d secret changes, want 2 (the interrupted rotation's and the retry's)", n)
				}
				t.Logf("the plugin's exit was seen first: Vault retried rotate-root on a new plugin process, which answered 200")
			}

			// Requests to the mount restart the plugin; its start resolves the pending
			// secret in the background and logs it once the new secret is current (the
			// mount's client rebuilt). A role rotation after that uses the new secret.
			deadline := time.Now().Add(time.Minute)
			resolved := false
			for {
				resolved = resolved || strings.Contains(v.Logs(), "finished an interrupted root rotation")
				r, err := v.TryDo(root, http.MethodPut, mount+"/rotate/myapp", nil, 30*time.Second)
				if resolved && err == nil && r.Status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("within a minute after the kill, the rotation was finished: %v; last role rotation: %v %v\n%s", resolved, r, err, lastLines(v.Logs(), 30))
				}
				time.Sleep(200 * time.Millisecond)
			}
			current := f.secret(t, mgmtClientID)
			if current == old {
				t.Fatal("the root rotation was logged as finished but Auth0 still holds the old secret")
			}
			audience := f.emuURL + "/api/v2/"
			if code := authenticateFor(t, f.emuURL, mgmtClientID, old, audience); code != http.StatusUnauthorized {
				t.Errorf("the old root secret: status %d at Auth0, want 401", code)
			}
			if code := authenticateFor(t, f.emuURL, mgmtClientID, current, audience); code != http.StatusOK {
				t.Errorf("the new root secret: status %d at Auth0, want 200", code)
			}
			for _, s := range []string{old, current} {
				if strings.Contains(v.Logs(), s) {
					t.Error("a root secret appears in the server log")
				}
			}
		})
	}
}

// retriedAfterShutdown tells whether Vault's log shows a request to path failing with "plugin
// is shut down" (sdk ErrPluginShutdown), the error on which Vault starts the plugin again and
// retries the request once. The line comes from Vault's request tracing, at trace level.
func retriedAfterShutdown(log, path string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "handle request: transport=gRPC path="+path+" status=finished") &&
			strings.Contains(line, `err="plugin is shut down"`) {
			return true
		}
	}
	return false
}

// lastLines is the end of a log, for failure messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
