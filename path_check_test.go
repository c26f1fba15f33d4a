package auth0

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
)

// check reads config/check, which must answer (not an error), and returns its data and
// warnings.
func (e *testEnv) check(data map[string]interface{}) (map[string]interface{}, []string) {
	e.t.Helper()
	resp, err := e.request(logical.ReadOperation, "config/check", data)
	if err != nil || resp == nil || resp.IsError() {
		e.t.Fatalf("config/check: %v %v", resp, err)
	}
	return resp.Data, resp.Warnings
}

// section is the named map of a check's answer.
func section(t *testing.T, data map[string]interface{}, name string) map[string]interface{} {
	t.Helper()
	m, ok := data[name].(map[string]interface{})
	if !ok {
		t.Fatalf("config/check answered %s = %#v, want a map", name, data[name])
	}
	return m
}

// features is the check's feature -> {ok, missing, required}.
func features(t *testing.T, data map[string]interface{}) map[string]map[string]interface{} {
	t.Helper()
	out := map[string]map[string]interface{}{}
	for name, f := range section(t, section(t, data, "scopes"), "features") {
		out[name] = f.(map[string]interface{})
	}
	return out
}

// roleProblems is the problems the check found for role name.
func roleProblems(t *testing.T, data map[string]interface{}, name string) []string {
	t.Helper()
	r, ok := section(t, data, "roles")[name].(map[string]interface{})
	if !ok {
		t.Fatalf("config/check has no role %q: %v", name, section(t, data, "roles"))
	}
	problems := r["problems"].([]string)
	if r["ok"] != (len(problems) == 0) {
		t.Errorf("role %q: ok %v with problems %v", name, r["ok"], problems)
	}
	return problems
}

// credentialScopes are the scopes private_key_jwt and certificate roles need beyond a
// client secret mount's.
var credentialScopes = []string{"create:client_credentials", "read:client_credentials", "update:client_credentials", "delete:client_credentials"}

