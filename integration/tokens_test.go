package integration

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// The tests in this file prove the short-lived credential paths end to end, in a real
// Vault with real policies, a real Vault Agent and a real audit device:
//
//   - token/<role>: an access token minted with the role's credential, which never leaves
//     Vault; cached per role and audience until token_refresh_fraction of its lifetime,
//     with a ttl (and rotation_period) that make Vault Agent re-render before it expires.
//   - assertion/<role>: a short-lived client assertion signed with a private_key_jwt
//     role's key, which never leaves Vault either.

const (
	// tokReportsAPI is a second API the token-minting applications may call.
	tokReportsAPI = "https://reports.example.test/"
	// tokUnlistedAPI is an API Auth0 lets myapp call but that its role does not list in
	// token_audiences: Vault must refuse it without asking Auth0.
	tokUnlistedAPI = "https://billing.example.test/"
	// tokTemplate is what a token-only application renders with Vault Agent.
	tokTemplate = `{{ with secret "auth0/token/myapp" }}{{ .Data.access_token }}{{ end }}`
)

// tokMgmtScopes are the Management API scopes the engine needs for client-secret roles
// and private_key_jwt roles alike.
var tokMgmtScopes = []string{
	"read:clients", "read:client_keys", "update:client_keys", "update:clients",
	"create:client_credentials", "read:client_credentials", "update:client_credentials", "delete:client_credentials",
}

// tokNewFixture starts an emulator with opts (its Management application granted
// tokMgmtScopes) and a Vault with the plugin mounted at auth0/ and configured.
func tokNewFixture(t *testing.T, opts emulator.Options) *fixture {
	t.Helper()
	emu := emulator.New(opts)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	mgmt := emu.AddClient(emulator.Client{
		ClientID: mgmtClientID,
		Name:     "Vault",
		Grants:   map[string][]string{emulator.ManagementGrant: tokMgmtScopes},
	})
	v := vaulttest.StartDevServer(t, pluginDir)
	v.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	v.Mount(t, mount, pluginVersion)
	f := &fixture{emu: emu, emuURL: srv.URL, mgmt: mgmt, v: v}
	f.configure(t)
	return f
}

// tokAddApp adds an application with the given grants (audience -> scopes).
func tokAddApp(f *fixture, clientID string, grants map[string][]string) emulator.Client {
	return f.emu.AddClient(emulator.Client{ClientID: clientID, Name: clientID, Grants: grants})
}

// tokAddKeyRole adds application clientID on a client secret and role name for it with
// credential_type=private_key_jwt and allow_assertions=true (plus extra fields), and
// rotates it once: the first rotation switches the application to private_key_jwt.
// It returns the role's private key (PEM) as creds serve it.
func tokAddKeyRole(t *testing.T, f *fixture, name, clientID string, extra ...string) string {
	t.Helper()
	v, root := f.v, f.v.RootToken
	tokAddApp(f, clientID, map[string][]string{apiAudience: {"read:data"}})
	args := append([]string{"write", mount + "/roles/" + name, "client_id=" + clientID,
		"credential_type=private_key_jwt", "allow_auth_method_change=true", "allow_assertions=true"}, extra...)
	v.MustCLI(t, root, args...)
	// The emulator applies attachments at once: publish keys as soon as they are attached.
	v.MustCLI(t, root, "write", mount+"/config", "propagation_wait=0")
	f.rotate(t, root, name)
	if !f.emu.UsesPrivateKeyJWT(clientID) {
		t.Fatalf("after its first rotation %s is not on private_key_jwt", clientID)
	}
	r := v.Do(t, root, http.MethodGet, mount+"/creds/"+name, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("root reading creds/%s: status %d: %v", name, r.Status, r.Errors)
	}
	pem := str(t, r.Data, "private_key")
	if !strings.Contains(pem, "PRIVATE KEY") {
		t.Fatalf("creds/%s private_key is not a PEM private key", name)
	}
	return pem
}

// tokCacheStats is a role's token_cache as roles/<name> shows it.
type tokCacheStats struct{ hits, misses, requests, failures int }

func (s tokCacheStats) String() string {
	return fmt.Sprintf("hits %d, misses %d, auth0_token_requests %d, auth0_token_failures %d", s.hits, s.misses, s.requests, s.failures)
}

func tokReadCache(t *testing.T, v *vaulttest.Vault, role string) tokCacheStats {
	t.Helper()
	r := v.Do(t, v.RootToken, http.MethodGet, mount+"/roles/"+role, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("reading roles/%s: status %d: %v", role, r.Status, r.Errors)
	}
	c, ok := r.Data["token_cache"].(map[string]any)
	if !ok {
		t.Fatalf("roles/%s has no token_cache object: fields %v", role, keys(r.Data))
	}
	return tokCacheStats{num(t, c, "hits"), num(t, c, "misses"), num(t, c, "auth0_token_requests"), num(t, c, "auth0_token_failures")}
}

// tokClaims decodes the payload of a JWT (no verification).
func tokClaims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("JWT payload: %v", err)
	}
	return c, nil
}

func tokMustClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	c, err := tokClaims(jwt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tokUnix reads a NumericDate claim.
func tokUnix(t *testing.T, claims map[string]any, name string) time.Time {
	t.Helper()
	f, ok := claims[name].(float64)
	if !ok {
		t.Fatalf("claim %q = %#v, want a NumericDate", name, claims[name])
	}
	return time.Unix(int64(f), 0)
}

// tokPresentAssertion is what an application does with a client assertion Vault signed:
// it exchanges it at the emulator's /oauth/token for an access token for audience. It
// returns the status, the access token (on 200) and Auth0's error (otherwise).
func tokPresentAssertion(t *testing.T, emuURL, clientID, assertion, audience string) (int, string, string) {
	t.Helper()
	resp, err := http.PostForm(emuURL+"/oauth/token", url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"client_assertion_type": {emulator.ClientAssertionType},
		"client_assertion":      {assertion},
		"audience":              {audience},
	})
	if err != nil {
		t.Fatalf("POST /oauth/token: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("POST /oauth/token: status %d, undecodable body: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, body.AccessToken, body.Error + ": " + body.Description
}

// tokSecretFragments are the parts of a secret value worth looking for in an output: the
// whole value and, for a JWT, its payload and signature (its header is not specific),
// for a PEM key each base64 line.
func tokSecretFragments(value string) []string {
	out := []string{value}
	if parts := strings.Split(value, "."); len(parts) == 3 {
		out = append(out, parts[1], parts[2])
	}
	for _, line := range strings.Split(value, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

// tokAppStats is what a token-only application saw.
type tokAppStats struct {
	mu        sync.Mutex
	calls     int
	failures  []string
	firstSeen map[string]time.Time // access token -> when the application first used it
	order     []string             // distinct access tokens, in the order rendered
}

func (s *tokAppStats) record(now time.Time, token string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if err != nil {
		s.failures = append(s.failures, fmt.Sprintf("%s: %v", now.Format("15:04:05.000"), err))
	}
	if token != "" {
		if _, seen := s.firstSeen[token]; !seen {
			s.firstSeen[token] = now
			s.order = append(s.order, token)
		}
	}
}

func (s *tokAppStats) snapshot() (calls, failures, distinct int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, len(s.failures), len(s.order)
}

// tokApplication reads the rendered access token every interval and calls the API with
// it, i.e. has the emulator validate it as the API would, until ctx ends.
func tokApplication(ctx context.Context, emu *emulator.Server, path string, interval time.Duration, st *tokAppStats) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		now := time.Now()
		b, err := os.ReadFile(path)
		token := strings.TrimSpace(string(b))
		switch {
		case err != nil:
			err = fmt.Errorf("reading the rendered token: %v", err)
		case token == "":
			err = fmt.Errorf("the rendered file is empty")
		default:
			if verr := emu.ValidateAccessToken(token, apiAudience); verr != nil {
				detail := ""
				if c, cerr := tokClaims(token); cerr == nil {
					if exp, ok := c["exp"].(float64); ok {
						detail = fmt.Sprintf(" (token exp %s, %v ago)", time.Unix(int64(exp), 0).Format("15:04:05"), now.Sub(time.Unix(int64(exp), 0)).Round(time.Millisecond))
					}
				}
				err = fmt.Errorf("API refused the rendered token: %v%s", verr, detail)
			}
		}
		st.record(now, token, err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// TestTokenOnlyApplicationAcrossRotations: an application that only calls an API gets
// its access tokens from token/myapp through a real Vault Agent, with a policy that
// allows nothing else (its credential never leaves Vault). Access tokens live
// tokLifetime; the role rotates on its own every tokRotationPeriod, and Auth0 takes up
// to tokPropagation to accept each new secret everywhere. The Agent runs with its
// default static_secret_render_interval (5 minutes): only the ttl and rotation_period
// token/ returns make it re-render in time. Across at least three scheduled rotations
// and two token lifetimes, not one API call of the application may fail.
//
// A second replica of the application reads token/myapp directly right after each
// rotation, inside Auth0's propagation window, so that every run exercises the engine's
// retry of a refused fresh secret (the emulator's seed makes the first requests in a
// window see the old state): those reads must succeed too.
func TestTokenOnlyApplicationAcrossRotations(t *testing.T) {
	t.Parallel()
	const (
		tokLifetime       = 18 * time.Second
		tokPropagation    = 2 * time.Second
		tokRotationPeriod = 8 * time.Second
		tokMinRotations   = 3
		tokAppInterval    = 150 * time.Millisecond
		// tokSeed makes the first three /oauth/token requests in a propagation window
		// see the old secret.
		tokSeed = 7
	)
	start := time.Now()
	f := tokNewFixture(t, emulator.Options{TokenLifetime: tokLifetime, PropagationDelay: tokPropagation, Seed: tokSeed})
	v, root := f.v, f.v.RootToken
	app := tokAddApp(f, "myapp-id", map[string][]string{apiAudience: {"read:data"}})
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+app.ClientID,
		"token_audiences="+apiAudience, "rotation_period="+tokRotationPeriod.String())
	f.rotate(t, root, "myapp") // the first secret; from now on nobody rotates by hand
	initialSecret := f.secret(t, app.ClientID)

	v.WritePolicy(t, "myapp-token", `path "auth0/token/myapp" { capabilities = ["read"] }`)
	appToken := v.CreateToken(t, "myapp-token")
	if r := v.Do(t, appToken, http.MethodGet, mount+"/creds/myapp", nil); r.Status != http.StatusForbidden {
		t.Fatalf("the token-only application reading creds/myapp: status %d, want 403 (%v)", r.Status, r.Errors)
	}
	served := map[string]bool{} // every access token token/myapp served
	r := v.Do(t, appToken, http.MethodGet, mount+"/token/myapp", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("the token-only application reading token/myapp: status %d, want 200 (%v)", r.Status, r.Errors)
	}
	served[str(t, r.Data, "access_token")] = true
	assertNoSecret(t, "token/myapp", r.Body, initialSecret, f.mgmt.ClientSecret)
	ttl, lifetime := num(t, r.Data, "ttl"), num(t, r.Data, "expires_in")
	if num(t, r.Data, "rotation_period") <= 0 || ttl <= 0 || ttl >= lifetime || lifetime > int(tokLifetime/time.Second) {
		t.Fatalf("token/myapp: ttl %d, rotation_period %v, expires_in %d: want 0 < ttl < expires_in <= %d and a rotation_period (Vault Agent 1.13 honours ttl only with it)",
			ttl, r.Data["rotation_period"], lifetime, int(tokLifetime/time.Second))
	}

	agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{Token: appToken, Template: tokTemplate})
	vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return strings.TrimSpace(s) != "" }, 30*time.Second)
	firstRender := time.Now()
	rotationsAtStart := f.rotations(app.ClientID)

	st := &tokAppStats{firstSeen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tokApplication(ctx, f.emu, agent.RenderedPath, tokAppInterval, st)
	}()
	stop := func() { cancel(); wg.Wait() }
	defer stop()

	// replica reads token/myapp directly once rotation n is committed in Vault (the
	// rotation dropped the cached token: this read mints one with the new secret).
	var replicaReads int
	var replicaSlowest time.Duration
	replica := func(n int) {
		t.Helper()
		for wait := time.Now().Add(5 * time.Second); ; {
			r := v.Do(t, root, http.MethodGet, mount+"/roles/myapp", nil)
			if r.Status == http.StatusOK && num(t, r.Data, "current_version") >= n {
				break
			}
			if time.Now().After(wait) {
				t.Fatalf("Auth0 applied rotation %d of myapp, Vault did not commit it within 5s", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		began := time.Now()
		r := v.Do(t, appToken, http.MethodGet, mount+"/token/myapp", nil)
		took := time.Since(began)
		replicaReads++
		if took > replicaSlowest {
			replicaSlowest = took
		}
		if r.Status != http.StatusOK {
			t.Errorf("the replica reading token/myapp right after rotation %d: status %d: %v", n, r.Status, r.Errors)
			return
		}
		tok := str(t, r.Data, "access_token")
		served[tok] = true
		if err := f.emu.ValidateAccessToken(tok, apiAudience); err != nil {
			t.Errorf("the API refuses the token the replica read right after rotation %d: %v", n, err)
		}
	}

	// Run until the application has lived through two token lifetimes and at least
	// tokMinRotations scheduled rotations (and so used at least three tokens).
	deadline := firstRender.Add(2*tokLifetime + 25*time.Second)
	seen := rotationsAtStart
	for {
		rotations := f.rotations(app.ClientID)
		for ; seen < rotations; seen++ {
			replica(seen + 1)
		}
		_, _, distinct := st.snapshot()
		if time.Since(firstRender) >= 2*tokLifetime && rotations-1 >= tokMinRotations && distinct >= 3 {
			break
		}
		if agent.Exited() {
			t.Fatalf("Vault Agent exited; its log:\n%s", tokTail(agent.Logs(), 60))
		}
		if time.Now().After(deadline) {
			calls, failures, _ := st.snapshot()
			t.Fatalf("after %v: %d scheduled rotations (want >= %d), %d distinct tokens rendered (want >= 3), %d calls, %d failures",
				time.Since(firstRender).Round(time.Second), rotations-1, tokMinRotations, distinct, calls, failures)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	ran := time.Since(firstRender)

	st.mu.Lock()
	calls, failures, order, firstSeen := st.calls, append([]string(nil), st.failures...), append([]string(nil), st.order...), st.firstSeen
	st.mu.Unlock()

	// Each token the Agent rendered: issued to myapp, for the API, and replaced in the
	// file before it expired.
	minMargin := time.Duration(1<<63 - 1)
	for i, tok := range order {
		served[tok] = true
		c := tokMustClaims(t, tok)
		if sub, _ := c["sub"].(string); sub != app.ClientID+"@clients" {
			t.Errorf("rendered token %d has sub %q, want %s@clients", i, sub, app.ClientID)
		}
		if i+1 < len(order) {
			margin := tokUnix(t, c, "exp").Sub(firstSeen[order[i+1]])
			if margin < minMargin {
				minMargin = margin
			}
			if margin <= 0 {
				t.Errorf("rendered token %d expired %v before the Agent replaced it", i, -margin)
			}
		}
	}

	scheduled := f.rotations(app.ClientID) - 1
	cache := tokReadCache(t, v, "myapp")
	auth0Requests := f.emu.Stats().TokenRequests[app.ClientID]
	t.Logf("token-only application over %v (token lifetime %v, propagation delay %v, rotation_period %v): %d API calls, %d failed; "+
		"%d scheduled rotations (%d during the run); %d distinct tokens rendered, each replaced at least %v before it expired; "+
		"replica: %d reads right after a rotation, slowest %v; %d distinct tokens served in all; Auth0 /oauth/token requests for %s: %d; "+
		"token_cache: %s; test time %v",
		ran.Round(100*time.Millisecond), tokLifetime, tokPropagation, tokRotationPeriod, calls, len(failures),
		scheduled, f.rotations(app.ClientID)-rotationsAtStart, len(order), minMargin.Round(100*time.Millisecond),
		replicaReads, replicaSlowest.Round(10*time.Millisecond), len(served), app.ClientID, auth0Requests,
		cache, time.Since(start).Round(100*time.Millisecond))

	if len(failures) > 0 {
		shown := failures
		if len(shown) > 15 {
			shown = shown[:15]
		}
		t.Errorf("%d of %d API calls failed; first ones:\n%s", len(failures), calls, strings.Join(shown, "\n"))
	}
	if len(order) < 3 {
		t.Errorf("the Agent rendered %d distinct tokens, want at least 3", len(order))
	}
	if calls < int(ran/tokAppInterval)/2 {
		t.Errorf("only %d API calls in %v", calls, ran)
	}
	// Vault is the only one that presents myapp's secret to Auth0, and only to mint tokens.
	if auth0Requests != cache.requests {
		t.Errorf("Auth0 saw %d token requests for %s, the role's token_cache counts %d: someone else used its credential", auth0Requests, app.ClientID, cache.requests)
	}
	// Auth0 refused fresh secrets during propagation (the seed sees to it), and the
	// engine retried: no reader saw the refusal.
	if cache.failures == 0 {
		t.Errorf("Auth0 refused no token request during propagation: the retry was not exercised (token_cache %s)", cache)
	}
	// One Auth0 token per token served: every token minted was served (the last one may
	// have been minted for the Agent and not rendered yet).
	if issued := cache.requests - cache.failures; issued < len(served) || issued > len(served)+1 {
		t.Errorf("Auth0 issued %d tokens for myapp, token/myapp served %d distinct ones: want as many (one more at most)", issued, len(served))
	}
	if code := authenticate(t, f.emuURL, app.ClientID, initialSecret); code != http.StatusUnauthorized {
		t.Errorf("the first secret after %d scheduled rotations: status %d at Auth0, want 401", scheduled, code)
	}
	versions := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/versions/myapp"))
	list, _ := versions["versions"].(map[string]any)
	for n, meta := range list {
		if src := meta.(map[string]any)["source"]; n != "1" && src != "scheduled" {
			t.Errorf("version %s has source %v; only the schedule rotated after version 1", n, src)
		}
	}
	if agent.Exited() {
		t.Errorf("Vault Agent exited; its log:\n%s", tokTail(agent.Logs(), 60))
	}
}

// TestTokenPolicyMatrix checks what real policies allow on the short-lived credential
// paths: a token-only application, a creds reader, a rotator and an assertion-only
// application, each against token/myapp, creds/myapp, rotate/myapp, assertion/keyapp
// and token/otherrole. It also checks that no answer carries a credential it should not
// (client secret, private key), that token/ is confined to the role's token_audiences,
// that the cache serves repeated reads, and that a rotation drops the cached token.
func TestTokenPolicyMatrix(t *testing.T) {
	t.Parallel()
	f := tokNewFixture(t, emulator.Options{})
	v, root := f.v, f.v.RootToken

	myapp := tokAddApp(f, "myapp-id", map[string][]string{
		apiAudience:    {"read:data", "write:data"},
		tokReportsAPI:  {"read:data"},
		tokUnlistedAPI: {"read:data"},
	})
	other := tokAddApp(f, "other-id", map[string][]string{apiAudience: {}})
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+myapp.ClientID,
		"token_audiences="+apiAudience+","+tokReportsAPI, "token_scopes=read:data")
	v.MustCLI(t, root, "write", mount+"/roles/otherrole", "client_id="+other.ClientID, "token_audiences="+apiAudience)
	f.rotate(t, root, "myapp")
	f.rotate(t, root, "otherrole")
	keyPEM := tokAddKeyRole(t, f, "keyapp", "keyapp-id", "token_audiences="+apiAudience)

	policies := map[string]string{
		"token-only":     `path "auth0/token/myapp" { capabilities = ["read"] }`,
		"creds-reader":   `path "auth0/creds/myapp" { capabilities = ["read"] }`,
		"rotator":        `path "auth0/rotate/myapp" { capabilities = ["update"] }`,
		"assertion-only": `path "auth0/assertion/keyapp" { capabilities = ["read"] }`,
	}
	tokens := map[string]string{}
	for name, hcl := range policies {
		v.WritePolicy(t, name, hcl)
		tokens[name] = v.CreateToken(t, name)
	}
	// Everything that must not leak: the applications' secrets, the Management
	// application's secret and the private key.
	secrets := func() []string {
		out := []string{f.secret(t, myapp.ClientID), f.secret(t, other.ClientID), f.mgmt.ClientSecret}
		return append(out, tokSecretFragments(keyPEM)...)
	}

	type request struct{ method, path string }
	requests := []request{
		{http.MethodGet, mount + "/token/myapp"},
		{http.MethodGet, mount + "/creds/myapp"},
		{http.MethodPost, mount + "/rotate/myapp"},
		{http.MethodGet, mount + "/assertion/keyapp"},
		{http.MethodGet, mount + "/token/otherrole"},
	}
	allowed := map[string]string{ // policy -> the one request it allows
		"token-only":     mount + "/token/myapp",
		"creds-reader":   mount + "/creds/myapp",
		"rotator":        mount + "/rotate/myapp",
		"assertion-only": mount + "/assertion/keyapp",
	}

	// check inspects an allowed answer.
	var lastAccessToken string
	check := func(t *testing.T, path string, r *vaulttest.Response) {
		d := r.Data
		switch path {
		case mount + "/token/myapp":
			tok := str(t, d, "access_token")
			lastAccessToken = tok
			if err := f.emu.ValidateAccessToken(tok, apiAudience); err != nil {
				t.Errorf("the API refuses the access token: %v", err)
			}
			if err := f.emu.ValidateAccessToken(tok, tokReportsAPI); err == nil {
				t.Errorf("the reports API accepts a token for the default audience")
			}
			if got := str(t, d, "token_type"); got != "Bearer" {
				t.Errorf("token_type = %q, want Bearer", got)
			}
			if got := str(t, d, "audience"); got != apiAudience {
				t.Errorf("audience = %q, want the first token_audiences %q", got, apiAudience)
			}
			if got := str(t, d, "scope"); got != "read:data" {
				t.Errorf("scope = %q, want token_scopes read:data (not all that is granted)", got)
			}
			c := tokMustClaims(t, tok)
			if c["sub"] != myapp.ClientID+"@clients" || c["scope"] != "read:data" {
				t.Errorf("token claims sub %v scope %v, want %s@clients and read:data", c["sub"], c["scope"], myapp.ClientID)
			}
			if exp := rfc3339(t, d, "expires_at"); !sameSecond(exp, tokUnix(t, c, "exp")) {
				t.Errorf("expires_at %v, token exp %v", exp, tokUnix(t, c, "exp"))
			}
			if in, ttl := num(t, d, "expires_in"), num(t, d, "ttl"); in <= 0 || ttl <= 0 || ttl >= in || num(t, d, "rotation_period") <= 0 {
				t.Errorf("expires_in %d, ttl %d, rotation_period %v: want 0 < ttl < expires_in and a rotation_period", in, ttl, d["rotation_period"])
			}
			for k := range d {
				if strings.Contains(k, "secret") || strings.Contains(k, "key") || k == "client_id" {
					t.Errorf("token/myapp answers a field %q", k)
				}
			}
		case mount + "/creds/myapp":
			if got := str(t, d, "client_secret"); got != f.secret(t, myapp.ClientID) {
				t.Errorf("creds/myapp client_secret is not Auth0's current secret")
			}
		case mount + "/rotate/myapp":
			for k := range d {
				if strings.Contains(k, "secret") || strings.Contains(k, "token") {
					t.Errorf("rotate/myapp answers a field %q", k)
				}
			}
		case mount + "/assertion/keyapp":
			a := str(t, d, "client_assertion")
			if got := str(t, d, "client_assertion_type"); got != emulator.ClientAssertionType {
				t.Errorf("client_assertion_type = %q", got)
			}
			if got := str(t, d, "client_id"); got != "keyapp-id" {
				t.Errorf("client_id = %q, want keyapp-id", got)
			}
			c := tokMustClaims(t, a)
			if c["iss"] != "keyapp-id" || c["sub"] != "keyapp-id" || c["aud"] != "https://"+strings.TrimPrefix(f.emuURL, "http://")+"/" {
				t.Errorf("assertion claims iss %v sub %v aud %v", c["iss"], c["sub"], c["aud"])
			}
			if jti, _ := c["jti"].(string); jti == "" {
				t.Errorf("assertion has no jti")
			}
			if exp := rfc3339(t, d, "expires_at"); !sameSecond(exp, tokUnix(t, c, "exp")) {
				t.Errorf("expires_at %v, assertion exp %v", exp, tokUnix(t, c, "exp"))
			}
			for k := range d {
				if strings.Contains(k, "key") || strings.Contains(k, "secret") {
					t.Errorf("assertion/keyapp answers a field %q", k)
				}
			}
		}
	}

	order := []string{"token-only", "creds-reader", "assertion-only", "rotator"}
	for _, policy := range order {
		for _, rq := range requests {
			want := http.StatusForbidden
			if allowed[policy] == rq.path {
				want = http.StatusOK
			}
			t.Run(policy+" "+rq.method+" "+strings.TrimPrefix(rq.path, mount+"/"), func(t *testing.T) {
				rotations := f.rotations(myapp.ClientID)
				leakable := secrets() // before a rotation replaces one
				r := v.Do(t, tokens[policy], rq.method, rq.path, nil)
				if r.Status != want {
					t.Fatalf("status %d, want %d (errors %v)", r.Status, want, r.Errors)
				}
				if want == http.StatusForbidden {
					if msg := strings.Join(r.Errors, " "); !strings.Contains(msg, "permission denied") {
						t.Errorf("403 errors = %q, want permission denied", msg)
					}
					if r.Data != nil {
						t.Errorf("403 answer carries data: %v", keys(r.Data))
					}
				} else {
					check(t, rq.path, r)
				}
				leakable = append(leakable, secrets()...) // and after it
				raw := string(r.Raw)
				if strings.Contains(raw, "PRIVATE KEY") {
					t.Errorf("answer carries a private key")
				}
				for _, s := range leakable {
					if rq.path == mount+"/creds/myapp" && want == http.StatusOK && s == f.secret(t, myapp.ClientID) {
						continue // what creds/ is for
					}
					if s != "" && strings.Contains(raw, s) {
						t.Errorf("answer carries a credential: %s", raw)
						break
					}
				}
				wantRotations := 0
				if rq.path == mount+"/rotate/myapp" && want == http.StatusOK {
					wantRotations = 1
				}
				if got := f.rotations(myapp.ClientID) - rotations; got != wantRotations {
					t.Errorf("Auth0 saw %d rotations of myapp, want %d", got, wantRotations)
				}
			})
		}
	}

	tokenOnly := tokens["token-only"]
	t.Run("root reads token/otherrole", func(t *testing.T) {
		// The 403s above are the policies', not a broken path.
		r := v.Do(t, root, http.MethodGet, mount+"/token/otherrole", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %v", r.Status, r.Errors)
		}
		if err := f.emu.ValidateAccessToken(str(t, r.Data, "access_token"), apiAudience); err != nil {
			t.Errorf("the API refuses otherrole's token: %v", err)
		}
	})
	t.Run("token-only cannot read its role, config, versions or creds of keyapp", func(t *testing.T) {
		for _, p := range []string{"roles/myapp", "config", "versions/myapp", "creds/keyapp", "creds/otherrole"} {
			if r := v.Do(t, tokenOnly, http.MethodGet, mount+"/"+p, nil); r.Status != http.StatusForbidden {
				t.Errorf("GET %s: status %d, want 403", p, r.Status)
			}
		}
		if r := v.Do(t, tokens["assertion-only"], http.MethodGet, mount+"/creds/keyapp", nil); r.Status != http.StatusForbidden {
			t.Errorf("assertion-only GET creds/keyapp: status %d, want 403", r.Status)
		}
	})
	t.Run("rotation dropped the cached token", func(t *testing.T) {
		// The matrix read token/myapp before the rotator rotated myapp: the next read mints
		// a new token with the new secret.
		before := lastAccessToken
		requests := f.emu.Stats().TokenRequests[myapp.ClientID]
		r := v.Do(t, tokenOnly, http.MethodGet, mount+"/token/myapp", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %v", r.Status, r.Errors)
		}
		tok := str(t, r.Data, "access_token")
		if tok == before {
			t.Fatalf("token/myapp serves the token minted before the rotation")
		}
		if got := f.emu.Stats().TokenRequests[myapp.ClientID] - requests; got != 1 {
			t.Errorf("Auth0 saw %d token requests for myapp, want 1", got)
		}
		if err := f.emu.ValidateAccessToken(tok, apiAudience); err != nil {
			t.Errorf("the API refuses the new token: %v", err)
		}
		lastAccessToken = tok
	})
	t.Run("cache serves repeated reads", func(t *testing.T) {
		before := tokReadCache(t, v, "myapp")
		requests := f.emu.Stats().TokenRequests[myapp.ClientID]
		for i := 0; i < 5; i++ {
			r := v.Do(t, tokenOnly, http.MethodGet, mount+"/token/myapp", nil)
			if r.Status != http.StatusOK || r.Data["access_token"] != lastAccessToken {
				t.Fatalf("read %d: status %d, the same token %v", i, r.Status, r.Data["access_token"] == lastAccessToken)
			}
		}
		after := tokReadCache(t, v, "myapp")
		if got := f.emu.Stats().TokenRequests[myapp.ClientID] - requests; got != 0 {
			t.Errorf("5 cached reads made %d Auth0 token requests, want 0", got)
		}
		if after.hits-before.hits != 5 || after.requests != before.requests {
			t.Errorf("token_cache went from %s to %s: want 5 more hits and no requests", before, after)
		}
	})
	t.Run("audience query", func(t *testing.T) {
		r := v.Do(t, tokenOnly, http.MethodGet, mount+"/token/myapp?audience="+url.QueryEscape(tokReportsAPI), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("audience=%s: status %d: %v", tokReportsAPI, r.Status, r.Errors)
		}
		tok := str(t, r.Data, "access_token")
		if got := str(t, r.Data, "audience"); got != tokReportsAPI {
			t.Errorf("audience = %q, want %q", got, tokReportsAPI)
		}
		if err := f.emu.ValidateAccessToken(tok, tokReportsAPI); err != nil {
			t.Errorf("the reports API refuses its token: %v", err)
		}
		if err := f.emu.ValidateAccessToken(tok, apiAudience); err == nil {
			t.Errorf("the default API accepts a token minted for the reports API")
		}
		// An audience Auth0 would grant but the role does not list: refused by Vault,
		// without asking Auth0.
		requests := f.emu.Stats().TokenRequests[myapp.ClientID]
		r = v.Do(t, tokenOnly, http.MethodGet, mount+"/token/myapp?audience="+url.QueryEscape(tokUnlistedAPI), nil)
		if r.Status != http.StatusBadRequest || r.Data["access_token"] != nil {
			t.Errorf("audience=%s (not in token_audiences): status %d, want 400 without a token (errors %v)", tokUnlistedAPI, r.Status, r.Errors)
		}
		if got := f.emu.Stats().TokenRequests[myapp.ClientID] - requests; got != 0 {
			t.Errorf("an unlisted audience cost %d Auth0 token requests, want 0", got)
		}
	})
	t.Run("private_key_jwt role mints tokens, secret role signs no assertions", func(t *testing.T) {
		logins := f.emu.Stats().AssertionLogins["keyapp-id"]
		r := v.Do(t, root, http.MethodGet, mount+"/token/keyapp", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("token/keyapp: status %d: %v", r.Status, r.Errors)
		}
		if err := f.emu.ValidateAccessToken(str(t, r.Data, "access_token"), apiAudience); err != nil {
			t.Errorf("the API refuses keyapp's token: %v", err)
		}
		if got := f.emu.Stats().AssertionLogins["keyapp-id"] - logins; got != 1 {
			t.Errorf("Auth0 saw %d assertion logins of keyapp, want 1", got)
		}
		if strings.Contains(string(r.Raw), "PRIVATE KEY") {
			t.Errorf("token/keyapp answers key material")
		}
		if r := v.Do(t, root, http.MethodGet, mount+"/assertion/myapp", nil); r.Status != http.StatusBadRequest {
			t.Errorf("assertion/myapp (a client-secret role): status %d, want 400", r.Status)
		}
	})
}

// TestTokenAuditHashed: with a real file audit device, reading token/myapp,
// assertion/keyapp and the creds behind them leaves no credential in plaintext in the
// audit log: access token, client assertion, client secrets and private key appear only
// as hmac-sha256 values, and those are exactly what sys/audit-hash gives for them.
func TestTokenAuditHashed(t *testing.T) {
	t.Parallel()
	f := tokNewFixture(t, emulator.Options{})
	v, root := f.v, f.v.RootToken
	myapp := tokAddApp(f, "myapp-id", map[string][]string{apiAudience: {"read:data"}})
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+myapp.ClientID, "token_audiences="+apiAudience)
	f.rotate(t, root, "myapp")
	keyPEM := tokAddKeyRole(t, f, "keyapp", "keyapp-id")
	v.WritePolicy(t, "myapp-token", `path "auth0/token/myapp" { capabilities = ["read"] }`)
	v.WritePolicy(t, "keyapp-assertion", `path "auth0/assertion/keyapp" { capabilities = ["read"] }`)
	tokenApp, assertionApp := v.CreateToken(t, "myapp-token"), v.CreateToken(t, "keyapp-assertion")

	logPath := filepath.Join(t.TempDir(), "audit.log")
	v.MustCLI(t, root, "audit", "enable", "file", "file_path="+logPath)

	read := func(token, path string) map[string]any {
		t.Helper()
		r := v.Do(t, token, http.MethodGet, mount+"/"+path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: status %d: %v", path, r.Status, r.Errors)
		}
		return r.Data
	}
	accessToken := str(t, read(tokenApp, "token/myapp"), "access_token")
	assertion := str(t, read(assertionApp, "assertion/keyapp"), "client_assertion")
	secret := str(t, read(root, "creds/myapp"), "client_secret")
	if secret != f.secret(t, myapp.ClientID) {
		t.Fatalf("creds/myapp is not Auth0's current secret")
	}
	if got := str(t, read(root, "creds/keyapp"), "private_key"); got != keyPEM {
		t.Fatalf("creds/keyapp serves another private key than before")
	}

	// What each value hashes to, as the audit device reports it.
	auditHash := func(value string) string {
		t.Helper()
		r := v.Do(t, root, http.MethodPut, "sys/audit-hash/file", map[string]any{"input": value})
		if r.Status != http.StatusOK {
			t.Fatalf("sys/audit-hash/file: status %d: %v", r.Status, r.Errors)
		}
		h := str(t, r.Data, "hash")
		if !strings.HasPrefix(h, "hmac-sha256:") {
			t.Fatalf("sys/audit-hash/file answered %q", h)
		}
		return h
	}
	type field struct{ path, name, value string }
	fields := []field{
		{mount + "/token/myapp", "access_token", accessToken},
		{mount + "/assertion/keyapp", "client_assertion", assertion},
		{mount + "/creds/myapp", "client_secret", secret},
		{mount + "/creds/keyapp", "private_key", keyPEM},
	}
	want := map[string]string{}
	for _, fl := range fields {
		want[fl.path] = auditHash(fl.value)
	}

	// The log, once the last request (the last audit-hash) is in it.
	var entries []map[string]any
	var raw []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		raw, err = os.ReadFile(logPath)
		if err != nil {
			t.Fatalf("reading the audit log: %v", err)
		}
		entries = entries[:0]
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		hashes := 0
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("audit log line is not JSON: %v: %.200s", err, sc.Text())
			}
			entries = append(entries, e)
			if e["type"] == "response" && tokAuditPath(e) == "sys/audit-hash/file" {
				hashes++
			}
		}
		if hashes == len(fields) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log holds %d audit-hash responses, want %d", hashes, len(fields))
		}
		time.Sleep(50 * time.Millisecond)
	}

	log := string(raw)
	plain := map[string]string{"the management client secret": f.mgmt.ClientSecret, "myapp's current client secret": secret}
	for _, fl := range fields {
		for i, frag := range tokSecretFragments(fl.value) {
			plain[fmt.Sprintf("%s %s (fragment %d)", fl.path, fl.name, i)] = frag
		}
	}
	for what, s := range plain {
		if s != "" && strings.Contains(log, s) {
			t.Errorf("the audit log holds %s in plaintext", what)
		}
	}
	if strings.Contains(log, "PRIVATE KEY") {
		t.Errorf("the audit log holds a PEM private key")
	}

	for _, fl := range fields {
		found := 0
		for _, e := range entries {
			if e["type"] != "response" || tokAuditPath(e) != fl.path {
				continue
			}
			resp, _ := e["response"].(map[string]any)
			data, _ := resp["data"].(map[string]any)
			got, _ := data[fl.name].(string)
			found++
			if got != want[fl.path] {
				t.Errorf("audit response of %s: %s = %q, want %s (sys/audit-hash of the value served)", fl.path, fl.name, got, want[fl.path])
			}
			for k, x := range data {
				if s, ok := x.(string); ok && len(s) > 40 && !strings.HasPrefix(s, "hmac-sha256:") {
					t.Errorf("audit response of %s: field %s is not hashed: %.60s", fl.path, k, s)
				}
			}
		}
		if found != 1 {
			t.Errorf("the audit log holds %d responses for %s, want 1", found, fl.path)
		}
	}
	t.Logf("audit log: %d entries, %d bytes; access token, client assertion, client secret and private key appear only as their sys/audit-hash values", len(entries), len(raw))
}

