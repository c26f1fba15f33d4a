package emulator_test

import (
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

var credIDRE = regexp.MustCompile(`^cred_[A-Za-z0-9]{22}$`)

// auth0Time formats t as Auth0 formats credential dates.
func auth0Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func TestCreateCredential(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	now := p.clock.Now()
	certExpiry := now.Add(90 * 24 * time.Hour).Truncate(time.Second)

	tests := []struct {
		name      string
		body      map[string]any
		key       int
		wantAlg   string
		wantKid   string // default: the RFC 7638 thumbprint
		wantName  string
		wantExpAt string // "" = no expires_at in the answer
	}{
		{"PKIX public key, default alg", map[string]any{"credential_type": "public_key", "name": "pkix", "pem": pkixPEM(key(0))},
			0, "RS256", "", "pkix", ""},
		{"PKCS #1 public key, RS384, no name", map[string]any{"credential_type": "public_key", "pem": pkcs1PEM(key(1)), "alg": "RS384"},
			1, "RS384", "", "", ""},
		{"certificate, PS256, expiry parsed from it", map[string]any{"credential_type": "public_key", "name": "cert",
			"pem": certPEM(t, key(2), certExpiry), "alg": "PS256", "parse_expiry_from_cert": true},
			2, "PS256", "", "cert", auth0Time(certExpiry)},
		{"explicit expires_at wins over the certificate, chosen kid", map[string]any{"credential_type": "public_key",
			"pem": certPEM(t, key(3), certExpiry), "parse_expiry_from_cert": true, "kid": "my-key_0001",
			"expires_at": now.Add(time.Hour).Format(time.RFC3339Nano)},
			3, "RS256", "my-key_0001", "", auth0Time(now.Add(time.Hour))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A fresh client each time: two credentials at most.
			id := p.srv.AddClient(emulator.Client{}).ClientID
			status, body := p.call("POST", "/api/v2/clients/"+id+"/credentials", tc.body)
			if status != http.StatusCreated {
				t.Fatalf("got %d %s", status, body)
			}
			c := decodeObject(t, body)
			want := []string{"alg", "created_at", "credential_type", "id", "kid", "name", "updated_at"}
			if tc.wantExpAt != "" {
				want = []string{"alg", "created_at", "credential_type", "expires_at", "id", "kid", "name", "updated_at"}
			}
			if got := strings.Join(keys(c), ","); got != strings.Join(want, ",") {
				t.Errorf("fields %s, want %s (no pem)", got, strings.Join(want, ","))
			}
			kid := tc.wantKid
			if kid == "" {
				kid = emulator.KeyID(&key(tc.key).PublicKey)
			}
			if !credIDRE.MatchString(c["id"].(string)) || c["kid"] != kid || c["alg"] != tc.wantAlg ||
				c["name"] != tc.wantName || c["credential_type"] != "public_key" ||
				c["created_at"] != auth0Time(now) || c["updated_at"] != auth0Time(now) {
				t.Errorf("credential %s", body)
			}
			if tc.wantExpAt != "" && c["expires_at"] != tc.wantExpAt {
				t.Errorf("expires_at %v, want %s", c["expires_at"], tc.wantExpAt)
			}
			stored, attached, ok := p.srv.Credentials(id)
			if !ok || len(stored) != 1 || len(attached) != 0 || stored[0].ID != c["id"] || stored[0].KeyID != kid ||
				stored[0].PublicKey.N.Cmp(key(tc.key).N) != 0 {
				t.Errorf("Credentials(%s) = %+v, %v", id, stored, attached)
			}
		})
	}
	if st := p.srv.Stats(); len(st.CredentialsCreated) != len(tests) {
		t.Errorf("CredentialsCreated = %v", st.CredentialsCreated)
	}
}

