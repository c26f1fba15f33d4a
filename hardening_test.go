package auth0

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// Tests of the findings of issue 19: inputs and races that killed the plugin process, and
// credentials sent where they do not belong. Each failed before its fix.

// betweenCredsReads runs fn once, right before the second storage read of creds/<name>
// from now on: with the creds cache off, that is between token/'s check of the role and
// its fetch's load of it.
func (e *testEnv) betweenCredsReads(name string, fn func()) {
	var reads atomic.Int32
	hook := func(key string) {
		if key == model.CredsKey(name) && reads.Add(1) == 2 {
			e.storage.onGet.Store(nil)
			fn()
		}
	}
	e.storage.onGet.Store(&hook)
}

// Finding 1: a role write between token/'s check and its fetch. Emptying token_audiences
// made the fetch index an empty list (a panic, re-raised in every waiter of the
// singleflight: the plugin process died); narrowing them cached a token for an audience the
// role no longer lists.
func TestTokenRoleWriteBetweenCheckAndFetch(t *testing.T) {
	for _, tc := range []struct {
		name, audience, write string
		want                  string
	}{
		{"audiences emptied", "", "", "mints no access tokens"},
		{"audience withdrawn", testAPI2, testAPI, "may not mint tokens for audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTokenEnv(t, nil)
			if err := e.tryConfigure(map[string]interface{}{"creds_cache_size": 0}); err != nil {
				t.Fatal(err)
			}
			before := e.tokenRequests(testAppID)
			e.betweenCredsReads("app", func() {
				e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"token_audiences": tc.write})
			})
			var data map[string]interface{}
			if tc.audience != "" {
				data = map[string]interface{}{"audience": tc.audience}
			}
			wantContains(t, e.userError(logical.ReadOperation, "token/app", data), tc.want)
			if n := e.tokenRequests(testAppID) - before; n != 0 {
				t.Fatalf("%d token requests for a role state that does not allow them", n)
			}
			if n := len(e.b.Tokens.Entries); n != 0 {
				t.Fatalf("%d tokens cached", n)
			}
		})
	}
}

// Finding 2: creds?version=N where creds exist but the role lists no version yet (a commit
// cut between its creds write and its role write) indexed an empty list.
func TestCredsVersionBeforeRoleListsVersions(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.storage.failPutsUnder(model.RoleStoragePrefix, 1000)
	if _, err := e.request(logical.UpdateOperation, "rotate/app", nil); err == nil {
		t.Fatal("the rotation succeeded although its role write failed")
	}
	e.storage.failPuts.Store(0)
	if creds, err := model.LoadCreds(t.Context(), e.storage, "app"); err != nil || creds == nil {
		t.Fatalf("no creds stored before the role write (%v): the test does not reach the state", err)
	}
	if role, _ := model.LoadRole(t.Context(), e.storage, "app"); role == nil || len(role.Versions) != 0 {
		t.Fatal("the role lists versions: the test does not reach the state")
	}
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", map[string]interface{}{"version": 7}), `role "app" has no version 7; it lists no retained versions yet`)
}

