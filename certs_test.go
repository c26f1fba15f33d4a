package auth0

import (
	"crypto/tls"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// newCertEnv is a configured engine with role "app" rotating self-signed mTLS certificates
// of testAppID, an application that starts on a client secret.
func newCertEnv(t *testing.T, extra map[string]interface{}) *testEnv {
	t.Helper()
	e := newTestEnv(t, keyScopes...)
	e.configure()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"propagation_wait": 0})
	data := map[string]interface{}{"client_id": testAppID, "credential_type": "self_signed_tls_client_auth", "allow_auth_method_change": true}
	for k, v := range extra {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "roles/app", data)
	return e
}

// servedCert is a certificate creds serve.
type servedCert struct {
	certPEM, keyPEM, thumbprint, expiresAt string
}

// servedCerts reads creds/app of a certificate role.
func (e *testEnv) servedCerts() (current servedCert, previous *servedCert, data map[string]interface{}) {
	e.t.Helper()
	data = e.ok(logical.ReadOperation, "creds/app", nil)
	for _, f := range []string{"client_secret", "kid", "algorithm"} {
		if _, ok := data[f]; ok {
			e.t.Fatalf("creds of a certificate role answer %s", f)
		}
	}
	current = servedCert{data["certificate"].(string), data["private_key"].(string), data["thumbprint_sha256"].(string), data["expires_at"].(string)}
	if p := data["previous_certificate"].(string); p != "" {
		previous = &servedCert{p, data["previous_private_key"].(string), data["previous_thumbprint_sha256"].(string), data["previous_expires_at"].(string)}
	}
	return current, previous, data
}

