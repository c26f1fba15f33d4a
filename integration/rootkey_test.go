package integration

import (
	"net/http"
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
