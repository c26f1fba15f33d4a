package integration

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// The tests in this file and keys_crash_test.go prove credential_type=private_key_jwt end
// to end: a real Vault with the plugin, real Vault Agents, and applications that log in at
// the emulator's /oauth/token with client assertions signed by the keys Vault serves.

// keyScopes are the Management API scopes a private_key_jwt role needs.
var keyScopes = []string{
	"read:clients", "read:client_keys", "update:client_keys", "update:clients",
	"create:client_credentials", "read:client_credentials", "update:client_credentials", "delete:client_credentials",
}

// newKeyFixture is newFixture with the Management application granted keyScopes, behind
// startStagedEmulator's wrapper (so that fault hooks may act after an answer left).
func newKeyFixture(t *testing.T) *fixture {
	t.Helper()
	emu, emuURL, mgmt := startStagedEmulator(t, keyScopes)
	v := vaulttest.StartDevServer(t, pluginDir)
	v.RegisterPlugin(t, pluginDir, pluginSHA, pluginVersion)
	v.Mount(t, mount, pluginVersion)
	f := &fixture{emu: emu, emuURL: emuURL, mgmt: mgmt, v: v}
	f.configure(t)
	// The emulator applies attachments at once unless a test sets a propagation delay
	// (TestKeyServedKeyAcceptedDuringPropagation does, and sets propagation_wait with it).
	v.MustCLI(t, v.RootToken, "write", mount+"/config", "propagation_wait=0")
	return f
}

// parseKeyPEM reads the PKCS #8 RSA private key creds serve.
func parseKeyPEM(privatePEM string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(privatePEM))
	if block == nil {
		return nil, errors.New("private_key is not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private_key is a %T, not an RSA key", k)
	}
	return rk, nil
}

// keyAssertionAudience is the aud of a client assertion for the emulator at emuURL.
func keyAssertionAudience(emuURL string) string {
	return "https://" + strings.TrimPrefix(strings.TrimPrefix(emuURL, "http://"), "https://") + "/"
}

