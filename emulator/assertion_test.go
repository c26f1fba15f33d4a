package emulator_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// migrated returns a fixture whose appID is on private_key_jwt with key 0
// (RS256) and key 1 (alg1) attached.
func migrated(t *testing.T, opts emulator.Options, alg1 string) (p *pkFixture, a, b string) {
	t.Helper()
	p = newPKFixture(t, opts)
	a = p.newCred(appID, 0, "")
	b = p.newCred(appID, 1, alg1)
	p.attach(appID, a, b)
	return p, a, b
}

func TestAssertionLogin(t *testing.T) {
	p, _, _ := migrated(t, emulator.Options{}, "PS256")
	now := p.clock.Now()

	check := func(name string, status int, body, wantScope string) {
		t.Helper()
		if status != 200 {
			t.Fatalf("%s: %d %s", name, status, body)
		}
		var tr struct {
			AccessToken string `json:"access_token"`
			Scope       string `json:"scope"`
		}
		if err := json.Unmarshal([]byte(body), &tr); err != nil || tr.Scope != wantScope {
			t.Fatalf("%s: %s", name, body)
		}
	}
	status, body := p.assertionLogin(p.sign(0, "RS256", true))
	check("RS256 with kid", status, body, "read:clients")
	status, body = p.assertionLogin(p.sign(0, "RS256", false))
	check("RS256 without kid", status, body, "read:clients")
	status, body = p.assertionLogin(p.sign(1, "PS256", true))
	check("PS256 with kid", status, body, "read:clients")
	status, body = p.assertionLogin(p.sign(1, "PS256", false))
	check("PS256 without kid (second attached key)", status, body, "read:clients")

	// A JSON body, a matching client_id, a custom API with a narrowed scope.
	raw, _ := json.Marshal(map[string]string{
		"grant_type": "client_credentials", "client_id": appID, "audience": customAud, "scope": "read:orders",
		"client_assertion_type": emulator.ClientAssertionType, "client_assertion": p.sign(0, "RS256", true),
	})
	req, _ := http.NewRequest("POST", p.ts.URL+"/oauth/token", strings.NewReader(string(raw)))
	req.Header.Set("Content-Type", "application/json")
	status, body = p.send(req)
	check("JSON body, custom API", status, body, "read:orders")

	// aud over plain HTTP, aud as a one-element array, iat and nbf within
	// the skew, exp at the far edge (5 minutes plus the skew, without iat).
	for name, claims := range map[string]map[string]any{
		"http aud":                 {"aud": "http://" + p.ts.Listener.Addr().String() + "/"},
		"aud array":                {"aud": []string{p.tenantURL()}},
		"iat and nbf within skew":  {"iat": now.Add(10 * time.Second).Unix(), "nbf": now.Add(10 * time.Second).Unix()},
		"exp at the edge":          {"exp": now.Add(5*time.Minute + 10*time.Second).Unix(), "iat": nil},
		"iat 5 minutes before exp": {"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(4 * time.Minute).Unix()},
	} {
		status, body := p.assertionLogin(signClaims(t, 0, nil, baseClaims(p, claims)))
		check(name, status, body, "read:clients")
	}

	// The token works at the Management API (the app may read clients).
	_, body = p.assertionLogin(p.sign(0, "RS256", true))
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal([]byte(body), &tr)
	if resp, got := p.api("GET", "/api/v2/clients/"+appID+"?fields=name", tr.AccessToken, nil, ""); resp.StatusCode != 200 {
		t.Fatalf("management API with an assertion-issued token: %d %s", resp.StatusCode, got)
	}
	st := p.srv.Stats()
	if st.AssertionLogins[appID] != 11 || st.TokenRequests[appID] != 11 {
		t.Errorf("AssertionLogins = %v, TokenRequests = %v", st.AssertionLogins, st.TokenRequests)
	}
}

// baseClaims are valid claims of an assertion for appID, with changes
// applied (a nil value deletes the claim).
func baseClaims(p *pkFixture, changes map[string]any) map[string]any {
	now := p.clock.Now()
	c := map[string]any{
		"iss": appID, "sub": appID, "aud": p.tenantURL(),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"jti": rand.Text(),
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestAssertionRefusals(t *testing.T) {
	p, _, _ := migrated(t, emulator.Options{}, "RS384")
	now := p.clock.Now()
	kid0 := emulator.KeyID(&key(0).PublicKey)
	unattached := p.newCred(otherAppID, 2, "")
	_ = unattached

	type req struct {
		form  url.Values
		basic []string
	}
	withAssertion := func(a string) req { return req{form: assertionForm(a, p.aud)} }
	claims := func(changes map[string]any) req {
		return withAssertion(signClaims(t, 0, nil, baseClaims(p, changes)))
	}
	header := func(h map[string]any, signer int) req {
		return withAssertion(signClaims(t, signer, h, baseClaims(p, nil)))
	}
	tests := []struct {
		name     string
		req      req
		status   int
		code     string
		wantDesc string // substring
	}{
		{"wrong client_assertion_type", func() req {
			r := withAssertion(p.sign(0, "RS256", true))
			r.form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return r
		}(), 400, "invalid_request", "Invalid client_assertion_type"},
		{"client_assertion missing", func() req {
			r := withAssertion("")
			r.form.Set("client_assertion", "")
			return r
		}(), 400, "invalid_request", "Missing required parameter: client_assertion"},
		{"client_assertion_type missing", func() req {
			r := withAssertion(p.sign(0, "RS256", true))
			r.form.Del("client_assertion_type")
			return r
		}(), 400, "invalid_request", "Missing required parameter: client_assertion_type"},
		{"with client_secret too", func() req {
			r := withAssertion(p.sign(0, "RS256", true))
			r.form.Set("client_secret", appSecret)
			return r
		}(), 400, "invalid_request", "Only one client authentication method"},
		{"with HTTP Basic too", func() req {
			r := withAssertion(p.sign(0, "RS256", true))
			r.basic = []string{appID, appSecret}
			return r
		}(), 400, "invalid_request", "Only one client authentication method"},
		{"not a JWT", withAssertion("abc.def"), 401, "invalid_client", "not a signed JWT"},
		{"alg of the other credential", header(map[string]any{"alg": "RS384", "kid": kid0}, 0), 401, "invalid_client", `'alg' "RS384" does not match`},
		{"alg none", withAssertion(unsigned(map[string]any{"alg": "none"}, baseClaims(p, nil))), 401, "invalid_client", `'alg' "none" does not match`},
		{"alg HS256", withAssertion(unsigned(map[string]any{"alg": "HS256"}, baseClaims(p, nil))), 401, "invalid_client", `'alg' "HS256" does not match`},
		{"unknown kid", header(map[string]any{"alg": "RS256", "kid": "nope"}, 0), 401, "invalid_client", `no credential enabled for private_key_jwt has kid "nope"`},
		{"kid of a stored, unattached credential", header(map[string]any{"alg": "RS256", "kid": emulator.KeyID(&key(2).PublicKey)}, 2), 401, "invalid_client", "no credential enabled"},
		{"signed by another key, with the kid", header(map[string]any{"alg": "RS256", "kid": kid0}, 3), 401, "invalid_client", "invalid signature"},
		{"signed by another key, without kid", header(map[string]any{"alg": "RS256"}, 3), 401, "invalid_client", "invalid signature"},
		{"iss differs from sub", claims(map[string]any{"iss": otherAppID}), 401, "invalid_client", "'iss' and 'sub' claims must both be the client_id"},
		{"iss missing", claims(map[string]any{"iss": nil}), 401, "invalid_client", "'iss' and 'sub' claims are required"},
		{"sub too long", claims(map[string]any{"iss": strings.Repeat("x", 65), "sub": strings.Repeat("x", 65)}), 401, "invalid_client", "at most 64 characters"},
		{"client_id differs", func() req {
			r := withAssertion(p.sign(0, "RS256", true))
			r.form.Set("client_id", otherAppID)
			return r
		}(), 401, "invalid_client", "'sub' claim does not match client_id"},
		{"unknown client", claims(map[string]any{"iss": "nope", "sub": "nope"}), 401, "invalid_client", "unknown client"},
		{"aud is the token endpoint", claims(map[string]any{"aud": p.tenantURL() + "oauth/token"}), 401, "invalid_client", "'aud' claim must be"},
		{"aud is the Management API", claims(map[string]any{"aud": p.aud}), 401, "invalid_client", "'aud' claim must be"},
		{"aud without trailing slash", claims(map[string]any{"aud": strings.TrimSuffix(p.tenantURL(), "/")}), 401, "invalid_client", "'aud' claim must be"},
		{"aud with two values", claims(map[string]any{"aud": []string{p.tenantURL(), "https://other/"}}), 401, "invalid_client", "'aud' claim must be"},
		{"aud missing", claims(map[string]any{"aud": nil}), 401, "invalid_client", "'aud' claim must be"},
		{"exp missing", claims(map[string]any{"exp": nil}), 401, "invalid_client", "'exp' claim is required"},
		{"exp not a number", claims(map[string]any{"exp": "soon"}), 401, "invalid_client", "'exp' claim must be a NumericDate"},
		{"exp now", claims(map[string]any{"exp": now.Unix()}), 401, "invalid_client", "the assertion has expired"},
		{"exp past", claims(map[string]any{"exp": now.Add(-time.Second).Unix()}), 401, "invalid_client", "the assertion has expired"},
		{"exp beyond 5 minutes", claims(map[string]any{"iat": nil, "exp": now.Add(5*time.Minute + 11*time.Second).Unix()}), 401, "invalid_client", "no more than 5 minutes in the future"},
		{"exp more than 5 minutes after iat", claims(map[string]any{"iat": now.Add(-2 * time.Minute).Unix(), "exp": now.Add(3*time.Minute + time.Second).Unix()}), 401, "invalid_client", "no more than 5 minutes after 'iat'"},
		{"iat in the future", claims(map[string]any{"iat": now.Add(11 * time.Second).Unix()}), 401, "invalid_client", "'iat' claim must not be in the future"},
		{"nbf in the future", claims(map[string]any{"nbf": now.Add(11 * time.Second).Unix()}), 401, "invalid_client", "not valid yet ('nbf')"},
		{"jti missing", claims(map[string]any{"jti": nil}), 401, "invalid_client", "'jti' claim is required"},
		{"jti empty", claims(map[string]any{"jti": ""}), 401, "invalid_client", "'jti' claim is required"},
		{"jti too long", claims(map[string]any{"jti": strings.Repeat("j", 65)}), 401, "invalid_client", "'jti' claim must be at most 64 characters"},
		{"jti not a string", claims(map[string]any{"jti": 7}), 401, "invalid_client", "not a JSON object with string iss, sub and jti"},
		{"client secret while on private_key_jwt", req{form: ccForm(appID, appSecret, p.aud)}, 401, "access_denied", "Unauthorized"},
		{"client secret by Basic while on private_key_jwt", req{form: ccForm("", "", p.aud), basic: []string{appID, appSecret}}, 401, "access_denied", "Unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.postToken(tc.req.form, tc.req.basic)
			code, desc := oauthErr(t, body)
			if status != tc.status || code != tc.code || !strings.Contains(desc, tc.wantDesc) {
				t.Fatalf("got %d %s", status, body)
			}
		})
	}
	if n := p.srv.Stats().AssertionLogins[appID]; n != 0 {
		t.Errorf("AssertionLogins = %d after refusals", n)
	}
	// The 64-character limits are inclusive.
	if status, body := p.assertionLogin(signClaims(t, 0, nil, baseClaims(p, map[string]any{"jti": strings.Repeat("j", 64)}))); status != 200 {
		t.Errorf("64-character jti: %d %s", status, body)
	}
}

// unsigned builds a JWT with an empty signature.
func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func TestAssertionReplayAndExpiry(t *testing.T) {
	p, a, _ := migrated(t, emulator.Options{}, "")

	// One-time use: the same assertion twice is refused, even after the
	// first use failed later on (an unknown audience).
	assertion := p.sign(0, "RS256", true)
	if status, body := p.assertionLogin(assertion); status != 200 {
		t.Fatalf("first use: %d %s", status, body)
	}
	status, body := p.assertionLogin(assertion)
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "already been used") {
		t.Fatalf("replay: %d %s", status, body)
	}
	assertion = p.sign(0, "RS256", true)
	if status, body := p.postToken(assertionForm(assertion, "https://unknown.example.com/"), nil); status != 403 {
		t.Fatalf("unknown audience: %d %s", status, body)
	}
	if status, _ := p.assertionLogin(assertion); status != 401 {
		t.Fatal("an assertion that authenticated a refused request was accepted again")
	}
	// The same jti for another client is another assertion.
	other := p.srv.AddClient(emulator.Client{Grants: map[string][]string{emulator.ManagementGrant: {"read:clients"}}}).ClientID
	if _, err := p.srv.AddCredential(other, emulator.CredentialSpec{PublicKey: &key(2).PublicKey}); err != nil {
		t.Fatal(err)
	}
	stored, _, _ := p.srv.Credentials(other)
	if err := p.srv.AttachCredentials(other, stored[0].ID); err != nil {
		t.Fatal(err)
	}
	shared := baseClaims(p, map[string]any{"jti": "shared-jti"})
	if status, body := p.assertionLogin(signClaims(t, 0, nil, shared)); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	shared["iss"], shared["sub"] = other, other
	if status, body := p.assertionLogin(signClaims(t, 2, nil, shared)); status != 200 {
		t.Fatalf("same jti, other client: %d %s", status, body)
	}

	// An expired credential does not authenticate; the other one still does.
	if status, body := p.call("PATCH", "/api/v2/clients/"+appID+"/credentials/"+a,
		map[string]any{"expires_at": p.clock.Now().Add(time.Minute).Format(time.RFC3339)}); status != 200 {
		t.Fatal(status, body)
	}
	if status, body := p.assertionLogin(p.sign(0, "RS256", true)); status != 200 {
		t.Fatalf("before expiry: %d %s", status, body)
	}
	p.clock.Advance(time.Minute)
	status, body = p.assertionLogin(p.sign(0, "RS256", true))
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "the credential has expired") {
		t.Fatalf("expired credential: %d %s", status, body)
	}
	if status, _ := p.assertionLogin(p.sign(0, "RS256", false)); status != 401 {
		t.Fatal("expired credential accepted without kid")
	}
	if status, body := p.assertionLogin(p.sign(1, "RS256", false)); status != 200 {
		t.Fatalf("the other credential: %d %s", status, body)
	}
	// An expired credential can no longer be attached.
	status, body = p.call("PATCH", "/api/v2/clients/"+appID, migrationBody(a))
	if status != 400 || !strings.Contains(body, "has expired") {
		t.Fatalf("attach expired: %d %s", status, body)
	}
}

