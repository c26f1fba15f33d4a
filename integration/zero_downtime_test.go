package integration

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// The tests in this file are the proof that rotation_strategy=staged costs consumers
// nothing: real Vault, real Vault Agents at their default static_secret_render_interval
// (so they re-read only at the ttl creds return), nobody rotating by hand, and consumers
// that know only what the agent rendered.
//
// Timing of TestZeroDowntimeStagedRotation: rotation_period=15s, stage_period=7s. A role
// created at t0 (with its current secret imported as version 1) publishes its next secret
// at t0+8s, switches at t0+15s, publishes again at t0+23s, switches at t0+30s, and so on:
// three switches within ~50 s.
// The agent re-reads at ttl+1s after each read, i.e. ~1-2 s after each publication and
// each switch, so there is a window of ~1-2 s after every switch in which the rendered file
// still shows the secret that was current before it: an immediate role fails there, a
// staged role's consumer finds the new secret under next_client_secret.

const (
	zdRotationPeriod = "15s"
	zdStagePeriod    = "7s"
	// zdSwitches is how many scheduled switches (staged) the tests wait for.
	zdSwitches = 3
	// zdSwitchDeadline bounds the wait for them, from the role's creation: the third is
	// due at +45 s; the rest is slack for a loaded machine.
	zdSwitchDeadline = 80 * time.Second
	// zdAfterLast keeps the consumers running after the last switch, past the agent's
	// re-read (ttl+1 s after its previous read), so the whole window is exercised.
	zdAfterLast = 4 * time.Second
	// zdInterval is how often a consumer acts.
	zdInterval = 100 * time.Millisecond
)

// zdCredsTemplate renders creds/<role> as a JSON object, as an application's
// configuration would hold it. next_client_secret and previous_client_secret are absent
// from creds most of the time: they render as "".
func zdCredsTemplate(role string) string {
	return `{{ with secret "auth0/creds/` + role + `" }}{
  "client_id": {{ .Data.client_id | toJSON }},
  "client_secret": {{ .Data.client_secret | toJSON }},
  "previous_client_secret": {{ with .Data.previous_client_secret }}{{ . | toJSON }}{{ else }}""{{ end }},
  "next_client_secret": {{ with .Data.next_client_secret }}{{ . | toJSON }}{{ else }}""{{ end }},
  "version": {{ .Data.version | toJSON }},
  "next_version": {{ with .Data.next_version }}{{ . | toJSON }}{{ else }}0{{ end }}
}
{{ end }}`
}

// zdCreds is what zdCredsTemplate renders.
type zdCreds struct {
	ClientID             string `json:"client_id"`
	ClientSecret         string `json:"client_secret"`
	PreviousClientSecret string `json:"previous_client_secret"`
	NextClientSecret     string `json:"next_client_secret"`
	Version              int    `json:"version"`
	NextVersion          int    `json:"next_version"`
}

func zdReadCreds(path string) (zdCreds, error) {
	var c zdCreds
	raw, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("rendered file is not the expected JSON (%v):\n%s", err, raw)
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		return c, fmt.Errorf("rendered file lacks client_id or client_secret:\n%s", raw)
	}
	return c, nil
}

// zdCandidate is one secret a consumer may try, named by its field in the rendered file.
type zdCandidate struct{ field, secret string }

// candidates lists the rendered secrets in pattern (a)'s order: client_secret, then
// next_client_secret, then previous_client_secret (absent ones left out).
func (c zdCreds) candidates() []zdCandidate {
	var out []zdCandidate
	for _, x := range []zdCandidate{
		{"client_secret", c.ClientSecret},
		{"next_client_secret", c.NextClientSecret},
		{"previous_client_secret", c.PreviousClientSecret},
	} {
		if x.secret != "" {
			out = append(out, x)
		}
	}
	return out
}

// zdRole creates role name for clientID, with extra settings and the application's
// current secret imported as version 1 so that creds answer from the start, and starts a
// Vault Agent, at the default static_secret_render_interval, whose token may read only
// creds/<name>. It returns the agent's rendered file (see zdWaitRendered) and the agent.
func zdRole(t *testing.T, f *fixture, name, clientID string, extra ...string) (string, *vaulttest.Agent) {
	t.Helper()
	v := f.v
	args := append([]string{"write", mount + "/roles/" + name, "client_id=" + clientID, "import_current_secret=true"}, extra...)
	v.MustCLI(t, v.RootToken, args...)
	policy := name + "-app"
	v.WritePolicy(t, policy, `path "auth0/creds/`+name+`" { capabilities = ["read"] }`)
	agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{
		Token:    v.CreateToken(t, policy),
		Template: zdCredsTemplate(name),
	})
	return agent.RenderedPath, agent
}