// certLogsIn reports whether the application gets a token presenting c to the tenant's
// mTLS edge, over a real TLS handshake, as an application does.
func (e *testEnv) certLogsIn(c servedCert) bool {
	e.t.Helper()
	pair, err := tls.X509KeyPair([]byte(c.certPEM), []byte(c.keyPEM))
	if err != nil {
		e.t.Fatalf("creds serve a certificate and key that do not pair: %v", err)
	}
	edge := emulator.NewMTLSEdge(e.emu, testCNAMEKey)
	defer edge.Close()
	resp, err := edge.Client(pair).PostForm(edge.URL+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {testAppID},
		"audience":   {testAPI},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// A certificate role switches a secret application to self_signed_tls_client_auth with
// its first certificate, then rotates on schedule with a real overlap: both certificates
// log in through the edge until overlap_period has passed, then only the new one does.
func TestCertRotationOverlaps(t *testing.T) {
	e := newCertEnv(t, map[string]interface{}{"rotation_period": "1h", "overlap_period": "10m", "certificate_ttl": "24h"})
	oldSecret := e.appSecret(testAppID)
	resp := e.ok(logical.UpdateOperation, "rotate/app", nil)
	if resp["version"] != 1 || resp["key_id"] == "" {
		t.Fatalf("first rotation answered %v", resp)
	}
	for k, v := range resp {
		if s, ok := v.(string); ok && strings.Contains(s, "PRIVATE KEY") {
			t.Fatalf("rotate answered key material in %s", k)
		}
	}
	if !e.emu.UsesSelfSignedTLS(testAppID) || e.authenticates(testAppID, oldSecret) {
		t.Fatal("after the first certificate the application must be on self_signed_tls_client_auth and its secret refused")
	}
	cur, prev, data := e.servedCerts()
	if prev != nil || !e.certLogsIn(cur) {
		t.Fatalf("first certificate: previous %v, or it does not log in", prev)
	}
	creds, _, _ := e.emu.Credentials(testAppID)
	if len(creds) != 1 || creds[0].ThumbprintSHA256 != cur.thumbprint || creds[0].Type != auth0api.CredentialX509Cert {
		t.Fatalf("Auth0 holds %+v; creds serve thumbprint %s", creds, cur.thumbprint)
	}
	if want := e.clock.Now().Add(24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339); cur.expiresAt != want {
		t.Fatalf("expires_at %s, want %s (certificate_ttl)", cur.expiresAt, want)
	}
	if data["ttl"].(int64) > int64((10 * time.Minute / 4).Seconds()) {
		t.Fatalf("ttl %v exceeds a quarter of overlap_period", data["ttl"])
	}

	for round := 2; round <= 4; round++ {
		old := cur
		e.advance(time.Hour)
		cur, prev, _ = e.servedCerts()
		if got := e.storedRole("app").CurrentVersion(); got != round {
			t.Fatalf("round %d: version %d after the scheduled rotation", round, got)
		}
		if prev == nil || prev.thumbprint != old.thumbprint || cur.thumbprint == old.thumbprint {
			t.Fatalf("round %d: creds serve previous %v, want the old certificate during the overlap", round, prev)
		}
		stored, attached := e.credentialIDs(testAppID)
		if len(stored) != 2 || !slices.Equal(stored, attached) {
			t.Fatalf("round %d during the overlap: stored %v, attached %v", round, stored, attached)
		}
		if !e.certLogsIn(cur) || !e.certLogsIn(old) {
			t.Fatalf("round %d: both certificates must log in during the overlap", round)
		}
		e.advance(10 * time.Minute)
		stored, attached = e.credentialIDs(testAppID)
		if len(stored) != 1 || !slices.Equal(stored, attached) || stored[0] != e.storedRole("app").Current().KeyID {
			t.Fatalf("round %d after the overlap: stored %v, attached %v", round, stored, attached)
		}
		if e.certLogsIn(old) || !e.certLogsIn(cur) {
			t.Fatalf("round %d after the overlap: the old certificate must fail and the new one work", round)
		}
		if _, p, _ := e.servedCerts(); p != nil {
			t.Fatalf("round %d: creds still serve the detached certificate", round)
		}
		e.advance(50*time.Minute - time.Second)
	}
	if strings.Contains(e.logs.String(), "PRIVATE KEY") || strings.Contains(e.logs.String(), "BEGIN CERTIFICATE") {
		t.Fatal("key or certificate material reached the log")
	}
}

// A certificate is renewed two thirds into its lifetime even when the role has no
// schedule, so that creds never serve a certificate Auth0 refuses for its age.
func TestCertRenewedBeforeExpiry(t *testing.T) {
	e := newCertEnv(t, map[string]interface{}{"certificate_ttl": "3h", "overlap_period": "10m"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	first, _, data := e.servedCerts()
	if ttl := data["ttl"].(int64); ttl > int64((10 * time.Minute / 4).Seconds()) {
		t.Fatalf("ttl %d", ttl)
	}
	e.advance(2*time.Hour - time.Minute)
	if v := e.storedRole("app").CurrentVersion(); v != 1 {
		t.Fatalf("renewed early: version %d", v)
	}
	e.advance(2 * time.Minute)
	role := e.storedRole("app")
	if role.CurrentVersion() != 2 || role.Overlap == nil {
		t.Fatalf("not renewed two thirds into the certificate's life: version %d, overlap %+v", role.CurrentVersion(), role.Overlap)
	}
	cur, prev, _ := e.servedCerts()
	if prev == nil || prev.thumbprint != first.thumbprint || !e.certLogsIn(cur) || !e.certLogsIn(first) {
		t.Fatal("the renewal must overlap the old certificate")
	}
	// Many lifetimes later the engine still serves a certificate that logs in.
	for i := 0; i < 6; i++ {
		e.advance(time.Hour)
	}
	if cur, _, _ = e.servedCerts(); !e.certLogsIn(cur) {
		t.Fatal("after several lifetimes creds serve a certificate Auth0 refuses")
	}
}

func TestCertRoleFields(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configure()
	base := map[string]interface{}{"client_id": testAppID, "credential_type": "self_signed_tls_client_auth", "allow_auth_method_change": true}
	with := func(extra map[string]interface{}) map[string]interface{} {
		data := map[string]interface{}{}
		for k, v := range base {
			data[k] = v
		}
		for k, v := range extra {
			data[k] = v
		}
		return data
	}
	for _, c := range []struct {
		extra map[string]interface{}
		want  string
	}{
		{map[string]interface{}{"certificate_ttl": "10m"}, "certificate_ttl must be 0"},
		{map[string]interface{}{"rotation_period": "720h", "overlap_period": "24h", "certificate_ttl": "744h"}, "must be longer than rotation_period plus overlap_period"},
		{map[string]interface{}{"algorithm": "RS256"}, "algorithm applies only with credential_type=private_key_jwt"},
		{map[string]interface{}{"token_audiences": testAPI}, "token_audiences does not apply to self_signed_tls_client_auth roles"},
		{map[string]interface{}{"allow_assertions": true}, "allow_assertions applies only with credential_type=private_key_jwt"},
		{map[string]interface{}{"rotation_strategy": "staged"}, "self_signed_tls_client_auth roles rotate with their own overlap"},
		{map[string]interface{}{"key_bits": 1024}, "key_bits must be 2048, 3072 or 4096"},
	} {
		wantContains(t, e.userError(logical.UpdateOperation, "roles/app", with(c.extra)), c.want)
		if r, err := model.LoadRole(t.Context(), e.storage, "app"); r != nil || err != nil {
			t.Fatalf("%v: a refused write stored the role", c.extra)
		}
	}
	wantContains(t, e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "certificate_ttl": "48h"}),
		"certificate_ttl applies only with credential_type=self_signed_tls_client_auth")
	e.ok(logical.UpdateOperation, "roles/app", with(map[string]interface{}{"rotation_period": "720h", "certificate_ttl": "2160h", "key_bits": 3072}))
	got := e.ok(logical.ReadOperation, "roles/app", nil)
	if got["credential_type"] != "self_signed_tls_client_auth" || got["certificate_ttl"] != int64(2160*3600) || got["key_bits"] != 3072 || got["overlap_period"] != int64(24*3600) {
		t.Fatalf("read %v", got)
	}
}

// A certificate role does not switch an application off another authentication method
// (its client secret, or private_key_jwt keys) unless allowed to.
func TestCertRoleNeedsConsentToSwitch(t *testing.T) {
	e := newTestEnv(t, keyScopes...)
	e.configure()
	wantContains(t, e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "credential_type": "self_signed_tls_client_auth"}),
		`authenticates with a client secret (token_endpoint_auth_method "client_secret_post"); switching it to self_signed_tls_client_auth`)

	// testApp2ID on private_key_jwt, through a key role, then handed to a certificate role.
	e.ok(logical.UpdateOperation, "roles/keys", map[string]interface{}{"client_id": testApp2ID, "credential_type": "private_key_jwt", "allow_auth_method_change": true, "overlap_period": 0})
	e.ok(logical.UpdateOperation, "rotate/keys", nil)
	e.ok(logical.DeleteOperation, "roles/keys", nil)
	wantContains(t, e.userError(logical.UpdateOperation, "roles/certs", map[string]interface{}{"client_id": testApp2ID, "credential_type": "self_signed_tls_client_auth"}),
		"authenticates with its private_key_jwt credentials; switching it to self_signed_tls_client_auth")
	e.ok(logical.UpdateOperation, "roles/certs", map[string]interface{}{"client_id": testApp2ID, "credential_type": "self_signed_tls_client_auth", "allow_auth_method_change": true, "overlap_period": 0})
	e.ok(logical.UpdateOperation, "rotate/certs", nil)
	if !e.emu.UsesSelfSignedTLS(testApp2ID) {
		t.Fatal("the application did not move to self_signed_tls_client_auth")
	}
}