// TestHardCutover: the secret works until the PATCH, assertions after it;
// switching back reverses that.
func TestHardCutover(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	a := p.newCred(appID, 0, "")
	if status, _ := p.postToken(ccForm(appID, appSecret, p.aud), nil); status != 200 {
		t.Fatal("secret refused before the migration")
	}
	status, body := p.assertionLogin(p.sign(0, "RS256", true))
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || desc != "Client is not configured for private_key_jwt authentication" {
		t.Fatalf("assertion before the migration: %d %s", status, body)
	}
	p.attach(appID, a)
	if status, _ := p.postToken(ccForm(appID, appSecret, p.aud), nil); status != 401 {
		t.Fatal("secret accepted after the migration")
	}
	if status, body := p.assertionLogin(p.sign(0, "RS256", true)); status != 200 {
		t.Fatalf("assertion after the migration: %d %s", status, body)
	}
	if status, body := p.call("PATCH", "/api/v2/clients/"+appID, `{"client_authentication_methods":null,"token_endpoint_auth_method":"client_secret_post"}`); status != 200 {
		t.Fatal(status, body)
	}
	if status, _ := p.postToken(ccForm(appID, appSecret, p.aud), nil); status != 200 {
		t.Fatal("secret refused after switching back")
	}
	if status, _ := p.assertionLogin(p.sign(0, "RS256", true)); status != 401 {
		t.Fatal("assertion accepted after switching back")
	}
}

