package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// checkScopes are what a mount with client secret and private_key_jwt roles is granted
// before the test takes each away.
var checkScopes = []string{"read:clients", "read:client_keys", "update:client_keys", "update:clients",
	"create:client_credentials", "read:client_credentials", "update:client_credentials", "delete:client_credentials"}

// auth0/config/check through Vault's HTTP API, with a token whose policy allows only that
// path, on a mount with a client secret role and a private_key_jwt role, for a tenant that
// misses each scope in turn: the features that need the scope fail and name it, the
// answer is ok only when no feature the mount uses fails, and it changes nothing.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	v := f.v
	v.WritePolicy(t, "auth0-check", `path "auth0/config/check" { capabilities = ["read"] }`)
	token := v.CreateToken(t, "auth0-check")
	check := func(query string) (map[string]any, []string) {
		t.Helper()
		r := v.Do(t, token, http.MethodGet, mount+"/config/check"+query, nil)
		if r.Status != http.StatusOK || r.Data == nil {
			t.Fatalf("GET config/check%s: %d %s", query, r.Status, r.Raw)
		}
		return r.Data, r.Warnings
	}

	// Before config: refused, saying what to do.
	if r := v.Do(t, token, http.MethodGet, mount+"/config/check", nil); r.Status != http.StatusBadRequest ||
		len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "write the Management API credentials first") {
		t.Fatalf("config/check before config: %d %v", r.Status, r.Errors)
	}

	if err := f.emu.SetGrant(mgmtClientID, emulator.ManagementGrant, checkScopes); err != nil {
		t.Fatal(err)
	}
	f.configure(t)
	app := f.addApp(t, "myapp-id", "My App")
	f.createRole(t, "myapp", app.ClientID)
	keyApp := f.addApp(t, "mykeys-id", "My Keys")
	v.MustCLI(t, v.RootToken, "write", mount+"/roles/mykeys", "client_id="+keyApp.ClientID,
		"credential_type=private_key_jwt", "allow_auth_method_change=true")
	stats := f.emu.Stats()

	cases := []struct {
		dropped string
		missing map[string][]string // the features that fail, and what to grant
	}{
		{"", nil},
		{"read:clients", nil},     // read:client_keys reads applications too
		{"read:client_keys", nil}, // read:client_credentials reads secrets too
		{"update:client_keys", map[string][]string{"rotate": {"update:client_keys"}, "root": {"update:client_keys"}}},
		{"update:clients", nil}, // update:client_keys updates applications too
		{"create:client_credentials", map[string][]string{"keys": {"create:client_credentials"}}},
		{"read:client_credentials", map[string][]string{"keys": {"read:client_credentials"}, "drift": {"read:client_credentials"}}},
		{"update:client_credentials", map[string][]string{"keys": {"update:client_credentials"}}},
		{"delete:client_credentials", map[string][]string{"keys": {"delete:client_credentials"}}},
	}
	if len(cases) != len(checkScopes)+1 {
		t.Fatalf("%d cases for %d scopes", len(cases), len(checkScopes))
	}
	// The mount uses rotate (myapp), keys (mykeys) and drift (drift_check_period's
	// default); root is not set to rotate.
	required := map[string]bool{"rotate": true, "keys": true, "drift": true}
	for i, tc := range cases {
		if i > 0 && tc.dropped != checkScopes[i-1] {
			t.Fatalf("case %d drops %s, want %s", i, tc.dropped, checkScopes[i-1])
		}
		granted := slices.DeleteFunc(slices.Clone(checkScopes), func(s string) bool { return s == tc.dropped })
		if err := f.emu.SetGrant(mgmtClientID, emulator.ManagementGrant, granted); err != nil {
			t.Fatal(err)
		}
		data, warnings := check("")
		scopes, _ := data["scopes"].(map[string]any)
		if got := strs(scopes["granted"]); !slices.Equal(got, slices.Sorted(slices.Values(granted))) {
			t.Errorf("without %q: granted %v, want %v", tc.dropped, got, granted)
		}
		features, _ := scopes["features"].(map[string]any)
		if len(features) != 7 {
			t.Fatalf("without %q: features %v", tc.dropped, features)
		}
		var failingRequired []string
		for name, raw := range features {
			feature, _ := raw.(map[string]any)
			want := tc.missing[name]
			if feature["ok"] != (len(want) == 0) || !slices.Equal(strs(feature["missing"]), want) || feature["required"] != required[name] {
				t.Errorf("without %q: %s = %v, want missing %v, required %v", tc.dropped, name, feature, want, required[name])
			}
			if len(want) > 0 && required[name] {
				failingRequired = append(failingRequired, name)
			}
		}
		if data["ok"] != (len(failingRequired) == 0) || len(warnings) != len(failingRequired) {
			t.Errorf("without %q: ok %v, warnings %q; want one for each of %v", tc.dropped, data["ok"], warnings, failingRequired)
		}
		for _, name := range failingRequired {
			if !slices.ContainsFunc(warnings, func(w string) bool {
				return strings.HasPrefix(w, name+" (") && strings.Contains(w, strings.Join(tc.missing[name], " and "))
			}) {
				t.Errorf("without %q: no warning names what %s needs: %q", tc.dropped, name, warnings)
			}
		}
		roles, _ := data["roles"].(map[string]any)
		if len(roles) != 2 || data["roles_total"] != float64(2) {
			t.Errorf("without %q: roles %v of %v", tc.dropped, roles, data["roles_total"])
		}
	}

	if err := f.emu.SetGrant(mgmtClientID, emulator.ManagementGrant, checkScopes); err != nil {
		t.Fatal(err)
	}
	// roles= through the query string.
	data, _ := check("?roles=mykeys")
	roles, _ := data["roles"].(map[string]any)
	mykeys, _ := roles["mykeys"].(map[string]any)
	if len(roles) != 1 || mykeys["ok"] != true || mykeys["credential_type"] != "private_key_jwt" || mykeys["client_id"] != keyApp.ClientID {
		t.Errorf("roles=mykeys: %v", roles)
	}
	// The CLI reads it as README says.
	out := v.MustCLIJSON(t, token, "read", mount+"/config/check")
	if d, _ := out["data"].(map[string]any); d == nil || d["ok"] != true {
		t.Errorf("vault read %s/config/check: %v", mount, out)
	}

	// Nothing changed at Auth0; and the token may read nothing else.
	after := f.emu.Stats()
	if after.Rotations[app.ClientID] != stats.Rotations[app.ClientID] || after.CredentialsCreated[keyApp.ClientID] != stats.CredentialsCreated[keyApp.ClientID] ||
		after.AuthMethodPatches[keyApp.ClientID] != stats.AuthMethodPatches[keyApp.ClientID] || after.SecretPatches[mgmtClientID] != stats.SecretPatches[mgmtClientID] {
		t.Errorf("Auth0 saw changes: %+v, then %+v", stats, after)
	}
	for _, path := range []string{"config", "roles/myapp", "creds/myapp", "status"} {
		if r := v.Do(t, token, http.MethodGet, mount+"/"+path, nil); r.Status != http.StatusForbidden {
			t.Errorf("the check's token read %s: %d", path, r.Status)
		}
	}
}

// strs is a JSON list of strings; empty for none.
func strs(x any) []string {
	list, _ := x.([]any)
	var out []string
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}
