package emulator_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// The self_signed_tls_client_auth tests: x509_cert credentials, their
// attachment, and token requests carrying a client certificate forwarded by
// the tenant's edge (directly with the headers, and through a real TLS
// edge).

const testCNAMEKey = "test-cname-api-key-0123456789"

// thumbRE is the form of thumbprint_sha256: base64url without padding of 32
// bytes.
var thumbRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// newMTLSFixture is a pkFixture whose tenant accepts forwarded client
// certificates with testCNAMEKey.
func newMTLSFixture(t *testing.T, opts emulator.Options) *pkFixture {
	t.Helper()
	if opts.CNAMEAPIKey == "" {
		opts.CNAMEAPIKey = testCNAMEKey
	}
	return newPKFixture(t, opts)
}

// clientCert returns a new self-signed certificate valid from an hour before
// the fixture's clock until validity after it.
func (p *pkFixture) clientCert(cn string, validity time.Duration) tls.Certificate {
	p.t.Helper()
	now := p.clock.Now()
	c, err := emulator.SelfSignedCertificate(cn, now.Add(-time.Hour), now.Add(validity))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// newCertCred registers cert as an x509_cert credential of clientID and
// returns its id.
func (p *pkFixture) newCertCred(clientID string, cert *x509.Certificate) string {
	p.t.Helper()
	return p.createCred(clientID, map[string]any{
		"credential_type": "x509_cert", "name": cert.Subject.CommonName, "pem": emulator.CertificatePEM(cert),
	})["id"].(string)
}

// mtlsBody is the PATCH of "Configure mTLS for a client": the credentials
// attached to self_signed_tls_client_auth, token_endpoint_auth_method null.
func mtlsBody(ids ...string) map[string]any {
	refs := make([]map[string]string, len(ids))
	for i, id := range ids {
		refs[i] = map[string]string{"id": id}
	}
	return map[string]any{
		"token_endpoint_auth_method":    nil,
		"client_authentication_methods": map[string]any{"self_signed_tls_client_auth": map[string]any{"credentials": refs}},
	}
}

// attachCerts PATCHes clientID onto self_signed_tls_client_auth with ids
// and fails the test unless it succeeds.
func (p *pkFixture) attachCerts(clientID string, ids ...string) map[string]any {
	p.t.Helper()
	status, got := p.call("PATCH", "/api/v2/clients/"+clientID, mtlsBody(ids...))
	if status != 200 {
		p.t.Fatalf("attach certificates %v to %s: %d %s", ids, clientID, status, got)
	}
	return decodeObject(p.t, got)
}

// forwardedHeaders are the headers the edge adds to a request whose
// handshake presented cert.
func forwardedHeaders(cert *x509.Certificate) map[string]string {
	return map[string]string{
		emulator.HeaderCNAMEAPIKey:                 testCNAMEKey,
		emulator.HeaderClientCertificate:           emulator.EncodeClientCertificate(cert),
		emulator.HeaderClientCertificateCAVerified: "FAILED:self signed certificate",
	}
}

// certLogin posts form to /oauth/token with the headers hdr (an empty value
// leaves the header out) and returns status and body.
func (p *pkFixture) certLogin(form url.Values, hdr map[string]string, basic []string) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	return p.send(req)
}

// mtlsForm is the body of a client credentials request authenticated by a
// forwarded certificate: client_id and no secret.
func mtlsForm(clientID, aud string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "audience": {aud}}
}

// decodeClaims returns the claims of an access token, unverified.
func decodeClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return decodeObject(t, string(payload))
}

// with returns a copy of m with m[k] = v.
func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

