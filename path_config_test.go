package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

func TestParseDomain(t *testing.T) {
	valid := []struct {
		in, scheme, host string
	}{
		{"acme.eu.auth0.com", "https", "acme.eu.auth0.com"},
		{"  acme.eu.auth0.com  ", "https", "acme.eu.auth0.com"},
		{"https://acme.eu.auth0.com", "https", "acme.eu.auth0.com"},
		{"HTTPS://Acme.EU.Auth0.com", "https", "acme.eu.auth0.com"},
		{"https://acme.eu.auth0.com/", "", ""}, // a path, even "/", is rejected
		{"login.example.com:8443", "https", "login.example.com:8443"},
		{"http://127.0.0.1:8091", "http", "127.0.0.1:8091"},
		{"http://127.9.8.7", "http", "127.9.8.7"},
		{"http://localhost:1234", "http", "localhost:1234"},
		{"http://LOCALHOST", "http", "localhost"},
		{"http://[::1]:8080", "http", "[::1]:8080"},
		{"https://10.1.2.3", "https", "10.1.2.3"},
	}
	for _, tc := range valid {
		scheme, host, err := model.ParseDomain(tc.in)
		if tc.scheme == "" {
			if err == nil {
				t.Errorf("parseDomain(%q) = %s, %s; want an error", tc.in, scheme, host)
			}
			continue
		}
		if err != nil || scheme != tc.scheme || host != tc.host {
			t.Errorf("parseDomain(%q) = %q, %q, %v; want %q, %q", tc.in, scheme, host, err, tc.scheme, tc.host)
		}
	}

	invalid := []struct {
		in, why string
	}{
		{"", "must not be empty"},
		{"   ", "must not be empty"},
		{"ftp://acme.auth0.com", `scheme "ftp" is not supported`},
		{"ws://acme.auth0.com", `scheme "ws" is not supported`},
		{"http://acme.eu.auth0.com", "only for loopback hosts"},
		{"http://10.0.0.1", "only for loopback hosts"},
		{"http://localhost.evil.com", "only for loopback hosts"},
		{"acme.auth0.com/api/v2", "without path"},
		{"acme.auth0.com?x=1", "without path, query"},
		{"acme.auth0.com#frag", "fragment"},
		{"user@acme.auth0.com", "user info"},
		{"https://user:pw@acme.auth0.com", "user info"},
		{"acme.auth0.com:99999", "from 1 to 65535"},
		{"acme.auth0.com:0", "from 1 to 65535"},
		{"acme.auth0.com:", "empty port"},
		// Addresses a credential must never be sent to (finding 5 of issue 19).
		{"https://0.0.0.0", "unspecified, link-local"},
		{"https://[::]:443", "unspecified, link-local"},
		{"169.254.169.254", "cloud metadata"},
		{"https://[fe80::1]", "unspecified, link-local"},
		{"224.0.0.1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"[fd00:ec2::254]", "link-local"},
		{"http://0.0.0.0:8080", "unspecified"},
		{"bad_host!.com", "not a valid host name"},
		{"-acme.auth0.com", "not a valid host name"},
		{"acme..auth0.com", "not a valid host name"},
		{"acme auth0.com", "without path"},
	}
	for _, tc := range invalid {
		_, _, err := model.ParseDomain(tc.in)
		if err == nil {
			t.Errorf("parseDomain(%q): want an error", tc.in)
			continue
		}
		wantContains(t, err.Error(), tc.why)
	}
}

func TestConfigWriteAndRead(t *testing.T) {
	e := newTestEnv(t)
	e.configure()

	got := e.ok(logical.ReadOperation, "config", nil)
	want := map[string]interface{}{
		"domain":                 e.emuURL,
		"client_id":              testMgmtID,
		"audience":               "https://" + e.emuURL[len("http://"):] + "/api/v2/",
		"request_timeout":        int64(30),
		"rate_limit":             testRateLimit,
		"root_rotation_period":   int64(0),
		"token_refresh_fraction": model.DefaultTokenRefreshFraction,
		"creds_cache_size":       model.DefaultCredsCacheSize,
		"propagation_wait":       int64(30),
		"credential_type":        "client_secret",
		"metrics_role_labels":    false,
		"drift_check_period":     int64(86400),
	}
	if len(got) != len(want) {
		t.Fatalf("config read = %v, want exactly %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("config read %s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["client_secret"]; ok {
		t.Fatal("config read returned client_secret")
	}

	// An update without client_secret keeps the stored one (and still verifies).
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"request_timeout": "10s"})
	if got := e.ok(logical.ReadOperation, "config", nil)["request_timeout"]; got != int64(10) {
		t.Fatalf("request_timeout = %v, want 10", got)
	}
	cfg, _ := model.LoadConfig(t.Context(), e.storage)
	if cfg.ClientSecret != e.mgmtSecret() {
		t.Fatal("client_secret was not kept across an update")
	}

	e.ok(logical.DeleteOperation, "config", nil)
	if resp, err := e.request(logical.ReadOperation, "config", nil); err != nil || resp != nil {
		t.Fatalf("read after delete = %v, %v; want nothing", resp, err)
	}
}

func TestConfigCustomAudience(t *testing.T) {
	e := newTestEnv(t)
	// The emulator accepts only https://<its host>/api/v2/, so a wrong audience fails the
	// verification and a right one passes.
	msg := e.userError(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": e.emuURL, "client_id": testMgmtID, "client_secret": e.mgmtSecret(),
		"audience": "https://other.example.com/api/v2/",
	})
	wantContains(t, msg, "could not obtain a Management API token", "access_denied", "nothing was stored")

	audience := "https://" + e.emuURL[len("http://"):] + "/api/v2/"
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": e.emuURL, "client_id": testMgmtID, "client_secret": e.mgmtSecret(), "audience": audience,
	})
	if got := e.ok(logical.ReadOperation, "config", nil)["audience"]; got != audience {
		t.Fatalf("audience = %v, want %v", got, audience)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	e := newTestEnv(t)
	base := func() map[string]interface{} {
		return map[string]interface{}{"domain": e.emuURL, "client_id": testMgmtID, "client_secret": e.mgmtSecret()}
	}
	cases := []struct {
		name   string
		change map[string]interface{}
		drop   string
		want   []string
	}{
		{"missing domain", nil, "domain", []string{"missing required field(s): domain"}},
		{"missing client_id", nil, "client_id", []string{"missing required field(s): client_id"}},
		{"missing client_secret", nil, "client_secret", []string{"missing required field(s): client_secret"}},
		{"empty secret", map[string]interface{}{"client_secret": "  "}, "", []string{"client_secret must not be empty"}},
		{"wrong secret", map[string]interface{}{"client_secret": "not-the-secret"}, "", []string{"could not obtain a Management API token", "401 access_denied: Unauthorized", "nothing was stored", "verify_connection=false"}},
		{"unknown client", map[string]interface{}{"client_id": "nobody"}, "", []string{"could not obtain a Management API token", `client_id "nobody"`}},
		{"domain with path", map[string]interface{}{"domain": "acme.auth0.com/x"}, "", []string{`invalid domain "acme.auth0.com/x"`, "without path"}},
		{"http to a public host", map[string]interface{}{"domain": "http://acme.auth0.com"}, "", []string{"only for loopback"}},
		{"bad audience", map[string]interface{}{"audience": "not a url"}, "", []string{`invalid audience "not a url"`}},
		{"timeout too short", map[string]interface{}{"request_timeout": "0s"}, "", []string{"request_timeout must be between 1s and 5m"}},
		{"rate limit zero", map[string]interface{}{"rate_limit": 0}, "", []string{"rate_limit must be between 0.01 and 1000 requests per second, got 0"}},
		{"timeout too long", map[string]interface{}{"request_timeout": "1h"}, "", []string{"request_timeout must be between 1s and 5m"}},
		// A connection failure is told in generic words: no dial error that would map a network.
		{"unreachable", map[string]interface{}{"domain": "http://127.0.0.1:1"}, "", []string{"could not obtain a Management API token from http://127.0.0.1:1", "could not reach Auth0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := base()
			for k, v := range tc.change {
				data[k] = v
			}
			delete(data, tc.drop)
			msg := e.userError(logical.UpdateOperation, "config", data)
			wantContains(t, msg, tc.want...)
			if strings.Contains(msg, "dial") || strings.Contains(msg, "connection refused") {
				t.Errorf("%q tells how the connection failed", msg)
			}
			if cfg, err := model.LoadConfig(t.Context(), e.storage); err != nil || cfg != nil {
				t.Fatalf("config stored after a rejected write: %v, %v", cfg, err)
			}
		})
	}
}

