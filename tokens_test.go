package auth0

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

const testAPI2 = "https://other.example.test/"

// tokenRequests is how many /oauth/token requests the emulator saw for clientID.
func (e *testEnv) tokenRequests(clientID string) int {
	return e.emu.Stats().TokenRequests[clientID]
}

func newTokenEnv(t *testing.T, extra map[string]interface{}) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.emu.AddClient(emulator.Client{ClientID: testAppID, Name: "App One", Grants: map[string][]string{testAPI: {"read:things"}, testAPI2: {}}})
	data := map[string]interface{}{"token_audiences": testAPI + "," + testAPI2}
	for k, v := range extra {
		data[k] = v
	}
	e.configureWithRole(data)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	return e
}

// token/ mints a token with the role's secret, caches it per audience until two thirds of
// its lifetime, and answers from the cache without asking Auth0.
func TestTokenMintedAndCached(t *testing.T) {
	e := newTokenEnv(t, nil)
	before := e.tokenRequests(testAppID)
	data := e.ok(logical.ReadOperation, "token/app", nil)
	if data["access_token"] == "" || data["token_type"] != "Bearer" || data["audience"] != testAPI || data["expires_in"] != int64(86400) {
		t.Fatalf("token read %v", data)
	}
	if ttl := data["ttl"].(int64); ttl != int64(86400*0.67) {
		t.Fatalf("ttl %d, want the refresh point at 0.67 of 24h", ttl)
	}
	for i := 0; i < 100; i++ {
		if again := e.ok(logical.ReadOperation, "token/app", nil); again["access_token"] != data["access_token"] {
			t.Fatal("a cached read answered another token")
		}
	}
	// Naming the default audience is the same token.
	if named := e.ok(logical.ReadOperation, "token/app", map[string]interface{}{"audience": testAPI}); named["access_token"] != data["access_token"] {
		t.Fatal("the default audience named explicitly answered another token")
	}
	if n := e.tokenRequests(testAppID) - before; n != 1 {
		t.Fatalf("%d Auth0 token requests for 102 reads; want 1", n)
	}
	other := e.ok(logical.ReadOperation, "token/app", map[string]interface{}{"audience": testAPI2})
	if other["audience"] != testAPI2 || other["access_token"] == data["access_token"] {
		t.Fatalf("second audience answered %v", other)
	}
	e.clock.Advance(16 * time.Hour)
	if e.ok(logical.ReadOperation, "token/app", nil)["access_token"] != data["access_token"] {
		t.Fatal("refreshed before two thirds of the lifetime")
	}
	e.clock.Advance(time.Hour)
	if e.ok(logical.ReadOperation, "token/app", nil)["access_token"] == data["access_token"] {
		t.Fatal("not refreshed after two thirds of the lifetime")
	}
	if n := e.tokenRequests(testAppID) - before; n != 3 {
		t.Fatalf("%d Auth0 token requests; want 3 (two audiences, one refresh)", n)
	}
	stats := e.ok(logical.ReadOperation, "roles/app", nil)["token_cache"].(map[string]interface{})
	if stats["hits"] != int64(102) || stats["misses"] != int64(3) || stats["auth0_token_requests"] != int64(3) {
		t.Fatalf("token_cache %v", stats)
	}
	if strings.Contains(e.logs.String(), data["access_token"].(string)) {
		t.Fatal("an access token reached the log")
	}
}

// Concurrent reads of a missing token share one Auth0 request.
func TestTokenConcurrentMissesShareOneRequest(t *testing.T) {
	e := newTokenEnv(t, nil)
	before := e.tokenRequests(testAppID)
	var wg sync.WaitGroup
	var failed atomic.Int32
	tokens := sync.Map{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "token/app", Storage: e.storage})
			if err != nil || resp.IsError() {
				failed.Add(1)
				return
			}
			tokens.Store(resp.Data["access_token"], true)
		}()
	}
	wg.Wait()
	n := 0
	tokens.Range(func(_, _ any) bool { n++; return true })
	if failed.Load() != 0 || n != 1 || e.tokenRequests(testAppID)-before != 1 {
		t.Fatalf("%d failed, %d distinct tokens, %d Auth0 requests; want 0, 1, 1", failed.Load(), n, e.tokenRequests(testAppID)-before)
	}
}

// An audience the role does not list, or a role without token_audiences, is refused
// without asking Auth0.
func TestTokenAudienceRefusedLocally(t *testing.T) {
	e := newTokenEnv(t, nil)
	before := e.tokenRequests(testAppID)
	wantContains(t, e.userError(logical.ReadOperation, "token/app", map[string]interface{}{"audience": "https://evil.example/"}), "may not mint tokens for audience")
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"token_audiences": ""})
	wantContains(t, e.userError(logical.ReadOperation, "token/app", nil), "set token_audiences")
	if n := e.tokenRequests(testAppID) - before; n != 0 {
		t.Fatalf("%d Auth0 requests for refused reads", n)
	}
}

// A rotation drops the role's cached tokens; the next token is minted with the new
// secret, through Auth0's propagation window.
func TestTokenAfterRotation(t *testing.T) {
	e := newTokenEnv(t, nil)
	first := e.ok(logical.ReadOperation, "token/app", nil)["access_token"]
	e.emu.SetPropagationDelay(20 * time.Second)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	before := e.tokenRequests(testAppID)
	for i := 0; i < 20; i++ {
		tok := e.ok(logical.ReadOperation, "token/app", nil)["access_token"]
		if tok == first {
			t.Fatal("a cached token survived the rotation")
		}
		e.b.Tokens.DropRole("app") // every read asks Auth0 again, through the window
	}
	stats := e.ok(logical.ReadOperation, "roles/app", nil)["token_cache"].(map[string]interface{})
	if n := e.tokenRequests(testAppID) - before; n < 20 || stats["auth0_token_failures"].(int64) == 0 {
		t.Fatalf("%d requests, cache stats %v: the propagation window was not exercised", n, stats)
	}
}