func TestCreateCertificateCredential(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	cert := p.clientCert("vault mtls 1", 30*24*time.Hour)
	leaf := cert.Leaf

	status, body := p.call("POST", "/api/v2/clients/"+appID+"/credentials",
		map[string]any{"credential_type": "x509_cert", "name": "mtls 1", "pem": emulator.CertificatePEM(leaf)})
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	c := decodeObject(t, body)
	got := strings.Join(keys(c), ",")
	if got != "created_at,credential_type,expires_at,id,name,thumbprint_sha256,updated_at" {
		t.Errorf("answer fields %s: %s", got, body)
	}
	thumb, _ := c["thumbprint_sha256"].(string)
	if !credIDRE.MatchString(c["id"].(string)) || c["credential_type"] != "x509_cert" || c["name"] != "mtls 1" ||
		!thumbRE.MatchString(thumb) || thumb != emulator.CertificateThumbprint(leaf) {
		t.Errorf("answer %s", body)
	}
	// Without expires_at the credential expires with the certificate.
	if want := leaf.NotAfter.UTC().Format("2006-01-02T15:04:05.000Z"); c["expires_at"] != want {
		t.Errorf("expires_at %v, want the certificate's NotAfter %s", c["expires_at"], want)
	}
	if c["created_at"] != p.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z") || c["updated_at"] != c["created_at"] {
		t.Errorf("dates %v %v", c["created_at"], c["updated_at"])
	}
	id := c["id"].(string)

	// GET and list report the same object.
	status, body = p.call("GET", "/api/v2/clients/"+appID+"/credentials/"+id, nil)
	if g := decodeObject(t, body); status != 200 || g["thumbprint_sha256"] != thumb || g["expires_at"] != c["expires_at"] || g["kid"] != nil || g["pem"] != nil {
		t.Errorf("GET: %d %s", status, body)
	}
	status, body = p.call("GET", "/api/v2/clients/"+appID+"/credentials", nil)
	if status != 200 || !strings.Contains(body, `"thumbprint_sha256":"`+thumb+`"`) || strings.Contains(body, "BEGIN") {
		t.Errorf("list: %d %s", status, body)
	}

	// The test controls see the certificate.
	stored, attached, ok := p.srv.Credentials(appID)
	if !ok || len(stored) != 1 || len(attached) != 0 {
		t.Fatalf("Credentials = %v, %v, %v", stored, attached, ok)
	}
	if s := stored[0]; s.ID != id || s.Type != emulator.CredentialTypeX509Cert || s.ThumbprintSHA256 != thumb ||
		s.Certificate == nil || !s.Certificate.Equal(leaf) || s.KeyID != "" || s.Algorithm != "" || !s.ExpiresAt.Equal(leaf.NotAfter) {
		t.Errorf("CredentialInfo %+v", s)
	}

	// An explicit expires_at wins over the certificate; parse_expiry_from_cert
	// is accepted and changes nothing.
	explicit := p.clock.Now().Add(48 * time.Hour).UTC().Truncate(time.Millisecond)
	other := p.clientCert("vault mtls 2", 30*24*time.Hour)
	c2 := p.createCred(otherAppID, map[string]any{"credential_type": "x509_cert", "pem": emulator.CertificatePEM(other.Leaf),
		"expires_at": explicit.Format(time.RFC3339Nano)})
	if c2["expires_at"] != explicit.Format("2006-01-02T15:04:05.000Z") || c2["name"] != "" {
		t.Errorf("explicit expires_at: %v", c2)
	}
	c3 := p.createCred(otherAppID, map[string]any{"credential_type": "x509_cert", "pem": emulator.CertificatePEM(leaf), "parse_expiry_from_cert": true})
	if c3["expires_at"] != c["expires_at"] {
		t.Errorf("parse_expiry_from_cert: %v", c3)
	}
	if n := p.srv.Stats().CredentialsCreated[appID]; n != 1 {
		t.Errorf("CredentialsCreated = %d", n)
	}
}

