package integration

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// TestNoSecretsInLogs drives configuration (refused and accepted), rotations
// and reads with the server at trace level, then searches the server's log
// (which carries the plugin's logs) for every secret that existed during the
// test. TestRotateRoot does the same for the management secret's rotation.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	v, root := f.v, f.v.RootToken

	// Every secret that existed during the test.
	secrets := []string{f.mgmt.ClientSecret}
	record := func(clientID string) {
		t.Helper()
		secrets = append(secrets, f.secret(t, clientID))
	}

	// A refused configuration: the wrong secret must not be logged either.
	wrong := "wrong-" + randomHex(t)
	secrets = append(secrets, wrong)
	if out, err := v.CLI(t, root, "write", mount+"/config",
		"domain="+f.emuURL, "client_id="+mgmtClientID, "client_secret="+wrong); err == nil {
		t.Fatalf("config write with a wrong secret succeeded: %s", out)
	}

	f.configure(t)
	v.MustCLI(t, root, "read", mount+"/config")

	app := f.addApp(t, "myapp-id", "My App")
	record(app.ClientID)
	f.createRole(t, "myapp", app.ClientID)
	for i := 0; i < 3; i++ {
		f.rotate(t, root, "myapp")
		record(app.ClientID)
	}
	creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/myapp"))
	if got := str(t, creds, "client_secret"); got != f.secret(t, app.ClientID) {
		t.Fatalf("creds client_secret is not the emulator's current secret")
	}
	v.MustCLI(t, root, "read", mount+"/creds/myapp", "version=1")
	v.MustCLI(t, root, "read", mount+"/versions/myapp")
	status, _, errs := v.Request(t, root, http.MethodGet, mount+"/creds/myapp?version=2", nil)
	if status != http.StatusOK {
		t.Fatalf("GET creds/myapp?version=2: status %d: %v", status, errs)
	}

	// Stop the server so that every plugin log line has been written.
	v.Stop(t)
	logs := v.Logs()
	// Trace-level lines about the plugin's requests prove the log is captured
	// at the level asked for.
	if !strings.Contains(logs, "secrets."+vaulttest.PluginName) || !strings.Contains(logs, "path=rotate/myapp") {
		t.Fatalf("the server log holds no trace-level lines of the plugin's requests; is it captured?\n%s", logs)
	}
	for i, s := range secrets {
		if s == "" {
			t.Errorf("secret %d is empty", i)
			continue
		}
		if n := strings.Count(logs, s); n > 0 {
			t.Errorf("secret %d of %d appears %d times in the Vault server log (%s)", i, len(secrets), n, v.LogPath())
		}
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
