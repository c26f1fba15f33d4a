package emulator_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// claimsOf decodes the payload of a JWT access token as a client reads it.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("JWT payload %s: %v", payload, err)
	}
	return claims
}

// A client-credentials access token is a JWT that carries, as Auth0's do, the granted
// scopes space separated in its scope claim (narrowed when the request asks for fewer),
// its audience, its issuer and its client.
func TestAccessTokenClaims(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	host := f.ts.Listener.Addr().String()
	cases := []struct {
		name, id, secret, scope string
		want                    string
	}{
		{"every scope granted", adminID, adminSecret, "", strings.Join(allScopes, " ")},
		{"one scope granted", readerID, otherSecret, "", "read:clients"},
		{"narrowed by the request", adminID, adminSecret, "update:client_keys read:clients", "read:clients update:client_keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := ccForm(tc.id, tc.secret, f.aud)
			if tc.scope != "" {
				form.Set("scope", tc.scope)
			}
			status, body := f.postToken(form, nil)
			if status != http.StatusOK {
				t.Fatalf("token: %d %s", status, body)
			}
			var tr struct {
				AccessToken string `json:"access_token"`
				Scope       string `json:"scope"`
			}
			if err := json.Unmarshal([]byte(body), &tr); err != nil {
				t.Fatal(err)
			}
			claims := claimsOf(t, tr.AccessToken)
			if claims["scope"] != tc.want || tr.Scope != tc.want {
				t.Errorf("scope claim %q, answer's scope %q; want %q in both", claims["scope"], tr.Scope, tc.want)
			}
			if claims["aud"] != f.aud || claims["iss"] != "https://"+host+"/" || claims["azp"] != tc.id || claims["gty"] != "client-credentials" {
				t.Errorf("claims %v: want aud %s, iss https://%s/, azp %s, gty client-credentials", claims, f.aud, host, tc.id)
			}
		})
	}
}

// Every answer, of the token endpoint and of the Management API, success or refusal,
// carries a Date from the emulator's clock, as Auth0's answers carry Auth0's.
func TestAnswersDatedByTheEmulatorsClock(t *testing.T) {
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	f := newFixture(t, emulator.Options{Now: func() time.Time { return at }, RateLimit: 100})
	tok := f.token(adminID, adminSecret)
	dateOf := func(name string, h http.Header) {
		t.Helper()
		got, err := http.ParseTime(h.Get("Date"))
		if err != nil || !got.Equal(at) {
			t.Errorf("%s: Date %q, want %s", name, h.Get("Date"), at.Format(http.TimeFormat))
		}
	}
	req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/oauth/token", strings.NewReader(ccForm(adminID, adminSecret, f.aud).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	dateOf("token endpoint", resp.Header)

	ok, _ := f.api(http.MethodGet, "/api/v2/clients/"+targetID+"?fields=client_id", tok, nil, "")
	dateOf("GET client", ok.Header)
	missing, _ := f.api(http.MethodGet, "/api/v2/clients/nope?fields=client_id", tok, nil, "")
	dateOf("unknown client", missing.Header)
	if ok.StatusCode != http.StatusOK || missing.StatusCode != http.StatusNotFound {
		t.Fatalf("statuses %d, %d; want 200, 404", ok.StatusCode, missing.StatusCode)
	}
	// A refusal for a missing scope still reports the tenant's rate limit.
	keys := f.token(keysID, otherSecret)
	forbidden, _ := f.api(http.MethodGet, "/api/v2/clients/"+targetID+"?fields=client_id", keys, nil, "")
	dateOf("403", forbidden.Header)
	if forbidden.StatusCode != http.StatusForbidden || forbidden.Header.Get("X-RateLimit-Limit") != "100" {
		t.Fatalf("GET without read:clients: %d, x-ratelimit-limit %q; want 403 with the limit 100", forbidden.StatusCode, forbidden.Header.Get("X-RateLimit-Limit"))
	}
}

// A removed client is gone for the Management API (404) and for the token endpoint (its
// credentials are refused), as an application deleted in the dashboard is.
func TestRemoveClient(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	tok := f.token(adminID, adminSecret)
	if !f.srv.RemoveClient(targetID) || f.srv.RemoveClient(targetID) {
		t.Fatal("RemoveClient: want true for the client, then false")
	}
	resp, body := f.api(http.MethodGet, "/api/v2/clients/"+targetID+"?fields=client_id", tok, nil, "")
	expect(t, resp.StatusCode, body, http.StatusNotFound, `{"statusCode":404,"error":"Not Found","message":"The client does not exist","errorCode":"inexistent_client"}`)
	status, body := f.postToken(ccForm(targetID, "target-secret", f.aud), nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("token for a removed client: %d %s, want 401", status, body)
	}
}