// A credential pasted into domain is not echoed (found by FuzzConfigWrite).
func TestConfigDomainWithUserInfoNotEchoed(t *testing.T) {
	e := newTestEnv(t)
	msg := e.userError(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": "https://admin:hunter2-pasted@acme.eu.auth0.com", "client_id": "x", "client_secret": "y",
	})
	wantContains(t, msg, "user info")
	if strings.Contains(msg, "hunter2-pasted") {
		t.Fatalf("%q echoes the password", msg)
	}
}

func TestConfigWithoutVerification(t *testing.T) {
	e := newTestEnv(t)
	// Nothing listens on port 1: with verification off the config is stored anyway.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": "http://127.0.0.1:1", "client_id": "x", "client_secret": "y", "verify_connection": false,
	})
	got := e.ok(logical.ReadOperation, "config", nil)
	if got["domain"] != "http://127.0.0.1:1" || got["rate_limit"] != auth0api.DefaultRateLimit || got["request_timeout"] != int64(30) {
		t.Fatalf("config = %v; want the domain and the default rate_limit and request_timeout", got)
	}
}

func TestConfigChangeRebuildsClient(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": "http://127.0.0.1:1", "client_id": testMgmtID, "client_secret": "stale", "verify_connection": false,
	})
	// The cached client points at a dead address: a 502, and no role stored.
	_, err := e.request(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
	if code, ok := codedStatus(err); !ok || code != 502 {
		t.Fatalf("role create against a dead Auth0 = %v; want a 502", err)
	}
	wantContains(t, err.Error(), `checking client_id "app-1" in Auth0`, "could not reach Auth0")

	e.configure() // right domain and secret: the cached client must be replaced
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})

	// Invalidate (another node changed config) drops the cache too.
	before := e.b.Conn.Load()
	e.b.invalidate(t.Context(), model.ConfigStoragePath)
	if e.b.Conn.Load() != nil || before == nil {
		t.Fatal("invalidate did not drop the cached connection")
	}
}

