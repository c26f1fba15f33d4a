package integration

import (
	"net/http"
	"strings"
	"testing"
)

// TestRotateRoot rotates the management application's own secret through
// auth0/config/rotate-root: Auth0 gets exactly one secret change (a PATCH of
// a secret Vault generated, never rotate-secret), the answer and
// the server log never hold either secret, the old secret is dead and the
// engine keeps working with the new one.
func TestRotateRoot(t *testing.T) {
	t.Parallel()
	f, app := newRotatedApp(t)
	v, root := f.v, f.v.RootToken
	secrets := []string{f.mgmt.ClientSecret, app.ClientSecret, f.secret(t, app.ClientID)}

	answer, err := v.CLIJSON(t, root, "write", "-f", mount+"/config/rotate-root")
	if err != nil {
		t.Fatalf("rotate-root: %v", err)
	}
	newMgmt := f.secret(t, mgmtClientID)
	secrets = append(secrets, newMgmt)
	if newMgmt == f.mgmt.ClientSecret {
		t.Fatalf("rotate-root did not change the management secret at Auth0")
	}
	if n := f.emu.Stats().SecretPatches[mgmtClientID]; n != 1 {
		t.Errorf("Auth0 saw %d secret changes of %s, want 1", n, mgmtClientID)
	}
	if n := f.rotations(mgmtClientID); n != 0 {
		t.Errorf("Auth0 saw %d rotate-secret calls for %s, want 0", n, mgmtClientID)
	}
	if answer != nil {
		assertNoSecret(t, "rotate-root answer", answer, secrets...)
	}
	cfg := v.MustCLIJSON(t, root, "read", mount+"/config")
	assertNoSecret(t, "config read", cfg, secrets...)
	if got := str(t, dataOf(t, cfg), "client_id"); got != mgmtClientID {
		t.Errorf("config client_id = %q, want %q", got, mgmtClientID)
	}

	mgmtAudience := f.emuURL + "/api/v2/"
	if code := authenticateFor(t, f.emuURL, mgmtClientID, f.mgmt.ClientSecret, mgmtAudience); code != http.StatusUnauthorized {
		t.Errorf("the old management secret: status %d at Auth0, want 401", code)
	}
	if code := authenticateFor(t, f.emuURL, mgmtClientID, newMgmt, mgmtAudience); code != http.StatusOK {
		t.Errorf("the new management secret: status %d at Auth0, want 200", code)
	}

	// The engine now works with the new secret.
	d := dataOf(t, f.rotate(t, root, "myapp"))
	if got := num(t, d, "version"); got != 2 {
		t.Errorf("rotation after rotate-root: version = %d, want 2", got)
	}
	secrets = append(secrets, f.secret(t, app.ClientID))
	creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/myapp"))
	if str(t, creds, "client_secret") != f.secret(t, app.ClientID) {
		t.Errorf("creds client_secret is not Auth0's current secret")
	}

	v.Stop(t)
	logs := v.Logs()
	for i, s := range secrets {
		if n := strings.Count(logs, s); n > 0 {
			t.Errorf("secret %d of %d appears %d times in the Vault server log (%s)", i, len(secrets), n, v.LogPath())
		}
	}
}
