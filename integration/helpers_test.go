package integration

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

const (
	mgmtClientID = "vault-mgmt"
	// apiAudience is the custom API the emulated applications may get tokens for.
	apiAudience = "https://api.example.test/"
	mount       = "auth0"
)

// fixture is one test's world: an Auth0 emulator holding the management
// application, and a Vault dev server with the plugin registered and mounted
// at auth0/.
type fixture struct {
	emu    *emulator.Server
	emuURL string // http://127.0.0.1:PORT, the plugin's domain
	mgmt   emulator.Client
	v      *vaulttest.Vault
}

// startEmulator starts the emulator on a loopback port with the management
// application vault-mgmt.
func startEmulator(t testing.TB) (*emulator.Server, string, emulator.Client) {
	t.Helper()
	emu := emulator.New(emulator.Options{})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	mgmt := emu.AddClient(emulator.Client{
		ClientID: mgmtClientID,
		Name:     "Vault",
		Grants: map[string][]string{
			emulator.ManagementGrant: {"read:clients", "read:client_keys", "update:client_keys"},
		},
	})
	return emu, srv.URL, mgmt
}

// newFixture starts an emulator and a Vault with the plugin mounted at auth0/.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	emu, emuURL, mgmt := startEmulator(t)
	v := vaulttest.StartDevServer(t, pluginDir)
	v.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	v.Mount(t, mount, pluginVersion)
	return &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: v}
}

// newRotatedApp is the common start: a fixture, configured, with application "myapp-id"
// bound to role "myapp" and rotated once (version 1).
func newRotatedApp(t *testing.T) (*fixture, emulator.Client) {
	t.Helper()
	f := newFixture(t)
	f.configure(t)
	app := f.addApp(t, "myapp-id", "My App")
	f.createRole(t, "myapp", app.ClientID)
	f.rotate(t, f.v.RootToken, "myapp")
	return f, app
}

// configure writes auth0/config for the emulator's management application.
func (f *fixture) configure(t *testing.T) {
	t.Helper()
	f.v.MustCLI(t, f.v.RootToken, "write", mount+"/config",
		"domain="+f.emuURL,
		"client_id="+f.mgmt.ClientID,
		"client_secret="+f.mgmt.ClientSecret)
}

// addApp adds a machine-to-machine application allowed to get tokens for
// apiAudience.
func (f *fixture) addApp(t *testing.T, clientID, name string) emulator.Client {
	t.Helper()
	return f.emu.AddClient(emulator.Client{
		ClientID: clientID,
		Name:     name,
		Grants:   map[string][]string{apiAudience: {}},
	})
}

// createRole creates role name for clientID.
func (f *fixture) createRole(t *testing.T, name, clientID string) {
	t.Helper()
	f.v.MustCLI(t, f.v.RootToken, "write", mount+"/roles/"+name, "client_id="+clientID)
}

// rotate rotates role name with token through the CLI and returns the whole
// JSON answer (fields under "data").
func (f *fixture) rotate(t *testing.T, token, name string) map[string]any {
	t.Helper()
	return f.v.MustCLIJSON(t, token, "write", "-f", mount+"/rotate/"+name)
}

// secret returns the emulator's current secret of clientID.
func (f *fixture) secret(t *testing.T, clientID string) string {
	t.Helper()
	s, ok := f.emu.ClientSecret(clientID)
	if !ok {
		t.Fatalf("emulator has no client %q", clientID)
	}
	return s
}

// rotations returns how many rotate-secret calls the emulator applied to clientID.
func (f *fixture) rotations(clientID string) int { return f.emu.Stats().Rotations[clientID] }

// authenticate performs a client credentials grant for apiAudience at the
// emulator, as an application would with the secret Vault gave it, and
// returns the HTTP status (200 with an access token, 401 for a wrong secret).
func authenticate(t *testing.T, emuURL, clientID, secret string) int {
	t.Helper()
	return authenticateFor(t, emuURL, clientID, secret, apiAudience)
}

// authenticateFor is authenticate for another audience, e.g. the Management
// API's (emuURL + "/api/v2/").
func authenticateFor(t *testing.T, emuURL, clientID, secret, audience string) int {
	t.Helper()
	resp, err := http.PostForm(emuURL+"/oauth/token", url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {secret},
		"audience":      {audience},
	})
	if err != nil {
		t.Fatalf("POST /oauth/token: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("POST /oauth/token: status %d, undecodable body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK && body.AccessToken == "" {
		t.Fatalf("POST /oauth/token: 200 without an access_token")
	}
	return resp.StatusCode
}

// dataOf returns the "data" object of a CLI JSON answer.
func dataOf(t *testing.T, secret map[string]any) map[string]any {
	t.Helper()
	d, ok := secret["data"].(map[string]any)
	if !ok {
		t.Fatalf("answer has no data object: %v", secret)
	}
	return d
}

// str returns m[key], failing unless it is a string.
func str(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("field %q = %#v (%T), want a string; all fields: %v", key, m[key], m[key], keys(m))
	}
	return s
}

// num returns m[key] as an int, accepting a JSON number or a decimal string.
func num(t *testing.T, m map[string]any, key string) int {
	t.Helper()
	switch x := m[key].(type) {
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	case json.Number:
		if n, err := strconv.Atoi(string(x)); err == nil {
			return n
		}
	case string:
		if n, err := strconv.Atoi(x); err == nil {
			return n
		}
	}
	t.Fatalf("field %q = %#v (%T), want an integer; all fields: %v", key, m[key], m[key], keys(m))
	return 0
}

// rfc3339 returns m[key] parsed as an RFC 3339 time.
func rfc3339(t *testing.T, m map[string]any, key string) time.Time {
	t.Helper()
	s := str(t, m, key)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("field %q = %q is not RFC 3339: %v", key, s, err)
	}
	return tm
}

// sameSecond reports whether two renderings of one instant agree, allowing
// for one of them being truncated to whole seconds.
func sameSecond(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Second && d < time.Second
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// assertNoSecret fails if the data of a CLI JSON answer has a field whose
// name mentions a secret, or if the answer contains any of secrets.
func assertNoSecret(t *testing.T, what string, answer map[string]any, secrets ...string) {
	t.Helper()
	if data, ok := answer["data"].(map[string]any); ok {
		for k := range data {
			if strings.Contains(k, "secret") {
				t.Errorf("%s has a field %q: %v", what, k, keys(data))
			}
		}
	}
	raw, err := json.Marshal(answer)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(raw), s) {
			t.Errorf("%s contains a client secret: %s", what, raw)
		}
	}
}