// secondTenant is an Auth0 emulator on another loopback address, counting every request
// it gets: a host that must never see the mount's credentials.
func secondTenant(t *testing.T) (url string, requests *atomic.Int64) {
	requests = new(atomic.Int64)
	emu := emulator.New(emulator.Options{Seed: 2})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

// Finding 3: whoever may write config could point it at a host of theirs (with a secret of
// their own and verify_connection=false) and collect each role's secret at its next token/
// miss. The tenant rule refuses that move while roles exist, a delete first included, and
// a config change drops every cached token.
func TestTenantRule(t *testing.T) {
	e := newTokenEnv(t, nil)
	e.ok(logical.ReadOperation, "token/app", nil)
	collector, seen := secondTenant(t)
	move := map[string]interface{}{"domain": collector, "client_id": "x", "client_secret": "y", "verify_connection": false}
	wantContains(t, e.userError(logical.UpdateOperation, "config", move), "the mount has roles bound under domain "+e.emuURL, "allow_domain_change=true")
	if cfg, _ := model.LoadConfig(t.Context(), e.storage); cfg.Host != strings.TrimPrefix(e.emuURL, "http://") {
		t.Fatalf("a refused move stored config for %s", cfg.Host)
	}
	e.ok(logical.DeleteOperation, "config", nil)
	wantContains(t, e.userError(logical.UpdateOperation, "config", move), "the mount has roles bound under domain "+e.emuURL)
	e.configure()
	before := e.tokenRequests(testAppID)
	e.ok(logical.ReadOperation, "token/app", nil)
	if n := e.tokenRequests(testAppID) - before; n != 1 {
		t.Fatalf("%d token requests after a config write; want 1: a config change drops the cached tokens", n)
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}

	// Said explicitly, the move is made (the same tenant under another name, in the docs).
	move["allow_domain_change"] = true
	e.ok(logical.UpdateOperation, "config", move)
	if _, err := e.request(logical.ReadOperation, "token/app", nil); err == nil {
		t.Fatal("a token was served after the move from the old tenant's cache")
	}
	if seen.Load() == 0 {
		t.Fatal("after an allowed move nothing went to the new domain: the test proves nothing")
	}
	// With no roles, any domain.
	e.ok(logical.DeleteOperation, "roles/app", nil)
	delete(move, "allow_domain_change")
	move["domain"] = e.emuURL
	e.ok(logical.UpdateOperation, "config", move)
}

// redirector answers every request with a redirect to target (307: a client that follows
// it sends the same method and body again).
func redirector(t *testing.T, target string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Finding 4: no outbound request follows a redirect: not the config check (the Management
// API secret in its body), not go-auth0 (which re-adds the bearer token on each hop), not
// token/ (the role's secret in its body).
func TestNoRedirectIsFollowed(t *testing.T) {
	e := newTokenEnv(t, nil)
	collector, seen := secondTenant(t)
	tenant := redirector(t, collector)
	wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": tenant, "client_id": testMgmtID, "client_secret": e.mgmtSecret(), "allow_domain_change": true,
	}), "could not obtain a Management API token")
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": tenant, "client_id": testMgmtID, "client_secret": e.mgmtSecret(), "allow_domain_change": true, "verify_connection": false,
	})
	resp, err := e.request(logical.ReadOperation, "token/app", nil)
	if err == nil && !resp.IsError() {
		t.Fatalf("a token was served through a redirect: %v", resp.Data)
	}
	wantContains(t, fmt.Sprint(err), "which Vault does not follow")
	_, err = e.request(logical.UpdateOperation, "rotate/app", nil)
	wantContains(t, fmt.Sprint(err), "rotating the secret of role")
	resp, err = e.request(logical.UpdateOperation, "roles/other", map[string]interface{}{"client_id": testApp2ID})
	if err == nil && !resp.IsError() {
		t.Fatal("a role was created through a redirected Management API")
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// Finding 4, in the transport: a request for another host than the configured one, and the
// request made to follow a redirect, are refused before they leave.
func TestEgressTransportRefusesOtherHosts(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	defer srv.Close()
	_, rt := auth0api.NewEgressTransport("tenant.example:443")
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, auth0api.ErrOtherHost) {
		t.Fatalf("a request to another host: %v", err)
	}
	_, rt = auth0api.NewEgressTransport(strings.TrimPrefix(srv.URL, "http://"))
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Response = &http.Response{StatusCode: http.StatusTemporaryRedirect}
	if _, err := rt.RoundTrip(req); !errors.Is(err, auth0api.ErrRedirect) {
		t.Fatalf("a redirect hop: %v", err)
	}
	if got.Load() != 0 {
		t.Fatalf("%d requests reached the server", got.Load())
	}
}

