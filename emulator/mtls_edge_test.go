package emulator_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auth0/go-auth0"
	"github.com/auth0/go-auth0/management"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// edgeLogin does a client credentials request for clientID and aud through
// the edge with client, and returns status and body.
func edgeLogin(t *testing.T, client *http.Client, edge *emulator.MTLSEdge, clientID, aud string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, edge.URL+"/oauth/token", strings.NewReader(mtlsForm(clientID, aud).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST through the edge: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestMTLSEdge does real mTLS: a self-signed certificate registered and
// attached through the Management API, a TLS handshake presenting it to
// the edge, a token; then the certificate is detached and, once the
// propagation delay has passed, refused.
func TestMTLSEdge(t *testing.T) {
	const delay = 30 * time.Second
	p := newMTLSFixture(t, emulator.Options{PropagationDelay: delay, Seed: 3})
	edge := emulator.NewMTLSEdge(p.srv, testCNAMEKey)
	t.Cleanup(edge.Close)
	if !strings.HasPrefix(edge.URL, "https://") {
		t.Fatalf("edge URL %s", edge.URL)
	}

	cert := p.clientCert("vault-issued", 24*time.Hour)
	id := p.newCertCred(appID, cert.Leaf)
	p.attachCerts(appID, id)
	p.clock.Advance(delay) // the migration has propagated
	client := edge.Client(cert)

	status, body := edgeLogin(t, client, edge, appID, customAud, nil)
	if status != 200 {
		t.Fatalf("mTLS login through the edge: %d %s", status, body)
	}
	if claims := decodeClaims(t, decodeObject(t, body)["access_token"].(string)); claims["sub"] != appID+"@clients" || claims["aud"] != customAud {
		t.Errorf("claims %v", claims)
	}
	if n := p.srv.Stats().MTLSLogins[appID]; n != 1 || edge.Forwarded() != 1 {
		t.Errorf("MTLSLogins %d, forwarded %d", n, edge.Forwarded())
	}
	// Headers the client sends itself are replaced by the edge's.
	stranger := p.clientCert("stranger", time.Hour)
	status, body = edgeLogin(t, client, edge, appID, customAud, map[string]string{
		emulator.HeaderCNAMEAPIKey:                 "forged",
		emulator.HeaderClientCertificate:           emulator.EncodeClientCertificate(stranger.Leaf),
		emulator.HeaderClientCertificateCAVerified: "NONE",
	})
	if status != 200 {
		t.Errorf("client-sent headers were not replaced: %d %s", status, body)
	}
	// A client presenting another certificate gets through the handshake
	// (the edge verifies nothing) and is refused by Auth0.
	status, body = edgeLogin(t, edge.Client(stranger), edge, appID, customAud, nil)
	if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "matches no credential") {
		t.Errorf("unregistered certificate: %d %s", status, body)
	}
	// Without a certificate there is no handshake.
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: edge.CertPool()}}}
	if resp, err := noCert.Post(edge.URL+"/oauth/token", "application/x-www-form-urlencoded",
		strings.NewReader(mtlsForm(appID, customAud).Encode())); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate got an answer: %d", resp.StatusCode)
	}
	// The edge forwards nothing but the token endpoint.
	resp, err := client.Get(edge.URL + "/api/v2/clients/" + appID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /api/v2 through the edge: %d", resp.StatusCode)
	}

	// The engine rotates: a new certificate attached alone, the old one
	// detached. Until the delay has passed the old one may still work;
	// afterwards never.
	next := p.clientCert("vault-issued-2", 24*time.Hour)
	p.attachCerts(appID, p.newCertCred(appID, next.Leaf))
	p.clock.Advance(delay)
	for range 20 {
		status, body := edgeLogin(t, client, edge, appID, customAud, nil)
		if code, desc := oauthErr(t, body); status != 401 || code != "invalid_client" || !strings.Contains(desc, "matches no credential") {
			t.Fatalf("detached certificate after the propagation: %d %s", status, body)
		}
	}
	if status, body := edgeLogin(t, edge.Client(next), edge, appID, customAud, nil); status != 200 {
		t.Errorf("new certificate: %d %s", status, body)
	}
	// Once the old credential is deleted, too.
	if status, body := p.call("DELETE", "/api/v2/clients/"+appID+"/credentials/"+id, nil); status != 204 {
		t.Errorf("delete the detached credential: %d %s", status, body)
	}
}