// TestConfigCheckScopes: a tenant missing each scope in turn, from a client secret mount's
// grant and from a key mount's, makes exactly the features that need it fail, naming what
// to grant; the check's verdict is what the engine meets when it runs the feature.
func TestConfigCheckScopes(t *testing.T) {
	bases := map[string][]string{"client_secret": allScopes, "keys": keyScopes}
	// want: per base and dropped scope ("" drops none), the features that are not ok and
	// what to grant for each; every other feature is ok.
	want := map[string]map[string]map[string][]string{
		"client_secret": {
			"":                   {"keys": credentialScopes, "drift": {"read:client_credentials"}},
			"read:clients":       {"keys": credentialScopes, "drift": {"read:client_credentials"}}, // read:client_keys reads clients too
			"read:client_keys":   {"import": {"read:client_keys"}, "recovery": {"read:client_keys"}, "staged_verification": {"read:client_keys"}, "keys": credentialScopes, "drift": {"read:client_credentials"}},
			"update:client_keys": {"rotate": {"update:client_keys"}, "root": {"update:client_keys"}, "keys": append([]string{"update:clients"}, credentialScopes...), "drift": {"read:client_credentials"}},
		},
		"keys": {
			"":                          {},
			"read:clients":              {},
			"read:client_keys":          {}, // read:client_credentials reads secrets too
			"update:client_keys":        {"rotate": {"update:client_keys"}, "root": {"update:client_keys"}},
			"update:clients":            {}, // update:client_keys updates clients too
			"create:client_credentials": {"keys": {"create:client_credentials"}},
			"read:client_credentials":   {"keys": {"read:client_credentials"}, "drift": {"read:client_credentials"}},
			"update:client_credentials": {"keys": {"update:client_credentials"}},
			"delete:client_credentials": {"keys": {"delete:client_credentials"}},
		},
	}
	// What the engine meets: the recipe's features (recipes_scopes_test.go), each on a
	// fresh emulator with the same grant, against the check's features they exercise.
	reality := []struct {
		run   func(e *testEnv) error
		needs []string // features of the check that must all be ok for run to work
	}{
		{featureRotate, []string{"rotate"}},
		{featureReadSecrets, []string{"rotate", "import", "recovery", "staged_verification"}},
		{featureRotateRoot, []string{"root"}},
		{featurePrivateKeyJWT, []string{"keys"}},
	}
	for _, baseName := range slices.Sorted(maps.Keys(bases)) {
		base := bases[baseName]
		for _, dropped := range append([]string{""}, base...) {
			missing, ok := want[baseName][dropped]
			if !ok {
				t.Fatalf("no expectation for %s without %q", baseName, dropped)
			}
			granted := slices.DeleteFunc(slices.Clone(base), func(s string) bool { return s == dropped })
			t.Run(fmt.Sprintf("%s without %s", baseName, dropped), func(t *testing.T) {
				t.Parallel()
				e := newTestEnv(t, granted...)
				e.configure()
				e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": "720h"})
				data, warnings := e.check(nil)
				scopes := section(t, data, "scopes")
				if got := scopes["granted"].([]string); !slices.Equal(got, slices.Sorted(slices.Values(granted))) {
					t.Errorf("granted %v, want %v", got, granted)
				}
				got := features(t, data)
				if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, slices.Sorted(slices.Values(engine.CheckFeatureNames()))) {
					t.Fatalf("features %v, want %v", names, engine.CheckFeatureNames())
				}
				var requiredFailing []string
				for name, f := range got {
					wantMissing := missing[name]
					if f["ok"] != (len(wantMissing) == 0) || !slices.Equal(f["missing"].([]string), orEmpty(wantMissing)) {
						t.Errorf("%s: ok %v, missing %v; want missing %v", name, f["ok"], f["missing"], wantMissing)
					}
					// No role: rotate is what a first role needs; root_rotation_period is set.
					if wantRequired := name == "rotate" || name == "root"; f["required"] != wantRequired {
						t.Errorf("%s: required %v, want %v", name, f["required"], wantRequired)
					}
					if len(wantMissing) > 0 && (name == "rotate" || name == "root") {
						requiredFailing = append(requiredFailing, name)
					}
				}
				if data["ok"] != (len(requiredFailing) == 0) || len(warnings) != len(requiredFailing) {
					t.Errorf("ok %v with warnings %q; want a warning for each of %v", data["ok"], warnings, requiredFailing)
				}
				for _, name := range requiredFailing {
					if !slices.ContainsFunc(warnings, func(w string) bool {
						return strings.HasPrefix(w, name+" (") && strings.Contains(w, strings.Join(missing[name], " and ")) && strings.Contains(w, "Machine to Machine Applications")
					}) {
						t.Errorf("no warning says what %s needs (%v): %q", name, missing[name], warnings)
					}
				}
				for _, r := range reality {
					predicted := true
					for _, f := range r.needs {
						predicted = predicted && got[f]["ok"] == true
					}
					err := r.run(newTestEnv(t, granted...))
					if (err == nil) != predicted {
						t.Errorf("the check predicts %v works: %v; the engine meets: %v", r.needs, predicted, err)
					}
				}
			})
		}
	}
}

