package emulator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// Shared fixtures of the private_key_jwt tests: RSA keys are generated once
// per test binary, every clock is virtual.

// testKeys returns four 2048-bit RSA keys, generated on first use.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	keys := make([]*rsa.PrivateKey, 4)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// weakKey is a 1024-bit RSA key, which the credentials endpoint refuses.
var weakKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	return k
})

func key(i int) *rsa.PrivateKey { return testKeys()[i] }

// pkixPEM is the "PUBLIC KEY" PEM of k's public key.
func pkixPEM(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// pkcs1PEM is the "RSA PUBLIC KEY" PEM of k's public key.
func pkcs1PEM(k *rsa.PrivateKey) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)}))
}

// privatePEM is k as PKCS #8 PEM.
func privatePEM(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// certPEM is a self-signed certificate of k valid until notAfter.
func certPEM(t *testing.T, k *rsa.PrivateKey, notAfter time.Time) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "emulator test"},
		NotBefore:    notAfter.Add(-365 * 24 * time.Hour),
		NotAfter:     notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// ecPEM is the PKIX PEM of a P-256 key, which is not RSA.
func ecPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// credScopes are every Management API scope the private_key_jwt endpoints
// use.
var credScopes = append(append([]string(nil), allScopes...),
	"create:client_credentials", "read:client_credentials", "update:client_credentials", "delete:client_credentials")

const (
	credAdminID  = "credAdminClientID000000000000000"
	credAdminSec = "cred-admin-secret"
	// appID is a machine-to-machine application that moves to
	// private_key_jwt; it may read clients.
	appID     = "appClientID000000000000000000000"
	appSecret = "app-secret"
	// otherAppID is a second application, whose credentials appID may not
	// use.
	otherAppID = "otherAppClientID0000000000000000"
)

// pkFixture is a fixture with a virtual clock, an administrator holding
// every credentials scope and two applications.
type pkFixture struct {
	*fixture
	clock *stepClock
	admin string // the administrator's Management API token
}

func newPKFixture(t *testing.T, opts emulator.Options) *pkFixture {
	t.Helper()
	clock := newStepClock()
	opts.Now = clock.Now
	f := newFixture(t, opts)
	f.srv.AddClient(emulator.Client{ClientID: credAdminID, ClientSecret: credAdminSec, Name: "cred admin",
		Grants: map[string][]string{emulator.ManagementGrant: credScopes}})
	f.srv.AddClient(emulator.Client{ClientID: appID, ClientSecret: appSecret, Name: "app",
		Grants: map[string][]string{emulator.ManagementGrant: {"read:clients"}, customAud: {"read:orders", "write:orders"}}})
	f.srv.AddClient(emulator.Client{ClientID: otherAppID, ClientSecret: otherSecret, Name: "other app"})
	return &pkFixture{fixture: f, clock: clock, admin: f.token(credAdminID, credAdminSec)}
}

// tenantURL is the aud of client assertions to the fixture's server.
func (p *pkFixture) tenantURL() string { return strings.TrimSuffix(p.aud, "api/v2/") }

// call sends a JSON Management API request with the administrator's token
// (or tok, if not empty) and returns status and body.
func (p *pkFixture) call(method, path string, body any, tok ...string) (int, string) {
	p.t.Helper()
	token := p.admin
	if len(tok) > 0 {
		token = tok[0]
	}
	var rd *strings.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			p.t.Fatal(err)
		}
		rd, ct = strings.NewReader(string(raw)), "application/json"
	}
	if rd == nil {
		resp, got := p.api(method, path, token, nil, ct)
		return resp.StatusCode, got
	}
	resp, got := p.api(method, path, token, rd, ct)
	return resp.StatusCode, got
}

// createCred creates a credential with the administrator's token and fails
// the test unless the answer is 201; it returns the credential object.
func (p *pkFixture) createCred(clientID string, body map[string]any) map[string]any {
	p.t.Helper()
	status, got := p.call("POST", "/api/v2/clients/"+clientID+"/credentials", body)
	if status != 201 {
		p.t.Fatalf("create credential for %s: %d %s", clientID, status, got)
	}
	return decodeObject(p.t, got)
}

// newCred creates a public_key credential of key i for clientID and returns
// its id.
func (p *pkFixture) newCred(clientID string, i int, alg string) string {
	p.t.Helper()
	body := map[string]any{"credential_type": "public_key", "name": "key " + string(rune('A'+i)), "pem": pkixPEM(key(i))}
	if alg != "" {
		body["alg"] = alg
	}
	return p.createCred(clientID, body)["id"].(string)
}

// migrationBody is the PATCH of Auth0's guide that moves a client to
// private_key_jwt with the given credentials.
func migrationBody(ids ...string) map[string]any {
	refs := make([]map[string]string, len(ids))
	for i, id := range ids {
		refs[i] = map[string]string{"id": id}
	}
	return map[string]any{
		"token_endpoint_auth_method":    nil,
		"client_authentication_methods": map[string]any{"private_key_jwt": map[string]any{"credentials": refs}},
	}
}

// attach PATCHes clientID onto private_key_jwt with ids and fails the test
// unless it succeeds.
func (p *pkFixture) attach(clientID string, ids ...string) map[string]any {
	p.t.Helper()
	status, got := p.call("PATCH", "/api/v2/clients/"+clientID, migrationBody(ids...))
	if status != 200 {
		p.t.Fatalf("attach %v to %s: %d %s", ids, clientID, status, got)
	}
	return decodeObject(p.t, got)
}

// assertionForm is a client credentials request authenticated by assertion.
func assertionForm(assertion, aud string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"audience":              {aud},
		"client_assertion_type": {emulator.ClientAssertionType},
		"client_assertion":      {assertion},
	}
}

// sign returns a client assertion for appID signed with key i, with kid if
// withKid, valid for a minute from the fixture's clock.
func (p *pkFixture) sign(i int, alg string, withKid bool) string {
	p.t.Helper()
	kid := ""
	if withKid {
		kid = emulator.KeyID(&key(i).PublicKey)
	}
	a, err := emulator.SignAssertion(key(i), alg, kid, appID, p.tenantURL(), p.clock.Now(), time.Minute)
	if err != nil {
		p.t.Fatal(err)
	}
	return a
}

// assertionLogin posts an assertion for the management audience and returns
// status and body.
func (p *pkFixture) assertionLogin(assertion string) (int, string) {
	p.t.Helper()
	return p.postToken(assertionForm(assertion, p.aud), nil)
}

// signClaims signs arbitrary claims with key i (RS256 unless header says
// otherwise).
func signClaims(t *testing.T, i int, header, claims map[string]any) string {
	t.Helper()
	if header == nil {
		header = map[string]any{"alg": "RS256"}
	}
	a, err := emulator.SignJWT(key(i), header, claims)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// oauthErr decodes an OAuth error body.
func oauthErr(t *testing.T, body string) (code, desc string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decode OAuth error %q: %v", body, err)
	}
	return e.Error, e.Description
}

// apiErr decodes a Management API error body.
func apiErr(t *testing.T, body string) (status float64, message, code string) {
	t.Helper()
	m := decodeObject(t, body)
	status, _ = m["statusCode"].(float64)
	message, _ = m["message"].(string)
	code, _ = m["errorCode"].(string)
	return status, message, code
}