// TestAssertionPropagation: for PropagationDelay after a PATCH of the
// attached credentials, each token request sees the previous or the new
// configuration at random.
func TestAssertionPropagation(t *testing.T) {
	const delay = 30 * time.Second
	p := newPKFixture(t, emulator.Options{PropagationDelay: delay, Seed: 7})
	a := p.newCred(appID, 0, "")
	b := p.newCred(appID, 1, "")

	count := func(login func() int) (ok, refused int) {
		for range 40 {
			if login() == 200 {
				ok++
			} else {
				refused++
			}
		}
		return ok, refused
	}
	secret := func() int { s, _ := p.postToken(ccForm(appID, appSecret, p.aud), nil); return s }
	withKey := func(i int) func() int {
		return func() int { s, _ := p.assertionLogin(p.sign(i, "RS256", true)); return s }
	}

	// Migration: the secret and the assertion each work about half the time.
	p.attach(appID, a)
	if ok, refused := count(secret); ok == 0 || refused == 0 {
		t.Errorf("secret during the migration's propagation: %d accepted, %d refused", ok, refused)
	}
	if ok, refused := count(withKey(0)); ok == 0 || refused == 0 {
		t.Errorf("assertion during the migration's propagation: %d accepted, %d refused", ok, refused)
	}
	p.clock.Advance(delay)
	if ok, _ := count(secret); ok != 0 {
		t.Errorf("secret accepted %d times after the propagation", ok)
	}
	if _, refused := count(withKey(0)); refused != 0 {
		t.Errorf("assertion refused %d times after the propagation", refused)
	}

	// Rotation from a to b: each key works about half the time.
	p.attach(appID, b)
	p.clock.Advance(delay - time.Second)
	if ok, refused := count(withKey(0)); ok == 0 || refused == 0 {
		t.Errorf("old key during the rotation's propagation: %d accepted, %d refused", ok, refused)
	}
	if ok, refused := count(withKey(1)); ok == 0 || refused == 0 {
		t.Errorf("new key during the rotation's propagation: %d accepted, %d refused", ok, refused)
	}
	p.clock.Advance(time.Second)
	if ok, _ := count(withKey(0)); ok != 0 {
		t.Errorf("old key accepted %d times after the propagation", ok)
	}
	if _, refused := count(withKey(1)); refused != 0 {
		t.Errorf("new key refused %d times after the propagation", refused)
	}
	// The API reports the new state at once.
	if _, attached, _ := p.srv.Credentials(appID); len(attached) != 1 || attached[0] != b {
		t.Errorf("attached %v", attached)
	}
	// SetPropagationDelay(0) ends a propagation at once.
	p.attach(appID, a)
	p.srv.SetPropagationDelay(0)
	if ok, _ := count(withKey(1)); ok != 0 {
		t.Errorf("old key accepted %d times with the delay set to 0", ok)
	}
}