// A feature is required once the mount uses it: keys with a private_key_jwt role, root
// with the mount on its own key; a missing scope of a feature not required is no problem.
func TestConfigCheckRequiredFeatures(t *testing.T) {
	t.Run("client secret mount", func(t *testing.T) {
		e := newTestEnv(t)
		e.configure()
		data, warnings := e.check(nil)
		f := features(t, data)
		if data["ok"] != true || len(warnings) != 0 || f["rotate"]["required"] != true || f["keys"]["required"] != false || f["keys"]["ok"] != false {
			t.Fatalf("no role: ok %v, warnings %q, rotate %v, keys %v; want ok, rotate required, keys not ok and not required", data["ok"], warnings, f["rotate"], f["keys"])
		}
		e.ok(logical.UpdateOperation, "roles/keys", map[string]interface{}{"client_id": testAppID, "credential_type": "private_key_jwt", "allow_auth_method_change": true})
		data, warnings = e.check(nil)
		f = features(t, data)
		// drift checks of a key role list its credentials: required too while checks are on.
		if data["ok"] != false || f["keys"]["required"] != true || f["rotate"]["required"] != false || len(warnings) != 2 ||
			!strings.HasPrefix(warnings[0], "keys (") || !strings.Contains(warnings[0], strings.Join(credentialScopes, " and ")) ||
			!strings.HasPrefix(warnings[1], "drift (") || !strings.Contains(warnings[1], "needs read:client_credentials,") {
			t.Fatalf("with a private_key_jwt role: ok %v, keys %v, rotate %v, warnings %q; want keys required, naming %v, and drift naming read:client_credentials", data["ok"], f["keys"], f["rotate"], warnings, credentialScopes)
		}
	})
	t.Run("drift checks of secret roles", func(t *testing.T) {
		e := newTestEnv(t, "read:clients", "update:client_keys")
		e.configureWithRole(nil)
		data, warnings := e.check(nil)
		f := features(t, data)
		if data["ok"] != false || f["drift"]["required"] != true || !slices.Equal(f["drift"]["missing"].([]string), []string{"read:client_keys"}) ||
			len(warnings) != 1 || !strings.HasPrefix(warnings[0], "drift (") {
			t.Fatalf("secret role without read:client_keys: ok %v, drift %v, warnings %q; want drift required, missing read:client_keys", data["ok"], f["drift"], warnings)
		}
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"drift_check_period": 0})
		data, warnings = e.check(nil)
		if f := features(t, data); data["ok"] != true || len(warnings) != 0 || f["drift"]["required"] != false {
			t.Fatalf("drift checks off: ok %v, drift %v, warnings %q; want ok, drift not required", data["ok"], f["drift"], warnings)
		}
	})
	t.Run("mount on its own key", func(t *testing.T) {
		e, _ := newRootKeyEnv(t, nil)
		data, warnings := e.check(nil)
		if f := features(t, data); data["ok"] != true || len(warnings) != 0 || f["root"]["required"] != true {
			t.Fatalf("ok %v, warnings %q, root %v; want ok with root required", data["ok"], warnings, f["root"])
		}
		less := slices.DeleteFunc(slices.Clone(keyScopes), func(s string) bool { return s == "delete:client_credentials" })
		if err := e.emu.SetGrant(testMgmtID, emulator.ManagementGrant, less); err != nil {
			t.Fatal(err)
		}
		data, warnings = e.check(nil)
		f := features(t, data)
		if data["ok"] != false || !slices.Equal(f["root"]["missing"].([]string), []string{"delete:client_credentials"}) || f["keys"]["required"] != false ||
			len(warnings) != 1 || !strings.HasPrefix(warnings[0], "root (") {
			t.Fatalf("without delete:client_credentials: ok %v, root %v, keys %v, warnings %q; want root failing, naming the scope", data["ok"], f["root"], f["keys"], warnings)
		}
	})
}