// tokAuditPath is the request path of an audit log entry.
func tokAuditPath(e map[string]any) string {
	req, _ := e["request"].(map[string]any)
	p, _ := req["path"].(string)
	return p
}

// TestTokenAssertionSingleUse: a client assertion from assertion/keyapp is what the
// application presents at Auth0 in place of a credential. It logs in once; Auth0
// refuses it the second time (jti replay); an assertion of the same lifetime works until
// shortly before expires_at, and one presented after expires_at is refused.
func TestTokenAssertionSingleUse(t *testing.T) {
	t.Parallel()
	f := tokNewFixture(t, emulator.Options{})
	v := f.v
	const ttl = 10 * time.Second
	tokAddKeyRole(t, f, "keyapp", "keyapp-id", fmt.Sprintf("assertion_ttl=%d", int(ttl/time.Second)))
	v.WritePolicy(t, "keyapp-assertion", `path "auth0/assertion/keyapp" { capabilities = ["read"] }`)
	appToken := v.CreateToken(t, "keyapp-assertion")

	type signed struct {
		assertion string
		expiresAt time.Time
		jti       string
	}
	get := func() signed {
		t.Helper()
		r := v.Do(t, appToken, http.MethodGet, mount+"/assertion/keyapp", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("assertion/keyapp: status %d: %v", r.Status, r.Errors)
		}
		a := str(t, r.Data, "client_assertion")
		c := tokMustClaims(t, a)
		exp, iat := tokUnix(t, c, "exp"), tokUnix(t, c, "iat")
		if exp.Sub(iat) != ttl {
			t.Errorf("assertion lives %v (iat %v, exp %v), want assertion_ttl %v", exp.Sub(iat), iat, exp, ttl)
		}
		at := rfc3339(t, r.Data, "expires_at")
		if !sameSecond(at, exp) {
			t.Errorf("expires_at %v, exp claim %v", at, exp)
		}
		jti, _ := c["jti"].(string)
		return signed{a, exp, jti}
	}
	a, b, c := get(), get(), get()
	if a.jti == "" || a.jti == b.jti || b.jti == c.jti || a.jti == c.jti {
		t.Fatalf("assertions share jti or have none: %q %q %q", a.jti, b.jti, c.jti)
	}

	logins := f.emu.Stats().AssertionLogins["keyapp-id"]
	status, token, desc := tokPresentAssertion(t, f.emuURL, "keyapp-id", a.assertion, apiAudience)
	if status != http.StatusOK {
		t.Fatalf("presenting a fresh assertion: status %d (%s), want 200", status, desc)
	}
	if err := f.emu.ValidateAccessToken(token, apiAudience); err != nil {
		t.Fatalf("the API refuses the token the assertion bought: %v", err)
	}
	status, _, desc = tokPresentAssertion(t, f.emuURL, "keyapp-id", a.assertion, apiAudience)
	if status != http.StatusUnauthorized || !strings.Contains(desc, "already been used") {
		t.Fatalf("replaying the assertion: status %d (%s), want 401 replayed jti", status, desc)
	}

	// c until shortly before it expires, b after.
	expiry := b.expiresAt
	if c.expiresAt.Before(expiry) {
		expiry = c.expiresAt
	}
	time.Sleep(time.Until(expiry.Add(-1500 * time.Millisecond)))
	status, _, desc = tokPresentAssertion(t, f.emuURL, "keyapp-id", c.assertion, apiAudience)
	if status != http.StatusOK {
		t.Fatalf("presenting an assertion %v before its expires_at: status %d (%s), want 200", time.Until(c.expiresAt).Round(time.Millisecond), status, desc)
	}
	time.Sleep(time.Until(b.expiresAt.Add(300 * time.Millisecond)))
	status, _, desc = tokPresentAssertion(t, f.emuURL, "keyapp-id", b.assertion, apiAudience)
	if status != http.StatusUnauthorized || !strings.Contains(desc, "expired") {
		t.Fatalf("presenting an assertion after its expires_at: status %d (%s), want 401 expired", status, desc)
	}
	if got := f.emu.Stats().AssertionLogins["keyapp-id"] - logins; got != 2 {
		t.Errorf("Auth0 issued %d tokens for keyapp's assertions, want 2 (a once, c once)", got)
	}
	t.Logf("assertions (ttl %v): accepted once, replay refused; accepted 1.5s before expires_at, refused 0.3s after", ttl)
}