// A 429 at /oauth/token is answered as such, and Vault does not ask again before Auth0's
// Retry-After; a cached token still valid is served when a refresh fails.
func TestTokenRateLimitAndStaleServe(t *testing.T) {
	e := newTokenEnv(t, nil)
	var limited atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if limited.Load() && p == emulator.BeforeApply && r.URL.Path == "/oauth/token" && id == testAppID {
			return &emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 30}
		}
		return nil
	})
	limited.Store(true)
	resp, err := e.request(logical.ReadOperation, "token/app", nil)
	if status, ok := codedStatus(err); !ok || status != http.StatusTooManyRequests {
		t.Fatalf("token read under a 429 answered %v, %v", resp, err)
	}
	before := e.tokenRequests(testAppID)
	if _, err := e.request(logical.ReadOperation, "token/app", nil); err == nil {
		t.Fatal("a read during the pause succeeded")
	}
	if n := e.tokenRequests(testAppID) - before; n != 0 {
		t.Fatalf("%d requests during Auth0's Retry-After", n)
	}
	e.clock.Advance(31 * time.Second)
	limited.Store(false)
	tok := e.ok(logical.ReadOperation, "token/app", nil)["access_token"]

	// Past the refresh point, Auth0 failing: the valid token is served.
	e.clock.Advance(17 * time.Hour)
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.BeforeApply && r.URL.Path == "/oauth/token" {
			return &emulator.Fault{Status: http.StatusInternalServerError}
		}
		return nil
	})
	if got := e.ok(logical.ReadOperation, "token/app", nil)["access_token"]; got != tok {
		t.Fatal("a refresh failure did not serve the still-valid token")
	}
	e.clock.Advance(7 * time.Hour)
	if _, err := e.request(logical.ReadOperation, "token/app", nil); err == nil {
		t.Fatal("an expired token was served")
	}
}

// A private_key_jwt role mints tokens with a client assertion, and with allow_assertions
// signs assertions an application exchanges itself.
func TestTokenAndAssertionOfKeyRole(t *testing.T) {
	e := newKeyEnv(t, map[string]interface{}{"token_audiences": testAPI, "allow_assertions": true, "assertion_ttl": "30s"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if e.ok(logical.ReadOperation, "token/app", nil)["access_token"] == "" {
		t.Fatal("no token for a key role")
	}
	data := e.ok(logical.ReadOperation, "assertion/app", nil)
	if data["client_assertion_type"] != auth0api.ClientAssertionType || data["expires_at"] != e.clock.Now().Add(30*time.Second).UTC().Format(time.RFC3339) {
		t.Fatalf("assertion read %v", data)
	}
	form := url.Values{
		"grant_type": {"client_credentials"}, "client_id": {testAppID}, "audience": {testAPI},
		"client_assertion_type": {auth0api.ClientAssertionType}, "client_assertion": {data["client_assertion"].(string)},
	}
	resp, err := http.PostForm(e.emuURL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Auth0 answered %d to the assertion Vault signed", resp.StatusCode)
	}
	if strings.Contains(e.logs.String(), data["client_assertion"].(string)) {
		t.Fatal("an assertion reached the log")
	}

	for _, c := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"assertion_ttl": "10m"}, "assertion_ttl must be between"},
		{map[string]interface{}{"allow_assertions": false, "assertion_ttl": "1m"}, "only with allow_assertions=true"},
	} {
		wantContains(t, e.userError(logical.UpdateOperation, "roles/app", c.data), c.want)
	}
}

// assertion/ is refused for roles that cannot sign.
func TestAssertionRefused(t *testing.T) {
	e := newTokenEnv(t, nil)
	wantContains(t, e.userError(logical.ReadOperation, "assertion/app", nil), "credential_type=private_key_jwt and allow_assertions=true")
	wantContains(t, e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"allow_assertions": true}), "a client secret cannot sign")
}

// A token read while a rotation is under way (Auth0 already holds the new secret, Vault
// not yet) waits for the rotation and then uses the new secret; a read that comes after
// the rotation committed does not wait on a fetch that started with the old one.
func TestTokenReadDuringRotation(t *testing.T) {
	e := newTokenEnv(t, nil)
	e.b.Tokens.DropRole("app")
	type result struct {
		token string
		err   error
	}
	read := func(out chan<- result) {
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "token/app", Storage: e.storage})
		if err == nil && resp.IsError() {
			err = resp.Error()
		}
		r := result{err: err}
		if err == nil {
			r.token, _ = resp.Data["access_token"].(string)
		}
		out <- r
	}
	during := make(chan result, 1)
	var fired atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.AfterApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") && fired.CompareAndSwap(false, true) {
			// Auth0 applied the rotation; its answer has not reached Vault yet.
			return &emulator.Fault{Do: func() {
				go read(during)
				// Let the read reach Auth0 and be refused before the answer goes out.
				for e.emu.Stats().TokenRequests[testAppID] < 1 {
					runtime.Gosched()
				}
			}}
		}
		return nil
	})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.emu.SetFaults(nil)
	after := make(chan result, 1)
	go read(after)
	for name, ch := range map[string]chan result{"during": during, "after": after} {
		r := <-ch
		if r.err != nil {
			t.Fatalf("the read %s the rotation failed: %v", name, r.err)
		}
	}
	wantContains(t, e.logs.String(), "rotated client secret")
}