// The tenant's rate limit, from the x-ratelimit-* headers of the Management API's answer,
// against config's rate_limit.
func TestConfigCheckRateLimit(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	data, warnings := e.check(nil)
	if rl := section(t, data, "rate_limit"); rl["observed"] != false || rl["ok"] != true || len(warnings) != 0 {
		t.Fatalf("a tenant that sends no x-ratelimit headers: %v, warnings %q; want observed false and no problem", rl, warnings)
	}
	// Auth0's self-service bucket: 10 requests, refilled at 2.5 a second.
	e.emu.SetRateLimitBucket(10, 2.5)
	for _, tc := range []struct {
		rate  float64
		above bool
	}{{1000, true}, {11, true}, {10, false}, {2, false}} {
		e.ok(logical.UpdateOperation, "config", map[string]interface{}{"rate_limit": tc.rate})
		data, warnings := e.check(nil)
		rl := section(t, data, "rate_limit")
		if rl["observed"] != true || rl["tenant_limit"] != 10 || rl["configured"] != tc.rate || rl["above_tenant_limit"] != tc.above || rl["ok"] != !tc.above || data["ok"] != !tc.above {
			t.Errorf("rate_limit=%g: %v (ok %v); want the tenant's limit 10, above it: %v", tc.rate, rl, data["ok"], tc.above)
		}
		if r, _ := rl["tenant_remaining"].(int); r < 0 || r > 9 || rl["tenant_reset"] == nil {
			t.Errorf("rate_limit=%g: remaining %v, reset %v; want at most 9 left after the check's request, and the reset time", tc.rate, rl["tenant_remaining"], rl["tenant_reset"])
		}
		if tc.above != (len(warnings) == 1 && strings.Contains(warnings[0], fmt.Sprintf("rate_limit is %g requests per second, above the 10 requests", tc.rate)) && strings.Contains(warnings[0], "rate_limit=8")) || !tc.above && len(warnings) != 0 {
			t.Errorf("rate_limit=%g: warnings %q", tc.rate, warnings)
		}
		e.clock.Advance(10 * time.Second) // the bucket refills
	}
}

// Clock skew: the Date of Auth0's answers against the engine's clock, with a warning past
// what private_key_jwt assertions tolerate.
func TestConfigCheckClockSkew(t *testing.T) {
	for _, tc := range []struct {
		auth0Ahead time.Duration // Auth0's clock minus Vault's
		warning    string
	}{
		{0, ""},
		{3 * time.Second, ""},
		{-30 * time.Second, "Vault's clock is %d s ahead of Auth0's"},
		{90 * time.Second, "Vault's clock is %d s behind Auth0's"},
	} {
		t.Run(tc.auth0Ahead.String(), func(t *testing.T) {
			t.Parallel()
			e := newTestEnvWith(t, func(opts *emulator.Options, clk *fakeClock) {
				opts.Now = func() time.Time { return clk.Now().Add(tc.auth0Ahead) }
			})
			e.configure()
			data, warnings := e.check(nil)
			got, ok := data["clock_skew_seconds"].(int64)
			want := -int64(tc.auth0Ahead.Seconds())
			// The Date header has a resolution of one second.
			if !ok || math.Abs(float64(got-want)) > 1 || tc.auth0Ahead == 0 && got != 0 {
				t.Fatalf("clock_skew_seconds %v, want %d (within the Date header's second)", data["clock_skew_seconds"], want)
			}
			if tc.warning == "" && (len(warnings) != 0 || data["ok"] != true) {
				t.Fatalf("skew %d s: ok %v, warnings %q; want none", got, data["ok"], warnings)
			}
			if tc.warning != "" && (len(warnings) != 1 || !strings.HasPrefix(warnings[0], fmt.Sprintf(tc.warning, max(got, -got))) || !strings.Contains(warnings[0], "NTP") || data["ok"] != false) {
				t.Fatalf("skew %d s: ok %v, warnings %q; want one starting %q", got, data["ok"], warnings, fmt.Sprintf(tc.warning, max(got, -got)))
			}
		})
	}
}