// tokTimedRead is one token/ read made from another goroutine.
type tokTimedRead struct {
	status int
	errs   []string
	token  string
	err    error // no answer (timeout or transport)
	took   time.Duration
}

func (r tokTimedRead) String() string {
	if r.err != nil {
		return fmt.Sprintf("no answer after %v (%v)", r.took.Round(100*time.Millisecond), r.err)
	}
	return fmt.Sprintf("status %d after %v %v", r.status, r.took.Round(100*time.Millisecond), r.errs)
}

// tokReadAsync reads token/<role> with token in a goroutine, giving up after timeout.
func tokReadAsync(v *vaulttest.Vault, token, role string, timeout time.Duration) <-chan tokTimedRead {
	out := make(chan tokTimedRead, 1)
	go func() {
		began := time.Now()
		r, err := v.TryDo(token, http.MethodGet, mount+"/token/"+role, nil, timeout)
		res := tokTimedRead{err: err, took: time.Since(began)}
		if err == nil {
			res.status, res.errs = r.Status, r.Errors
			res.token, _ = r.Data["access_token"].(string)
		}
		out <- res
	}()
	return out
}

// TestTokenReadDuringRotation: a rotation is in flight, Auth0 has applied it (the new
// secret is the only one it accepts, as with no propagation delay) and its answer takes
// tokRotateAnswerDelay to reach Vault. An application reads token/myapp during that gap
// (reader A: Vault can only try the secret it holds, which Auth0 refuses; the engine
// retries, the credential being recent), and another one right after Vault committed
// the new secret (reader B). Both must get a valid token within a few seconds of the
// commit: Vault then holds the secret Auth0 accepts. In particular B, which starts with
// Vault and Auth0 in agreement, must not inherit A's refusals.
//
// Known engine failure this test exposes (tokens.go, fetchToken): the retry loop keeps
// presenting the credential it loaded before the loop, so a fetch that began before the
// commit retries the replaced secret for as long as that secret is "fresh" (30s after it
// was created), and every reader of the role and audience that arrives meanwhile joins
// that singleflight: none gets a token, and when the window ends they all get 502 "the
// credential Vault holds no longer works: was it changed outside Vault? Rotate the role".
func TestTokenReadDuringRotation(t *testing.T) {
	t.Parallel()
	const (
		tokRotateAnswerDelay = 3 * time.Second
		tokPromptly          = 4 * time.Second // what a reader may wait after the commit
		tokLaterRead         = 2 * time.Second
	)
	f := tokNewFixture(t, emulator.Options{})
	v, root := f.v, f.v.RootToken
	app := tokAddApp(f, "myapp-id", map[string][]string{apiAudience: {"read:data"}})
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "client_id="+app.ClientID, "token_audiences="+apiAudience)
	f.rotate(t, root, "myapp")
	v.WritePolicy(t, "myapp-token", `path "auth0/token/myapp" { capabilities = ["read"] }`)
	appToken := v.CreateToken(t, "myapp-token")
	oldSecret := f.secret(t, app.ClientID)

	applied := make(chan struct{})
	var once sync.Once
	f.emu.SetFaults(func(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
		if p == emulator.AfterApply && clientID == app.ClientID && strings.HasSuffix(r.URL.Path, "/rotate-secret") {
			return &emulator.Fault{Do: func() { once.Do(func() { close(applied) }) }, Delay: tokRotateAnswerDelay}
		}
		return nil
	})
	rotated := make(chan *vaulttest.Response, 1)
	go func() {
		r, err := v.TryDo(root, http.MethodPost, mount+"/rotate/myapp", nil, 30*time.Second)
		if err != nil {
			r = &vaulttest.Response{Errors: []string{err.Error()}}
		}
		rotated <- r
	}()
	select {
	case <-applied:
	case <-time.After(15 * time.Second):
		t.Fatal("the rotation did not reach Auth0 within 15s")
	}
	if f.secret(t, app.ClientID) == oldSecret {
		t.Fatal("Auth0 applied the rotation but still holds the old secret")
	}
	a := tokReadAsync(v, appToken, "myapp", tokRotateAnswerDelay+tokPromptly)

	r := <-rotated
	if r.Status != http.StatusOK {
		t.Fatalf("the rotation: status %d: %v", r.Status, r.Errors)
	}
	f.emu.SetFaults(nil)
	if got := num(t, r.Data, "version"); got != 2 {
		t.Fatalf("the rotation answered version %d, want 2", got)
	}
	b := tokReadAsync(v, appToken, "myapp", tokPromptly)
	// And one more, a moment later, when the rotation is long done.
	time.Sleep(tokLaterRead)
	c := tokReadAsync(v, appToken, "myapp", tokPromptly)

	ra, rb, rc := <-a, <-b, <-c
	cache := tokReadCache(t, v, "myapp")
	t.Logf("reader A (during the gap): %s; reader B (at the commit): %s; reader C (%v after the commit): %s; token_cache: %s; Auth0 token requests for %s: %d",
		ra, rb, tokLaterRead, rc, cache, app.ClientID, f.emu.Stats().TokenRequests[app.ClientID])
	for _, x := range []struct {
		name string
		res  tokTimedRead
	}{
		{"reader A, which started while Auth0 had applied the rotation and Vault had not", ra},
		{"reader B, which started once Vault had committed the new secret", rb},
		{fmt.Sprintf("reader C, which started %v after Vault committed the new secret", tokLaterRead), rc},
	} {
		switch {
		case x.res.err != nil || x.res.status != http.StatusOK:
			t.Errorf("%s: %s, want a token within %v", x.name, x.res, tokPromptly)
		case f.emu.ValidateAccessToken(x.res.token, apiAudience) != nil:
			t.Errorf("%s: the API refuses its token: %v", x.name, f.emu.ValidateAccessToken(x.res.token, apiAudience))
		}
	}
}

// tokTail is the last n lines of s.
func tokTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