func TestSignAssertion(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, err := emulator.SignAssertion(key(0), "PS256", "kid-1", "client", "https://tenant.example.com/", now, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		t.Fatalf("%q", a)
	}
	var h, c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		t.Fatalf("%s %s", hb, cb)
	}
	if h["alg"] != "PS256" || h["kid"] != "kid-1" || c["iss"] != "client" || c["sub"] != "client" ||
		c["aud"] != "https://tenant.example.com/" || c["iat"] != float64(now.Unix()) ||
		c["exp"] != float64(now.Add(2*time.Minute).Unix()) || len(c["jti"].(string)) == 0 {
		t.Errorf("header %v claims %v", h, c)
	}
	if _, err := emulator.SignAssertion(key(0), "ES256", "", "client", "aud", now, time.Minute); err == nil {
		t.Error("ES256 accepted")
	}
	if _, err := emulator.SignAssertion(nil, "RS256", "", "client", "aud", now, time.Minute); err == nil {
		t.Error("nil key accepted")
	}
}

// TestAssertionAudienceOption: with Options.Audience, assertions are for the
// tenant that audience belongs to, whatever the Host.
func TestAssertionAudienceOption(t *testing.T) {
	clock := newStepClock()
	srv := emulator.New(emulator.Options{Audience: "https://tenant.example.com/api/v2/", Now: clock.Now})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	f := &fixture{t: t, srv: srv, ts: ts}
	id := srv.AddClient(emulator.Client{Grants: map[string][]string{emulator.ManagementGrant: {"read:clients"}}}).ClientID
	info, err := srv.AddCredential(id, emulator.CredentialSpec{PublicKey: &key(0).PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AttachCredentials(id, info.ID); err != nil {
		t.Fatal(err)
	}
	for aud, want := range map[string]int{
		"https://tenant.example.com/":                  200,
		"https://" + ts.Listener.Addr().String() + "/": 401,
	} {
		a, err := emulator.SignAssertion(key(0), "RS256", info.KeyID, id, aud, clock.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := f.postToken(assertionForm(a, "https://tenant.example.com/api/v2/"), nil); status != want {
			t.Errorf("aud %s: %d %s", aud, status, body)
		}
	}
}