// Finding 5, at dial time: a name that resolves to a link-local or unspecified address is
// not connected to, whatever the domain check let through.
func TestEgressDialerRefusesForbiddenAddresses(t *testing.T) {
	for _, addr := range []string{"169.254.169.254:80", "0.0.0.0:443", "[fe80::1]:443", "224.0.0.1:443", "[::]:443", "100.100.100.200:80"} {
		if _, err := auth0api.EgressDialer.DialContext(t.Context(), "tcp", addr); !errors.Is(err, auth0api.ErrForbiddenDst) {
			t.Errorf("dial %s: %v; want it refused", addr, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := auth0api.EgressDialer.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("loopback refused: %v", err)
	}
	conn.Close()
}

// Finding 6: a role Auth0 refuses (403) cost a request on every token/ read, and one role's
// 429 paused token/ for every role of the mount, for as long as Auth0's headers said.
func TestTokenRefusalRememberedAndPauseScoped(t *testing.T) {
	e := newTokenEnv(t, nil)
	e.ok(logical.UpdateOperation, "roles/two", map[string]interface{}{"client_id": testApp2ID, "token_audiences": testAPI})
	e.ok(logical.UpdateOperation, "rotate/two", nil)

	var refuse, limit atomic.Bool
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p != emulator.BeforeApply || r.URL.Path != "/oauth/token" || id != testAppID {
			return nil
		}
		switch {
		case refuse.Load():
			return &emulator.Fault{Status: http.StatusForbidden, Message: "Client is not authorized to access this API"}
		case limit.Load():
			return &emulator.Fault{Status: http.StatusTooManyRequests, RetryAfter: 86400}
		}
		return nil
	})
	refuse.Store(true)
	before := e.tokenRequests(testAppID)
	for i := 0; i < 20; i++ {
		wantContains(t, e.userError(logical.ReadOperation, "token/app", nil), "authorize the application")
	}
	if n := e.tokenRequests(testAppID) - before; n != 1 {
		t.Fatalf("20 reads of a refused role sent %d requests; want 1", n)
	}
	e.clock.Advance(engine.TokenRefusalMemory)
	e.userError(logical.ReadOperation, "token/app", nil)
	if n := e.tokenRequests(testAppID) - before; n != 2 {
		t.Fatalf("after the refusal's memory, %d requests in all; want 2", n)
	}

	refuse.Store(false)
	limit.Store(true)
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"token_audiences": testAPI}) // drops the refusal
	if _, err := e.request(logical.ReadOperation, "token/app", nil); err == nil {
		t.Fatal("no 429")
	}
	e.ok(logical.ReadOperation, "token/two", nil) // another application is not held back
	before = e.tokenRequests(testAppID)
	e.clock.Advance(engine.MaxTokenPause - time.Second)
	if _, err := e.request(logical.ReadOperation, "token/app", nil); err == nil || e.tokenRequests(testAppID) != before {
		t.Fatalf("a request inside the pause: %v", err)
	}
	limit.Store(false)
	e.clock.Advance(time.Second)
	e.ok(logical.ReadOperation, "token/app", nil) // a day's Retry-After holds back at most maxTokenPause
}

// Finding 7: a scheduled switch stored nothing before its PATCH, so cancel_staged was
// guarded only by comparing clocks: on a node whose clock lags, a cancel was accepted
// after a PATCH whose answer was lost, and creds served a secret Auth0 no longer accepts.
func TestCancelAfterLostSwitchOnLaggingNode(t *testing.T) {
	e := newTestEnv(t)
	start := e.clock.Now()
	e.configureStaged(nil)
	e.advance(50 * time.Minute) // published
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.AfterApply && r.Method == http.MethodPatch && id == testAppID {
			return &emulator.Fault{Drop: true}
		}
		return nil
	})
	e.advance(10 * time.Minute) // the switch: Auth0 applies the PATCH, its answer is lost
	e.emu.SetFaults(nil)
	staged, _ := e.ok(logical.ReadOperation, "creds/app", nil)["next_client_secret"].(string)
	if staged == "" || e.appSecret(testAppID) != staged {
		t.Fatal("the test does not reach the state: Auth0 should hold the staged secret, Vault still stage it")
	}

	lagging := newFakeClock(start.Add(55 * time.Minute)) // before the switch time
	other := startBackendWithClock(t, e.storage, logical.TestSystemView(), hclog.Trace, e.logs, lagging)
	resp, err := other.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "rotate/app", Storage: e.storage, Data: map[string]interface{}{"cancel_staged": true}})
	if err != nil || !resp.IsError() {
		t.Fatalf("cancel_staged after a switch started was accepted: %v %v", resp, err)
	}
	wantContains(t, resp.Error().Error(), "can only be finished")
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["next_client_secret"] != staged && creds["client_secret"] != staged {
		t.Fatal("creds no longer serve the secret Auth0 holds")
	}
}

// Finding 8: NaN passed the range checks (a 500), and memory grew without bound with the
// schedules ever parsed and the token cache's per-role maps.
func TestConfigRejectsNaNAndInf(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	for _, field := range []string{"rate_limit", "token_refresh_fraction"} {
		for _, v := range []interface{}{"NaN", math.NaN(), "+Inf", math.Inf(-1)} {
			wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{field: v}), field+" must be between")
		}
	}
}