func TestCreateCredentialRefusals(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	now := p.clock.Now()
	good := func(extra map[string]any) map[string]any {
		b := map[string]any{"credential_type": "public_key", "pem": pkixPEM(key(0))}
		for k, v := range extra {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	tests := []struct {
		name     string
		body     any
		wantMsg  string // substring of the message
		wantCode string
	}{
		{"not an object", `["x"]`, "Expected type object but found type array", "invalid_body"},
		{"unknown property", good(map[string]any{"usage": "x"}), "Additional properties not allowed: usage", "invalid_body"},
		{"no credential_type", good(map[string]any{"credential_type": nil}), "Missing required property: credential_type", "invalid_body"},
		{"unknown credential_type", good(map[string]any{"credential_type": "secret"}), `No enum match for: \"secret\"`, "invalid_body"},
		{"CA-signed mTLS credential_type", good(map[string]any{"credential_type": "cert_subject_dn"}), "credential_type cert_subject_dn is for tls_client_auth", "invalid_body"},
		{"x509_cert with a public key", good(map[string]any{"credential_type": "x509_cert"}), "pem holds a bare public key", "invalid_body"},
		{"subject_dn with public_key", good(map[string]any{"subject_dn": "CN=x"}), "subject_dn applies only to cert_subject_dn", "invalid_body"},
		{"no pem", good(map[string]any{"pem": nil}), "Missing required property: pem", "invalid_body"},
		{"pem not a string", good(map[string]any{"pem": 12}), "Expected type string but found type number' on property pem", "invalid_body"},
		{"pem not PEM", good(map[string]any{"pem": "MIIBIjANBg"}), "pem is not PEM-encoded", "invalid_body"},
		{"private key", good(map[string]any{"pem": privatePEM(key(0))}), `\"PRIVATE KEY\" block`, "invalid_body"},
		{"corrupt public key", good(map[string]any{"pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}), "invalid public key", "invalid_body"},
		{"not RSA", good(map[string]any{"pem": ecPEM(t)}), "not hold an RSA public key", "invalid_body"},
		{"1024-bit key", good(map[string]any{"pem": pkixPEM(weakKey())}), "the RSA key has 1024 bits; at least 2048 are required", "invalid_body"},
		{"alg HS256", good(map[string]any{"alg": "HS256"}), `No enum match for: \"HS256\"' on property alg`, "invalid_body"},
		{"alg RS512", good(map[string]any{"alg": "RS512"}), `No enum match for: \"RS512\"`, "invalid_body"},
		{"name too long", good(map[string]any{"name": strings.Repeat("n", 129)}), "String is too long (129 chars), maximum 128", "invalid_body"},
		{"kid too short", good(map[string]any{"kid": "short"}), "String does not match pattern", "invalid_body"},
		{"kid with a dot", good(map[string]any{"kid": "abcdefghij.k"}), "String does not match pattern", "invalid_body"},
		{"expires_at not a date", good(map[string]any{"expires_at": "tomorrow"}), "format date-time", "invalid_body"},
		{"expires_at in the past", good(map[string]any{"expires_at": now.Add(-time.Second).Format(time.RFC3339)}), "expires_at must be a date in the future", "invalid_body"},
		{"expires_at now", good(map[string]any{"expires_at": now.Format(time.RFC3339)}), "expires_at must be a date in the future", "invalid_body"},
		{"parse_expiry_from_cert without a certificate", good(map[string]any{"parse_expiry_from_cert": true}), "parse_expiry_from_cert needs an X.509 certificate", "invalid_body"},
		{"parse_expiry_from_cert of an expired certificate", good(map[string]any{"parse_expiry_from_cert": true,
			"pem": certPEM(t, key(0), now.Add(-time.Hour))}), "expires_at must be a date in the future", "invalid_body"},
		{"parse_expiry_from_cert not boolean", good(map[string]any{"parse_expiry_from_cert": "yes"}), "Expected type boolean", "invalid_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.call("POST", "/api/v2/clients/"+appID+"/credentials", tc.body)
			st, msg, code := apiErr(t, body)
			if status != 400 || st != 400 || !strings.Contains(body, tc.wantMsg) || code != tc.wantCode {
				t.Fatalf("got %d %s (message %q)", status, body, msg)
			}
		})
	}
	if stored, _, _ := p.srv.Credentials(appID); len(stored) != 0 {
		t.Errorf("refused creations stored %d credentials", len(stored))
	}
	// Validation comes before the client lookup; an unknown client is a 404.
	status, body := p.call("POST", "/api/v2/clients/nope/credentials", good(nil))
	expect(t, status, body, 404, `{"statusCode":404,"error":"Not Found","message":"The client does not exist","errorCode":"inexistent_client"}`)
}

func TestCredentialLimitAndDuplicates(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	path := "/api/v2/clients/" + appID + "/credentials"
	first := p.newCred(appID, 0, "")
	p.newCred(appID, 1, "RS384")

	// The same key again: 409, whatever its format or alg.
	for name, pemText := range map[string]string{"same PEM": pkixPEM(key(0)), "same key as PKCS #1": pkcs1PEM(key(0))} {
		status, body := p.call("POST", path, map[string]any{"credential_type": "public_key", "pem": pemText, "alg": "PS256"})
		if _, msg, code := apiErr(t, body); status != 409 || code != "duplicate_credential" ||
			msg != "A credential with the same public key already exists for this client" {
			t.Errorf("%s: got %d %s", name, status, body)
		}
	}
	// A third credential: refused, stored or attached alike.
	const limitBody = `{"statusCode":400,"error":"Bad Request","message":"The client already has the maximum of 2 credentials: delete an unused credential before creating a new one","errorCode":"too_many_credentials"}`
	status, body := p.call("POST", path, map[string]any{"credential_type": "public_key", "pem": pkixPEM(key(2))})
	expect(t, status, body, 400, limitBody)
	p.attach(appID, first)
	status, body = p.call("POST", path, map[string]any{"credential_type": "public_key", "pem": pkixPEM(key(2))})
	expect(t, status, body, 400, limitBody)

	// Uniqueness is per client: another client may upload the same key.
	p.newCred(otherAppID, 0, "")
	// A chosen kid must be unique too.
	p.createCred(otherAppID, map[string]any{"credential_type": "public_key", "pem": pkixPEM(key(1)), "kid": "chosen-kid-1"})
	other := p.srv.AddClient(emulator.Client{}).ClientID
	p.createCred(other, map[string]any{"credential_type": "public_key", "pem": pkixPEM(key(1)), "kid": "chosen-kid-1"})
	status, body = p.call("POST", "/api/v2/clients/"+other+"/credentials",
		map[string]any{"credential_type": "public_key", "pem": pkixPEM(key(2)), "kid": "chosen-kid-1"})
	if _, msg, code := apiErr(t, body); status != 409 || code != "duplicate_credential" || !strings.Contains(msg, `kid "chosen-kid-1"`) {
		t.Errorf("duplicate kid: got %d %s", status, body)
	}

	// Deleting an unused credential makes room.
	stored, _, _ := p.srv.Credentials(appID)
	if status, body := p.call("DELETE", path+"/"+stored[1].ID, nil); status != 204 {
		t.Fatalf("delete: %d %s", status, body)
	}
	p.newCred(appID, 2, "")
	if st := p.srv.Stats(); st.CredentialsCreated[appID] != 3 || st.CredentialsDeleted[appID] != 1 {
		t.Errorf("stats %v %v", st.CredentialsCreated, st.CredentialsDeleted)
	}
}

func TestCredentialReadUpdateDelete(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	base := "/api/v2/clients/" + appID + "/credentials"
	created := p.clock.Now()
	a := p.newCred(appID, 0, "")
	p.clock.Advance(time.Second)
	b := p.newCred(appID, 1, "PS256")
	const noCred = `{"statusCode":404,"error":"Not Found","message":"The credential does not exist","errorCode":"inexistent_credential"}`
	const noClient = `{"statusCode":404,"error":"Not Found","message":"The client does not exist","errorCode":"inexistent_client"}`

	// List: a plain array, oldest first, expires_at null; go-auth0's list
	// parameters are ignored.
	status, body := p.call("GET", base+"?include_totals=true&per_page=50", nil)
	if status != 200 || !strings.HasPrefix(body, `[{`) {
		t.Fatalf("list: %d %s", status, body)
	}
	for _, want := range []string{`"id":"` + a + `"`, `"id":"` + b + `"`, `"expires_at":null`, `"created_at":"` + auth0Time(created) + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("list %s lacks %s", body, want)
		}
	}
	if strings.Index(body, a) > strings.Index(body, b) || strings.Contains(body, "pem") {
		t.Errorf("list %s", body)
	}

	// Get.
	status, body = p.call("GET", base+"/"+b, nil)
	c := decodeObject(t, body)
	if status != 200 || c["id"] != b || c["alg"] != "PS256" || c["expires_at"] != nil || len(c) != 8 {
		t.Errorf("get: %d %s", status, body)
	}
	status, body = p.call("GET", base+"/cred_unknown", nil)
	expect(t, status, body, 404, noCred)
	status, body = p.call("GET", "/api/v2/clients/"+otherAppID+"/credentials/"+a, nil)
	expect(t, status, body, 404, noCred)
	status, body = p.call("GET", "/api/v2/clients/nope/credentials/"+a, nil)
	expect(t, status, body, 404, noClient)
	status, body = p.call("GET", "/api/v2/clients/nope/credentials", nil)
	expect(t, status, body, 404, noClient)

	// Update: expires_at only, in the future, not back to never.
	p.clock.Advance(time.Second)
	exp := p.clock.Now().Add(10 * time.Minute)
	status, body = p.call("PATCH", base+"/"+a, map[string]any{"expires_at": exp.In(time.FixedZone("CEST", 2*3600)).Format(time.RFC3339Nano)})
	c = decodeObject(t, body)
	if status != 200 || c["expires_at"] != auth0Time(exp) || c["updated_at"] != auth0Time(p.clock.Now()) ||
		c["created_at"] != auth0Time(created) {
		t.Fatalf("patch: %d %s", status, body)
	}
	for name, tc := range map[string]struct {
		body string
		want string
	}{
		"other property":  {`{"name":"x"}`, "Additional properties not allowed: name"},
		"empty":           {`{}`, "Too few properties defined (0), minimum 1"},
		"null (never)":    {`{"expires_at":null}`, "Expected type string but found type null"},
		"past":            {`{"expires_at":"2020-01-01T00:00:00Z"}`, "expires_at must be a date in the future"},
		"not a date":      {`{"expires_at":"soon"}`, "format date-time"},
		"not JSON object": {`"x"`, "Expected type object"},
	} {
		status, body := p.call("PATCH", base+"/"+a, tc.body)
		if status != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("patch %s: %d %s", name, status, body)
		}
	}
	status, body = p.call("PATCH", base+"/cred_unknown", map[string]any{"expires_at": exp.Format(time.RFC3339)})
	expect(t, status, body, 404, noCred)

	// Delete: an attached credential must be detached first.
	p.attach(appID, a)
	status, body = p.call("DELETE", base+"/"+a, nil)
	expect(t, status, body, 400, `{"statusCode":400,"error":"Bad Request","message":"The credential is enabled for the client's private_key_jwt authentication method: detach it (PATCH the client's client_authentication_methods) before deleting it","errorCode":"credential_in_use"}`)
	p.attach(appID, b) // replaces a by b
	resp, body := p.api("DELETE", base+"/"+a, p.admin, nil, "")
	if resp.StatusCode != 204 || body != "" {
		t.Fatalf("delete detached: %d %q", resp.StatusCode, body)
	}
	status, body = p.call("DELETE", base+"/"+a, nil)
	expect(t, status, body, 404, noCred)
	status, body = p.call("DELETE", "/api/v2/clients/nope/credentials/"+a, nil)
	expect(t, status, body, 404, noClient)
	stored, attached, _ := p.srv.Credentials(appID)
	if len(stored) != 1 || stored[0].ID != b || len(attached) != 1 || attached[0] != b {
		t.Errorf("Credentials = %+v %v", stored, attached)
	}
	if st := p.srv.Stats(); st.CredentialsDeleted[appID] != 1 {
		t.Errorf("CredentialsDeleted = %v", st.CredentialsDeleted)
	}

	// Wrong methods.
	status, _ = p.call("PUT", base+"/"+b, `{}`)
	if status != 405 {
		t.Errorf("PUT: %d", status)
	}
	status, _ = p.call("DELETE", base, nil)
	if status != 405 {
		t.Errorf("DELETE list: %d", status)
	}
}

func TestCredentialScopes(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	cred := p.newCred(appID, 0, "")
	// The fixture's admin has every client scope but no credentials scope.
	tok := p.token(adminID, adminSecret)
	insufficient := func(scope string) string {
		return `{"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: ` + scope + `","errorCode":"insufficient_scope"}`
	}
	base := "/api/v2/clients/" + appID + "/credentials"
	for _, tc := range []struct {
		method, path, body, scope string
	}{
		{"POST", base, `{"credential_type":"public_key"}`, "create:client_credentials"},
		{"GET", base, "", "read:client_credentials"},
		{"GET", base + "/" + cred, "", "read:client_credentials"},
		{"PATCH", base + "/" + cred, `{"expires_at":"2099-01-01T00:00:00Z"}`, "update:client_credentials"},
		{"DELETE", base + "/" + cred, "", "delete:client_credentials"},
		{"DELETE", "/api/v2/clients/nope/credentials/" + cred, "", "delete:client_credentials"}, // before existence
		{"PATCH", "/api/v2/clients/" + appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"` + cred + `"}]}}}`, "update:client_credentials"},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		status, got := p.call(tc.method, tc.path, body, tok)
		expect(t, status, got, 403, insufficient(tc.scope))
	}
	if p.srv.UsesPrivateKeyJWT(appID) {
		t.Error("PATCH without update:client_credentials attached credentials")
	}
}

// TestCredentialEndpointsLikeTheRest: the credentials endpoints are counted,
// rate limited and subject to faults like the other /api/v2 endpoints.
func TestCredentialEndpointsLikeTheRest(t *testing.T) {
	p := newPKFixture(t, emulator.Options{RateLimit: 1000})
	before := p.srv.Stats().Requests
	var mu sync.Mutex
	var seen []string
	p.srv.SetFaults(func(ph emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
		if r.URL.Path == "/oauth/token" {
			return nil
		}
		mu.Lock()
		seen = append(seen, ph.String()+" "+r.Method+" "+clientID)
		mu.Unlock()
		if ph == emulator.AfterApply && r.Method == http.MethodPost {
			return &emulator.Fault{Status: 503}
		}
		return nil
	})
	resp, body := p.api("POST", "/api/v2/clients/"+appID+"/credentials", p.admin,
		strings.NewReader(`{"credential_type":"public_key","pem":`+jsonString(pkixPEM(key(0)))+`}`), "application/json")
	if resp.StatusCode != 503 || resp.Header.Get("x-ratelimit-limit") == "" {
		t.Fatalf("POST with AfterApply fault: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	stored, _, _ := p.srv.Credentials(appID)
	if len(stored) != 1 {
		t.Fatalf("the credential was not stored before the fault: %+v", stored)
	}
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		var b any
		if m == "PATCH" {
			b = `{"expires_at":"2099-01-01T00:00:00Z"}`
		}
		if status, got := p.call(m, "/api/v2/clients/"+appID+"/credentials/"+stored[0].ID, b); status >= 300 {
			t.Fatalf("%s: %d %s", m, status, got)
		}
	}
	want := []string{"BeforeApply POST " + appID, "AfterApply POST " + appID, "BeforeApply GET " + appID,
		"BeforeApply PATCH " + appID, "AfterApply PATCH " + appID, "BeforeApply DELETE " + appID, "AfterApply DELETE " + appID}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("fault hook calls:\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	if st := p.srv.Stats(); st.Requests-before != 4 {
		t.Errorf("Requests counted %d, want 4", st.Requests-before)
	}
}

// TestAddCredentialHelpers: the Go-level seeding helpers apply the API's
// rules.
func TestAddCredentialHelpers(t *testing.T) {
	p := newPKFixture(t, emulator.Options{})
	info, err := p.srv.AddCredential(appID, emulator.CredentialSpec{Name: "seed", PEM: pkixPEM(key(0))})
	if err != nil || info.KeyID != emulator.KeyID(&key(0).PublicKey) || info.Algorithm != "RS256" || !credIDRE.MatchString(info.ID) {
		t.Fatalf("AddCredential = %+v, %v", info, err)
	}
	if _, err := p.srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &key(0).PublicKey}); err == nil {
		t.Error("duplicate key accepted")
	}
	if _, err := p.srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &weakKey().PublicKey}); err == nil {
		t.Error("1024-bit key accepted")
	}
	if _, err := p.srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &key(1).PublicKey, Algorithm: "ES256"}); err == nil {
		t.Error("ES256 accepted")
	}
	if _, err := p.srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &key(1).PublicKey, ExpiresAt: p.clock.Now()}); err == nil {
		t.Error("expiry now accepted")
	}
	second, err := p.srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &key(1).PublicKey, Algorithm: "PS256"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &key(2).PublicKey}); err == nil {
		t.Error("third credential accepted")
	}
	if _, err := p.srv.AddCredential("nope", emulator.CredentialSpec{PublicKey: &key(2).PublicKey}); err == nil {
		t.Error("unknown client accepted")
	}
	if err := p.srv.AttachCredentials(appID); err == nil {
		t.Error("attaching nothing accepted")
	}
	if err := p.srv.AttachCredentials(appID, info.ID, info.ID); err == nil {
		t.Error("attaching twice accepted")
	}
	if err := p.srv.AttachCredentials(appID, "cred_nope"); err == nil {
		t.Error("attaching an unknown credential accepted")
	}
	if err := p.srv.AttachCredentials(appID, info.ID, second.ID); err != nil || !p.srv.UsesPrivateKeyJWT(appID) {
		t.Fatalf("AttachCredentials: %v", err)
	}
	status, body := p.call("GET", "/api/v2/clients/"+appID, nil)
	c := decodeObject(t, body)
	if status != 200 || c["token_endpoint_auth_method"] != nil || c["client_secret"] != nil ||
		!strings.Contains(body, `"client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"`+info.ID+`"},{"id":"`+second.ID+`"}]}}`) {
		t.Errorf("client after AttachCredentials: %s", body)
	}
	if err := p.srv.UseClientSecret(appID, "private_key_jwt"); err == nil {
		t.Error("UseClientSecret accepted private_key_jwt")
	}
	if err := p.srv.UseClientSecret(appID, "client_secret_basic"); err != nil || p.srv.UsesPrivateKeyJWT(appID) {
		t.Fatalf("UseClientSecret: %v", err)
	}
	_, body = p.call("GET", "/api/v2/clients/"+appID, nil)
	if c := decodeObject(t, body); c["token_endpoint_auth_method"] != "client_secret_basic" || c["client_secret"] != appSecret ||
		c["client_authentication_methods"] != nil {
		t.Errorf("client after UseClientSecret: %s", body)
	}
	if st := p.srv.Stats(); len(st.CredentialsCreated)+len(st.AuthMethodPatches) != 0 {
		t.Errorf("helpers counted in Stats: %+v", st)
	}
}

func jsonString(s string) string {
	b := strings.Builder{}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
