package emulator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// Test fixture: one admin client with every client scope, one client with
// read:clients only, one with update:clients only, one with update:client_keys
// only, and one that only has a grant for a custom API.
const (
	adminID     = "adminClientID0000000000000000000"
	adminSecret = "admin-secret"
	readerID    = "readerClientID000000000000000000"
	updaterID   = "updaterClientID00000000000000000"
	keysID      = "keysClientID00000000000000000000"
	customID    = "customClientID000000000000000000"
	targetID    = "targetClientID000000000000000000"
	customAud   = "https://orders.example.com/"
	otherSecret = "other-secret"
)

var allScopes = []string{"read:clients", "read:client_keys", "update:clients", "update:client_keys"}

type fixture struct {
	t   *testing.T
	srv *emulator.Server
	ts  *httptest.Server
	aud string // management audience for ts
}

func newFixture(t *testing.T, opts emulator.Options) *fixture {
	t.Helper()
	srv := emulator.New(opts)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	f := &fixture{t: t, srv: srv, ts: ts, aud: "https://" + ts.Listener.Addr().String() + "/api/v2/"}
	srv.AddClient(emulator.Client{ClientID: adminID, ClientSecret: adminSecret, Name: "admin",
		Grants: map[string][]string{"management": allScopes}})
	srv.AddClient(emulator.Client{ClientID: readerID, ClientSecret: otherSecret,
		Grants: map[string][]string{"management": {"read:clients"}}})
	srv.AddClient(emulator.Client{ClientID: updaterID, ClientSecret: otherSecret,
		Grants: map[string][]string{"management": {"update:clients"}}})
	srv.AddClient(emulator.Client{ClientID: keysID, ClientSecret: otherSecret,
		Grants: map[string][]string{"management": {"update:client_keys"}}})
	srv.AddClient(emulator.Client{ClientID: customID, ClientSecret: otherSecret,
		Grants: map[string][]string{customAud: {"read:orders"}}})
	srv.AddClient(emulator.Client{ClientID: targetID, ClientSecret: "target-secret", Name: "target"})
	return f
}

// postToken sends a form request to /oauth/token; basic, if non-nil, holds
// the (already form-encoded) Basic credentials.
func (f *fixture) postToken(form url.Values, basic []string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	return f.send(req)
}