func TestMemoryStaysBounded(t *testing.T) {
	for i := 0; i < 3*model.MaxParsedSchedules; i++ {
		_ = model.ValidateSchedule(fmt.Sprintf("%d %d 30 2 *", i%60, i/60%24+i/1440), time.Now()) // never fires: refused
	}
	if n := model.ParsedSchedules.Len(); n > model.MaxParsedSchedules {
		t.Fatalf("%d schedules kept", n)
	}

	e := newTokenEnv(t, nil)
	e.ok(logical.ReadOperation, "token/app", nil)
	e.ok(logical.ReadOperation, "roles/app", nil)
	e.ok(logical.DeleteOperation, "roles/app", nil)
	c := e.b.Tokens
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if len(c.Gen)+len(c.Stats)+len(c.Entries)+len(c.Refused) != 0 {
		t.Fatalf("after the delete the token cache holds gen %v, stats %d, entries %d, refusals %d", c.Gen, len(c.Stats), len(c.Entries), len(c.Refused))
	}
}

// Finding 9: allowed_client_ids limits what a mount's roles may bind and rotate.
func TestAllowedClientIDs(t *testing.T) {
	e := newTestEnv(t)
	e.emu.AddClient(emulator.Client{ClientID: "team-a-web", Name: "Team A web"})
	if err := e.tryConfigure(map[string]interface{}{"allowed_client_ids": "team-a-*,app-9"}); err != nil {
		t.Fatal(err)
	}
	wantContains(t, e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID}), `client_id "app-1" is not in this mount's allowed_client_ids`)
	if role, _ := model.LoadRole(t.Context(), e.storage, "app"); role != nil {
		t.Fatal("a refused role was stored")
	}
	e.ok(logical.UpdateOperation, "roles/web", map[string]interface{}{"client_id": "team-a-web"})
	e.ok(logical.UpdateOperation, "rotate/web", nil)

	// Narrowed: the role is no longer rotated, by hand or on schedule, and says why.
	if err := e.tryConfigure(map[string]interface{}{"allowed_client_ids": "team-b-*"}); err != nil {
		t.Fatal(err)
	}
	before := e.emu.Stats().Rotations["team-a-web"]
	wantContains(t, e.userError(logical.UpdateOperation, "rotate/web", nil), "not in this mount's allowed_client_ids")
	if e.emu.Stats().Rotations["team-a-web"] != before {
		t.Fatal("rotated although not allowed")
	}
	if blocked, _ := e.ok(logical.ReadOperation, "roles/web", nil)["rotation_blocked"].(string); !strings.Contains(blocked, "allowed_client_ids") {
		t.Fatalf("rotation_blocked = %q", blocked)
	}
	wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{"allowed_client_ids": "a b"}), "invalid allowed_client_ids")
	// Widened again: the next rotate clears the block.
	if err := e.tryConfigure(map[string]interface{}{"allowed_client_ids": ""}); err != nil {
		t.Fatal(err)
	}
	e.ok(logical.UpdateOperation, "rotate/web", nil)
	if blocked := e.ok(logical.ReadOperation, "roles/web", nil)["rotation_blocked"]; blocked != nil && blocked != "" {
		t.Fatalf("still blocked: %v", blocked)
	}
}

// A panic anywhere in a request, a token fetch shared by several readers, or a scheduled
// job fails that one thing; the same process serves the next request.
func TestPanicDoesNotKillThePlugin(t *testing.T) {
	e := newTokenEnv(t, nil)
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": "1h"})
	boom := func(key string) {
		if key == model.CredsKey("app") || key == model.RoleKey("app") {
			panic("injected " + key)
		}
	}
	e.storage.onGet.Store(&boom)
	for _, path := range []string{"creds/app", "token/app", "roles/app"} {
		_, err := e.request(logical.ReadOperation, path, nil)
		if code, _ := codedStatus(err); code != http.StatusInternalServerError {
			t.Fatalf("%s with a panic answered %v; want a 500", path, err)
		}
	}
	e.advance(2 * time.Hour) // the scheduled job panics too
	e.storage.onGet.Store(nil)
	e.ok(logical.ReadOperation, "creds/app", nil)
	if n := strings.Count(e.logs.String(), "recovered from a panic"); n < 4 {
		t.Fatalf("%d panics logged; want one per request and job", n)
	}
	if strings.Contains(e.logs.String(), "injected") {
		t.Fatal("the panic's value was logged")
	}
}