// zdWaitRendered waits until path holds a complete rendering for clientID.
func zdWaitRendered(t *testing.T, path, clientID string) {
	t.Helper()
	vaulttest.WaitForFile(t, path, func(string) bool {
		c, err := zdReadCreds(path)
		return err == nil && c.ClientID == clientID
	}, 30*time.Second)
}

// zdWaitSwitches waits until the emulator has seen n secret PATCHes (staged switches) for
// role's clientID, failing if an agent exits or the deadline passes; then it lets the
// consumers run zdAfterLast longer.
func zdWaitSwitches(t *testing.T, f *fixture, role, clientID string, n int, deadline time.Time, agents ...*vaulttest.Agent) {
	t.Helper()
	for f.emu.Stats().SecretPatches[clientID] < n {
		for _, a := range agents {
			if a.Exited() {
				t.Fatalf("a Vault Agent exited:\n%s", a.Logs())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d staged switches (secret PATCHes) for %s by the deadline, want %d; role: %v",
				f.emu.Stats().SecretPatches[clientID], clientID, n, f.v.MustCLI(t, f.v.RootToken, "read", mount+"/roles/"+role))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(zdAfterLast)
}

// zdTokenStatus performs a client credentials grant for apiAudience at the emulator and
// returns the HTTP status. Unlike authenticate it may run outside the test's goroutine.
func zdTokenStatus(ctx context.Context, client *http.Client, emuURL, clientID, secret string) (int, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {clientID},
		"client_secret": {secret},
		"audience":      {apiAudience},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, emuURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, fmt.Errorf("status %d, undecodable body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK && body.AccessToken == "" {
		return resp.StatusCode, errors.New("200 without an access_token")
	}
	return resp.StatusCode, nil
}

// zdStats counts what a consumer loop saw.
type zdStats struct {
	mu       sync.Mutex
	attempts int
	failures int
	// firstRoundFailures counts attempts whose first round over the rendered secrets
	// failed (equal to failures for a one-round consumer).
	firstRoundFailures int
	// by counts successful attempts by the rendered field whose secret worked.
	by map[string]int
	// failureLog describes the first failures.
	failureLog []string
}

func newZDStats() *zdStats { return &zdStats{by: map[string]int{}} }

func (s *zdStats) record(ok bool, field string, firstRoundFailed bool, detail func() string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if firstRoundFailed {
		s.firstRoundFailures++
	}
	if ok {
		s.by[field]++
		return
	}
	s.failures++
	if len(s.failureLog) < 10 {
		s.failureLog = append(s.failureLog, detail())
	}
}

func (s *zdStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("attempts=%d failures=%d (first-round failures %d); succeeded with client_secret=%d next_client_secret=%d previous_client_secret=%d",
		s.attempts, s.failures, s.firstRoundFailures, s.by["client_secret"], s.by["next_client_secret"], s.by["previous_client_secret"])
}

// zdLoginConsumer is pattern (a): every zdInterval it reads the agent's file and
// authenticates at /oauth/token with client_secret; on a 401 with next_client_secret; then
// with previous_client_secret. An attempt fails only if every rendered secret is refused
// in each of its rounds (1: each secret once). It runs until ctx is done.
func zdLoginConsumer(ctx context.Context, f *fixture, path string, rounds int, stats *zdStats) {
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(zdInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		started := time.Now()
		creds, err := zdReadCreds(path)
		if err != nil {
			stats.record(false, "", true, func() string {
				return fmt.Sprintf("%s: reading the rendered file: %v", started.Format("15:04:05.000"), err)
			})
			continue
		}
		var (
			worked     string
			firstRound = true
			problems   []string
		)
	attempt:
		for r := 0; r < rounds; r++ {
			if r > 0 {
				firstRound = false
				time.Sleep(10 * time.Millisecond)
			}
			for _, c := range creds.candidates() {
				status, err := zdTokenStatus(ctx, client, f.emuURL, creds.ClientID, c.secret)
				if ctx.Err() != nil {
					return // the run ended mid-attempt: not counted
				}
				switch {
				case err == nil && status == http.StatusOK:
					worked = c.field
					break attempt
				case err != nil:
					problems = append(problems, fmt.Sprintf("%s: %v", c.field, err))
				default:
					problems = append(problems, fmt.Sprintf("%s: %d", c.field, status))
				}
			}
		}
		stats.record(worked != "", worked, !firstRound || worked == "", func() string {
			current, _ := f.emu.ClientSecret(creds.ClientID)
			return fmt.Sprintf("%s: rendered version %d (next %d), Auth0 now holds %s; tried %v",
				started.Format("15:04:05.000"), creds.Version, creds.NextVersion, zdDescribe(creds, current), problems)
		})
	}
}

// zdDescribe says which rendered field, if any, holds secret.
func zdDescribe(c zdCreds, secret string) string {
	for _, x := range c.candidates() {
		if x.secret == secret {
			return "the rendered " + x.field
		}
	}
	return "a secret the file does not show"
}

// zdVersionSources returns how many retained versions of role have each source.
func zdVersionSources(t *testing.T, f *fixture, role string) map[string]int {
	t.Helper()
	versions := dataOf(t, f.v.MustCLIJSON(t, f.v.RootToken, "read", mount+"/versions/"+role))
	list, ok := versions["versions"].(map[string]any)
	if !ok {
		t.Fatalf("versions/%s: no versions object: %v", role, versions)
	}
	out := map[string]int{}
	for _, meta := range list {
		src, _ := meta.(map[string]any)["source"].(string)
		out[src]++
	}
	return out
}

// TestZeroDowntimeStagedRotation is the zero-downtime proof: two applications rotated on
// the same schedule, one staged and one immediate, each consumed through its own Vault
// Agent, with nobody rotating by hand. Three consumers run against what the agents render:
//
//   - staged_logins: pattern (a), a client that keeps authenticating at Auth0 with the
//     staged role's client_secret, falling back to next_client_secret, then
//     previous_client_secret. It must never fail across three scheduled switches.
//   - staged_HS256_verifier: pattern (b), an application that only verifies HS256 ID tokens
//     that Auth0 signs with the staged application's current secret, accepting
//     client_secret, previous_client_secret and next_client_secret. It shares this run, not
//     a test of its own, to save a Vault and ~50 s. It must never reject a token.
//   - immediate_logins: pattern (a) for the immediate role. It must fail after rotations:
//     Auth0's rotate-secret kills the old secret at once, and until the agent re-renders
//     (~1-2 s later) every rendered secret is refused. That is what staged avoids.
func TestZeroDowntimeStagedRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.configure(t)
	stagedApp := f.addApp(t, "staged-id", "Staged App")
	immediateApp := f.addApp(t, "immediate-id", "Immediate App")

	created := time.Now()
	stagedPath, stagedAgent := zdRole(t, f, "staged", stagedApp.ClientID,
		"rotation_strategy=staged", "rotation_period="+zdRotationPeriod, "stage_period="+zdStagePeriod)
	immediatePath, immediateAgent := zdRole(t, f, "immediate", immediateApp.ClientID,
		"rotation_period="+zdRotationPeriod)
	zdWaitRendered(t, stagedPath, stagedApp.ClientID)
	zdWaitRendered(t, immediatePath, immediateApp.ClientID)

	// The HS256 verifier must not accept just anything.
	if creds, err := zdReadCreds(stagedPath); err != nil {
		t.Fatal(err)
	} else if _, ok := zdVerifyHS256(zdMintHS256("not-the-secret", stagedApp.ClientID), creds); ok {
		t.Fatal("an ID token signed with a wrong key verified")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	staged, verifier, immediate := newZDStats(), newZDStats(), newZDStats()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); zdLoginConsumer(ctx, f, stagedPath, 1, staged) }()
	go func() { defer wg.Done(); zdHS256Consumer(ctx, f, stagedApp.ClientID, stagedPath, verifier) }()
	go func() { defer wg.Done(); zdLoginConsumer(ctx, f, immediatePath, 1, immediate) }()

	zdWaitSwitches(t, f, "staged", stagedApp.ClientID, zdSwitches, created.Add(zdSwitchDeadline), stagedAgent, immediateAgent)
	cancel()
	wg.Wait()

	st := f.emu.Stats()
	t.Logf("run: %s from role creation; Auth0 saw %d secret PATCHes (staged) and %d rotate-secret calls (immediate)",
		time.Since(created).Round(time.Second), st.SecretPatches[stagedApp.ClientID], st.Rotations[immediateApp.ClientID])

	t.Run("staged_logins", func(t *testing.T) {
		t.Logf("staged role, pattern (a) logins: %s", staged)
		if staged.failures != 0 {
			t.Errorf("the staged role's consumer failed %d of %d logins; first failures:\n%s",
				staged.failures, staged.attempts, strings.Join(staged.failureLog, "\n"))
		}
		if staged.by["next_client_secret"] == 0 {
			t.Errorf("the consumer never needed next_client_secret, so the switch window was not exercised: %s", staged)
		}
	})
	t.Run("staged_HS256_verifier", func(t *testing.T) {
		t.Logf("staged role, pattern (b) HS256 ID tokens: verifications=%d failures=%d; verified with client_secret=%d next_client_secret=%d previous_client_secret=%d",
			verifier.attempts, verifier.failures, verifier.by["client_secret"], verifier.by["next_client_secret"], verifier.by["previous_client_secret"])
		if verifier.failures != 0 {
			t.Errorf("%d of %d ID tokens failed verification; first failures:\n%s",
				verifier.failures, verifier.attempts, strings.Join(verifier.failureLog, "\n"))
		}
		if verifier.by["next_client_secret"] == 0 {
			t.Errorf("no ID token needed next_client_secret, so the switch window was not exercised")
		}
	})
	t.Run("immediate_logins", func(t *testing.T) {
		t.Logf("immediate role, pattern (a) logins: %s", immediate)
		if immediate.failures == 0 {
			t.Errorf("the immediate role's consumer never failed across %d rotations; the window between rotate-secret and the agent's re-render was expected to cost logins: %s",
				st.Rotations[immediateApp.ClientID], immediate)
		}
	})

	if n := st.Rotations[stagedApp.ClientID]; n != 0 {
		t.Errorf("Auth0 saw %d rotate-secret calls for the staged application, want 0 (it switches by PATCH)", n)
	}
	if n := st.SecretPatches[immediateApp.ClientID]; n != 0 {
		t.Errorf("Auth0 saw %d secret PATCHes for the immediate application, want 0", n)
	}
	if n := st.Rotations[immediateApp.ClientID]; n < zdSwitches-1 {
		t.Errorf("Auth0 saw %d scheduled rotations of the immediate application, want at least %d", n, zdSwitches-1)
	}
	if got := zdVersionSources(t, f, "staged"); got["staged"] < zdSwitches || len(got) != 2 || got["import"] != 1 {
		t.Errorf("versions of role staged by source: %v, want import once and staged at least %d times", got, zdSwitches)
	}
	if got := zdVersionSources(t, f, "immediate"); got["scheduled"] < zdSwitches-1 || len(got) != 2 {
		t.Errorf("versions of role immediate by source: %v, want import and scheduled only", got)
	}
	for _, a := range []*vaulttest.Agent{stagedAgent, immediateAgent} {
		if a.Exited() {
			t.Errorf("a Vault Agent exited:\n%s", a.Logs())
		}
	}
}