func TestCreateCertificateCredentialRefusals(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	now := p.clock.Now()
	good := p.clientCert("good", time.Hour)
	expired, err := emulator.SelfSignedCertificate("expired", now.Add(-48*time.Hour), now.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	future, err := emulator.SelfSignedCertificate("future", now.Add(time.Minute), now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	body := func(pem string, extra ...any) map[string]any {
		b := map[string]any{"credential_type": "x509_cert", "name": "c", "pem": pem}
		for i := 0; i+1 < len(extra); i += 2 {
			b[extra[i].(string)] = extra[i+1]
		}
		return b
	}
	goodPEM := emulator.CertificatePEM(good.Leaf)
	tests := []struct {
		name, wantMsg string
		body          map[string]any
	}{
		{"not PEM", "pem is not PEM-encoded", body("MIIBIjANBg")},
		{"private key", "pem holds a private key", body(privatePEM(key(0)))},
		{"bare public key", "pem holds a bare public key", body(pkixPEM(key(0)))},
		{"PKCS1 public key", "pem holds a bare public key", body(pkcs1PEM(key(0)))},
		{"corrupt certificate", "invalid certificate", body("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
		{"a chain", "exactly one certificate", body(goodPEM + emulator.CertificatePEM(expired.Leaf))},
		{"expired certificate", "the certificate expired at", body(emulator.CertificatePEM(expired.Leaf))},
		{"certificate not valid yet", "the certificate is not valid before", body(emulator.CertificatePEM(future.Leaf))},
		{"alg", "alg applies only to public_key credentials", body(goodPEM, "alg", "RS256")},
		{"kid", "kid applies only to public_key credentials", body(goodPEM, "kid", "abcdefghijkl")},
		{"expires_at in the past", "expires_at must be a date in the future", body(goodPEM, "expires_at", now.Add(-time.Second).Format(time.RFC3339))},
		{"subject_dn", "subject_dn applies only to cert_subject_dn", body(goodPEM, "subject_dn", "CN=good")},
		{"cert_subject_dn", "credential_type cert_subject_dn is for tls_client_auth", body(goodPEM, "credential_type", "cert_subject_dn")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, got := p.call("POST", "/api/v2/clients/"+appID+"/credentials", tc.body)
			st, msg, code := apiErr(t, got)
			if status != 400 || st != 400 || code != "invalid_body" || !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("got %d %s", status, got)
			}
		})
	}
	if stored, _, _ := p.srv.Credentials(appID); len(stored) != 0 {
		t.Fatalf("refused requests stored %v", stored)
	}

	// The same certificate twice: 409; on another client it is fine.
	p.newCertCred(appID, good.Leaf)
	status, got := p.call("POST", "/api/v2/clients/"+appID+"/credentials", body(goodPEM))
	if _, _, code := apiErr(t, got); status != 409 || code != "duplicate_credential" {
		t.Errorf("duplicate certificate: %d %s", status, got)
	}
	p.newCertCred(otherAppID, good.Leaf)
	// A public key and a certificate share the limit of two.
	p.newCred(appID, 0, "")
	third := p.clientCert("third", time.Hour)
	status, got = p.call("POST", "/api/v2/clients/"+appID+"/credentials", body(emulator.CertificatePEM(third.Leaf)))
	if _, _, code := apiErr(t, got); status != 400 || code != "too_many_credentials" {
		t.Errorf("third credential: %d %s", status, got)
	}
	// The scope.
	tok := p.token(adminID, adminSecret)
	status, got = p.call("POST", "/api/v2/clients/"+otherAppID+"/credentials", body(emulator.CertificatePEM(third.Leaf)), tok)
	if _, _, code := apiErr(t, got); status != 403 || code != "insufficient_scope" {
		t.Errorf("without create:client_credentials: %d %s", status, got)
	}
}

func TestMigrateToSelfSignedTLS(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	certA, certB := p.clientCert("a", 24*time.Hour), p.clientCert("b", 24*time.Hour)
	a, b := p.newCertCred(appID, certA.Leaf), p.newCertCred(appID, certB.Leaf)
	client := "/api/v2/clients/" + appID

	c := p.attachCerts(appID, a)
	if c["token_endpoint_auth_method"] != nil || c["client_secret"] != nil {
		t.Errorf("PATCH answer %v", c)
	}
	status, body := p.call("GET", client+"?fields=client_authentication_methods,token_endpoint_auth_method", nil)
	expect(t, status, body, 200, `{"client_authentication_methods":{"self_signed_tls_client_auth":{"credentials":[{"id":"`+a+`"}]}},"token_endpoint_auth_method":null}`)
	status, body = p.call("GET", client, nil)
	if status != 200 || strings.Contains(body, "client_secret") {
		t.Errorf("GET on self_signed_tls_client_auth shows the secret: %s", body)
	}
	if !p.srv.UsesSelfSignedTLS(appID) || p.srv.UsesPrivateKeyJWT(appID) {
		t.Error("UsesSelfSignedTLS false or UsesPrivateKeyJWT true")
	}
	if m, ok := p.srv.AuthMethod(appID); !ok || m != emulator.MethodSelfSignedTLS {
		t.Errorf("AuthMethod = %q", m)
	}

	// Rotation: both, then the new one only, without repeating
	// token_endpoint_auth_method.
	for _, ids := range [][]string{{a, b}, {b}} {
		refs := []map[string]string{}
		for _, id := range ids {
			refs = append(refs, map[string]string{"id": id})
		}
		if status, body := p.call("PATCH", client, map[string]any{"client_authentication_methods": map[string]any{
			"self_signed_tls_client_auth": map[string]any{"credentials": refs}}}); status != 200 {
			t.Fatalf("attach %v: %d %s", ids, status, body)
		}
	}
	if _, attached, _ := p.srv.Credentials(appID); len(attached) != 1 || attached[0] != b {
		t.Errorf("attached %v", attached)
	}
	if n := p.srv.Stats().AuthMethodPatches[appID]; n != 3 {
		t.Errorf("AuthMethodPatches = %d, want 3", n)
	}

	// rotate-secret is refused, naming the method.
	status, body = p.call("POST", client+"/rotate-secret", nil)
	if _, msg, code := apiErr(t, body); status != 400 || code != "operation_not_supported" || !strings.Contains(msg, "self_signed_tls_client_auth") {
		t.Errorf("rotate-secret: %d %s", status, body)
	}
	// An attached certificate cannot be deleted; a detached one can.
	status, body = p.call("DELETE", client+"/credentials/"+b, nil)
	expect(t, status, body, 400, `{"statusCode":400,"error":"Bad Request","message":"The credential is enabled for the client's self_signed_tls_client_auth authentication method: detach it (PATCH the client's client_authentication_methods) before deleting it","errorCode":"credential_in_use"}`)
	if status, body := p.call("DELETE", client+"/credentials/"+a, nil); status != 204 {
		t.Errorf("delete detached: %d %s", status, body)
	}

	// Back to the secret.
	status, body = p.call("PATCH", client, `{"client_authentication_methods":null,"token_endpoint_auth_method":"client_secret_post"}`)
	if c := decodeObject(t, body); status != 200 || c["client_secret"] != appSecret || c["client_authentication_methods"] != nil {
		t.Errorf("back to the secret: %d %s", status, body)
	}
	if p.srv.UsesSelfSignedTLS(appID) {
		t.Error("UsesSelfSignedTLS after switching back")
	}
	if m, _ := p.srv.AuthMethod(appID); m != "client_secret_post" {
		t.Errorf("AuthMethod = %q", m)
	}
}

func TestSelfSignedTLSPatchRefusals(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	x := p.newCertCred(appID, p.clientCert("x", 24*time.Hour).Leaf)
	k := p.newCred(appID, 0, "")
	short := p.newCertCred(otherAppID, p.clientCert("short", 24*time.Hour).Leaf)
	if status, body := p.call("PATCH", "/api/v2/clients/"+otherAppID+"/credentials/"+short,
		map[string]any{"expires_at": p.clock.Now().Add(time.Minute).Format(time.RFC3339)}); status != 200 {
		t.Fatal(status, body)
	}
	p.clock.Advance(time.Minute)

	ssta := func(ids ...string) string {
		refs := make([]string, len(ids))
		for i, id := range ids {
			refs[i] = `{"id":"` + id + `"}`
		}
		return `"self_signed_tls_client_auth":{"credentials":[` + strings.Join(refs, ",") + `]}`
	}
	tests := []struct {
		name, client, body, wantMsg string
	}{
		{"public_key under self_signed_tls_client_auth", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta(k) + `}}`,
			"Credential " + k + " is of type public_key and cannot be enabled for self_signed_tls_client_auth"},
		{"x509_cert under private_key_jwt", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{"private_key_jwt":{"credentials":[{"id":"` + x + `"}]}}}`,
			"Credential " + x + " is of type x509_cert and cannot be enabled for private_key_jwt"},
		{"token_endpoint_auth_method left set", appID, `{"client_authentication_methods":{` + ssta(x) + `}}`,
			"token_endpoint_auth_method and client_authentication_methods.self_signed_tls_client_auth cannot both be set"},
		{"both methods", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta(x) + `,"private_key_jwt":{"credentials":[{"id":"` + k + `"}]}}}`,
			"client_authentication_methods can hold only one method, not private_key_jwt and self_signed_tls_client_auth"},
		{"expired certificate credential", otherAppID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta(short) + `}}`,
			"Credential " + short + " has expired and cannot be enabled for self_signed_tls_client_auth"},
		{"unknown credential", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta("cred_doesnotexist0000000") + `}}`,
			"does not exist for this client"},
		{"three credentials", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta(x, k, "cred_c") + `}}`, "'Array is too long (3), maximum 2'"},
		{"duplicate", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta(x, x) + `}}`, "'Array items are not unique (indexes 0 and 1)'"},
		{"no credentials", appID, `{"token_endpoint_auth_method":null,"client_authentication_methods":{` + ssta() + `}}`, "'Array is too short (0), minimum 1'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.call("PATCH", "/api/v2/clients/"+tc.client, tc.body)
			_, msg, code := apiErr(t, body)
			if status != 400 || code != "invalid_body" || !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("got %d %s", status, body)
			}
		})
	}

	// The scope: update:client_credentials, as for private_key_jwt.
	tok := p.token(adminID, adminSecret)
	status, body := p.call("PATCH", "/api/v2/clients/"+appID, mtlsBody(x), tok)
	if _, _, code := apiErr(t, body); status != 403 || code != "insufficient_scope" {
		t.Errorf("without update:client_credentials: %d %s", status, body)
	}

	// From private_key_jwt to self_signed_tls_client_auth: the PATCH must
	// null private_key_jwt, which the object would otherwise keep.
	p.attach(appID, k)
	status, body = p.call("PATCH", "/api/v2/clients/"+appID, `{"client_authentication_methods":{`+ssta(x)+`}}`)
	if _, msg, _ := apiErr(t, body); status != 400 || !strings.Contains(msg, "only one method") {
		t.Errorf("switch without nulling private_key_jwt: %d %s", status, body)
	}
	status, body = p.call("PATCH", "/api/v2/clients/"+appID, `{"client_authentication_methods":{"private_key_jwt":null,`+ssta(x)+`}}`)
	want := `"client_authentication_methods":{"self_signed_tls_client_auth":{"credentials":[{"id":"` + x + `"}]}}`
	if status != 200 || !strings.Contains(body, want) {
		t.Errorf("switch with private_key_jwt null: %d %s", status, body)
	}
	if !p.srv.UsesSelfSignedTLS(appID) {
		t.Error("not on self_signed_tls_client_auth after the switch")
	}
	if n := len(p.srv.Stats().AuthMethodPatches); n != 1 {
		t.Errorf("AuthMethodPatches = %v", p.srv.Stats().AuthMethodPatches)
	}
}

func TestForwardedCertificateLogin(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	cert := p.clientCert("app", 24*time.Hour)
	id := p.newCertCred(appID, cert.Leaf)
	p.attachCerts(appID, id)
	hdr := forwardedHeaders(cert.Leaf)

	status, body := p.certLogin(mtlsForm(appID, customAud), hdr, nil)
	if status != 200 {
		t.Fatalf("mTLS login: %d %s", status, body)
	}
	claims := decodeClaims(t, decodeObject(t, body)["access_token"].(string))
	if claims["sub"] != appID+"@clients" || claims["scope"] != "read:orders write:orders" {
		t.Errorf("claims %v", claims)
	}
	// Scopes narrow as for any login; JSON bodies work too.
	if status, body := p.certLogin(url.Values{"grant_type": {"client_credentials"}, "client_id": {appID},
		"audience": {customAud}, "scope": {"read:orders"}}, hdr, nil); status != 200 || !strings.Contains(body, `"scope":"read:orders"`) {
		t.Errorf("narrowed: %d %s", status, body)
	}
	for _, v := range []string{"SUCCESS", "FAILED", "FAILED: self signed certificate"} {
		if status, body := p.certLogin(mtlsForm(appID, customAud), with(hdr, emulator.HeaderClientCertificateCAVerified, v), nil); status != 200 {
			t.Errorf("client-certificate-ca-verified %q: %d %s", v, status, body)
		}
	}
	if n := p.srv.Stats().MTLSLogins[appID]; n != 5 {
		t.Errorf("MTLSLogins = %d, want 5", n)
	}
	if n := p.srv.Stats().AssertionLogins[appID]; n != 0 {
		t.Errorf("AssertionLogins = %d", n)
	}
	// The hard cutover: the secret no longer works, nor does an assertion.
	status, body = p.postToken(ccForm(appID, appSecret, customAud), nil)
	expect(t, status, body, 401, `{"error":"access_denied","error_description":"Unauthorized"}`)
	status, body = p.assertionLogin(p.sign(0, "RS256", false))
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "not configured for private_key_jwt") {
		t.Errorf("assertion: %d %s", status, body)
	}
}

func TestForwardedCertificateRefusals(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	cert := p.clientCert("app", 24*time.Hour)
	id := p.newCertCred(appID, cert.Leaf)
	p.attachCerts(appID, id)
	stranger := p.clientCert("stranger", 24*time.Hour)
	otherCert := p.clientCert("other", 24*time.Hour)
	p.newCertCred(otherAppID, otherCert.Leaf) // stored, not attached: otherAppID stays on its secret
	hdr := forwardedHeaders(cert.Leaf)
	form := mtlsForm(appID, customAud)
	rawPEM := emulator.CertificatePEM(cert.Leaf)

	tests := []struct {
		name     string
		form     url.Values
		hdr      map[string]string
		basic    []string
		status   int
		code     string
		wantDesc string
	}{
		{"no cname-api-key", form, with(hdr, emulator.HeaderCNAMEAPIKey, ""), nil, 401, "invalid_client", "Missing cname-api-key header"},
		{"wrong cname-api-key", form, with(hdr, emulator.HeaderCNAMEAPIKey, "guess"), nil, 401, "invalid_client", "Invalid cname-api-key header"},
		{"wrong key before anything else", url.Values{"grant_type": {"client_credentials"}}, with(hdr, emulator.HeaderCNAMEAPIKey, "guess"), nil, 401, "invalid_client", "Invalid cname-api-key header"},
		{"with client_secret", func() url.Values { f := mtlsForm(appID, customAud); f.Set("client_secret", appSecret); return f }(), hdr, nil,
			400, "invalid_request", "Only one client authentication method may be used"},
		{"with HTTP Basic", url.Values{"grant_type": {"client_credentials"}, "audience": {customAud}}, hdr, []string{appID, appSecret},
			400, "invalid_request", "Only one client authentication method may be used"},
		{"with a client assertion", func() url.Values {
			f := assertionForm(p.sign(0, "RS256", false), customAud)
			f.Set("client_id", appID)
			return f
		}(), hdr, nil, 400, "invalid_request", "Only one client authentication method may be used"},
		{"no client_id", url.Values{"grant_type": {"client_credentials"}, "audience": {customAud}}, hdr, nil, 400, "invalid_request", "Missing required parameter: client_id"},
		{"ca-verified missing", form, with(hdr, emulator.HeaderClientCertificateCAVerified, ""), nil, 400, "invalid_request", "Missing required header: client-certificate-ca-verified"},
		{"ca-verified NONE", form, with(hdr, emulator.HeaderClientCertificateCAVerified, "NONE"), nil, 400, "invalid_request", "NONE"},
		{"ca-verified other", form, with(hdr, emulator.HeaderClientCertificateCAVerified, "OK"), nil, 400, "invalid_request", "expected SUCCESS, FAILED or NONE"},
		{"header too long", form, with(hdr, emulator.HeaderClientCertificate, strings.Repeat("A", 4097)), nil, 400, "invalid_request", "exceeds 4096"},
		{"bad URL encoding", form, with(hdr, emulator.HeaderClientCertificate, "%zz"), nil, 400, "invalid_request", "not URL-encoded"},
		{"query-encoded PEM", form, with(hdr, emulator.HeaderClientCertificate, url.QueryEscape(rawPEM)), nil, 400, "invalid_request", "does not hold a PEM certificate"},
		{"not a certificate", form, with(hdr, emulator.HeaderClientCertificate, url.PathEscape(pkixPEM(key(0)))), nil, 400, "invalid_request", "does not hold a PEM certificate"},
		{"a certificate not registered", form, forwardedHeaders(stranger.Leaf), nil, 401, "invalid_client", "matches no credential enabled for self_signed_tls_client_auth"},
		{"another client's certificate", form, forwardedHeaders(otherCert.Leaf), nil, 401, "invalid_client", "matches no credential"},
		{"a client on its secret", mtlsForm(otherAppID, customAud), forwardedHeaders(otherCert.Leaf), nil, 401, "invalid_client", "Client is not configured for self_signed_tls_client_auth"},
		{"unknown client", mtlsForm("nobody", customAud), hdr, nil, 401, "invalid_client", "unknown client"},
		{"ungranted audience", mtlsForm(appID, "https://elsewhere.example.com/"), hdr, nil, 403, "access_denied", "Service not enabled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.certLogin(tc.form, tc.hdr, tc.basic)
			code, desc := oauthErr(t, body)
			if status != tc.status || code != tc.code || !strings.Contains(desc, tc.wantDesc) {
				t.Fatalf("got %d %s", status, body)
			}
		})
	}
	if n := p.srv.Stats().MTLSLogins[appID]; n != 0 {
		t.Errorf("MTLSLogins = %d", n)
	}

	// A client on private_key_jwt is not on mTLS.
	p.attach(otherAppID, p.newCred(otherAppID, 1, ""))
	status, body := p.certLogin(mtlsForm(otherAppID, customAud), forwardedHeaders(otherCert.Leaf), nil)
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "not configured for self_signed_tls_client_auth") {
		t.Errorf("client on private_key_jwt: %d %s", status, body)
	}

	// A tenant without a custom domain API key accepts no forwarded
	// certificate, whatever the key sent.
	q := newPKFixture(t, emulator.Options{})
	status, body = q.certLogin(mtlsForm(appID, customAud), hdr, nil)
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "not set up") {
		t.Errorf("no CNAMEAPIKey: %d %s", status, body)
	}
	status, body = q.certLogin(mtlsForm(appID, customAud), with(hdr, emulator.HeaderCNAMEAPIKey, ""), nil)
	if code, _ := oauthErr(t, body); status != 401 || code != "invalid_client" {
		t.Errorf("no CNAMEAPIKey, no key: %d %s", status, body)
	}
}

func TestForwardedCertificateExpiry(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	// A certificate valid for two hours more, and one whose credential
	// expires (by expires_at) before the certificate does.
	short := p.clientCert("short", 2*time.Hour)
	long := p.clientCert("long", 48*time.Hour)
	s, l := p.newCertCred(appID, short.Leaf), p.newCertCred(appID, long.Leaf)
	if status, body := p.call("PATCH", "/api/v2/clients/"+appID+"/credentials/"+l,
		map[string]any{"expires_at": p.clock.Now().Add(3 * time.Hour).Format(time.RFC3339)}); status != 200 {
		t.Fatal(status, body)
	}
	p.attachCerts(appID, s, l)
	for _, c := range []tls.Certificate{short, long} {
		if status, body := p.certLogin(mtlsForm(appID, customAud), forwardedHeaders(c.Leaf), nil); status != 200 {
			t.Fatalf("%s: %d %s", c.Leaf.Subject.CommonName, status, body)
		}
	}
	p.clock.Advance(2 * time.Hour)
	status, body := p.certLogin(mtlsForm(appID, customAud), forwardedHeaders(short.Leaf), nil)
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "the certificate expired at") {
		t.Errorf("expired certificate: %d %s", status, body)
	}
	p.clock.Advance(time.Hour)
	status, body = p.certLogin(mtlsForm(appID, customAud), forwardedHeaders(long.Leaf), nil)
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "the credential has expired") {
		t.Errorf("expired credential: %d %s", status, body)
	}
	// Both stay stored and attached, inoperable.
	if stored, attached, _ := p.srv.Credentials(appID); len(stored) != 2 || len(attached) != 2 {
		t.Errorf("stored %d, attached %v", len(stored), attached)
	}
}

func TestSelfSignedTLSPropagation(t *testing.T) {
	const delay = 30 * time.Second
	p := newMTLSFixture(t, emulator.Options{PropagationDelay: delay, Seed: 11})
	certA, certB := p.clientCert("a", 24*time.Hour), p.clientCert("b", 24*time.Hour)
	a, b := p.newCertCred(appID, certA.Leaf), p.newCertCred(appID, certB.Leaf)

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
	secret := func() int { s, _ := p.postToken(ccForm(appID, appSecret, customAud), nil); return s }
	withCert := func(c tls.Certificate) func() int {
		return func() int {
			s, body := p.certLogin(mtlsForm(appID, customAud), forwardedHeaders(c.Leaf), nil)
			if s != 200 && s != 401 {
				t.Fatalf("mTLS login: %d %s", s, body)
			}
			return s
		}
	}

	// Migration: the secret and the certificate each work about half the
	// time until the delay has passed.
	p.attachCerts(appID, a)
	if ok, refused := count(secret); ok == 0 || refused == 0 {
		t.Errorf("secret during the migration's propagation: %d accepted, %d refused", ok, refused)
	}
	if ok, refused := count(withCert(certA)); ok == 0 || refused == 0 {
		t.Errorf("certificate during the migration's propagation: %d accepted, %d refused", ok, refused)
	}
	p.clock.Advance(delay)
	if ok, _ := count(secret); ok != 0 {
		t.Errorf("secret accepted %d times after the propagation", ok)
	}
	if _, refused := count(withCert(certA)); refused != 0 {
		t.Errorf("certificate refused %d times after the propagation", refused)
	}

	// Rotation from a to b: the detached certificate keeps working, at
	// random, until the delay has passed, then never.
	p.attachCerts(appID, b)
	p.clock.Advance(delay - time.Second)
	if ok, refused := count(withCert(certA)); ok == 0 || refused == 0 {
		t.Errorf("detached certificate during the propagation: %d accepted, %d refused", ok, refused)
	}
	if ok, refused := count(withCert(certB)); ok == 0 || refused == 0 {
		t.Errorf("new certificate during the propagation: %d accepted, %d refused", ok, refused)
	}
	p.clock.Advance(time.Second)
	if ok, _ := count(withCert(certA)); ok != 0 {
		t.Errorf("detached certificate accepted %d times after the propagation", ok)
	}
	if _, refused := count(withCert(certB)); refused != 0 {
		t.Errorf("new certificate refused %d times after the propagation", refused)
	}
}

func TestCertificateHelpers(t *testing.T) {
	clock := newStepClock()
	srv := emulator.New(emulator.Options{Now: clock.Now, CNAMEAPIKey: testCNAMEKey})
	srv.AddClient(emulator.Client{ClientID: appID, ClientSecret: appSecret})
	now := clock.Now()
	cert, err := emulator.SelfSignedCertificate("helper", now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil || cert.Leaf.Subject.CommonName != "helper" || len(cert.Certificate) != 1 ||
		cert.Leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("SelfSignedCertificate: %+v", cert.Leaf)
	}
	// The header encoding: encodeURIComponent of the PEM.
	enc := emulator.EncodeClientCertificate(cert.Leaf)
	if !strings.HasPrefix(enc, "-----BEGIN%20CERTIFICATE-----%0A") || strings.ContainsAny(enc, "+/= \n") {
		t.Errorf("EncodeClientCertificate: %q", enc)
	}
	if dec, err := url.PathUnescape(enc); err != nil || dec != emulator.CertificatePEM(cert.Leaf) {
		t.Errorf("decoded %q, %v", dec, err)
	}

	info, err := srv.AddCertificateCredential(appID, emulator.CertificateSpec{Name: "h", Certificate: cert.Leaf})
	if err != nil || info.Type != emulator.CredentialTypeX509Cert || info.ThumbprintSHA256 != emulator.CertificateThumbprint(cert.Leaf) ||
		!info.ExpiresAt.Equal(cert.Leaf.NotAfter) || info.PublicKey != nil {
		t.Fatalf("AddCertificateCredential = %+v, %v", info, err)
	}
	if _, err := srv.AddCertificateCredential(appID, emulator.CertificateSpec{PEM: emulator.CertificatePEM(cert.Leaf)}); err == nil ||
		!strings.Contains(err.Error(), "same certificate") {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := srv.AddCertificateCredential(appID, emulator.CertificateSpec{PEM: "x", Certificate: cert.Leaf}); err == nil {
		t.Error("PEM and Certificate both accepted")
	}
	expired, _ := emulator.SelfSignedCertificate("old", now.Add(-2*time.Hour), now.Add(-time.Hour))
	if _, err := srv.AddCertificateCredential(appID, emulator.CertificateSpec{Certificate: expired.Leaf}); err == nil ||
		!strings.Contains(err.Error(), "expired") {
		t.Errorf("expired certificate: %v", err)
	}
	if _, err := srv.AddCertificateCredential("nobody", emulator.CertificateSpec{Certificate: cert.Leaf}); err == nil {
		t.Error("unknown client accepted")
	}
	pk, err := srv.AddCredential(appID, emulator.CredentialSpec{PublicKey: &key(0).PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	// Types are checked: no public key for mTLS, no certificate for
	// private_key_jwt.
	if err := srv.AttachCertificates(appID, pk.ID); err == nil || !strings.Contains(err.Error(), "is of type public_key") {
		t.Errorf("AttachCertificates of a public key: %v", err)
	}
	if err := srv.AttachCredentials(appID, info.ID); err == nil || !strings.Contains(err.Error(), "is of type x509_cert") {
		t.Errorf("AttachCredentials of a certificate: %v", err)
	}
	if err := srv.AttachCertificates(appID, info.ID); err != nil {
		t.Fatal(err)
	}
	if !srv.UsesSelfSignedTLS(appID) || srv.UsesPrivateKeyJWT(appID) {
		t.Error("AttachCertificates did not switch the method")
	}
	if m, _ := srv.AuthMethod(appID); m != emulator.MethodSelfSignedTLS {
		t.Errorf("AuthMethod = %q", m)
	}
	if _, attached, _ := srv.Credentials(appID); len(attached) != 1 || attached[0] != info.ID {
		t.Errorf("attached %v", attached)
	}
	// AttachCredentials switches straight to private_key_jwt.
	if err := srv.AttachCredentials(appID, pk.ID); err != nil || !srv.UsesPrivateKeyJWT(appID) || srv.UsesSelfSignedTLS(appID) {
		t.Errorf("AttachCredentials after AttachCertificates: %v", err)
	}
	if err := srv.UseClientSecret(appID, "client_secret_basic"); err != nil || srv.UsesSelfSignedTLS(appID) || srv.UsesPrivateKeyJWT(appID) {
		t.Errorf("UseClientSecret: %v", err)
	}
	if m, ok := srv.AuthMethod(appID); !ok || m != "client_secret_basic" {
		t.Errorf("AuthMethod = %q, %v", m, ok)
	}
	if _, ok := srv.AuthMethod("nobody"); ok {
		t.Error("AuthMethod of an unknown client")
	}
	if n := srv.Stats(); len(n.CredentialsCreated) != 0 || len(n.AuthMethodPatches) != 0 {
		t.Errorf("helpers counted: %+v", n)
	}
}