// Found by the API simulation: creds?version=N racing a rotation that prunes version N
// answered 500 "missing from storage"; it now answers as a read after the rotation would.
func TestCredsVersionPrunedWhileRead(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"max_versions": 2})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil) // versions 1 and 2
	var once atomic.Bool
	hook := func(key string) {
		if key == model.SecretKey("app", 1) && once.CompareAndSwap(false, true) {
			e.storage.onGet.Store(nil)
			e.ok(logical.UpdateOperation, "rotate/app", nil) // prunes version 1
		}
	}
	e.storage.onGet.Store(&hook)
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", map[string]interface{}{"version": 1}), `role "app" has no version 1; retained versions are 2 to 3`)
	if !once.Load() {
		t.Fatal("the race was not reached")
	}
}

// Found by the API simulation: a create with import_current_secret cut between its creds
// write and its role write left creds/<name> serving a secret of no role, which a delete
// (finding no role) did not remove. The state is made here as a crash leaves it when the
// next start could not repair it either: creds, secrets and claim stored, no role entry.
func TestDeleteRemovesLeftoversOfACutCreate(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true})
	if err := model.DeleteKey(t.Context(), e.storage, model.RoleKey("app")); err != nil {
		t.Fatal(err)
	}
	e.b.CredsCache.Invalidate("app")
	e.ok(logical.DeleteOperation, "roles/app", nil)
	if creds, _ := model.LoadCreds(t.Context(), e.storage, "app"); creds != nil {
		t.Fatal("the delete left creds/app")
	}
	if owner, _ := model.LoadOwner(t.Context(), e.storage, testAppID); owner != "" {
		t.Fatalf("the delete left the claim of %q", owner)
	}
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", nil), `role "app" does not exist`)
}

// A create whose role entry could not be stored leaves nothing: creds and token/ of the
// role that does not exist answer that it does not exist, no secret of the import stays,
// and the application is free. Before, creds and token/ served the imported secret and
// tokens of no role until someone deleted it (TestAPISimulation -apisim.seed=5019: a token
// cached for a role that does not exist).
func TestFailedCreateLeavesNothing(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.storage.failPutsUnder(model.RoleStoragePrefix, 1000)
	if _, err := e.request(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true, "token_audiences": testAPI}); err == nil {
		t.Fatal("the create succeeded although its role write failed")
	}
	e.storage.failPuts.Store(0)
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", nil), `role "app" does not exist`)
	if resp, err := e.request(logical.ReadOperation, "token/app", nil); err == nil && (resp == nil || !resp.IsError()) {
		t.Fatal("token/ of a role whose create failed minted a token")
	}
	if creds, _ := model.LoadCreds(t.Context(), e.storage, "app"); creds != nil {
		t.Fatal("the failed create left creds/app")
	}
	if keys, _ := e.storage.List(t.Context(), model.SecretsDir("app")); len(keys) != 0 {
		t.Fatalf("the failed create left secrets %v", keys)
	}
	if owner, _ := model.LoadOwner(t.Context(), e.storage, testAppID); owner != "" {
		t.Fatalf("the failed create left the claim of %q", owner)
	}
	e.ok(logical.UpdateOperation, "roles/other", map[string]interface{}{"client_id": testAppID, "import_current_secret": true})
}

// Found by the API simulation: a creds read between a delete's removal of the secrets and
// of the role (or after such a delete was cut short) answered 500 "missing from storage".
func TestCredsDuringDelete(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if err := e.b.DeleteRoleData(t.Context(), e.storage, "app"); err != nil { // the role entry stays
		t.Fatal(err)
	}
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", nil), `role "app" is being deleted, or a delete of it was cut short`)
	e.ok(logical.DeleteOperation, "roles/app", nil)
	wantContains(t, e.userError(logical.ReadOperation, "creds/app", nil), `role "app" does not exist`)
}

// crashAtRolePut is storage as a node sees it when it crashes at the write of roles/<name>:
// that write and every one after it fail. before, if set, runs once first, as a reader
// would while the write is stuck there.
type crashAtRolePut struct {
	logical.Storage
	name    string
	before  func()
	crashed atomic.Bool
	failed  atomic.Bool // only the role write fails, not what follows: a failed write, no crash
}