func (f *fixture) send(req *http.Request) (int, string) {
	f.t.Helper()
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func ccForm(id, secret, aud string) url.Values {
	v := url.Values{"grant_type": {"client_credentials"}, "audience": {aud}}
	if id != "" {
		v.Set("client_id", id)
	}
	if secret != "" {
		v.Set("client_secret", secret)
	}
	return v
}

// token obtains a management access token or fails the test.
func (f *fixture) token(id, secret string) string {
	f.t.Helper()
	status, body := f.postToken(ccForm(id, secret, f.aud), nil)
	if status != http.StatusOK {
		f.t.Fatalf("token for %s: %d %s", id, status, body)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil || tr.AccessToken == "" {
		f.t.Fatalf("token body %q: %v", body, err)
	}
	return tr.AccessToken
}

// api sends a Management API request and returns the whole response with its
// body read.
func (f *fixture) api(method, path, token string, body io.Reader, contentType string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.ts.URL+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func expect(t *testing.T, gotStatus int, gotBody string, wantStatus int, wantBody string) {
	t.Helper()
	if gotStatus != wantStatus || (wantBody != "" && gotBody != wantBody) {
		t.Fatalf("got %d %s\nwant %d %s", gotStatus, gotBody, wantStatus, wantBody)
	}
}

func decodeObject(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return m
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var secretRE = regexp.MustCompile(`^[A-Za-z0-9_-]{64}$`)

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	const unauthorized = `{"error":"access_denied","error_description":"Unauthorized"}`
	special := "p@ss:w/rd+% é"
	f.srv.AddClient(emulator.Client{ClientID: "id:with space", ClientSecret: special,
		Grants: map[string][]string{"management": {"read:clients"}}})

	tests := []struct {
		name       string
		form       url.Values
		basic      []string
		wantStatus int
		wantBody   string // exact error body; for 200 the scope is checked
		wantScope  string
	}{
		{"form post", ccForm(adminID, adminSecret, f.aud), nil, 200, "", strings.Join(allScopes, " ")},
		{"basic auth", ccForm("", "", f.aud), []string{adminID, adminSecret}, 200, "", strings.Join(allScopes, " ")},
		{"basic auth url-encoded credentials", ccForm("", "", f.aud),
			[]string{url.QueryEscape("id:with space"), url.QueryEscape(special)}, 200, "", "read:clients"},
		{"basic auth and matching client_id", ccForm(adminID, "", f.aud), []string{adminID, adminSecret}, 200, "", strings.Join(allScopes, " ")},
		{"scope narrowed to a granted subset", func() url.Values {
			v := ccForm(adminID, adminSecret, f.aud)
			v.Set("scope", "update:client_keys read:clients read:clients")
			return v
		}(), nil, 200, "", "read:clients update:client_keys"},
		{"ungranted scope refused, not narrowed", func() url.Values {
			v := ccForm(adminID, adminSecret, f.aud)
			v.Set("scope", "read:clients delete:clients update:client_keys create:users delete:clients")
			return v
		}(), nil, 403, `{"error":"access_denied","error_description":"Client has not been granted scopes: delete:clients create:users"}`, ""},
		{"ungranted scope with basic auth", func() url.Values {
			v := ccForm("", "", customAud)
			v.Set("scope", "write:orders")
			return v
		}(), []string{customID, otherSecret}, 403, `{"error":"access_denied","error_description":"Client has not been granted scopes: write:orders"}`, ""},
		{"custom API", ccForm(customID, otherSecret, customAud), nil, 200, "", "read:orders"},
		{"bad secret", ccForm(adminID, "wrong", f.aud), nil, 401, unauthorized, ""},
		{"bad basic secret", ccForm("", "", f.aud), []string{adminID, "wrong"}, 401, unauthorized, ""},
		{"unknown client", ccForm("nobody", adminSecret, f.aud), nil, 401, unauthorized, ""},
		{"missing secret", ccForm(adminID, "", f.aud), nil, 401, unauthorized, ""},
		{"unknown audience", ccForm(adminID, adminSecret, "https://nope.example.com/"), nil, 403,
			`{"error":"access_denied","error_description":"Service not enabled within domain: https://nope.example.com/"}`, ""},
		{"no grant for management", ccForm(customID, otherSecret, f.aud), nil, 403,
			`{"error":"access_denied","error_description":"Client is not authorized to access \"` + f.aud + `\". You need to create a \"client-grant\" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"}`, ""},
		{"no grant for custom API", ccForm(adminID, adminSecret, customAud), nil, 403,
			`{"error":"access_denied","error_description":"Client is not authorized to access \"` + customAud + `\". You need to create a \"client-grant\" associated to this API. See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"}`, ""},
		{"missing audience", func() url.Values {
			v := ccForm(adminID, adminSecret, "")
			v.Del("audience")
			return v
		}(), nil, 403, `{"error":"access_denied","error_description":"No audience parameter was provided, and no default audience has been configured"}`, ""},
		{"grant type not allowed", func() url.Values {
			v := ccForm(adminID, adminSecret, f.aud)
			v.Set("grant_type", "password")
			return v
		}(), nil, 403, `{"error":"unauthorized_client","error_description":"Grant type 'password' not allowed for the client."}`, ""},
		{"unsupported grant type", func() url.Values {
			v := ccForm(adminID, adminSecret, f.aud)
			v.Set("grant_type", "magic")
			return v
		}(), nil, 400, `{"error":"unsupported_grant_type","error_description":"Unsupported grant type: magic"}`, ""},
		{"missing grant type", url.Values{"client_id": {adminID}}, nil, 400,
			`{"error":"invalid_request","error_description":"Missing required parameter: grant_type"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.postToken(tc.form, tc.basic)
			if tc.wantStatus != 200 {
				expect(t, status, body, tc.wantStatus, tc.wantBody)
				return
			}
			expect(t, status, body, 200, "")
			m := decodeObject(t, body)
			if m["token_type"] != "Bearer" || m["expires_in"] != float64(86400) || m["scope"] != tc.wantScope {
				t.Fatalf("unexpected token response %s (want scope %q)", body, tc.wantScope)
			}
			if tok, _ := m["access_token"].(string); strings.Count(tok, ".") != 2 {
				t.Fatalf("access_token is not JWT-shaped: %q", tok)
			}
		})
	}
	st := f.srv.Stats()
	if st.TokensIssued != 6 {
		t.Errorf("TokensIssued = %d, want 6", st.TokensIssued)
	}
	// Every request counts, by the client_id it presented.
	want := map[string]int{adminID: 14, "id:with space": 1, customID: 3, "nobody": 1}
	for id, n := range want {
		if st.TokenRequests[id] != n {
			t.Errorf("TokenRequests[%q] = %d, want %d (all: %v)", id, st.TokenRequests[id], n, st.TokenRequests)
		}
	}
}

func TestTokenJSONBodyAndClaims(t *testing.T) {
	f := newFixture(t, emulator.Options{TokenLifetime: time.Hour})
	body, _ := json.Marshal(map[string]string{
		"grant_type": "client_credentials", "client_id": readerID,
		"client_secret": otherSecret, "audience": f.aud,
	})
	req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/oauth/token", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	status, resp := f.send(req)
	expect(t, status, resp, 200, "")
	m := decodeObject(t, resp)
	if m["expires_in"] != float64(3600) || m["scope"] != "read:clients" {
		t.Fatalf("unexpected response %s", resp)
	}
	parts := strings.Split(m["access_token"].(string), ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := decodeObject(t, string(payload))
	if claims["sub"] != readerID+"@clients" || claims["aud"] != f.aud || claims["gty"] != "client-credentials" {
		t.Fatalf("unexpected claims %s", payload)
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	path := "/api/v2/clients/" + targetID
	customTok := func() string {
		_, body := f.postToken(ccForm(customID, otherSecret, customAud), nil)
		return decodeObject(t, body)["access_token"].(string)
	}()
	valid := f.token(adminID, adminSecret)
	tampered := valid[:len(valid)-2] + "xx"

	tests := []struct {
		name, header string
		wantBody     string
	}{
		{"missing", "", `{"statusCode":401,"error":"Unauthorized","message":"Missing authentication"}`},
		{"not bearer", "Basic Zm9vOmJhcg==", `{"statusCode":401,"error":"Unauthorized","message":"Missing authentication"}`},
		{"unknown token", "Bearer not-a-token", `{"statusCode":401,"error":"Unauthorized","message":"Invalid token","attributes":{"error":"Invalid token"}}`},
		{"bad signature", "Bearer " + tampered, `{"statusCode":401,"error":"Unauthorized","message":"Invalid token","attributes":{"error":"Invalid token"}}`},
		{"other audience", "Bearer " + customTok, `{"statusCode":401,"error":"Unauthorized","message":"Invalid token","attributes":{"error":"Invalid token"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, f.ts.URL+path, nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			status, body := f.send(req)
			expect(t, status, body, 401, tc.wantBody)
		})
	}
	resp, body := f.api(http.MethodGet, path, valid, nil, "")
	expect(t, resp.StatusCode, body, 200, "")
}

func TestExpireTokens(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	path := "/api/v2/clients/" + targetID
	old := f.token(adminID, adminSecret)
	f.srv.ExpireTokens()
	resp, body := f.api(http.MethodGet, path, old, nil, "")
	expect(t, resp.StatusCode, body, 401,
		`{"statusCode":401,"error":"Unauthorized","message":"Expired token received for JSON Web Token validation","attributes":{"error":"Expired token received for JSON Web Token validation"}}`)
	if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="Expired token received for JSON Web Token validation"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	fresh := f.token(adminID, adminSecret)
	resp, body = f.api(http.MethodGet, path, fresh, nil, "")
	expect(t, resp.StatusCode, body, 200, "")
}

func TestTokenLifetime(t *testing.T) {
	f := newFixture(t, emulator.Options{TokenLifetime: 500 * time.Millisecond})
	tok := f.token(adminID, adminSecret)
	path := "/api/v2/clients/" + targetID
	resp, body := f.api(http.MethodGet, path, tok, nil, "")
	expect(t, resp.StatusCode, body, 200, "")
	time.Sleep(600 * time.Millisecond)
	resp, body = f.api(http.MethodGet, path, tok, nil, "")
	if resp.StatusCode != 401 || !strings.Contains(body, "Expired token received") {
		t.Fatalf("got %d %s, want expired", resp.StatusCode, body)
	}
}

func TestScopesAndNotFound(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	tok := map[string]string{
		"admin":   f.token(adminID, adminSecret),
		"reader":  f.token(readerID, otherSecret),
		"updater": f.token(updaterID, otherSecret),
		"keys":    f.token(keysID, otherSecret),
	}
	insufficient := func(scopes string) string {
		return `{"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: ` + scopes + `","errorCode":"insufficient_scope"}`
	}
	const noClient = `{"statusCode":404,"error":"Not Found","message":"The client does not exist","errorCode":"inexistent_client"}`
	const notFound = `{"statusCode":404,"error":"Not Found","message":"Not Found"}`
	client := "/api/v2/clients/" + targetID
	missing := "/api/v2/clients/doesNotExist"

	tests := []struct {
		name, method, path, who, body string
		wantStatus                    int
		wantBody                      string
	}{
		{"get needs read scope", "GET", client, "keys", "", 403, insufficient("read:clients,read:client_keys")},
		{"rotate needs update:client_keys", "POST", client + "/rotate-secret", "reader", "", 403, insufficient("update:client_keys")},
		{"rotate not with update:clients", "POST", client + "/rotate-secret", "updater", "", 403, insufficient("update:client_keys")},
		{"patch needs update scope", "PATCH", client, "reader", `{"name":"x"}`, 403, insufficient("update:clients,update:client_keys")},
		{"patch secret needs update:client_keys", "PATCH", client, "updater", `{"client_secret":"abc"}`, 403, insufficient("update:client_keys")},
		{"scope checked before existence", "GET", missing, "keys", "", 403, insufficient("read:clients,read:client_keys")},
		{"secret scope checked before existence", "GET", missing, "reader", "", 403,
			`{"statusCode":403,"error":"Forbidden","message":"You cannot read the following fields: client_secret","errorCode":"insufficient_scope"}`},
		{"get unknown client", "GET", missing + "?fields=client_id", "reader", "", 404, noClient},
		{"get unknown client with secret", "GET", missing, "admin", "", 404, noClient},
		{"rotate unknown client", "POST", missing + "/rotate-secret", "admin", "", 404, noClient},
		{"patch unknown client", "PATCH", missing, "admin", `{"name":"x"}`, 404, noClient},
		{"unknown path", "GET", "/api/v2/users", "admin", "", 404, notFound},
		{"unknown sub-resource", "GET", client + "/connections", "admin", "", 404, notFound},
		{"credentials need read:client_credentials", "GET", client + "/credentials", "admin", "", 403, insufficient("read:client_credentials")},
		{"unknown credentials sub-resource", "GET", client + "/credentials/cred_x/y", "admin", "", 404, notFound},
		{"outside the API", "GET", "/nope", "", "", 404, notFound},
		{"wrong method", "DELETE", client, "admin", "", 405, `{"statusCode":405,"error":"Method Not Allowed","message":"Method Not Allowed"}`},
		{"wrong method on rotate", "GET", client + "/rotate-secret", "admin", "", 405, `{"statusCode":405,"error":"Method Not Allowed","message":"Method Not Allowed"}`},
		{"patch updater ok", "PATCH", client, "updater", `{"description":"d"}`, 200, ""},
		{"patch secret with update:client_keys ok", "PATCH", client, "keys", `{"client_secret":"` + strings.Repeat("k", 48) + `"}`, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			ct := ""
			if tc.body != "" {
				body, ct = strings.NewReader(tc.body), "application/json"
			}
			resp, got := f.api(tc.method, tc.path, tok[tc.who], body, ct)
			expect(t, resp.StatusCode, got, tc.wantStatus, tc.wantBody)
		})
	}
	if got := f.srv.Stats().Rotations[targetID]; got != 0 {
		t.Errorf("Rotations = %d after failed rotations", got)
	}
}

// cannotReadSecret is Auth0's answer to a read of client_secret without a
// scope that grants it.
const cannotReadSecret = `{"statusCode":403,"error":"Forbidden","message":"You cannot read the following fields: client_secret","errorCode":"insufficient_scope"}`

func TestGetClientFields(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	const credsID, keysOnlyID = "credsReaderClientID0000000000000", "keysReaderClientID00000000000000"
	f.srv.AddClient(emulator.Client{ClientID: credsID, ClientSecret: otherSecret,
		Grants: map[string][]string{"management": {"read:clients", "read:client_credentials"}}})
	f.srv.AddClient(emulator.Client{ClientID: keysOnlyID, ClientSecret: otherSecret,
		Grants: map[string][]string{"management": {"read:client_keys"}}})
	tok := map[string]string{
		"admin":    f.token(adminID, adminSecret),
		"reader":   f.token(readerID, otherSecret),
		"creds":    f.token(credsID, otherSecret),
		"keysOnly": f.token(keysOnlyID, otherSecret),
		"updater":  f.token(updaterID, otherSecret),
	}
	base := "/api/v2/clients/" + targetID

	full := func(t *testing.T, m map[string]any, body string, wantSecret bool) {
		t.Helper()
		if m["client_id"] != targetID || m["name"] != "target" || m["app_type"] != "non_interactive" {
			t.Fatalf("unexpected client %s", body)
		}
		if _, has := m["client_secret"]; has != wantSecret || (wantSecret && m["client_secret"] != "target-secret") {
			t.Fatalf("client_secret present = %v, want %v: %s", has, wantSecret, body)
		}
	}
	withSecret := func(t *testing.T, m map[string]any, body string) { full(t, m, body, true) }
	withoutSecret := func(t *testing.T, m map[string]any, body string) { full(t, m, body, false) }
	exactly := func(want string) func(t *testing.T, m map[string]any, body string) {
		return func(t *testing.T, m map[string]any, body string) {
			if body != want {
				t.Fatalf("body = %s, want %s", body, want)
			}
		}
	}
	tests := []struct {
		name, query, who string
		wantStatus       int
		check            func(t *testing.T, m map[string]any, body string) // for 200
		wantBody         string                                            // for errors
	}{
		// Every field, the secret included.
		{"all with read:client_keys", "", "admin", 200, withSecret, ""},
		{"all with read:client_keys only", "", "keysOnly", 200, withSecret, ""},
		{"all with read:client_credentials", "", "creds", 200, withSecret, ""},
		{"all with read:clients only", "", "reader", 403, nil, cannotReadSecret},
		{"all, include_fields=false without fields", "?include_fields=false", "reader", 403, nil, cannotReadSecret},
		// fields listing the secret.
		{"include secret", "?fields=client_id%2Cclient_secret&include_fields=true", "admin", 200,
			exactly(`{"client_id":"` + targetID + `","client_secret":"target-secret"}`), ""},
		{"include secret with read:client_credentials", "?fields=client_secret", "creds", 200,
			exactly(`{"client_secret":"target-secret"}`), ""},
		{"include secret with read:clients only", "?fields=client_id,client_secret&include_fields=true", "reader", 403, nil, cannotReadSecret},
		{"include secret among spaces", "?fields=name,%20client_secret%20", "reader", 403, nil, cannotReadSecret},
		// fields not asking for the secret.
		{"include other fields default true", "?fields=name", "reader", 200, exactly(`{"name":"target"}`), ""},
		{"include other fields", "?fields=client_id,name&include_fields=true", "reader", 200,
			exactly(`{"client_id":"` + targetID + `","name":"target"}`), ""},
		{"exclude secret", "?fields=client_secret&include_fields=false", "reader", 200, withoutSecret, ""},
		{"exclude secret and name", "?fields=client_secret,name&include_fields=false", "admin", 200,
			func(t *testing.T, m map[string]any, body string) {
				_, s := m["client_secret"]
				_, n := m["name"]
				if s || n || m["client_id"] != targetID || m["app_type"] != "non_interactive" {
					t.Fatalf("body = %s", body)
				}
			}, ""},
		// Excluding other fields leaves the secret in.
		{"exclude other fields", "?fields=name&include_fields=false", "reader", 403, nil, cannotReadSecret},
		{"exclude other fields with read:client_keys", "?fields=name&include_fields=false", "admin", 200,
			func(t *testing.T, m map[string]any, body string) {
				if _, n := m["name"]; n || m["client_secret"] != "target-secret" {
					t.Fatalf("body = %s", body)
				}
			}, ""},
		// The endpoint's own scope comes first.
		{"no read scope at all", "?fields=client_id", "updater", 403, nil,
			`{"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: read:clients,read:client_keys","errorCode":"insufficient_scope"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.api(http.MethodGet, base+tc.query, tok[tc.who], nil, "")
			if tc.wantStatus != 200 {
				expect(t, resp.StatusCode, body, tc.wantStatus, tc.wantBody)
				return
			}
			expect(t, resp.StatusCode, body, 200, "")
			tc.check(t, decodeObject(t, body), body)
		})
	}
	t.Run("bad include_fields", func(t *testing.T) {
		resp, body := f.api(http.MethodGet, base+"?fields=name&include_fields=maybe", tok["admin"], nil, "")
		if resp.StatusCode != 400 || decodeObject(t, body)["errorCode"] != "invalid_query_string" {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	})
}

func TestRotateSecret(t *testing.T) {
	bodies := []struct {
		name, body, contentType string
	}{
		{"no body", "", ""},
		{"null body", "null", "application/json"},
		{"empty object", "{}", "application/json"},
	}
	for _, tc := range bodies {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, emulator.Options{})
			tok := f.token(adminID, adminSecret)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp, got := f.api(http.MethodPost, "/api/v2/clients/"+targetID+"/rotate-secret", tok, body, tc.contentType)
			expect(t, resp.StatusCode, got, 200, "")
			m := decodeObject(t, got)
			newSecret, _ := m["client_secret"].(string)
			if !secretRE.MatchString(newSecret) || m["client_id"] != targetID || m["name"] != "target" {
				t.Fatalf("unexpected rotate response %s", got)
			}
			if s, _ := f.srv.ClientSecret(targetID); s != newSecret {
				t.Fatalf("ClientSecret() = %q, response said %q", s, newSecret)
			}
			status, tb := f.postToken(ccForm(targetID, "target-secret", customAud), nil)
			expect(t, status, tb, 401, `{"error":"access_denied","error_description":"Unauthorized"}`)
			// The target has no grants, so the new secret authenticates and is
			// then refused for lack of a grant (403, not 401).
			status, tb = f.postToken(ccForm(targetID, newSecret, customAud), nil)
			if status != 403 || !strings.Contains(tb, "Client is not authorized") {
				t.Fatalf("new secret: got %d %s", status, tb)
			}
			if st := f.srv.Stats(); st.Rotations[targetID] != 1 || st.Requests != 1 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
	t.Run("invalid JSON body", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		resp, got := f.api(http.MethodPost, "/api/v2/clients/"+targetID+"/rotate-secret", tok, strings.NewReader("{"), "application/json")
		expect(t, resp.StatusCode, got, 400, `{"statusCode":400,"error":"Bad Request","message":"Invalid request payload JSON format"}`)
	})
	t.Run("rotating own secret", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		resp, got := f.api(http.MethodPost, "/api/v2/clients/"+adminID+"/rotate-secret", tok, nil, "")
		expect(t, resp.StatusCode, got, 200, "")
		newSecret := decodeObject(t, got)["client_secret"].(string)
		status, body := f.postToken(ccForm(adminID, adminSecret, f.aud), nil)
		expect(t, status, body, 401, "")
		f.token(adminID, newSecret)
		// Access tokens issued before the rotation stay valid, as in Auth0.
		resp, got = f.api(http.MethodGet, "/api/v2/clients/"+targetID, tok, nil, "")
		expect(t, resp.StatusCode, got, 200, "")
	})
}

func TestPatchClient(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	tok := f.token(adminID, adminSecret)
	path := "/api/v2/clients/" + targetID
	patch := func(body string) (*http.Response, string) {
		return f.api(http.MethodPatch, path, tok, strings.NewReader(body), "application/json")
	}
	newSecret := strings.Repeat("N", 64)

	resp, body := patch(`{"client_secret":"` + newSecret + `","name":"renamed"}`)
	expect(t, resp.StatusCode, body, 200, "")
	m := decodeObject(t, body)
	if m["client_secret"] != newSecret || m["name"] != "renamed" {
		t.Fatalf("unexpected patch response %s", body)
	}
	status, tb := f.postToken(ccForm(targetID, "target-secret", customAud), nil)
	expect(t, status, tb, 401, "")
	status, tb = f.postToken(ccForm(targetID, newSecret, customAud), nil)
	expect(t, status, tb, 403, "")

	// Same secret again: applied but not counted as a change.
	resp, body = patch(`{"client_secret":"` + newSecret + `"}`)
	expect(t, resp.StatusCode, body, 200, "")
	if got := f.srv.Stats().SecretPatches[targetID]; got != 1 {
		t.Fatalf("SecretPatches = %d, want 1", got)
	}

	// Unset an optional property with null, set another.
	resp, body = patch(`{"client_metadata":null,"description":"hello"}`)
	expect(t, resp.StatusCode, body, 200, "")
	m = decodeObject(t, body)
	if _, ok := m["client_metadata"]; ok || m["description"] != "hello" {
		t.Fatalf("unexpected patch response %s", body)
	}
	resp, body = f.api(http.MethodGet, path+"?fields=name,description", tok, nil, "")
	expect(t, resp.StatusCode, body, 200, `{"description":"hello","name":"renamed"}`)

	bad := []struct{ name, body, want string }{
		{"empty secret", `{"client_secret":""}`,
			`{"statusCode":400,"error":"Bad Request","message":"Payload validation error: 'String is too short (0 chars), minimum 1' on property client_secret (The secret used to sign tokens for the client).","errorCode":"invalid_body"}`},
		{"secret not a string", `{"client_secret":5}`,
			`{"statusCode":400,"error":"Bad Request","message":"Payload validation error: 'Expected type string but found type number' on property client_secret (The secret used to sign tokens for the client).","errorCode":"invalid_body"}`},
		{"read-only property", `{"client_id":"x"}`,
			`{"statusCode":400,"error":"Bad Request","message":"Payload validation error: 'Additional properties not allowed: client_id'.","errorCode":"invalid_body"}`},
		{"null body", `null`,
			`{"statusCode":400,"error":"Bad Request","message":"Payload validation error: 'Expected type object but found type null'.","errorCode":"invalid_body"}`},
		{"invalid JSON", `{"name":`,
			`{"statusCode":400,"error":"Bad Request","message":"Invalid request payload JSON format"}`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := patch(tc.body)
			expect(t, resp.StatusCode, body, 400, tc.want)
		})
	}
	if s, _ := f.srv.ClientSecret(targetID); s != newSecret {
		t.Fatalf("secret changed by rejected patches")
	}
}

func TestFaults(t *testing.T) {
	rotatePath := "/api/v2/clients/" + targetID + "/rotate-secret"

	t.Run("status before apply", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			if p == emulator.BeforeApply && id == targetID {
				return &emulator.Fault{Status: 503, Message: "try later"}
			}
			return nil
		})
		resp, body := f.api(http.MethodPost, rotatePath, tok, nil, "")
		expect(t, resp.StatusCode, body, 503, `{"statusCode":503,"error":"Service Unavailable","message":"try later"}`)
		if s, _ := f.srv.ClientSecret(targetID); s != "target-secret" {
			t.Fatal("rotation applied despite BeforeApply fault")
		}
		f.srv.SetFaults(nil)
		resp, body = f.api(http.MethodPost, rotatePath, tok, nil, "")
		expect(t, resp.StatusCode, body, 200, "")
	})

	t.Run("429 with retry-after", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			return &emulator.Fault{Status: 429, RetryAfter: 7}
		})
		before := time.Now().Unix()
		resp, body := f.api(http.MethodGet, "/api/v2/clients/"+targetID, tok, nil, "")
		expect(t, resp.StatusCode, body, 429,
			`{"statusCode":429,"error":"Too Many Requests","message":"Global limit has been reached","errorCode":"too_many_requests"}`)
		reset, _ := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
		if resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-RateLimit-Remaining") != "0" ||
			resp.Header.Get("X-RateLimit-Limit") == "" || reset < before+7 || reset > time.Now().Unix()+7 {
			t.Fatalf("headers %v", resp.Header)
		}
		if got := f.srv.Stats().RateLimited; got != 1 {
			t.Fatalf("RateLimited = %d", got)
		}
	})

	t.Run("status after apply", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			if p == emulator.AfterApply {
				return &emulator.Fault{Status: 500}
			}
			return nil
		})
		resp, body := f.api(http.MethodPatch, "/api/v2/clients/"+targetID, tok,
			strings.NewReader(`{"client_secret":"patched-secret"}`), "application/json")
		expect(t, resp.StatusCode, body, 500, `{"statusCode":500,"error":"Internal Server Error","message":"Internal Server Error"}`)
		if s, _ := f.srv.ClientSecret(targetID); s != "patched-secret" {
			t.Fatal("PATCH not applied before AfterApply fault")
		}
		if got := f.srv.Stats().SecretPatches[targetID]; got != 1 {
			t.Fatalf("SecretPatches = %d", got)
		}
	})

	for _, phase := range []emulator.Phase{emulator.BeforeApply, emulator.AfterApply} {
		t.Run("drop "+phase.String(), func(t *testing.T) {
			f := newFixture(t, emulator.Options{})
			tok := f.token(adminID, adminSecret)
			f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
				if p == phase {
					return &emulator.Fault{Drop: true}
				}
				return nil
			})
			req, _ := http.NewRequest(http.MethodPost, f.ts.URL+rotatePath, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := f.ts.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got response %d, want dropped connection", resp.StatusCode)
			}
			secret, _ := f.srv.ClientSecret(targetID)
			rotations := f.srv.Stats().Rotations[targetID]
			if phase == emulator.BeforeApply && (secret != "target-secret" || rotations != 0) {
				t.Fatal("rotation applied despite BeforeApply drop")
			}
			if phase == emulator.AfterApply && (!secretRE.MatchString(secret) || rotations != 1) {
				t.Fatalf("rotation not applied before AfterApply drop (rotations %d)", rotations)
			}
		})
	}

	t.Run("delay", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			return &emulator.Fault{Delay: 150 * time.Millisecond}
		})
		start := time.Now()
		resp, body := f.api(http.MethodPost, rotatePath, tok, nil, "")
		expect(t, resp.StatusCode, body, 200, "")
		// Delayed once before and once after applying.
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("request took %v, want >= 300ms", d)
		}
	})

	t.Run("delay ends with the request context", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			if p == emulator.BeforeApply {
				return &emulator.Fault{Delay: time.Minute}
			}
			return nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.ts.URL+rotatePath, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := f.ts.Client().Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("expected client timeout")
		}
		// The server stops waiting and then carries on normally.
		deadline := time.Now().Add(5 * time.Second)
		for f.srv.Stats().Rotations[targetID] != 1 {
			if time.Now().After(deadline) {
				t.Fatal("delayed request never completed after its context ended")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("do and phases", func(t *testing.T) {
		f := newFixture(t, emulator.Options{})
		tok := f.token(adminID, adminSecret)
		var mu sync.Mutex
		var seen []string
		f.srv.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
			return &emulator.Fault{Do: func() {
				mu.Lock()
				seen = append(seen, r.Method+" "+p.String()+" "+id)
				mu.Unlock()
			}}
		})
		f.api(http.MethodGet, "/api/v2/clients/"+targetID, tok, nil, "")
		f.api(http.MethodPost, rotatePath, tok, nil, "")
		f.api(http.MethodPatch, "/api/v2/clients/"+targetID, tok, strings.NewReader(`{"name":"n"}`), "application/json")
		f.api(http.MethodPatch, "/api/v2/clients/nope", tok, strings.NewReader(`{"name":"n"}`), "application/json")
		f.api(http.MethodGet, "/api/v2/users", tok, nil, "")
		want := []string{
			"GET BeforeApply " + targetID,
			"POST BeforeApply " + targetID, "POST AfterApply " + targetID,
			"PATCH BeforeApply " + targetID, "PATCH AfterApply " + targetID,
			"PATCH BeforeApply nope",
			"GET BeforeApply ",
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(seen, "|") != strings.Join(want, "|") {
			t.Fatalf("fault consultations:\n%q\nwant\n%q", seen, want)
		}
	})
}

func TestConcurrentRotations(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	tok := f.token(adminID, adminSecret)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	returned := map[string]bool{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/api/v2/clients/"+targetID+"/rotate-secret", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := f.ts.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				mu.Lock()
				returned[m["client_secret"].(string)] = true
				mu.Unlock()
				// Reads and token requests interleave with the rotations.
				r2, _ := http.NewRequest(http.MethodGet, f.ts.URL+"/api/v2/clients/"+targetID, nil)
				r2.Header.Set("Authorization", "Bearer "+tok)
				if resp, err := f.ts.Client().Do(r2); err == nil {
					resp.Body.Close()
				}
				_ = f.srv.Stats()
			}
		}()
	}
	wg.Wait()
	st := f.srv.Stats()
	if st.Rotations[targetID] != workers*each || len(returned) != workers*each || st.Requests != 2*workers*each {
		t.Fatalf("rotations %d, distinct secrets %d, requests %d", st.Rotations[targetID], len(returned), st.Requests)
	}
	final, _ := f.srv.ClientSecret(targetID)
	if !returned[final] {
		t.Fatal("final secret was never returned by a rotation")
	}
}

func TestAddClientGeneratesCredentials(t *testing.T) {
	srv := emulator.New(emulator.Options{})
	c := srv.AddClient(emulator.Client{Grants: map[string][]string{"management": {"read:clients"}}})
	if len(c.ClientID) != 32 || !secretRE.MatchString(c.ClientSecret) || c.Name != c.ClientID {
		t.Fatalf("generated client %+v", c)
	}
	if s, ok := srv.ClientSecret(c.ClientID); !ok || s != c.ClientSecret {
		t.Fatal("ClientSecret does not match AddClient")
	}
	if _, ok := srv.ClientSecret("unknown"); ok {
		t.Fatal("ClientSecret reported an unknown client")
	}
}

func TestConfiguredAudience(t *testing.T) {
	const aud = "https://tenant.example.auth0.com/api/v2/"
	f := newFixture(t, emulator.Options{Audience: aud})
	status, body := f.postToken(ccForm(adminID, adminSecret, f.aud), nil)
	expect(t, status, body, 403, `{"error":"access_denied","error_description":"Service not enabled within domain: `+f.aud+`"}`)
	status, body = f.postToken(ccForm(adminID, adminSecret, aud), nil)
	expect(t, status, body, 200, "")
	tok := decodeObject(t, body)["access_token"].(string)
	resp, got := f.api(http.MethodGet, "/api/v2/clients/"+targetID, tok, nil, "")
	expect(t, resp.StatusCode, got, 200, "")
}

// ValidateAccessToken accepts what the tenant issued for the audience, and nothing else.
func TestValidateAccessToken(t *testing.T) {
	srv := emulator.New(emulator.Options{TokenLifetime: time.Hour})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	srv.AddClient(emulator.Client{ClientID: "c", ClientSecret: "s", Grants: map[string][]string{"https://api.test/": {}}})
	resp, err := http.PostForm(hs.URL+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"c"}, "client_secret": {"s"}, "audience": {"https://api.test/"}})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := srv.ValidateAccessToken(body.AccessToken, "https://api.test/"); err != nil {
		t.Fatalf("a token the tenant issued was refused: %v", err)
	}
	if srv.ValidateAccessToken(body.AccessToken, "https://other.test/") == nil {
		t.Fatal("a token for another audience was accepted")
	}
	if srv.ValidateAccessToken(body.AccessToken+"x", "https://api.test/") == nil {
		t.Fatal("a forged token was accepted")
	}
	srv.ExpireTokens()
	if srv.ValidateAccessToken(body.AccessToken, "https://api.test/") == nil {
		t.Fatal("an expired token was accepted")
	}
}