// TestMTLSEdgeOptions: the forwarded Host and client-certificate-ca-verified.
func TestMTLSEdgeOptions(t *testing.T) {
	p := newMTLSFixture(t, emulator.Options{})
	cert := p.clientCert("app", time.Hour)
	p.attachCerts(appID, p.newCertCred(appID, cert.Leaf))
	host := p.ts.Listener.Addr().String()

	// With the emulator's Host, the Management API audience is the same as
	// for direct requests.
	edge := emulator.NewMTLSEdge(p.srv, testCNAMEKey, emulator.EdgeForwardHost(host))
	t.Cleanup(edge.Close)
	status, body := edgeLogin(t, edge.Client(cert), edge, appID, p.aud, nil)
	if status != 200 {
		t.Fatalf("Management API token through the edge: %d %s", status, body)
	}
	tok := decodeObject(t, body)["access_token"].(string)
	if status, body := p.call("GET", "/api/v2/clients/"+appID+"?fields=name", nil, tok); status != 200 {
		t.Errorf("the token at the emulator: %d %s", status, body)
	}

	// An edge that reports NONE, or no verification at all, is refused.
	for _, v := range []string{"NONE", ""} {
		e := emulator.NewMTLSEdge(p.srv, testCNAMEKey, emulator.EdgeCAVerified(v))
		status, body := edgeLogin(t, e.Client(cert), e, appID, customAud, nil)
		e.Close()
		if code, _ := oauthErr(t, body); status != 400 || code != "invalid_request" {
			t.Errorf("ca-verified %q: %d %s", v, status, body)
		}
	}
	// An edge with the wrong key is refused.
	e := emulator.NewMTLSEdge(p.srv, "not-the-key")
	defer e.Close()
	status, body = edgeLogin(t, e.Client(cert), e, appID, customAud, nil)
	if code, _ := oauthErr(t, body); status != 401 || code != "invalid_client" {
		t.Errorf("wrong key: %d %s", status, body)
	}
}

// TestGoAuth0CertificateCredential: go-auth0's management.Credential with
// credential_type x509_cert round-trips, and its Client reports the
// self_signed_tls_client_auth method. The emulator runs on real time.
func TestGoAuth0CertificateCredential(t *testing.T) {
	f := newFixture(t, emulator.Options{CNAMEAPIKey: testCNAMEKey})
	f.srv.AddClient(emulator.Client{ClientID: credAdminID, ClientSecret: credAdminSec, Name: "cred admin",
		Grants: map[string][]string{emulator.ManagementGrant: credScopes}})
	f.srv.AddClient(emulator.Client{ClientID: appID, ClientSecret: appSecret, Name: "app",
		Grants: map[string][]string{customAud: {"read:orders"}}})
	ctx := context.Background()
	m := newManagement(t, f, credAdminID, credAdminSec, true)

	now := time.Now()
	cert, err := emulator.SelfSignedCertificate("go-auth0", now.Add(-time.Minute), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cred := &management.Credential{
		Name:           auth0.String("mtls 1"),
		CredentialType: auth0.String("x509_cert"),
		PEM:            auth0.String(emulator.CertificatePEM(cert.Leaf)),
	}
	if err := m.Client.CreateCredential(ctx, appID, cred); err != nil {
		t.Fatalf("CreateCredential: %v", err)
	}
	if !credIDRE.MatchString(cred.GetID()) || cred.GetCredentialType() != "x509_cert" || cred.GetName() != "mtls 1" ||
		cred.GetThumbprintSHA256() != emulator.CertificateThumbprint(cert.Leaf) || cred.KeyID != nil || cred.Algorithm != nil ||
		!cred.GetExpiresAt().Equal(cert.Leaf.NotAfter) || cred.CreatedAt == nil {
		t.Fatalf("created %s", cred)
	}
	err = m.Client.CreateCredential(ctx, appID, &management.Credential{
		CredentialType: auth0.String("x509_cert"), PEM: auth0.String(emulator.CertificatePEM(cert.Leaf)),
	})
	var mErr management.Error
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusConflict {
		t.Fatalf("duplicate CreateCredential: %v", err)
	}
	list, err := m.Client.ListCredentials(ctx, appID)
	if err != nil || len(list) != 1 || list[0].GetThumbprintSHA256() != cred.GetThumbprintSHA256() {
		t.Fatalf("ListCredentials = %v, %v", list, err)
	}
	got, err := m.Client.GetCredential(ctx, appID, cred.GetID())
	if err != nil || got.GetCredentialType() != "x509_cert" || !got.GetExpiresAt().Equal(cred.GetExpiresAt()) {
		t.Fatalf("GetCredential = %v, %v", got, err)
	}

	// The migration PATCH (the JSON null needs a map), then go-auth0 reads
	// the method back.
	migrate := map[string]any{
		"token_endpoint_auth_method": nil,
		"client_authentication_methods": &management.ClientAuthenticationMethods{
			SelfSignedTLSClientAuth: &management.SelfSignedTLSClientAuth{Credentials: &[]management.Credential{{ID: cred.ID}}},
		},
	}
	if err := m.Request(ctx, http.MethodPatch, m.URI("clients", appID), migrate); err != nil {
		t.Fatalf("migration PATCH: %v", err)
	}
	c, err := m.Client.Read(ctx, appID)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	ss := c.GetClientAuthenticationMethods().GetSelfSignedTLSClientAuth()
	if c.TokenEndpointAuthMethod != nil || c.ClientSecret != nil || ss == nil || ss.Credentials == nil ||
		len(*ss.Credentials) != 1 || (*ss.Credentials)[0].GetID() != cred.GetID() || c.GetClientAuthenticationMethods().GetPrivateKeyJWT() != nil {
		t.Fatalf("client after migration: %s", c)
	}
	// The application logs in through the edge.
	edge := emulator.NewMTLSEdge(f.srv, testCNAMEKey)
	defer edge.Close()
	if status, body := edgeLogin(t, edge.Client(cert), edge, appID, customAud, nil); status != 200 {
		t.Fatalf("mTLS login: %d %s", status, body)
	}
	// Deleting the attached certificate is refused.
	err = m.Client.DeleteCredential(ctx, appID, cred.GetID())
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusBadRequest {
		t.Fatalf("DeleteCredential of an attached certificate: %v", err)
	}
}