// TestZeroDowntimeStagedRotationWithPropagation is TestZeroDowntimeStagedRotation's staged
// side while Auth0 propagates every change for 5 s (each /oauth/token request then sees
// the old or the new secret at random). A consumer that tries each rendered secret once
// fails about one attempt in four in that window (its client_secret request can see the new
// secret and its next/previous request the old one), so this consumer repeats pattern (a)'s
// round on failure, up to 12 rounds 10 ms apart, as a client retrying a 401 would; it must
// never exhaust them. First-round failures are logged, not asserted.
//
// It runs on the shortest periods the engine allows (rotation_period=10s, stage_period=5s:
// switches 10, 20 and 30 s after creation) to keep the package's runtime down.
func TestZeroDowntimeStagedRotationWithPropagation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.configure(t)
	f.emu.SetPropagationDelay(5 * time.Second)
	app := f.addApp(t, "staged-id", "Staged App")

	created := time.Now()
	path, agent := zdRole(t, f, "staged", app.ClientID,
		"rotation_strategy=staged", "rotation_period=10s", "stage_period=5s")
	zdWaitRendered(t, path, app.ClientID)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stats := newZDStats()
	done := make(chan struct{})
	go func() { defer close(done); zdLoginConsumer(ctx, f, path, 12, stats) }()

	zdWaitSwitches(t, f, "staged", app.ClientID, zdSwitches, created.Add(60*time.Second), agent)
	cancel()
	<-done

	t.Logf("staged role, 5 s propagation (pattern a, up to 12 rounds): %s; Auth0 saw %d secret PATCHes",
		stats, f.emu.Stats().SecretPatches[app.ClientID])
	t.Logf("run: %s from role creation", time.Since(created).Round(time.Second))
	if stats.failures != 0 {
		t.Errorf("the staged role's consumer failed %d of %d logins under propagation; first failures:\n%s",
			stats.failures, stats.attempts, strings.Join(stats.failureLog, "\n"))
	}
	if stats.by["next_client_secret"]+stats.by["previous_client_secret"] == 0 {
		t.Errorf("the consumer never fell back from client_secret, so the propagation window was not exercised: %s", stats)
	}
	if agent.Exited() {
		t.Errorf("the Vault Agent exited:\n%s", agent.Logs())
	}
}