// A custom domain: Auth0 refuses the default audience, which names the custom domain, and
// accepts the Management API identifier of the canonical one. The emulator plays it with
// a canonical audience that is not its address.
func TestConfigCheckAudience(t *testing.T) {
	const canonical = "https://acme.emulator.test/api/v2/"
	e := newTestEnvWith(t, func(opts *emulator.Options, _ *fakeClock) { opts.Audience = canonical })
	if err := e.tryConfigure(map[string]interface{}{"audience": canonical}); err != nil {
		t.Fatal(err)
	}
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
	// The default audience, written without the check at write time.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"audience": "", "verify_connection": false})
	data, warnings := e.check(nil)
	aud := section(t, data, "audience")
	problems := aud["problems"].([]string)
	if data["ok"] != false || aud["ok"] != false || aud["accepted"] != false || aud["default"] != true || len(problems) != 1 ||
		!strings.Contains(problems[0], "Auth0 refused a Management API token for audience") || !strings.Contains(problems[0], "custom domain") {
		t.Fatalf("default audience on a custom domain: ok %v, audience %v; want refused, saying to set the canonical audience", data["ok"], aud)
	}
	if s := section(t, data, "scopes"); s["error"] == nil || len(s["features"].(map[string]interface{})) != 0 {
		t.Errorf("without a token: scopes %v; want an error and no feature verdicts", s)
	}
	if p := roleProblems(t, data, "app"); len(p) != 1 || !strings.Contains(p[0], "not checked at Auth0") {
		t.Errorf("role app: %q; want it not checked at Auth0", p)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings %q; want the audience's and the role's", warnings)
	}

	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"audience": strings.TrimSuffix(canonical, "/"), "verify_connection": false})
	data, _ = e.check(nil)
	if problems := section(t, data, "audience")["problems"].([]string); len(problems) != 2 || !strings.Contains(problems[0], "trailing slash") {
		t.Errorf("audience without its trailing slash: %q; want it named, and Auth0's refusal", problems)
	}

	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"audience": canonical})
	data, warnings = e.check(nil)
	aud = section(t, data, "audience")
	if data["ok"] != true || len(warnings) != 0 || aud["ok"] != true || aud["accepted"] != true || aud["default"] != false || aud["audience"] != canonical {
		t.Fatalf("canonical audience: ok %v, audience %v, warnings %q; want accepted, no problem", data["ok"], aud, warnings)
	}
}

// Roles: whether the application exists, authenticates the way the role rotates, and
// whether the schedule fits the role's own periods.
func TestConfigCheckRoles(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configure()
	onKey := func(clientID string) string {
		e.t.Helper()
		e.emu.AddClient(emulator.Client{ClientID: clientID})
		_, publicPEM, err := auth0api.GenerateRSAKey(2048)
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.emu.AddCredential(clientID, emulator.CredentialSpec{Name: "key", PEM: publicPEM})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.emu.AttachCredentials(clientID, info.ID); err != nil {
			t.Fatal(err)
		}
		return clientID
	}
	role := func(name, clientID string, extra map[string]interface{}) {
		t.Helper()
		if clientID != testAppID && clientID != testApp2ID {
			if _, ok := e.emu.ClientSecret(clientID); !ok {
				e.emu.AddClient(emulator.Client{ClientID: clientID})
			}
		}
		data := map[string]interface{}{"client_id": clientID}
		maps.Copy(data, extra)
		e.ok(logical.UpdateOperation, "roles/"+name, data)
	}
	role("good", testAppID, nil)
	role("gone", "gone-app", nil)
	e.emu.RemoveClient("gone-app")
	role("public", "public-app", nil)
	if err := e.emu.UseClientSecret("public-app", "none"); err != nil {
		t.Fatal(err)
	}
	role("on-key", "switched-app", nil)
	onKey("switched-app")
	role("keys", onKey("key-app"), map[string]interface{}{"credential_type": "private_key_jwt"})
	role("keys-back", onKey("key-back-app"), map[string]interface{}{"credential_type": "private_key_jwt"})
	if err := e.emu.UseClientSecret("key-back-app", "client_secret_post"); err != nil {
		t.Fatal(err)
	}
	role("staged", testApp2ID, map[string]interface{}{"rotation_strategy": "staged", "rotation_period": "48h", "stage_period": "24h"})
	// An entry an older build stored, before stage_period was checked against the period.
	staged, err := model.LoadRole(t.Context(), e.storage, "staged")
	if err != nil {
		t.Fatal(err)
	}
	staged.StagePeriod = 72 * time.Hour
	if err := model.SaveRole(t.Context(), e.storage, "staged", staged); err != nil {
		t.Fatal(err)
	}
	role("other", "other-app", nil)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"allowed_client_ids": "app-*,gone-app,public-app,switched-app,key-app,key-back-app"})

	data, warnings := e.check(nil)
	want := map[string][]string{
		"good":      nil,
		"keys":      nil,
		"gone":      {`application "gone-app" does not exist in Auth0`},
		"public":    {`application "public-app" is a public application (token_endpoint_auth_method "none")`},
		"on-key":    {`application "switched-app" authenticates with private_key_jwt, not with a client secret`},
		"keys-back": {`application "key-back-app" authenticates with a client secret (token_endpoint_auth_method "client_secret_post"); switching it to private_key_jwt`},
		"staged":    {"stage_period (72h0m0s) must be shorter than rotation_period (48h0m0s)"},
		"other":     {`client_id "other-app" is not in this mount's allowed_client_ids`},
	}
	if got := slices.Sorted(maps.Keys(section(t, data, "roles"))); !slices.Equal(got, slices.Sorted(maps.Keys(want))) || data["roles_total"] != len(want) {
		t.Fatalf("roles checked %v of %v; want %v", got, data["roles_total"], slices.Sorted(maps.Keys(want)))
	}
	problems := 0
	for name, wantProblems := range want {
		got := roleProblems(t, data, name)
		problems += len(got)
		if len(got) != len(wantProblems) {
			t.Errorf("role %q: problems %q, want %q", name, got, wantProblems)
			continue
		}
		for i, p := range wantProblems {
			if !strings.HasPrefix(got[i], p) || !slices.Contains(warnings, fmt.Sprintf("role %q: %s", name, got[i])) {
				t.Errorf("role %q: problem %q, want it to start %q and be a warning", name, got[i], p)
			}
		}
	}
	if data["ok"] != false || len(warnings) != problems {
		t.Errorf("ok %v, warnings %q; want one per role problem (%d)", data["ok"], warnings, problems)
	}
	if r := section(t, data, "roles")["staged"].(map[string]interface{}); r["rotation_strategy"] != "staged" || r["client_id"] != testApp2ID || r["credential_type"] != "client_secret" {
		t.Errorf("role staged: %v", r)
	}

	// roles= names the roles to check; one that does not exist says so.
	data, warnings = e.check(map[string]interface{}{"roles": "good, nope"})
	if got := slices.Sorted(maps.Keys(section(t, data, "roles"))); !slices.Equal(got, []string{"good", "nope"}) {
		t.Fatalf("roles=good,nope checked %v", got)
	}
	if p := roleProblems(t, data, "nope"); len(p) != 1 || !strings.HasPrefix(p[0], "no such role") || len(warnings) != 1 || len(roleProblems(t, data, "good")) != 0 {
		t.Fatalf("roles=good,nope: nope %q, warnings %q", p, warnings)
	}
}