func (s *crashAtRolePut) Put(ctx context.Context, e *logical.StorageEntry) error {
	if e.Key == model.RoleStoragePrefix+s.name && !s.crashed.Load() {
		if before := s.before; before != nil {
			s.before = nil
			before()
		}
		if s.failed.Load() {
			s.failed.Store(false)
			return errStorageDown
		}
		s.crashed.Store(true)
	}
	if s.crashed.Load() {
		return errStorageDown
	}
	return s.Storage.Put(ctx, e)
}

func (s *crashAtRolePut) Delete(ctx context.Context, key string) error {
	if s.crashed.Load() {
		return errStorageDown
	}
	return s.Storage.Delete(ctx, key)
}

// Found by the API simulation (half-stored): a role write cut by a crash between its creds
// write and its role write left creds with the new token_audiences and the role with the
// old ones, so that token/ on the next active node minted for an audience the role does
// not list. The next start now writes creds again from the role.
func TestRoleWriteCutByCrashIsUndone(t *testing.T) {
	e := newTokenEnv(t, map[string]interface{}{"token_audiences": testAPI})
	s := &crashAtRolePut{Storage: e.storage, name: "app"}
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "roles/app", Storage: s,
		Data: map[string]interface{}{"token_audiences": testAPI + "," + testAPI2, "rotation_period": "48h"}}
	if resp, err := e.b.HandleRequest(t.Context(), req); err == nil && !resp.IsError() {
		t.Fatal("the write succeeded although the node crashed at its role write")
	}
	if creds, _ := model.LoadCreds(t.Context(), e.storage, "app"); creds == nil || len(creds.TokenAudiences) != 2 {
		t.Fatal("the crash did not cut the write between creds and role: the test does not reach the state")
	}

	// The next active node, on the same storage.
	e.b.Cleanup(t.Context())
	e.b = startBackendWithClock(t, e.storage, logical.TestSystemView(), hclog.Off, io.Discard, e.clock)
	if sch := e.b.Sched.Load(); sch != nil {
		<-sch.Loaded
	}
	role, _ := model.LoadRole(t.Context(), e.storage, "app")
	creds, _ := model.LoadCreds(t.Context(), e.storage, "app")
	if !slices.Equal(creds.TokenAudiences, role.TokenAudiences) || creds.RotationPeriod != role.RotationPeriod {
		t.Fatalf("half-stored: creds carry audiences %v and period %s, the role %v and %s",
			creds.TokenAudiences, creds.RotationPeriod, role.TokenAudiences, role.RotationPeriod)
	}
	before := e.tokenRequests(testAppID)
	wantContains(t, e.userError(logical.ReadOperation, "token/app", map[string]interface{}{"audience": testAPI2}), "may not mint tokens for audience")
	if n := e.tokenRequests(testAppID) - before; n != 0 {
		t.Fatalf("%d token requests for an audience the role does not list", n)
	}
	if n := len(e.walIDs(engine.WALKindRoleWrite)); n != 0 {
		t.Fatalf("%d role write entries left after the repair", n)
	}
	// The write, done again, lands whole.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"token_audiences": testAPI + "," + testAPI2})
	if d := e.ok(logical.ReadOperation, "token/app", map[string]interface{}{"audience": testAPI2}); d["audience"] != testAPI2 {
		t.Fatalf("token/app for the audience written again: %v", d["audience"])
	}
}

// Found by the API simulation (failed-write-token): a role write whose role write failed
// put creds back, but kept the token a reader fetched meanwhile for the audiences it never
// stored (no longer served since token/ keys its cache by the audience it resolved, but
// held until it expired).
func TestFailedRoleWriteDropsTokensItsCredsServed(t *testing.T) {
	e := newTokenEnv(t, map[string]interface{}{"token_audiences": testAPI})
	s := &crashAtRolePut{Storage: e.storage, name: "app"}
	s.failed.Store(true)
	s.before = func() { // creds already carry the new audiences: a default read mints for testAPI2
		resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "token/app", Storage: e.storage})
		if err != nil || resp.IsError() || resp.Data["audience"] != testAPI2 {
			t.Errorf("a read during the write did not see its audiences: %v %v", resp, err)
		}
	}
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "roles/app", Storage: s,
		Data: map[string]interface{}{"token_audiences": testAPI2}}
	if resp, err := e.b.HandleRequest(t.Context(), req); err == nil && !resp.IsError() {
		t.Fatal("the write succeeded although its role write failed")
	}
	if d := e.ok(logical.ReadOperation, "roles/app", nil); !slices.Equal(d["token_audiences"].([]string), []string{testAPI}) {
		t.Fatalf("the failed write changed the role: %v", d["token_audiences"])
	}
	e.b.Tokens.Mu.Lock()
	for k, tok := range e.b.Tokens.Entries {
		if tok.Audience != testAPI {
			t.Errorf("after the failed write, a token for %s is cached (key %+v); the role lists only %s", tok.Audience, k, testAPI)
		}
	}
	e.b.Tokens.Mu.Unlock()
	if d := e.ok(logical.ReadOperation, "token/app", nil); d["audience"] != testAPI {
		t.Fatalf("after the failed write, token/app serves a token for %v; the role's default is %s", d["audience"], testAPI)
	}
}