// zdHS256Consumer is pattern (b): every zdInterval "Auth0" (the test) mints an ID token
// signed with the secret the emulator holds for clientID at that moment, and the
// application verifies it with only the secrets the agent rendered at path. It runs until
// ctx is done.
func zdHS256Consumer(ctx context.Context, f *fixture, clientID, path string, stats *zdStats) {
	tick := time.NewTicker(zdInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		started := time.Now()
		signing, _ := f.emu.ClientSecret(clientID)
		token := zdMintHS256(signing, clientID)
		creds, err := zdReadCreds(path)
		if err != nil {
			stats.record(false, "", true, func() string {
				return fmt.Sprintf("%s: reading the rendered file: %v", started.Format("15:04:05.000"), err)
			})
			continue
		}
		field, ok := zdVerifyHS256(token, creds)
		stats.record(ok, field, !ok, func() string {
			return fmt.Sprintf("%s: rendered version %d (next %d); token signed with %s",
				started.Format("15:04:05.000"), creds.Version, creds.NextVersion, zdDescribe(creds, signing))
		})
	}
}

// zdMintHS256 returns an ID token for clientID signed with HS256 under secret, as Auth0
// signs ID tokens for an application whose signing algorithm is HS256.
func zdMintHS256(secret, clientID string) string {
	header, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	if err != nil {
		panic(err)
	}
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss": "https://emulator.test/",
		"sub": "auth0|user-1",
		"aud": clientID,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		panic(err)
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	return signingInput + "." + enc.EncodeToString(zdHMAC(secret, signingInput))
}

func zdHMAC(secret, input string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(input))
	return mac.Sum(nil)
}

// zdVerifyHS256 checks token's alg and signature against the rendered secrets, in the order
// client_secret, previous_client_secret, next_client_secret, and its audience; it returns
// the field whose secret verified it.
func zdVerifyHS256(token string, creds zdCreds) (string, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", false
	}
	enc := base64.RawURLEncoding
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Aud string `json:"aud"`
	}
	rawHeader, err1 := enc.DecodeString(parts[0])
	rawClaims, err2 := enc.DecodeString(parts[1])
	sig, err3 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil ||
		json.Unmarshal(rawHeader, &header) != nil || json.Unmarshal(rawClaims, &claims) != nil ||
		header.Alg != "HS256" || claims.Aud != creds.ClientID {
		return "", false
	}
	for _, c := range []zdCandidate{
		{"client_secret", creds.ClientSecret},
		{"previous_client_secret", creds.PreviousClientSecret},
		{"next_client_secret", creds.NextClientSecret},
	} {
		if c.secret != "" && hmac.Equal(sig, zdHMAC(c.secret, parts[0]+"."+parts[1])) {
			return c.field, true
		}
	}
	return "", false
}
