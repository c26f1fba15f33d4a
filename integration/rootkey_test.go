package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRootKeyOnRealVault migrates a mount on a real Vault from its Management API client
// secret to a key of its own in one config write, then rotates that key with an overlap,
// across a plugin reload: the roles go on rotating through the key-authenticated client,
// the old secret is refused, config never shows a secret or a key, and at the end Auth0
// holds only the key in use.
func TestRootKeyOnRealVault(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	app := f.addApp(t, "rootkey-app-id", "Root Key App")
	f.createRole(t, "rk", app.ClientID)
	f.rotate(t, root, "rk")

	v.MustCLI(t, root, "write", mount+"/config", "credential_type=private_key_jwt", "root_overlap_period=3s")
	cfg := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/config"))
	first := str(t, cfg, "key_id")
	if cfg["credential_type"] != "private_key_jwt" || first == "" {
		t.Fatalf("config after the migration: %v", cfg)
	}
	for k, x := range cfg {
		if s, ok := x.(string); ok && (s == f.mgmt.ClientSecret || strings.Contains(s, "PRIVATE KEY")) {
			t.Fatalf("config read shows the secret or the key in %s", k)
		}
	}
	if !f.emu.UsesPrivateKeyJWT(f.mgmt.ClientID) {
		t.Fatal("the Management API application is not on private_key_jwt")
	}
	if code := authenticateFor(t, f.emuURL, f.mgmt.ClientID, f.mgmt.ClientSecret, f.emuURL+"/api/v2/"); code != http.StatusUnauthorized {
		t.Fatalf("the old Management API secret gets %d after the migration, want 401", code)
	}
	f.rotate(t, root, "rk")

	rot := dataOf(t, v.MustCLIJSON(t, root, "write", "-f", mount+"/config/rotate-root"))
	second := str(t, rot, "key_id")
	if second == first || rot["overlap_until"] == nil {
		t.Fatalf("rotate-root answered %v", rot)
	}
	if stored, attached := auth0Keys(f.emu, f.mgmt.ClientID); len(stored) != 2 || len(attached) != 2 {
		t.Fatalf("during the overlap Auth0 stores %v, attaches %v", stored, attached)
	}
	v.MustCLI(t, root, "plugin", "reload", "-mounts="+mount+"/")
	f.rotate(t, root, "rk")
	waitFor(t, 30*time.Second, "the previous key detached and deleted", func() bool {
		stored, attached := auth0Keys(f.emu, f.mgmt.ClientID)
		return len(stored) == 1 && stored[0] == second && len(attached) == 1
	})
	f.rotate(t, root, "rk")
	if n := f.rotations(app.ClientID); n != 4 {
		t.Fatalf("%d rotations of the role's application, want 4", n)
	}
	if code := authenticate(t, f.emuURL, app.ClientID, str(t, dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/rk")), "client_secret")); code != http.StatusOK {
		t.Fatalf("the role's secret gets %d", code)
	}
}

// TestRootKeyCrashAtEachStep kills -9 the plugin at each step of a rotation of the mount's
// own key, at the exact request where the step happens at Auth0 (as TestKeyCrashAtEachStep
// does for a key role): before the new key's POST is applied, after it is applied (its
// answer lost), after the PATCH that attaches it (its answer lost). After each kill the
// engine converges by itself: no credential of the Management API application the mount
// holds no key for, at most two, the key in use attached, and the mount's roles rotate.
func TestRootKeyCrashAtEachStep(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=50")
	app := f.addApp(t, "rootkey-crash-app-id", "Root Key Crash App")
	f.createRole(t, "rkc", app.ClientID)
	v.MustCLI(t, root, "write", mount+"/config", "credential_type=private_key_jwt", "root_overlap_period=0")
	led := newKCLedger(f.emu, f.mgmt.ClientID, v)
	readCfg := func() (map[string]any, error) {
		r, err := v.TryDo(root, http.MethodGet, mount+"/config", nil, 30*time.Second)
		if err != nil {
			return nil, err
		}
		if r.Status != http.StatusOK {
			return nil, fmt.Errorf("status %d: %v", r.Status, r.Errors)
		}
		return r.Data, nil
	}
	for _, step := range []string{kcBeforePost, kcAfterPost, kcAfterAttach} {
		before, err := readCfg()
		if err != nil {
			t.Fatal(err)
		}
		armed := led.arm(step)
		v.TryDo(root, http.MethodPut, mount+"/config/rotate-root", nil, time.Minute) //nolint:errcheck // the plugin dies under it
		select {
		case <-armed.fired:
		case <-time.After(30 * time.Second):
			t.Fatalf("the kill at %s did not happen", step)
		}
		if armed.err != nil {
			t.Fatalf("killing the plugin at %s: %v", step, armed.err)
		}
		// The next request brings the plugin back; its root job finishes the rotation (or
		// a rotate-root retried by hand does).
		var cfg map[string]any
		waitFor(t, kcConverge, "the mount's key rotation to converge after the kill at "+step, func() bool {
			cfg, err = readCfg()
			if err != nil || cfg["pending_version"] != nil {
				return false
			}
			if cfg["key_id"] == before["key_id"] {
				v.TryDo(root, http.MethodPut, mount+"/config/rotate-root", nil, time.Minute) //nolint:errcheck // retried until it lands
				return false
			}
			return true
		})
		stored, attached := auth0Keys(f.emu, f.mgmt.ClientID)
		cur, _ := cfg["key_id"].(string)
		held := append([]string{cur}, keyStrings(cfg["previous_key_ids"])...)
		for _, id := range stored {
			if !slices.Contains(held, id) {
				t.Errorf("after the kill at %s Auth0 holds credential %s of the Management API application, which the mount holds no key for (held %v)", step, id, held)
			}
		}
		if len(stored) > 2 || !slices.Contains(attached, cur) {
			t.Errorf("after the kill at %s Auth0 stores %v, attaches %v; the key in use is %s", step, stored, attached, cur)
		}
		f.rotate(t, root, "rkc")
	}
	stats := f.emu.Stats()
	t.Logf("%d kills; Auth0 created %d credentials for the Management API application, deleted %d", led.kills(), stats.CredentialsCreated[f.mgmt.ClientID], stats.CredentialsDeleted[f.mgmt.ClientID])
}