// keyLogin is what an application does with a private_key_jwt key: it signs a client
// assertion (the emulator's own signer, not the engine's) and exchanges it at /oauth/token
// for a token for apiAudience. It returns the HTTP status and, when refused, Auth0's
// error description. Any goroutine may call it.
func keyLogin(ctx context.Context, client *http.Client, emuURL, clientID string, key *rsa.PrivateKey, alg, kid string) (int, string, error) {
	assertion, err := emulator.SignAssertion(key, alg, kid, clientID, keyAssertionAudience(emuURL), time.Now(), time.Minute)
	if err != nil {
		return 0, "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"client_assertion_type": {emulator.ClientAssertionType},
		"client_assertion":      {assertion},
		"audience":              {apiAudience},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, emuURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, "", fmt.Errorf("status %d, undecodable body: %v", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusOK && body.AccessToken == "" {
		return resp.StatusCode, "", errors.New("200 without an access_token")
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, body.Error + ": " + body.Description, nil
	}
	return resp.StatusCode, "", nil
}

// keyLoginPEM is keyLogin with a PEM key, for the test's goroutine.
func keyLoginPEM(t *testing.T, emuURL, clientID, privatePEM, alg, kid string) (int, string) {
	t.Helper()
	key, err := parseKeyPEM(privatePEM)
	if err != nil {
		t.Fatal(err)
	}
	status, desc, err := keyLogin(context.Background(), &http.Client{Timeout: 10 * time.Second}, emuURL, clientID, key, alg, kid)
	if err != nil {
		t.Fatalf("logging in with a key: %v", err)
	}
	return status, desc
}

// keyInt reads a JSON number or decimal string.
func keyInt(x any) (int, bool) {
	switch x := x.(type) {
	case float64:
		return int(x), x == float64(int(x))
	case json.Number:
		n, err := strconv.Atoi(string(x))
		return n, err == nil
	case string:
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	return 0, false
}

func keyStrings(x any) []string {
	var out []string
	if list, ok := x.([]any); ok {
		for _, e := range list {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// keyRoleView is one read of roles/<role> of a private_key_jwt role.
type keyRoleView struct {
	current      int
	keyID, kid   string
	previousIDs  []string
	overlapUntil time.Time // zero without an overlap
	pending      int       // pending_version, 0 when none
	failure      string    // last_rotation_failure, "" when none
}

func (r keyRoleView) String() string {
	s := fmt.Sprintf("current_version %d key_id %s previous_key_ids %v", r.current, r.keyID, r.previousIDs)
	if !r.overlapUntil.IsZero() {
		s += " overlap_until " + r.overlapUntil.Format("15:04:05")
	}
	if r.pending != 0 {
		s += fmt.Sprintf(" pending_version %d", r.pending)
	}
	if r.failure != "" {
		s += " last_rotation_failure " + r.failure
	}
	return s
}

// known are the credentials Vault holds a key for: the current one and, during an
// overlap, the previous ones.
func (r keyRoleView) known() []string {
	var out []string
	if r.keyID != "" {
		out = append(out, r.keyID)
	}
	return append(out, r.previousIDs...)
}

// readKeyRole reads roles/<role>; any goroutine may call it.
func readKeyRole(v *vaulttest.Vault, token, role string) (keyRoleView, error) {
	resp, err := v.TryDo(token, http.MethodGet, mount+"/roles/"+role, nil, 30*time.Second)
	if err != nil {
		return keyRoleView{}, err
	}
	if resp.Status != http.StatusOK {
		return keyRoleView{}, fmt.Errorf("status %d: %v", resp.Status, resp.Errors)
	}
	d := resp.Data
	var r keyRoleView
	r.current, _ = keyInt(d["current_version"])
	r.keyID, _ = d["key_id"].(string)
	r.kid, _ = d["kid"].(string)
	r.previousIDs = keyStrings(d["previous_key_ids"])
	if s, ok := d["overlap_until"].(string); ok {
		r.overlapUntil, _ = time.Parse(time.RFC3339Nano, s)
	}
	r.pending, _ = keyInt(d["pending_version"])
	if f, ok := d["last_rotation_failure"]; ok && f != nil {
		raw, _ := json.Marshal(f)
		r.failure = string(raw)
	}
	return r, nil
}

// keyCreds is one read of creds/<role> of a private_key_jwt role.
type keyCreds struct {
	version                     int
	privatePEM, keyID, kid, alg string
	prevPEM, prevKeyID, prevKID string
	// cert and prevCert: a certificate role's (self_signed_tls_client_auth), with its key.
	cert, prevCert string
	overlapUntil   time.Time
	hasSecret      bool // a client_secret field: must never be
}

// readKeyCreds reads creds/<role>; any goroutine may call it.
func readKeyCreds(v *vaulttest.Vault, token, role string) (keyCreds, error) {
	resp, err := v.TryDo(token, http.MethodGet, mount+"/creds/"+role, nil, 30*time.Second)
	if err != nil {
		return keyCreds{}, err
	}
	if resp.Status != http.StatusOK {
		return keyCreds{}, fmt.Errorf("status %d: %v", resp.Status, resp.Errors)
	}
	d := resp.Data
	var c keyCreds
	c.version, _ = keyInt(d["version"])
	c.privatePEM, _ = d["private_key"].(string)
	c.keyID, _ = d["key_id"].(string)
	c.kid, _ = d["kid"].(string)
	c.alg, _ = d["algorithm"].(string)
	c.prevPEM, _ = d["previous_private_key"].(string)
	c.prevKeyID, _ = d["previous_key_id"].(string)
	c.prevKID, _ = d["previous_kid"].(string)
	if s, ok := d["overlap_until"].(string); ok {
		c.overlapUntil, _ = time.Parse(time.RFC3339Nano, s)
	}
	_, c.hasSecret = d["client_secret"]
	c.cert, _ = d["certificate"].(string)
	c.prevCert, _ = d["previous_certificate"].(string)
	if c.cert != "" {
		if c.privatePEM == "" || c.keyID == "" || c.kid != "" {
			return c, fmt.Errorf("certificate creds lack private_key or key_id, or have a kid: fields %v", keys(d))
		}
		return c, nil
	}
	if c.privatePEM == "" || c.kid == "" || c.keyID == "" || c.alg == "" {
		return c, fmt.Errorf("creds lack private_key, key_id, kid or algorithm: fields %v", keys(d))
	}
	return c, nil
}

// keyVersion is one retained version of a private_key_jwt role (versions/<role>).
type keyVersion struct {
	n          int
	source     string
	created    time.Time
	keyID, kid string
}

func readKeyVersions(t *testing.T, v *vaulttest.Vault, token, role string) []keyVersion {
	t.Helper()
	r := v.Do(t, token, http.MethodGet, mount+"/versions/"+role, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET versions/%s: status %d: %v", role, r.Status, r.Errors)
	}
	list, _ := r.Data["versions"].(map[string]any)
	var out []keyVersion
	for k, x := range list {
		meta, _ := x.(map[string]any)
		n, err := strconv.Atoi(k)
		if err != nil {
			t.Fatalf("versions of %s: key %q is not a number", role, k)
		}
		kv := keyVersion{n: n, source: str(t, meta, "source"), created: rfc3339(t, meta, "created_time")}
		kv.keyID, _ = meta["key_id"].(string)
		kv.kid, _ = meta["kid"].(string)
		out = append(out, kv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out
}

// auth0Keys returns the ids of the credentials Auth0 stores for clientID and of those
// attached to its private_key_jwt method, both sorted.
func auth0Keys(emu *emulator.Server, clientID string) (stored, attached []string) {
	creds, att, _ := emu.Credentials(clientID)
	for _, c := range creds {
		stored = append(stored, c.ID)
	}
	slices.Sort(stored)
	attached = slices.Clone(att)
	slices.Sort(attached)
	return stored, attached
}

// orphanProblem says what is wrong with Auth0's credentials of clientID given what the
// role says Vault holds: every stored credential must be the current key or one of the
// previous keys, at most two, the current one stored and attached, and exactly Vault's
// keys attached. "" when all is well.
func orphanProblem(emu *emulator.Server, clientID string, r keyRoleView) string {
	stored, attached := auth0Keys(emu, clientID)
	known := r.known()
	var problems []string
	for _, id := range stored {
		if !slices.Contains(known, id) {
			problems = append(problems, fmt.Sprintf("ORPHAN credential %s is stored at Auth0 but is neither the current key nor a previous one", id))
		}
	}
	if len(stored) > emulator.MaxCredentials {
		problems = append(problems, fmt.Sprintf("%d credentials stored", len(stored)))
	}
	if r.keyID != "" && !slices.Contains(stored, r.keyID) {
		problems = append(problems, "the current key "+r.keyID+" is not stored at Auth0")
	}
	want := slices.Clone(known)
	slices.Sort(want)
	if !slices.Equal(attached, want) {
		problems = append(problems, fmt.Sprintf("attached %v, want Vault's keys %v", attached, want))
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("%s (Auth0 stores %v, attaches %v; role: %s)", strings.Join(problems, "; "), stored, attached, r)
}

// keyWatch is a fault hook that watches one application's credentials: after every
// credential Auth0 creates it records how many are stored, so that the most Auth0 ever
// held is known exactly (only a POST adds one).
type keyWatch struct {
	emu      *emulator.Server
	clientID string

	mu        sync.Mutex
	maxStored int
	atMax     string // what was stored when the maximum was first reached
}

func newKeyWatch(emu *emulator.Server, clientID string) *keyWatch {
	w := &keyWatch{emu: emu, clientID: clientID}
	emu.SetFaults(w.fault)
	return w
}

func (w *keyWatch) fault(p emulator.Phase, r *http.Request, clientID string) *emulator.Fault {
	if p == emulator.AfterApply && clientID == w.clientID && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/credentials") {
		w.observe()
	}
	return nil
}

// observe records the number of credentials stored now.
func (w *keyWatch) observe() {
	stored, attached := auth0Keys(w.emu, w.clientID)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(stored) > w.maxStored {
		w.maxStored = len(stored)
		w.atMax = fmt.Sprintf("stored %v, attached %v", stored, attached)
	}
}

func (w *keyWatch) max() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxStored, w.atMax
}

// ---------------------------------------------------------------------------------------
// TestKeyOverlapZeroDowntime

// Timing: the role rotates every kzRotationPeriod after the previous rotation (a rotation
// commits ~0.1 s after it falls due at rate_limit=20), and keeps the previous key attached
// for kzOverlapPeriod. The agent re-reads creds at ttl+1 s, i.e. 1–2 s after the rotation
// falls due (had it read before the commit, it got ttl=1 and reads again 2 s later): an
// application that only ever signs with the key the agent rendered switches at most ~2 s
// after each commit, inside the overlap.
const (
	kzRole           = "keyzd"
	kzRotationPeriod = 8 * time.Second
	kzOverlapPeriod  = 4 * time.Second
	// kzRotations is how many scheduled rotations the test waits for.
	kzRotations = 3
	// kzInterval is how often the application logs in; kzProbeInterval how often the
	// prober tries the replaced keys.
	kzInterval      = 150 * time.Millisecond
	kzProbeInterval = 200 * time.Millisecond
	// kzDetachSlack bounds how late, after overlap_until, the scheduler's job detaches
	// and deletes the previous key; kzPropagation is added to it.
	kzDetachSlack = 2 * time.Second
	// kzShortlyBefore: a replaced key must log in at least once in this window before its
	// overlap ends.
	kzShortlyBefore = time.Second
	// kzProbeAfter: how long after overlap_until+slack the prober keeps trying a replaced
	// key, to see it refused.
	kzProbeAfter = time.Second
	kzDeadline   = 90 * time.Second
)

// kzPropagation is the emulator's propagation delay: each token request within it after
// a change of the attached keys sees the old or the new set at random. 0: with any delay
// an application that signs with the current key only fails right after rotations (the
// engine serves a key once Auth0 accepted it once; see
// TestKeyServedKeyAcceptedDuringPropagation), which this test is not about.
// KEY_ZD_PROPAGATION (a Go duration) sets it to see that.
var kzPropagation = func() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("KEY_ZD_PROPAGATION"))
	return d
}()

func kzTemplate(role string) string {
	return `{{ with secret "auth0/creds/` + role + `" }}{
  "client_id": {{ .Data.client_id | toJSON }},
  "private_key": {{ .Data.private_key | toJSON }},
  "kid": {{ .Data.kid | toJSON }},
  "algorithm": {{ .Data.algorithm | toJSON }},
  "version": {{ .Data.version | toJSON }}
}
{{ end }}`
}

// kzRendered is what kzTemplate renders.
type kzRendered struct {
	ClientID   string `json:"client_id"`
	PrivateKey string `json:"private_key"`
	KID        string `json:"kid"`
	Algorithm  string `json:"algorithm"`
	Version    int    `json:"version"`
}

func kzReadRendered(path string) (kzRendered, error) {
	var r kzRendered
	raw, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("rendered file is not the expected JSON: %v", err)
	}
	if r.ClientID == "" || r.PrivateKey == "" || r.KID == "" || r.Algorithm == "" {
		return r, errors.New("rendered file lacks client_id, private_key, kid or algorithm")
	}
	return r, nil
}

// kzAttempt is one login.
type kzAttempt struct {
	start, end time.Time
	version    int // rendered version (application) or replaced version (prober), when known
	kid        string
	ok         bool
	detail     string
}

// kzKeyCache parses each PEM once.
type kzKeyCache map[string]*rsa.PrivateKey

func (c kzKeyCache) get(privatePEM string) (*rsa.PrivateKey, error) {
	if k, ok := c[privatePEM]; ok {
		return k, nil
	}
	k, err := parseKeyPEM(privatePEM)
	if err == nil {
		c[privatePEM] = k
	}
	return k, err
}

// kzApp is the application: every kzInterval it reads the file the agent rendered and logs
// in with the rendered private_key and kid, and nothing else: no fallback to a previous
// key, no retry.
func kzApp(ctx context.Context, emuURL, path string, emu *emulator.Server, out *[]kzAttempt) {
	client := &http.Client{Timeout: 10 * time.Second}
	cache := kzKeyCache{}
	tick := time.NewTicker(kzInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a := kzAttempt{start: time.Now()}
		r, err := kzReadRendered(path)
		var key *rsa.PrivateKey
		if err == nil {
			a.version, a.kid = r.Version, r.KID
			key, err = cache.get(r.PrivateKey)
		}
		if err != nil {
			a.end, a.detail = time.Now(), "reading the rendered key: "+err.Error()
			*out = append(*out, a)
			continue
		}
		status, desc, err := keyLogin(ctx, client, emuURL, r.ClientID, key, r.Algorithm, r.KID)
		if ctx.Err() != nil {
			return // the run ended mid-attempt: not counted
		}
		a.end = time.Now()
		a.ok = err == nil && status == http.StatusOK
		if !a.ok {
			_, attached := auth0Keys(emu, r.ClientID)
			a.detail = fmt.Sprintf("status %d %s %v; Auth0 attaches %v", status, desc, err, attached)
		}
		*out = append(*out, a)
	}
}

// kzProbeKey is a replaced key the prober tries.
type kzProbeKey struct {
	key          *rsa.PrivateKey
	alg, kid     string
	keyID        string
	overlapUntil time.Time // as creds rendered it (whole seconds, truncated)
	attempts     []kzAttempt
	done         bool
}

// kzProber watches creds (as root) for the previous key and tries each replaced key from
// when creds first shows it as previous_private_key until kzProbeAfter past the end of
// its overlap (plus slack): the same login as the application's.
type kzProber struct {
	mu   sync.Mutex
	keys map[string]*kzProbeKey // by kid
	errs []string
}

func (p *kzProber) finished(kid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.keys[kid]
	return ok && k.done
}

func (p *kzProber) run(ctx context.Context, f *fixture, clientID string) {
	client := &http.Client{Timeout: 10 * time.Second}
	tick := time.NewTicker(kzProbeInterval)
	defer tick.Stop()
	var lastRead time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(lastRead) >= 250*time.Millisecond {
			lastRead = time.Now()
			c, err := readKeyCreds(f.v, f.v.RootToken, kzRole)
			p.mu.Lock()
			switch {
			case err != nil:
				if len(p.errs) < 5 {
					p.errs = append(p.errs, err.Error())
				}
			case c.prevPEM != "" && p.keys[c.prevKID] == nil:
				key, err := parseKeyPEM(c.prevPEM)
				if err != nil {
					p.errs = append(p.errs, "previous_private_key: "+err.Error())
					break
				}
				p.keys[c.prevKID] = &kzProbeKey{key: key, alg: c.alg, kid: c.prevKID, keyID: c.prevKeyID, overlapUntil: c.overlapUntil}
			}
			p.mu.Unlock()
		}
		p.mu.Lock()
		var todo []*kzProbeKey
		for _, k := range p.keys {
			if !k.done && time.Now().After(k.overlapUntil.Add(time.Second+kzDetachSlack+kzPropagation+kzProbeAfter)) {
				k.done = true
			}
			if !k.done {
				todo = append(todo, k)
			}
		}
		p.mu.Unlock()
		for _, k := range todo {
			a := kzAttempt{start: time.Now(), kid: k.kid}
			status, desc, err := keyLogin(ctx, client, f.emuURL, clientID, k.key, k.alg, k.kid)
			if ctx.Err() != nil {
				return
			}
			a.end = time.Now()
			a.ok = err == nil && status == http.StatusOK
			if !a.ok {
				a.detail = fmt.Sprintf("status %d %s %v", status, desc, err)
			}
			p.mu.Lock()
			k.attempts = append(k.attempts, a)
			p.mu.Unlock()
		}
	}
}

// TestKeyOverlapZeroDowntime is the zero-downtime proof for private_key_jwt: an
// application on a client secret is cut over to private_key_jwt by the first rotation,
// then nobody rotates: the role rotates on its schedule, and a real Vault Agent (default
// static_secret_render_interval, so it re-reads at the ttl creds return) renders
// private_key and kid. The application signs every login with the rendered key only. It
// must never fail, across at least kzRotations scheduled rotations: the overlap alone
// (the previous key stays attached for overlap_period) covers the agent's re-read.
//
// A prober tries each replaced key: it must log in until its overlap ends (and shortly
// before), and be refused once the overlap is over (overlap_until plus the scheduler's
// slack). Auth0 must never hold more than two credentials, and at the end only the keys
// Vault holds.
func TestKeyOverlapZeroDowntime(t *testing.T) {
	t.Parallel()
	start := time.Now()
	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	// At the default pace (2 requests/s) a rotation commits ~2.5 s after it falls due,
	// which only stretches the run.
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=20")
	f.emu.SetPropagationDelay(kzPropagation)
	app := f.addApp(t, "key-zd-app-id", "Key ZD App")
	watch := newKeyWatch(f.emu, app.ClientID)

	v.MustCLI(t, root, "write", mount+"/roles/"+kzRole, "client_id="+app.ClientID,
		"credential_type=private_key_jwt", "allow_auth_method_change=true",
		"rotation_period="+kzRotationPeriod.String(), "overlap_period="+kzOverlapPeriod.String())
	secret := f.secret(t, app.ClientID)
	if code := authenticate(t, f.emuURL, app.ClientID, secret); code != http.StatusOK {
		t.Fatalf("the application's client secret: status %d before the cutover, want 200", code)
	}

	// The one-way cutover: the first key replaces the client secret.
	first := dataOf(t, f.rotate(t, root, kzRole))
	cutover := time.Now()
	if n := num(t, first, "version"); n != 1 {
		t.Fatalf("the first rotation answered version %d, want 1: %v", n, first)
	}
	for k, x := range first {
		if s, ok := x.(string); ok && strings.Contains(s, "PRIVATE KEY") {
			t.Fatalf("rotate answered key material in %q", k)
		}
	}
	if !f.emu.UsesPrivateKeyJWT(app.ClientID) {
		t.Fatal("after the first rotation the application is not on private_key_jwt")
	}

	v.WritePolicy(t, kzRole+"-app", `path "auth0/creds/`+kzRole+`" { capabilities = ["read"] }`)
	agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{
		Token:    v.CreateToken(t, kzRole+"-app"),
		Template: kzTemplate(kzRole),
	})
	vaulttest.WaitForFile(t, agent.RenderedPath, func(string) bool {
		r, err := kzReadRendered(agent.RenderedPath)
		return err == nil && r.Version == 1 && r.ClientID == app.ClientID
	}, 30*time.Second)
	// The cutover itself is not what this test measures: let it propagate.
	time.Sleep(time.Until(cutover.Add(kzPropagation)))
	if code := authenticate(t, f.emuURL, app.ClientID, secret); code != http.StatusUnauthorized {
		t.Fatalf("the client secret after the cutover: status %d, want 401", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var appAttempts []kzAttempt
	prober := &kzProber{keys: map[string]*kzProbeKey{}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); kzApp(ctx, f.emuURL, agent.RenderedPath, f.emu, &appAttempts) }()
	go func() { defer wg.Done(); prober.run(ctx, f, app.ClientID) }()
	loopStart := time.Now()

	// Wait for kzRotations scheduled rotations, then until the prober is done with the key
	// the last of them replaced.
	deadline := start.Add(kzDeadline)
	var lastReplaced string
	for {
		if agent.Exited() {
			cancel()
			wg.Wait()
			t.Fatalf("the Vault Agent exited:\n%s", agent.Logs())
		}
		if lastReplaced == "" {
			if r, err := readKeyRole(v, root, kzRole); err == nil && r.current >= 1+kzRotations {
				vs := readKeyVersions(t, v, root, kzRole)
				for _, x := range vs {
					if x.n == kzRotations {
						lastReplaced = x.kid
					}
				}
				if lastReplaced == "" {
					t.Fatalf("versions of %s lack version %d", kzRole, kzRotations)
				}
			}
		} else if prober.finished(lastReplaced) {
			break
		}
		if time.Now().After(deadline) {
			r, err := readKeyRole(v, root, kzRole)
			cancel()
			wg.Wait()
			t.Fatalf("by the deadline (%v): role %s (%v); want %d scheduled rotations and the last replaced key probed past its overlap",
				kzDeadline, r, err, kzRotations)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	end := time.Now()

	versions := readKeyVersions(t, v, root, kzRole)
	role, err := readKeyRole(v, root, kzRole)
	if err != nil {
		t.Fatal(err)
	}
	stats := f.emu.Stats()

	// The application.
	var failures []string
	failed := 0
	usedKids := map[string]time.Time{} // kid -> first successful use
	for _, a := range appAttempts {
		if !a.ok {
			failed++
			if len(failures) < 10 {
				failures = append(failures, fmt.Sprintf("%s: rendered version %d: %s", a.start.Format("15:04:05.000"), a.version, a.detail))
			}
			continue
		}
		if _, ok := usedKids[a.kid]; !ok {
			usedKids[a.kid] = a.start
		}
	}
	scheduled := 0
	for _, x := range versions {
		if x.source == sourceScheduledName {
			scheduled++
		}
	}
	t.Logf("application: %d logins, %d failures, over %v; %d scheduled rotations (versions %s); Auth0: %d assertion logins, %d credentials created, %d deleted, %d auth-method PATCHes; propagation delay %v",
		len(appAttempts), failed, end.Sub(loopStart).Round(100*time.Millisecond), scheduled, describeKeyVersions(versions),
		stats.AssertionLogins[app.ClientID], stats.CredentialsCreated[app.ClientID], stats.CredentialsDeleted[app.ClientID], stats.AuthMethodPatches[app.ClientID], kzPropagation)
	if failed != 0 {
		t.Errorf("the application failed %d of %d logins with the key the agent rendered; first failures:\n%s", failed, len(appAttempts), strings.Join(failures, "\n"))
	}
	if len(appAttempts) < int(end.Sub(loopStart)/kzInterval)/2 {
		t.Errorf("the application made only %d login attempts in %v", len(appAttempts), end.Sub(loopStart))
	}
	if scheduled < kzRotations {
		t.Errorf("%d scheduled rotations, want at least %d", scheduled, kzRotations)
	}
	for i, x := range versions {
		switch {
		case x.n != i+1:
			t.Errorf("versions are not 1..n: %s", describeKeyVersions(versions))
		case x.n == 1 && x.source != "rotate":
			t.Errorf("version 1 has source %q, want rotate (the manual cutover)", x.source)
		case x.n > 1 && x.source != sourceScheduledName:
			t.Errorf("version %d has source %q: nobody rotated after the first", x.n, x.source)
		}
	}

	// The application followed every rotation, within the overlap.
	var lags []string
	for i, x := range versions {
		if i == 0 || x.created.After(end.Add(-kzOverlapPeriod)) {
			continue // the cutover, or too recent for the application to have had to switch
		}
		used, ok := usedKids[x.kid]
		if !ok {
			t.Errorf("the application never logged in with version %d's key (created %s)", x.n, x.created.Format("15:04:05.000"))
			continue
		}
		lag := used.Sub(x.created)
		lags = append(lags, fmt.Sprintf("v%d %v", x.n, lag.Round(10*time.Millisecond)))
		if lag >= kzOverlapPeriod {
			t.Errorf("the application switched to version %d's key %v after its rotation, not within overlap_period %v", x.n, lag, kzOverlapPeriod)
		}
	}
	t.Logf("application switched to each new key after (rotation → first login with it): %s", strings.Join(lags, ", "))

	// Each replaced key: accepted until its overlap ends, refused after.
	prober.mu.Lock()
	defer prober.mu.Unlock()
	if len(prober.errs) > 0 {
		t.Logf("prober's creds reads that failed: %v", prober.errs)
	}
	checked := 0
	for i, x := range versions {
		if i+1 >= len(versions) {
			break
		}
		next := versions[i+1]
		until := next.created.Add(kzOverlapPeriod)
		if until.Add(kzDetachSlack + kzPropagation + kzProbeAfter).After(end) {
			continue // its overlap had not run its course when the run ended
		}
		pk := prober.keys[x.kid]
		if pk == nil {
			t.Errorf("version %d's key (replaced at %s) was never served as previous_private_key", x.n, next.created.Format("15:04:05.000"))
			continue
		}
		checked++
		if pk.keyID != x.keyID {
			t.Errorf("previous_key_id %s for version %d, whose key_id is %s", pk.keyID, x.n, x.keyID)
		}
		if d := pk.overlapUntil.Sub(until); d > 0 || d <= -time.Second {
			t.Errorf("creds served overlap_until %s for version %d's key, but its replacement was at %s + overlap_period %v",
				pk.overlapUntil.Format(time.RFC3339), x.n, next.created.Format(time.RFC3339Nano), kzOverlapPeriod)
		}
		var before, after, refusedBefore, acceptedAfter int
		var lastOK time.Time
		refusedAt := time.Time{} // first refusal after the overlap ended
		var problems []string
		for _, a := range pk.attempts {
			switch {
			case a.end.Before(until):
				before++
				if a.ok {
					lastOK = a.end
				} else {
					refusedBefore++
					problems = append(problems, fmt.Sprintf("refused at %s, %v before its overlap ended: %s", a.end.Format("15:04:05.000"), until.Sub(a.end).Round(time.Millisecond), a.detail))
				}
			case a.start.After(until.Add(kzDetachSlack + kzPropagation)):
				after++
				if a.ok {
					acceptedAfter++
					problems = append(problems, fmt.Sprintf("accepted at %s, %v after its overlap ended", a.start.Format("15:04:05.000"), a.start.Sub(until).Round(time.Millisecond)))
				}
			}
			if !a.ok && !a.start.Before(until) && refusedAt.IsZero() {
				refusedAt = a.start
			}
		}
		t.Logf("version %d's key (replaced %s, overlap until %s): %d probes before the end, %d refused; last accepted %v before; first refused %v after; %d probes from %v after, %d accepted",
			x.n, next.created.Format("15:04:05.000"), until.Format("15:04:05.000"), before, refusedBefore,
			until.Sub(lastOK).Round(time.Millisecond), refusedAt.Sub(until).Round(time.Millisecond), after, kzDetachSlack+kzPropagation, acceptedAfter)
		switch {
		case len(problems) > 0:
			t.Errorf("version %d's key: %s", x.n, strings.Join(problems, "; "))
		case lastOK.IsZero() || until.Sub(lastOK) > kzShortlyBefore:
			t.Errorf("version %d's key never logged in within %v before its overlap ended (last at %s, overlap until %s)", x.n, kzShortlyBefore, lastOK.Format("15:04:05.000"), until.Format("15:04:05.000"))
		case after == 0:
			t.Errorf("version %d's key was never tried after its overlap ended", x.n)
		}
	}
	if checked < kzRotations {
		t.Errorf("only %d replaced keys were checked across their overlap end, want %d", checked, kzRotations)
	}

	// Auth0's credentials.
	if n, at := watch.max(); n > emulator.MaxCredentials {
		t.Errorf("Auth0 held %d credentials at once (%s), want at most %d", n, at, emulator.MaxCredentials)
	} else {
		t.Logf("Auth0 held at most %d credentials at once", n)
	}
	// At a stable point (no rotation or overlap end in progress), Auth0 holds exactly
	// Vault's keys.
	for settle := time.Now().Add(10 * time.Second); ; {
		p := ""
		if role, err = readKeyRole(v, root, kzRole); err != nil {
			p = err.Error()
		} else if role.pending != 0 {
			p = "a key is pending"
		} else {
			p = orphanProblem(f.emu, app.ClientID, role)
		}
		if p == "" {
			break
		}
		if time.Now().After(settle) {
			t.Errorf("at the end: %s", p)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	versions = readKeyVersions(t, v, root, kzRole)
	stats = f.emu.Stats()
	if got, want := stats.CredentialsCreated[app.ClientID], len(versions); got != want {
		t.Errorf("Auth0 created %d credentials for %d versions", got, want)
	}
	if agent.Exited() {
		t.Errorf("the Vault Agent exited:\n%s", agent.Logs())
	}
	t.Logf("run: %v", time.Since(start).Round(100*time.Millisecond))
}

// sourceScheduledName is the source the engine records for a scheduled rotation.
const sourceScheduledName = "scheduled"

func describeKeyVersions(vs []keyVersion) string {
	var parts []string
	for _, x := range vs {
		parts = append(parts, fmt.Sprintf("%d:%s", x.n, x.source))
	}
	return strings.Join(parts, " ")
}

// ---------------------------------------------------------------------------------------
// TestKeyUnscheduledRoleRotatesOnlyWhenAsked

// TestKeyUnscheduledRoleRotatesOnlyWhenAsked: a private_key_jwt role without
// rotation_period or rotation_schedule rotates only when someone asks. Its overlap still
// ends by itself (the scheduler detaches and deletes the previous key at overlap_until),
// and that must be all: no new key, no new version, nothing at Auth0 but the detach and the
// delete.
//
// It waits for the overlap to end, then for the role to stay at version 2 with only its
// key at Auth0 for kuStable; it fails as soon as a key is pending, a version appears or
// Auth0 registers a credential.
func TestKeyUnscheduledRoleRotatesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	const (
		role     = "keyondemand"
		overlap  = 2 * time.Second
		kuStable = 3 * time.Second
	)
	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=50")
	app := f.addApp(t, "key-on-demand-app-id", "Key On Demand App")
	v.MustCLI(t, root, "write", mount+"/roles/"+role, "client_id="+app.ClientID,
		"credential_type=private_key_jwt", "allow_auth_method_change=true", "overlap_period="+overlap.String())
	if rp := num(t, dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/"+role)), "rotation_period"); rp != 0 {
		t.Fatalf("rotation_period %d, want 0 (no schedule)", rp)
	}
	if n := num(t, dataOf(t, f.rotate(t, root, role)), "version"); n != 1 {
		t.Fatalf("the cutover answered version %d", n)
	}
	second := dataOf(t, f.rotate(t, root, role))
	if n := num(t, second, "version"); n != 2 {
		t.Fatalf("the second rotation answered version %d", n)
	}
	v2 := str(t, second, "key_id")
	// overlap_until is rendered in whole seconds; the version's creation time is exact.
	until := readKeyVersions(t, v, root, role)[1].created.Add(overlap)

	deadline := until.Add(15 * time.Second)
	var stableSince time.Time
	for {
		r, err := readKeyRole(v, root, role)
		if err != nil {
			t.Fatal(err)
		}
		created := f.emu.Stats().CredentialsCreated[app.ClientID]
		stored, attached := auth0Keys(f.emu, app.ClientID)
		if r.current != 2 || r.pending != 0 || created != 2 {
			versions := readKeyVersions(t, v, root, role)
			t.Fatalf("a role without a schedule rotated by itself %v after its overlap ended (overlap_until %s): role %s; versions %s; Auth0 created %d credentials (2 asked for), stores %v; engine log:\n\t%s",
				time.Since(until).Round(time.Millisecond), until.Format(time.RFC3339Nano), r, describeKeyVersions(versions), created, stored,
				strings.Join(engineLines(v.Logs()), "\n\t"))
		}
		settled := len(r.previousIDs) == 0 && slices.Equal(stored, []string{v2}) && slices.Equal(attached, []string{v2})
		switch {
		case !settled:
			stableSince = time.Time{}
		case stableSince.IsZero():
			stableSince = time.Now()
			t.Logf("overlap ended %v after overlap_until: Auth0 stores and attaches only version 2's key", time.Since(until).Round(time.Millisecond))
		case time.Since(stableSince) >= kuStable:
			t.Logf("role stayed at version 2 for %v after its overlap ended", kuStable)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overlap did not end within %v of overlap_until: role %s, Auth0 stores %v, attaches %v", 15*time.Second, r, stored, attached)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------------------
// TestKeyServedKeyAcceptedDuringPropagation

// kpPropagation is the emulator's propagation delay in
// TestKeyServedKeyAcceptedDuringPropagation ("a couple of seconds", well under the 30 s
// Auth0 documents for secrets).
const kpPropagation = 3 * time.Second

// TestKeyServedKeyAcceptedDuringPropagation: while Auth0 propagates a change of the
// attached keys (each token request sees the previous or the new set at random, for
// kpPropagation), the key that creds serve as private_key must be one Auth0 accepts on
// every login: an application signs with it (and only it) as soon as it reads it. The
// engine attaches a new key propagation_wait (config) before it serves it.
//
// From the rotate request until well after the new key is served, an application (the
// test) reads creds and logs in every 50 ms with private_key, and with
// previous_private_key while it is served: neither may ever be refused.
func TestKeyServedKeyAcceptedDuringPropagation(t *testing.T) {
	t.Parallel()
	const role = "keyprop"
	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=50", fmt.Sprintf("propagation_wait=%d", int(kpPropagation.Seconds())))
	f.emu.SetPropagationDelay(kpPropagation)
	app := f.addApp(t, "key-prop-app-id", "Key Propagation App")
	v.MustCLI(t, root, "write", mount+"/roles/"+role, "client_id="+app.ClientID,
		"credential_type=private_key_jwt", "allow_auth_method_change=true", "rotation_period=1h", "overlap_period=30m")
	waitVersion := func(want int) {
		deadline := time.Now().Add(kpPropagation + 20*time.Second)
		for time.Now().Before(deadline) {
			if c, err := readKeyCreds(v, root, role); err == nil && c.version >= want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("version %d was not served within %v", want, kpPropagation+20*time.Second)
	}
	resp := f.rotate(t, root, role) // the cut-over
	if data, _ := resp["data"].(map[string]any); data == nil || data["pending_version"] == nil || data["publish_time"] == nil {
		t.Fatalf("the first rotate answered %v; want the pending version and its publish_time", resp)
	}
	waitVersion(1)
	time.Sleep(kpPropagation) // the attach of the cut-over has propagated everywhere

	ctx := context.Background()
	client := &http.Client{Timeout: 10 * time.Second}
	if r, err := v.TryDo(root, http.MethodPut, mount+"/rotate/"+role, nil, time.Minute); err != nil || r.Status != http.StatusOK {
		t.Fatalf("rotate: %v %v", err, r)
	}
	rotated := time.Now()
	keys := kzKeyCache{}
	var logins, refused, prevLogins, prevRefused int
	var firstRefusal string
	var servedNewAt time.Time
	for end := time.Now().Add(kpPropagation + 10*time.Second); time.Now().Before(end) || servedNewAt.IsZero(); {
		if time.Since(rotated) > kpPropagation+30*time.Second {
			t.Fatalf("version 2 not served %v after the rotate", time.Since(rotated).Round(time.Millisecond))
		}
		c, err := readKeyCreds(v, root, role)
		if err != nil {
			t.Fatal(err)
		}
		if c.version == 2 && servedNewAt.IsZero() {
			servedNewAt = time.Now()
		}
		cur, err := keys.get(c.privatePEM)
		if err != nil {
			t.Fatal(err)
		}
		status, desc, err := keyLogin(ctx, client, f.emuURL, app.ClientID, cur, c.alg, c.kid)
		if err != nil {
			t.Fatal(err)
		}
		logins++
		if status != http.StatusOK {
			refused++
			if firstRefusal == "" {
				firstRefusal = fmt.Sprintf("version %d, %v after the rotate: %d %s", c.version, time.Since(rotated).Round(time.Millisecond), status, desc)
			}
		}
		if c.prevPEM != "" {
			prev, err := keys.get(c.prevPEM)
			if err != nil {
				t.Fatal(err)
			}
			status, _, err = keyLogin(ctx, client, f.emuURL, app.ClientID, prev, c.alg, c.prevKID)
			if err != nil {
				t.Fatal(err)
			}
			prevLogins++
			if status != http.StatusOK {
				prevRefused++
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("version 2 served %v after the rotate (propagation_wait %v); served private_key refused %d of %d logins, previous_private_key refused %d of %d",
		servedNewAt.Sub(rotated).Round(time.Millisecond), kpPropagation, refused, logins, prevRefused, prevLogins)
	if refused != 0 {
		t.Errorf("creds served a key Auth0 refused: %d of %d logins (first: %s)", refused, logins, firstRefusal)
	}
	if prevRefused != 0 {
		t.Errorf("the previous key, still in its overlap, was refused %d of %d times", prevRefused, prevLogins)
	}
	if servedNewAt.Sub(rotated) < kpPropagation {
		t.Errorf("version 2 was served %v after the rotate, before propagation_wait (%v) had passed", servedNewAt.Sub(rotated), kpPropagation)
	}
}