// A mount with more roles than one check looks up at Auth0 checks the first by name, says
// so, and makes one Management API read per role checked.
func TestConfigCheckRolesCapped(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	n := engine.CheckRolesLimit + 2
	for i := range n {
		id := fmt.Sprintf("capped-app-%02d", i)
		e.emu.AddClient(emulator.Client{ClientID: id})
		e.ok(logical.UpdateOperation, fmt.Sprintf("roles/r%02d", i), map[string]interface{}{"client_id": id})
	}
	before := e.emu.Stats().Requests
	data, warnings := e.check(nil)
	if got := e.emu.Stats().Requests - before; got != engine.CheckRolesLimit+1 {
		t.Errorf("the check made %d Management API requests, want one per role checked and one for the tenant", got)
	}
	roles := section(t, data, "roles")
	if len(roles) != engine.CheckRolesLimit || roles["r00"] == nil || roles[fmt.Sprintf("r%02d", engine.CheckRolesLimit)] != nil || data["roles_total"] != n {
		t.Fatalf("checked %d roles of %v: %v", len(roles), data["roles_total"], slices.Sorted(maps.Keys(roles)))
	}
	if data["ok"] != true || len(warnings) != 1 || !strings.HasPrefix(warnings[0], fmt.Sprintf("the mount has %d roles; this check covered the first %d by name", n, engine.CheckRolesLimit)) {
		t.Fatalf("ok %v, warnings %q", data["ok"], warnings)
	}
	last := fmt.Sprintf("r%02d", n-1)
	data, warnings = e.check(map[string]interface{}{"roles": last})
	if roles := section(t, data, "roles"); len(roles) != 1 || roles[last] == nil || len(warnings) != 0 {
		t.Fatalf("roles=%s: %v, warnings %q", last, roles, warnings)
	}
}