// The stored Management API secret goes only to the domain and application it was written
// for: a write that changes domain or client_id must bring the secret too. Otherwise anyone
// allowed to update config, without knowing the secret, could point domain at a host of
// theirs and have the connection check (or the next rotation) send it there.
func TestConfigRedirectNeedsTheSecret(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	var got atomic.Int64
	rogue := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		http.Error(w, "{}", http.StatusUnauthorized)
	}))
	t.Cleanup(rogue.Close)
	before := e.storedConfig()

	for _, data := range []map[string]interface{}{
		{"domain": rogue.URL},
		{"domain": rogue.URL, "verify_connection": false},
		{"client_id": testAppID},
	} {
		msg := e.userError(logical.UpdateOperation, "config", data)
		wantContains(t, msg, "requires client_secret in the same write", "nothing was stored")
	}
	if n := got.Load(); n != 0 {
		t.Fatalf("the stored secret was sent to the new domain (%d requests)", n)
	}
	if after := e.storedConfig(); after.Host != before.Host || after.ClientID != before.ClientID {
		t.Fatalf("config changed: %s/%s -> %s/%s", before.Host, before.ClientID, after.Host, after.ClientID)
	}
	// The same domain, spelled again, and any other field, need no secret.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"domain": e.emuURL, "client_id": testMgmtID, "rate_limit": 50})
	// With the secret, a change of domain is checked against the new domain, as a first write.
	msg := e.userError(logical.UpdateOperation, "config", map[string]interface{}{"domain": rogue.URL, "client_secret": "theirs"})
	wantContains(t, msg, "could not obtain a Management API token")
}