// walIDs lists the write-ahead entries of kind in storage.
func (e *testEnv) walIDs(kind string) []string {
	e.t.Helper()
	ids, err := framework.ListWAL(e.t.Context(), e.storage)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, id := range ids {
		if entry, err := framework.GetWAL(e.t.Context(), e.storage, id); err == nil && entry != nil && entry.Kind == kind {
			out = append(out, id)
		}
	}
	return out
}

// A switch cut short after its PATCH reached Auth0 (switching stored, then the process
// died before the switch was) is finished by the next node at once, also by a manual
// rotate and also where that node's clock lags the time the switch started: before, that
// node saw the switch time ahead, left it "published" and served the old secret, which
// Auth0 no longer accepts, until its clock caught up (TestAPISimulation
// -apisim.seed=5020: a failover to a node 34s behind).
func TestStartedSwitchFinishedOnLaggingNode(t *testing.T) {
	for _, how := range []string{"scheduler", "rotate"} {
		t.Run(how, func(t *testing.T) {
			e := newTestEnv(t)
			e.configureStaged(nil)
			e.advance(50 * time.Minute) // published, switches at 60m
			e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
				if p == emulator.AfterApply && r.Method == http.MethodPatch && id == testAppID {
					e.storage.failPutsUnder("", 1<<30) // the process is gone: nothing more is stored
				}
				return nil
			})
			if _, err := e.request(logical.UpdateOperation, "rotate/app", map[string]interface{}{"switch_now": true}); err == nil {
				t.Fatal("a switch that could not be stored succeeded")
			}
			e.emu.SetFaults(nil)
			e.storage.failPuts.Store(0)
			role := e.storedRole("app")
			staged, _ := e.ok(logical.ReadOperation, "creds/app", nil)["next_client_secret"].(string)
			if role.Staged == nil || !role.Staged.Switching || role.LastFailure != nil || staged == "" || e.appSecret(testAppID) != staged {
				t.Fatalf("setup: staged %+v, failure %+v; Auth0 should hold the staged secret, Vault still stage it", role.Staged, role.LastFailure)
			}

			lagging := newFakeClock(e.clock.Now().Add(-34 * time.Second))
			lagging.setAutoAdvance(true) // the switch's checks wait on it, as on the first node's
			other := startBackendWithClock(t, e.storage, logical.TestSystemView(), hclog.Trace, e.logs, lagging)
			switch how {
			case "scheduler":
				sch := other.Sched.Load()
				<-sch.Loaded
				other.RunDueNow(t.Context())
			case "rotate":
				resp, err := other.HandleRequest(t.Context(), &logical.Request{Operation: logical.UpdateOperation, Path: "rotate/app", Storage: e.storage})
				if err != nil || resp.IsError() {
					t.Fatalf("rotate on the lagging node: %v %v", resp, err)
				}
			}
			after := e.storedRole("app")
			resp, err := other.HandleRequest(t.Context(), &logical.Request{Operation: logical.ReadOperation, Path: "creds/app", Storage: e.storage})
			if err != nil || resp.IsError() {
				t.Fatalf("creds on the lagging node: %v %v", resp, err)
			}
			if after.Staged != nil || after.CurrentVersion() != role.Staged.Version || resp.Data["client_secret"] != staged {
				t.Fatalf("the started switch was not finished on a node %s behind: staged %+v, version %d, creds serve the secret Auth0 holds: %v",
					34*time.Second, after.Staged, after.CurrentVersion(), resp.Data["client_secret"] == staged)
			}
		})
	}
}