// Faults at every step of certificate rotations converge as for keys: no credential Vault
// does not hold, never more than two, and a served certificate that logs in.
func TestCertRotationFaultsSearch(t *testing.T) {
	e := newCertEnv(t, map[string]interface{}{"rotation_period": "1h", "overlap_period": "10m", "certificate_ttl": "24h"})
	attachedFaultsSearch(t, e, func() (string, bool) {
		cur, _, _ := e.servedCerts()
		return e.storedRole("app").Current().KeyID, cur.thumbprint == e.storedRole("app").Current().Thumbprint && e.certLogsIn(cur)
	})
}

// A certificate that expired before its replacement was attached (renewals failed until
// then) is left out of the overlap (Auth0 refuses to enable an expired credential) and
// deleted; creds serve no previous certificate.
func TestCertExpiredPreviousIsNotKept(t *testing.T) {
	e := newCertEnv(t, map[string]interface{}{"certificate_ttl": "1h", "overlap_period": "10m"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	first := e.storedRole("app").Current()
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.BeforeApply && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/credentials") {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})
	e.advance(70 * time.Minute) // the renewal, due at 40m, fails past the expiry at 60m
	if role := e.storedRole("app"); role.CurrentVersion() != 1 || role.LastFailure == nil {
		t.Fatalf("the renewal did not fail: version %d, failure %+v", role.CurrentVersion(), role.LastFailure)
	}
	e.emu.SetFaults(nil)
	for i := 0; i < 10 && e.storedRole("app").CurrentVersion() < 2; i++ {
		e.advance(30 * time.Minute)
	}
	role := e.storedRole("app")
	if role.CurrentVersion() != 2 || role.LastFailure != nil {
		t.Fatalf("no renewal after the faults: version %d, failure %+v", role.CurrentVersion(), role.LastFailure)
	}
	if role.Overlap != nil && slices.Contains(role.Overlap.CredentialIDs, first.KeyID) {
		t.Fatalf("the expired certificate is in the overlap: %+v", role.Overlap)
	}
	stored, attached := e.credentialIDs(testAppID)
	if !slices.Equal(stored, []string{role.Current().KeyID}) || !slices.Equal(attached, stored) {
		t.Fatalf("Auth0 stores %v, attaches %v; want only the new certificate %s", stored, attached, role.Current().KeyID)
	}
	if cur, prev, _ := e.servedCerts(); prev != nil || !e.certLogsIn(cur) {
		t.Fatalf("creds serve a previous certificate %v, or the new one does not log in", prev)
	}
}

// The overlap after a renewal ends when the previous certificate expires, if that comes
// before overlap_period is over: creds never serve an expired previous certificate.
func TestCertOverlapEndsWhenPreviousExpires(t *testing.T) {
	e := newCertEnv(t, map[string]interface{}{"certificate_ttl": "3h", "overlap_period": "2h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	first := e.storedRole("app").Current()
	e.advance(2*time.Hour + time.Minute) // renewed two thirds in
	role := e.storedRole("app")
	if role.CurrentVersion() != 2 || role.Overlap == nil || !role.Overlap.Until.Equal(first.ExpiresAt) {
		t.Fatalf("version %d, overlap %+v; want it to end when version 1 expires (%s)", role.CurrentVersion(), role.Overlap, first.ExpiresAt)
	}
	if _, prev, data := e.servedCerts(); prev == nil || data["overlap_until"] != first.ExpiresAt.Format(time.RFC3339) {
		t.Fatalf("creds serve previous %v until %v", prev, data["overlap_until"])
	}
	e.advance(time.Hour)
	if _, prev, _ := e.servedCerts(); prev != nil {
		t.Fatal("creds serve the previous certificate after it expired")
	}
	if stored, _ := e.credentialIDs(testAppID); len(stored) != 1 {
		t.Fatalf("Auth0 still stores %v", stored)
	}
}

// A previous certificate is not served past its expiry, also when the overlap's end could
// not store what creds serve (found by TestSimulation -sim.seed=640 once drift became one
// of its faults): creds hand out no certificate Auth0 refuses.
func TestCertExpiredPreviousNotServedWhileDetachFails(t *testing.T) {
	e := newCertEnv(t, map[string]interface{}{"certificate_ttl": "3h", "overlap_period": "2h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	first := e.storedRole("app").Current()
	e.advance(2*time.Hour + time.Minute) // renewed two thirds in; the overlap ends at the expiry
	if _, prev, _ := e.servedCerts(); prev == nil {
		t.Fatal("no previous certificate served during the overlap")
	}
	e.storage.failPutsUnder(model.CredsStoragePrefix, 1<<30) // the overlap's end cannot store what creds serve
	e.advance(time.Hour)
	role := e.storedRole("app")
	if role.Overlap == nil || role.Overlap.Ending {
		t.Fatalf("the overlap's end did not fail: overlap %+v", role.Overlap)
	}
	if e.clock.Now().Before(first.ExpiresAt) {
		t.Fatalf("the clock (%s) is not past the previous certificate's expiry (%s)", e.clock.Now(), first.ExpiresAt)
	}
	if _, prev, data := e.servedCerts(); prev != nil || data["overlap_until"] != "" {
		t.Fatalf("creds serve the previous certificate (expired at %s) until %v", first.ExpiresAt, data["overlap_until"])
	}
	e.storage.failPuts.Store(0)
	for i := 0; i < 10 && e.storedRole("app").Overlap != nil; i++ {
		e.advance(10 * time.Minute)
	}
	if stored, _ := e.credentialIDs(testAppID); len(stored) != 1 {
		t.Fatalf("Auth0 still stores %v after the faults", stored)
	}
}