// Without config the check is refused with what to do; with Auth0 out of reach it answers
// what it could not check, not an internal error.
func TestConfigCheckWithoutAuth0(t *testing.T) {
	e := newTestEnv(t)
	if msg := e.userError(logical.ReadOperation, "config/check", nil); !strings.Contains(msg, "write the Management API credentials first: vault write <mount>/config") {
		t.Fatalf("without config: %q", msg)
	}
	e.configureWithRole(nil)
	closed := httptest.NewServer(nil)
	closed.Close()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"domain": closed.URL, "client_id": testMgmtID, "client_secret": e.mgmtSecret(),
		"verify_connection": false, "allow_domain_change": true})
	data, warnings := e.check(nil)
	scopes := section(t, data, "scopes")
	if data["ok"] != false || !strings.Contains(fmt.Sprint(scopes["error"]), "could not obtain a Management API token") || len(warnings) != 2 ||
		!strings.Contains(warnings[0], "check that Vault reaches the domain") {
		t.Fatalf("Auth0 out of reach: ok %v, scopes %v, warnings %q", data["ok"], scopes, warnings)
	}
	if rl := section(t, data, "rate_limit"); rl["observed"] != false || rl["ok"] != false {
		t.Errorf("rate_limit %v; want not observed", rl)
	}
	if p := roleProblems(t, data, "app"); len(p) != 1 || !strings.Contains(p[0], "not checked at Auth0") {
		t.Errorf("role app: %q; want it not checked at Auth0", p)
	}
	if _, ok := data["clock_skew_seconds"]; ok {
		t.Errorf("clock_skew_seconds %v without an answer from Auth0", data["clock_skew_seconds"])
	}
}

// The check changes nothing, in storage or at Auth0, and its answer holds no secret, key
// or token.
func TestConfigCheckChangesNothing(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configure()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": 0})
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "roles/keys", map[string]interface{}{"client_id": testApp2ID, "credential_type": "private_key_jwt", "allow_auth_method_change": true})
	e.ok(logical.UpdateOperation, "rotate/keys", nil)
	creds := e.ok(logical.ReadOperation, "creds/keys", nil)

	puts, stats := e.storage.putsTotal.Load(), e.emu.Stats()
	resp, err := e.request(logical.ReadOperation, "config/check", nil)
	if err != nil || resp.IsError() {
		t.Fatal(resp, err)
	}
	if got := e.storage.putsTotal.Load(); got != puts {
		t.Errorf("the check wrote %d storage entries", got-puts)
	}
	after := e.emu.Stats()
	for _, c := range []struct {
		what        string
		before, now map[string]int
	}{{"rotations", stats.Rotations, after.Rotations}, {"secret changes", stats.SecretPatches, after.SecretPatches},
		{"credentials created", stats.CredentialsCreated, after.CredentialsCreated}, {"credentials deleted", stats.CredentialsDeleted, after.CredentialsDeleted},
		{"authentication method changes", stats.AuthMethodPatches, after.AuthMethodPatches}} {
		if !maps.Equal(c.before, c.now) {
			t.Errorf("Auth0 saw %s: %v, then %v", c.what, c.before, c.now)
		}
	}
	raw, err := json.Marshal(map[string]interface{}{"data": resp.Data, "warnings": resp.Warnings})
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string]string{"the Management API secret": e.mgmtSecret(), "app-1's secret": e.appSecret(testAppID),
		"the private key": creds["private_key"].(string), "a token": "eyJ", "a PEM block": "-----BEGIN"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the answer holds %s: %s", name, raw)
		}
	}
	if resp.Data["ok"] != true {
		t.Errorf("a healthy mount: %s", raw)
	}
}
