package auth0

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"hash/fnv"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// The private_key_jwt roles of TestSimulation (credential_type=private_key_jwt): their
// setup, operator actions, faults and invariants 12 to 17. See TestSimulation.

// simProbeHeader marks the simulation's own logins at the emulator, which the fault hook
// leaves alone.
const simProbeHeader = "X-Sim-Probe"

// simKeyRole is what the simulation tracks of a private_key_jwt role.
type simKeyRole struct {
	// cert: the role rotates self-signed mTLS certificates
	// (credential_type=self_signed_tls_client_auth) rather than keys; its "keys" are
	// certificates, each with its key, and they log in through the tenant's edge.
	cert bool
	// secret is the application's client secret before the role switched it to
	// private_key_jwt: refused once the role has a version.
	secret string
	// keys are the keys the simulation has seen creds/<name> serve, by credential ID.
	keys map[string]*simKey
	// cur and curKeyID are the role's current version and its credential as of the
	// last check.
	cur      int
	curKeyID string
	// secretRefused: the application's old secret was seen refused.
	secretRefused bool
	// assertions: allow_assertions=true; assertionFP identifies the key and attached
	// credentials assertion/<name> was last checked with.
	assertions  bool
	assertionFP string
	// granted: the application may obtain a Management API token (no scope), so the
	// login proving a new key is answered with a token rather than a 403.
	granted bool
	// stalled: a certificate role's version whose certificate expired, or expires before a
	// renewal can be published, because the scheduler did not run while the role was due
	// (an advance runs the jobs due during it only at its end, as after Vault was down).
	stalled int
}

// simKey is one key pair creds/<name> served.
type simKey struct {
	id, pem, kid, alg string
	// cert is a certificate role's certificate (PEM), with pem its key.
	cert    string
	version int
	// until is the latest end of an overlap seen listing the key (zero: never seen in
	// one): it must keep logging in until then.
	until time.Time
	// ended: an end_overlap=true rotate was asked while the key was in the overlap.
	ended bool
	// dead: seen detached at Auth0, and refused.
	dead bool
	// published: its publication was checked against its attachment.
	published bool
}

// keyKinds are the fault kinds aimed at private_key_jwt roles' requests.
var keyKinds = map[string]bool{"create": true, "list": true, "methods": true, "attach": true, "delete": true, "token": true}

// chooseKeyRoles picks which of n roles rotate private_key_jwt keys: -sim.keyroles of
// them, or by default a quarter (at least one of two or more roles).
func (s *sim) chooseKeyRoles(n int) map[int]bool {
	k := *simKeyRoles
	if k < 0 {
		k = n / 4
		if k == 0 && n > 1 {
			k = 1
		}
	}
	k = min(k, n)
	out := map[int]bool{}
	for _, i := range s.rng.Perm(n)[:k] {
		out[i] = true
	}
	return out
}

// keyRoleData adds to a role's data what makes it a private_key_jwt role (or with cert a
// self_signed_tls_client_auth role), allowed to switch its application off its client
// secret, with an overlap_period shorter than any interval scheduleFor gives a key role.
func (s *sim) keyRoleData(data map[string]interface{}, cert bool) {
	data["allow_auth_method_change"] = true
	overlap := s.keyOverlapPeriod()
	data["overlap_period"] = overlap
	if cert {
		data["credential_type"] = model.CredentialSelfSignedTLS
		data["certificate_ttl"] = s.certificateTTL(data, overlap)
		return
	}
	data["credential_type"] = model.CredentialPrivateKeyJWT
	data["algorithm"] = []string{auth0api.AlgRS256, auth0api.AlgRS256, auth0api.AlgRS384, auth0api.AlgPS256}[s.rng.IntN(4)]
	data["allow_assertions"] = s.rng.IntN(2) == 0
}

// certificateTTL is a certificate role's certificate_ttl: a third of it longer than the
// longest step (6h, so that the engine runs in the last third of every certificate's
// life: invariant 18), longer than rotation_period plus the overlap, and often short
// enough that certificates are renewed (two thirds into their lifetime) before the
// schedule rotates them.
func (s *sim) certificateTTL(data map[string]interface{}, overlap string) string {
	ov, _ := time.ParseDuration(overlap)
	floor := 21 * time.Hour
	if p, ok := data["rotation_period"].(string); ok && p != "" {
		period, _ := time.ParseDuration(p)
		floor = max(floor, period+ov+time.Hour)
	}
	return []time.Duration{floor, floor + 5*time.Hour, 30 * 24 * time.Hour}[s.rng.IntN(3)].String()
}

// keyOverlapPeriod is shorter than the shortest interval scheduleFor gives a key role (8h).
func (s *sim) keyOverlapPeriod() string {
	return []string{"0s", "10m", "30m", "1h", "2h", "4h", "7h59m"}[s.rng.IntN(7)]
}

// keyFaults are the faults for a private_key_jwt role's requests: the credentials
// endpoints (POST, GET, DELETE), the client's read (its authentication methods) and PATCH
// (the attached keys), and the token request that proves a new key (a 401 as while Auth0
// propagates a new key: the engine polls again).
var keyFaults = []simFaultSpec{
	{"create", emulator.BeforeApply, emulator.Fault{Status: 500}, 4},
	{"create", emulator.BeforeApply, emulator.Fault{Status: 503}, 3},
	{"create", emulator.BeforeApply, emulator.Fault{Status: 429}, 4},
	{"create", emulator.AfterApply, emulator.Fault{Status: 500}, 10},
	{"create", emulator.AfterApply, emulator.Fault{Drop: true}, 10},
	{"create", emulator.AfterApply, emulator.Fault{Delay: simSlowAnswer}, 0},
	{"list", emulator.BeforeApply, emulator.Fault{Status: 500}, 3},
	{"list", emulator.BeforeApply, emulator.Fault{Status: 503}, 3},
	{"list", emulator.BeforeApply, emulator.Fault{Status: 429}, 3},
	{"methods", emulator.BeforeApply, emulator.Fault{Status: 500}, 3},
	{"methods", emulator.BeforeApply, emulator.Fault{Status: 503}, 2},
	{"attach", emulator.BeforeApply, emulator.Fault{Status: 500}, 3},
	{"attach", emulator.BeforeApply, emulator.Fault{Status: 503}, 3},
	{"attach", emulator.BeforeApply, emulator.Fault{Status: 429}, 3},
	{"attach", emulator.AfterApply, emulator.Fault{Status: 500}, 7},
	{"attach", emulator.AfterApply, emulator.Fault{Drop: true}, 7},
	{"delete", emulator.BeforeApply, emulator.Fault{Status: 500}, 3},
	{"delete", emulator.BeforeApply, emulator.Fault{Status: 503}, 2},
	{"delete", emulator.AfterApply, emulator.Fault{Status: 500}, 7},
	{"delete", emulator.AfterApply, emulator.Fault{Drop: true}, 6},
	{"token", emulator.BeforeApply, emulator.Fault{Status: 500}, 3},
	{"token", emulator.BeforeApply, emulator.Fault{Status: 503}, 2},
	{"token", emulator.BeforeApply, emulator.Fault{Status: 401, Error: "invalid_client", Message: "Invalid client assertion"}, 4},
	{"token", emulator.AfterApply, emulator.Fault{Drop: true}, 3},
}

// credentialExpiry is when Auth0 says credential id of clientID expires; zero if never, or
// if Auth0 no longer stores it.
func (s *sim) credentialExpiry(clientID, id string) time.Time {
	stored, _, _ := s.emu.Credentials(clientID)
	if i := slices.IndexFunc(stored, func(c emulator.CredentialInfo) bool { return c.ID == id }); i >= 0 {
		return stored[i].ExpiresAt
	}
	return time.Time{}
}

// keyRequestKind classifies a Management API request about a private_key_jwt role's
// application for the fault hook.
func keyRequestKind(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/credentials") && r.Method == http.MethodGet:
		return "list"
	case strings.HasSuffix(p, "/credentials") && r.Method == http.MethodPost:
		return "create"
	case strings.Contains(p, "/credentials/") && r.Method == http.MethodDelete:
		return "delete"
	case strings.Contains(p, "/credentials"):
		return "other"
	case r.Method == http.MethodGet:
		return "methods"
	case r.Method == http.MethodPatch:
		return "attach"
	}
	return "other"
}

// keyRotateOption picks a manual rotate's option for a private_key_jwt role:
// end_overlap=true, likelier while the previous key is attached.
func (s *sim) keyRotateOption(r *simRole) string {
	chance := 10
	if r.pre != nil && r.pre.Overlap != nil {
		chance = 40
	}
	if s.rng.IntN(100) < chance {
		return "end_overlap"
	}
	return ""
}

// beforeKeyRotate notes, before a manual rotate with end_overlap=true, the keys whose
// overlap it may cut short.
func (s *sim) beforeKeyRotate(r *simRole, opt string) {
	if opt != "end_overlap" || r.pre == nil || r.pre.Overlap == nil {
		return
	}
	for _, id := range r.pre.Overlap.CredentialIDs {
		if k := r.k.keys[id]; k != nil {
			k.ended = true
		}
	}
}

// afterKeyRotate checks a manual rotate of a private_key_jwt role: no key material in
// what it answered (16); the refusal during an overlap only where it is documented; an
// end_overlap=true that succeeded deleted the previous keys (15).
func (s *sim) afterKeyRotate(r *simRole, opt string, resp *logical.Response, err error) {
	s.t.Helper()
	name := r.name
	if opt != "" {
		name += " " + opt
	}
	if leak := s.keyLeakIn(responseText(resp, err)); leak != "" {
		s.fail("invariant 16: rotate/%s answered private key material (%s)", name, leak)
	}
	pre := r.pre
	if err == nil && resp != nil && resp.IsError() {
		msg := resp.Error().Error()
		if (strings.Contains(msg, "Auth0's limit") || strings.Contains(msg, "maximum of")) && (r.foreign != "" || r.blockedUntil > 0) {
			// A credential added in the Dashboard takes the slot: the documented refusal.
			s.counts["key rotate refused (a credential added outside Vault)"]++
			return
		}
		if strings.Contains(msg, "Auth0's limit") || strings.Contains(msg, "maximum of") {
			s.fail("invariant 12: rotate/%s hit Auth0's credential limit: %s", name, msg)
		}
		// The faults the simulation injects are 5xx, 429s, lost answers and storage
		// failures: errors, not refusals. The one refusal is the documented one.
		if !strings.Contains(msg, "end_overlap=true") {
			s.fail("invariant 15: rotate/%s refused: %s", name, msg)
		}
		if opt == "end_overlap" || pre == nil || pre.PendingKey != nil || pre.Overlap == nil || !s.clock.Now().Before(pre.Overlap.Until) {
			s.fail("invariant 15: rotate/%s refused for an overlap, but the role stored before it has overlap %+v and pending key %+v: %s", name, pre.Overlap, pre.PendingKey, msg)
		}
		s.counts["key rotate refused (overlap)"]++
		return
	}
	if err != nil || resp == nil || s.store.isCrashed() {
		return
	}
	if pv, ok := resp.Data["pending_version"].(int); ok {
		// Attached, to be served at publish_time, propagation_wait after it.
		role := s.storedRole(r.name)
		pk := role.PendingKey
		if pk == nil || pk.Version != pv || resp.Data["key_id"] != pk.CredentialID || pk.CredentialID == "" || pk.AttachedAt.IsZero() ||
			resp.Data["publish_time"] != pk.PublishAt.Format(time.RFC3339) || pk.PublishAt.Sub(pk.AttachedAt) != s.propagationWait {
			s.fail("invariant 14: rotate/%s answered pending version %v (key %v, publish time %v), the role stores pending key %+v (propagation_wait %s)",
				name, pv, resp.Data["key_id"], resp.Data["publish_time"], pk, s.propagationWait)
		}
		s.counts["key rotate pending"]++
		return
	}
	s.counts["key rotate ok"]++
	if opt == "end_overlap" {
		s.counts["end_overlap ok"]++
	}
	if opt != "end_overlap" || pre == nil || pre.Overlap == nil || pre.PendingKey != nil {
		return
	}
	stored, _, _ := s.emu.Credentials(r.clientID)
	cur := ""
	if c := pre.Current(); c != nil {
		cur = c.KeyID
	}
	for _, id := range pre.Overlap.CredentialIDs {
		if id != cur && slices.ContainsFunc(stored, func(c emulator.CredentialInfo) bool { return c.ID == id }) {
			s.fail("invariant 15: rotate/%s succeeded, yet Auth0 still holds credential %s of the overlap it ended", name, id)
		}
	}
}

// responseText is everything a response says, for the key material search.
func responseText(resp *logical.Response, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString(err.Error())
	}
	if resp != nil {
		fmt.Fprintf(&b, "%v %v", resp.Data, resp.Warnings)
	}
	return b.String()
}

// keyLeakIn finds private key material in text: a PEM private key, or a piece of any
// key the engine generated.
func (s *sim) keyLeakIn(text string) string {
	return findKeyMaterial([]byte(text), s.logs.keyFragments())
}

// keyFragment is a piece of a private key that any encoding of it as PEM or base64
// contains: 48 characters of the base64 of its DER from within its fourth PEM line.
func keyFragment(privatePEM string) string {
	block, _ := pem.Decode([]byte(privatePEM))
	if block == nil {
		return ""
	}
	b64 := base64.StdEncoding.EncodeToString(block.Bytes)
	if len(b64) < 248 {
		return ""
	}
	return b64[200:248]
}

func findKeyMaterial(p []byte, fragments []string) string {
	if bytes.Contains(p, []byte("PRIVATE KEY")) {
		return "a PEM private key"
	}
	for _, f := range fragments {
		if bytes.Contains(p, []byte(f)) {
			return "a piece of a generated key: " + f[:8] + "..."
		}
	}
	return ""
}

// simKeyPool makes 2048-bit key pairs ahead, on another goroutine, with the engine's own
// generator: at 50 to 100 ms a key, making them when the engine asks would dominate the
// run's time.
type simKeyPool struct {
	keys chan [2]string
	stop chan struct{}
	done chan struct{} // closed when the generating goroutine ends
}

func startKeyPool(t *testing.T, generate func(bits int) (string, string, error)) *simKeyPool {
	// One key ahead: every key made and not used (at most two, at the end) costs as much
	// as one used.
	p := &simKeyPool{keys: make(chan [2]string, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			private, public, err := generate(model.DefaultKeyBits)
			if err != nil {
				return // the engine then generates its own, and reports the error
			}
			select {
			case p.keys <- [2]string{private, public}:
			case <-p.stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(p.stop); <-p.done })
	return p
}

// watchKeyGeneration serves the backend's key generator from the pool, and tells the log
// checker every private key it hands out.
func (s *sim) watchKeyGeneration() {
	generate := s.b.GenerateKey
	s.b.GenerateKey = func(bits int) (string, string, error) {
		s.mu.Lock()
		if s.keyPool == nil {
			s.keyPool = startKeyPool(s.t, generate) // at the first key: none without key roles
		}
		pool := s.keyPool
		s.mu.Unlock()
		var private, public string
		var err error
		got := false
		if bits == model.DefaultKeyBits {
			select {
			case k := <-pool.keys:
				private, public, got = k[0], k[1], true
			case <-pool.done:
			}
		}
		if !got {
			private, public, err = generate(bits)
		}
		if err == nil {
			s.logs.addKey(private)
			s.mu.Lock()
			s.keysGenerated++
			s.mu.Unlock()
		}
		return private, public, err
	}
}

// keyLogsIn reports whether the emulator accepts a client assertion signed with
// privatePEM, made as an application makes it (with the emulator's signer). The hook
// leaves these logins alone.
func (s *sim) keyLogsIn(clientID, privatePEM, kid, alg string) bool {
	s.t.Helper()
	key, err := auth0api.ParsePrivateKey(privatePEM)
	if err != nil {
		s.fail("invariant 14: a served private key does not parse: %v", err)
	}
	host := strings.TrimPrefix(s.emuURL, "http://")
	assertion, err := emulator.SignAssertion(key, alg, kid, clientID, "https://"+host+"/", s.clock.Now(), time.Minute)
	if err != nil {
		s.fail("signing an assertion with a served key (alg %q): %v", alg, err)
	}
	return s.assertionLogsIn(clientID, assertion)
}

// assertionLogsIn reports whether the emulator gives clientID a token for a client
// assertion. The hook leaves these logins alone.
func (s *sim) assertionLogsIn(clientID, assertion string) bool {
	s.t.Helper()
	audience := testAPI
	if clientID == testMgmtID {
		audience = s.emuURL + "/api/v2/" // the mount's own key, for the Management API
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {clientID},
		"client_assertion_type": {auth0api.ClientAssertionType},
		"client_assertion":      {assertion},
		"audience":              {audience},
	}
	req, err := http.NewRequest(http.MethodPost, s.emuURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		s.fail("%v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(simProbeHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.fail("key login: %v", err)
	}
	resp.Body.Close()
	s.counts["key logins"]++
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	s.fail("a key login answered %d", resp.StatusCode)
	return false
}

// credentialLogsIn reports whether the application logs in with k: a client assertion
// signed with a key, or a certificate presented to the tenant's edge.
func (s *sim) credentialLogsIn(clientID string, k *simKey) bool {
	if k.cert != "" {
		return s.certLogsIn(clientID, k.cert)
	}
	return s.keyLogsIn(clientID, k.pem, k.kid, k.alg)
}

// certLogsIn reports whether the emulator gives clientID a token for certPEM as the
// tenant's edge forwards it (the TLS handshake itself is TestCertRotationOverlaps'). The
// hook leaves these logins alone.
func (s *sim) certLogsIn(clientID, certPEM string) bool {
	s.t.Helper()
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		s.fail("invariant 14: a served certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		s.fail("invariant 14: a served certificate does not parse: %v", err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "audience": {testAPI}}
	req, err := http.NewRequest(http.MethodPost, s.emuURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		s.fail("%v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(simProbeHeader, "1")
	req.Header.Set(emulator.HeaderCNAMEAPIKey, testCNAMEKey)
	req.Header.Set(emulator.HeaderClientCertificate, emulator.EncodeClientCertificate(cert))
	req.Header.Set(emulator.HeaderClientCertificateCAVerified, "FAILED:self signed certificate")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.fail("certificate login: %v", err)
	}
	resp.Body.Close()
	s.counts["certificate logins"]++
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	s.fail("a certificate login answered %d", resp.StatusCode)
	return false
}

// keyLogsInCached is credentialLogsIn remembered per set of credentials Auth0 has
// attached to the application: the emulator's answer depends on nothing else (no
// propagation delay; a certificate's expiry is part of the key, by the day).
func (s *sim) keyLogsInCached(clientID string, k *simKey, attached []string) bool {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%s|%s|%s|%s|%s", clientID, k.id, k.kid, k.alg, k.pem, k.cert, strings.Join(attached, ","))
	if k.cert != "" {
		fmt.Fprintf(h, "|%d", s.clock.Now().Unix()/3600)
	}
	fp := h.Sum64()
	if ok, seen := s.loginCache[fp]; seen {
		return ok
	}
	ok := s.credentialLogsIn(clientID, k)
	s.loginCache[fp] = ok
	return ok
}

// learnKey records a key (or certificate) creds served, and returns it.
func (r *simRole) learnKey(id, privatePEM, kid, alg, cert string, version int) *simKey {
	k := r.k.keys[id]
	if k == nil {
		k = &simKey{id: id, pem: privatePEM, kid: kid, alg: alg, cert: cert, version: version}
		r.k.keys[id] = k
	}
	return k
}

// credentialType is the credential_type of a role the simulation tracks as a key role.
func (k *simKeyRole) credentialType() string {
	if k.cert {
		return model.CredentialSelfSignedTLS
	}
	return model.CredentialPrivateKeyJWT
}

// onMethod reports whether the application authenticates with the role's method.
func (s *sim) onMethod(r *simRole) bool {
	if r.k.cert {
		return s.emu.UsesSelfSignedTLS(r.clientID)
	}
	return s.emu.UsesPrivateKeyJWT(r.clientID)
}

// checkKeyRole checks a private_key_jwt role and its application after a step
// (invariants 12 to 17; with 3's checks of versions and ownership).
func (s *sim) checkKeyRole(r *simRole, role *model.RoleEntry, stats emulator.Stats, crashed bool) {
	s.t.Helper()
	ctx, now, app := s.ctx, s.clock.Now(), r.clientID
	cur := role.CurrentVersion()
	pk := role.PendingKey
	stored, attached, ok := s.emu.Credentials(app)
	if !ok {
		s.fail("application %s missing from the emulator", app)
	}
	slices.Sort(attached)

	// 12. At most two credentials.
	if len(stored) > emulator.MaxCredentials || len(attached) > emulator.MaxCredentials {
		s.fail("invariant 12: Auth0 stores %d credentials (%s) for %s of role %s, %d attached", len(stored), describeCredentials(stored), app, r.name, len(attached))
	}
	if f := role.LastFailure; f != nil && (strings.Contains(f.Message, "Auth0's limit") || strings.Contains(f.Message, "maximum of")) && !r.limitExempt(role) {
		s.fail("invariant 12: role %s records hitting Auth0's credential limit: %s", r.name, f.Message)
	}

	// 13. Only Vault's keys, each registered once, and no client secret rotation.
	if role.ClientID != app || engine.KindFor(role.KindKey()).CredentialType() != r.k.credentialType() || role.Staged != nil {
		s.fail("role %s: client %s, credential type %q, staged %+v", r.name, role.ClientID, role.CredentialType, role.Staged)
	}
	if role.Warning != "" || role.Blocked != "" {
		s.fail("invariant 13: role %s: warning %q, blocked %q", r.name, role.Warning, role.Blocked)
	}
	if owner, err := model.LoadOwner(ctx, s.base, app); err != nil || owner != r.name {
		s.fail("invariant 3: %s is owned by %q (%v), want role %s", app, owner, err, r.name)
	}
	if n, m := stats.Rotations[app], stats.SecretPatches[app]; n != 0 || m != 0 {
		s.fail("invariant 13: Auth0 rotated the secret of private_key_jwt role %s's application %d times, PATCHed it %d times", r.name, n, m)
	}
	created := stats.CredentialsCreated[app]
	// A credential added in the Dashboard (drift) is neither created nor deleted through
	// the Management API: Vault deleting it would show here.
	own := len(stored) - btoi(r.foreign != "" && slices.ContainsFunc(stored, func(c emulator.CredentialInfo) bool { return c.ID == r.foreign }))
	if created-stats.CredentialsDeleted[app] != own {
		s.fail("harness: %s: %d credentials created, %d deleted, %d stored (%s; added outside Vault: %q)", app, created, stats.CredentialsDeleted[app], len(stored), describeCredentials(stored), r.foreign)
	}
	if created != cur && (pk == nil || created != cur+1) {
		s.fail("invariant 13: Auth0 created %d credentials for role %s, which is at version %d (pending key: %+v): a key registered twice, or one lost", created, r.name, cur, pk)
	}
	held := map[string]bool{}
	if c := role.Current(); c != nil {
		held[c.KeyID] = true
	}
	if ov := role.Overlap; ov != nil {
		for _, id := range ov.CredentialIDs {
			held[id] = true
		}
	}
	switch {
	case pk == nil:
		for _, c := range stored {
			if !held[c.ID] && c.ID != r.foreign {
				s.fail("invariant 13: role %s has no key pending (failure recorded: %v), yet Auth0 stores credential %s (%q), neither its current key (version %d) nor in its overlap %+v; stored: %s",
					r.name, role.LastFailure != nil, c.ID, c.Name, cur, role.Overlap, describeCredentials(stored))
			}
		}
		for _, id := range attached {
			if !held[id] && id != r.foreign {
				s.fail("invariant 13: role %s has no key pending, yet Auth0 has credential %s attached, neither its current key nor in its overlap %+v", r.name, id, role.Overlap)
			}
		}
		s.counts["key check no pending"]++
	case pk != nil:
		for _, c := range stored {
			if !held[c.ID] && c.ID != pk.CredentialID && c.Name != pk.Name && c.ID != r.foreign {
				s.fail("invariant 13: role %s (pending version %d, %q) lets Auth0 store credential %s (%q), neither current, in its overlap nor pending; stored: %s",
					r.name, pk.Version, pk.Name, c.ID, c.Name, describeCredentials(stored))
			}
		}
	}
	if c := role.Current(); c != nil && pk == nil && !slices.Contains(attached, c.KeyID) && !s.driftDetaching(r) {
		s.fail("invariant 13: role %s's current key %s (version %d) is not attached at Auth0 (attached %v)", r.name, c.KeyID, cur, attached)
	}
	onKeys := s.onMethod(r)
	if cur > 0 && !onKeys || cur == 0 && pk == nil && (onKeys || len(stored) > 0) {
		s.fail("invariant 13: role %s at version %d (pending %+v): application on %s %v, %d credentials stored", r.name, cur, pk, r.k.credentialType(), onKeys, len(stored))
	}
	if cur > 0 && !r.k.secretRefused {
		if s.authenticates(app, r.k.secret) {
			s.fail("invariant 13: role %s has a key, yet its application's old client secret still obtains a token", r.name)
		}
		r.k.secretRefused = true
	}

	// 3 for keys: versions consecutive, within max_versions, each with its own credential
	// and its private key stored.
	if len(role.Versions) > role.MaxVersions {
		s.fail("invariant 3: role %s retains %d versions, max_versions is %d", r.name, len(role.Versions), role.MaxVersions)
	}
	ids := map[string]bool{}
	for i, v := range role.Versions {
		if i > 0 && v.Version != role.Versions[i-1].Version+1 {
			s.fail("invariant 3: role %s: versions not consecutive: %s", r.name, describeVersions(role))
		}
		described := v.KID != "" && v.Algorithm != ""
		if r.k.cert {
			described = v.Thumbprint != "" && v.ExpiresAt.After(v.CreatedTime) && v.KID == ""
		}
		if v.Source != model.SourceRotate && v.Source != model.SourceScheduled || v.KeyID == "" || !described || ids[v.KeyID] {
			s.fail("invariant 3: role %s: version %d: source %q, key_id %q, kid %q, algorithm %q, thumbprint %q, expires %s (key ids seen %v)", r.name, v.Version, v.Source, v.KeyID, v.KID, v.Algorithm, v.Thumbprint, v.ExpiresAt, ids)
		}
		ids[v.KeyID] = true
		sec, err := model.LoadSecret(ctx, s.base, r.name, role, v.Version)
		if err != nil || sec == nil || sec.PrivateKey == "" || sec.KeyID != v.KeyID || sec.KID != v.KID || sec.Secret != "" || r.k.cert && (sec.Certificate == "" || sec.Thumbprint != v.Thumbprint) {
			s.fail("invariant 3: role %s: version %d (%s) has secret entry with key id %q, private key set %v, %v", r.name, v.Version, v.KeyID, keyIDOf(sec), sec != nil && sec.PrivateKey != "", err)
		}
	}
	if pk != nil && pk.Version != cur+1 {
		s.fail("invariant 13: role %s at version %d has pending key version %d", r.name, cur, pk.Version)
	}

	// 14. What creds/<name> serves.
	creds, err := model.LoadCreds(ctx, s.base, r.name)
	if err != nil {
		s.fail("creds/%s: %v", r.name, err)
	}
	switch {
	case creds == nil:
		if cur > 0 {
			s.fail("invariant 14: role %s has version %d but creds/%s holds nothing", r.name, cur, r.name)
		}
	case creds.Current.Version == cur && cur > 0:
		if c := role.Current(); creds.Current.KeyID != c.KeyID || creds.Current.KID != c.KID || creds.Current.PrivateKey == "" {
			s.fail("invariant 14: creds/%s serves version %d with credential %s, the role's is %s", r.name, cur, creds.Current.KeyID, c.KeyID)
		}
	case pk != nil && creds.Current.Version == pk.Version:
		// A commit cut short between creds and the role: the pending key, attached and
		// proven already.
		if creds.Current.KeyID != pk.CredentialID || pk.CredentialID == "" {
			s.fail("invariant 14: creds/%s serves version %d ahead of the role with credential %s, the pending key's is %q", r.name, pk.Version, creds.Current.KeyID, pk.CredentialID)
		}
		s.counts["key creds ahead of a commit"]++
	default:
		s.fail("invariant 14: creds/%s serves version %d, the role is at version %d (pending key %+v)", r.name, creds.Current.Version, cur, pk)
	}
	if creds != nil && creds.Previous != nil {
		ov := role.Overlap
		ahead := pk != nil && creds.Current.Version == pk.Version
		if !ahead && (ov == nil || ov.Version != creds.Previous.Version || !slices.Contains(ov.CredentialIDs, creds.Previous.KeyID)) {
			s.fail("invariant 14: creds/%s serves previous version %d (%s), but the role's overlap is %+v", r.name, creds.Previous.Version, creds.Previous.KeyID, ov)
		}
	}

	// 16. No key material in what the role and its versions answer.
	for _, path := range []string{"roles/", "versions/"} {
		resp, err := s.request(logical.ReadOperation, path+r.name, nil)
		if crashed {
			break
		}
		if err != nil || resp == nil || resp.IsError() {
			s.fail("reading %s%s: %s", path, r.name, outcome(resp, err))
		}
		if leak := s.keyLeakIn(responseText(resp, err)); leak != "" {
			s.fail("invariant 16: %s%s answers private key material (%s)", path, r.name, leak)
		}
	}

	// Through the backend, as an application reads it.
	var current, previous *simKey
	if creds != nil && !crashed {
		resp, err := s.request(logical.ReadOperation, "creds/"+r.name, nil)
		if err != nil || resp == nil || resp.IsError() {
			s.fail("invariant 14: reading creds/%s: %s", r.name, outcome(resp, err))
		}
		d := resp.Data
		str := func(k string) string { v, _ := d[k].(string); return v }
		if r.k.cert {
			// Certificate roles: no key id in creds; the certificate is what identifies it.
			if _, ok := d["client_secret"]; ok || d["version"] != creds.Current.Version || str("private_key") != creds.Current.PrivateKey || str("certificate") != creds.Current.Certificate ||
				str("thumbprint_sha256") != creds.Current.Thumbprint || str("expires_at") != creds.Current.ExpiresAt.Format(time.RFC3339) {
				s.fail("invariant 14: creds/%s served version %v (thumbprint %s), storage holds version %d (thumbprint %s), or a client_secret", r.name, d["version"], str("thumbprint_sha256"), creds.Current.Version, creds.Current.Thumbprint)
			}
			if !creds.Current.ExpiresAt.After(now) && !r.limitExempt(role) && r.k.stalled != creds.Current.Version {
				s.fail("invariant 18: creds/%s serves a certificate (version %d) that expired at %s; the role's due time %s, pending %+v, overlap %+v, failure %+v, next rotation %s",
					r.name, creds.Current.Version, creds.Current.ExpiresAt.Format(time.RFC3339), engine.DueTime(role, now).Format(time.RFC3339Nano), pk, role.Overlap, role.LastFailure, role.NextVaultRotation)
			}
			d["key_id"] = creds.Current.KeyID
			if creds.Previous != nil {
				d["previous_key_id"] = creds.Previous.KeyID
			}
		} else if _, ok := d["client_secret"]; ok || d["version"] != creds.Current.Version || str("private_key") != creds.Current.PrivateKey || str("key_id") != creds.Current.KeyID || str("kid") != creds.Current.KID || str("algorithm") != creds.Current.Algorithm {
			s.fail("invariant 14: creds/%s served version %v (key %s), storage holds version %d (key %s), or a client_secret", r.name, d["version"], str("key_id"), creds.Current.Version, creds.Current.KeyID)
		}
		current = r.learnKey(str("key_id"), str("private_key"), str("kid"), str("algorithm"), str("certificate"), creds.Current.Version)
		if p := str("previous_private_key"); p != "" {
			if creds.Previous == nil || str("previous_key_id") != creds.Previous.KeyID || str("previous_certificate") != creds.Previous.Certificate {
				s.fail("invariant 14: creds/%s served previous key %s, storage holds %s", r.name, str("previous_key_id"), redactKey(creds.Previous))
			}
			previous = r.learnKey(str("previous_key_id"), p, str("previous_kid"), str("algorithm"), str("previous_certificate"), creds.Previous.Version)
		} else if creds.Previous != nil && (creds.Previous.ExpiresAt.IsZero() || creds.Previous.ExpiresAt.After(now)) {
			// (An expired previous certificate is not served while its detachment waits.)
			s.fail("invariant 14: creds/%s serves no previous key, storage holds %s", r.name, redactKey(creds.Previous))
		}
	}
	// A drift that detached the current key, or a certificate that expired while a
	// credential added outside Vault took the slot its renewal needs: no login expected.
	outage := s.driftDetaching(r) || r.k.cert && creds != nil && (r.limitExempt(role) || r.k.stalled == creds.Current.Version) && !creds.Current.ExpiresAt.After(now)
	if current != nil && cur > 0 && !outage {
		// Also while a new key is pending: the current one stays attached next to it.
		if !s.keyLogsInCached(app, current, attached) {
			s.fail("invariant 14: the key creds/%s serves (version %d, credential %s) does not log in; pending key %+v; attached %v; versions %s", r.name, current.version, current.id, pk, attached, describeVersions(role))
		}
		s.counts["key check current"]++
	}
	if current != nil && !current.published {
		// Served only once Auth0 has had propagation_wait to apply its attachment.
		s.mu.Lock()
		at, ok := s.attachedAt[current.id]
		s.mu.Unlock()
		if served := creds.Current.CreatedTime; !ok || served.Before(at.Add(s.propagationWait)) {
			s.fail("invariant 14: creds/%s serves key %s (version %d) from %s, but Auth0 attached it at %s (seen: %v), less than propagation_wait %s before",
				r.name, current.id, current.version, served.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano), ok, s.propagationWait)
		}
		current.published = true
	}
	if r.k.assertions && current != nil && cur > 0 && !crashed && !outage {
		s.checkAssertion(r, current, attached)
	}
	if previous != nil {
		// Also past overlap_until and after end_overlap=true: the engine stops serving the
		// previous key before it asks Auth0 to detach it.
		if !s.keyLogsInCached(app, previous, attached) {
			s.fail("invariant 14: the previous key creds/%s serves (version %d, credential %s, overlap until %s, end_overlap asked %v) does not log in; attached %v; overlap %+v",
				r.name, previous.version, previous.id, creds.OverlapUntil.Format(time.RFC3339Nano), previous.ended, attached, role.Overlap)
		}
		s.counts["key check previous"]++
	}

	// 17. Key schedule: a key rotation that is not a manual rotate starts only for a
	// role with a schedule, once it is due and the previous key's overlap is over.
	if pre := r.pre; pre != nil {
		var started time.Time
		source := ""
		switch {
		case pk != nil && (pre.PendingKey == nil || pre.PendingKey.Version != pk.Version || !pre.PendingKey.Started.Equal(pk.Started)):
			started, source = pk.Started, pk.Source
		case pre.PendingKey == nil && cur > pre.CurrentVersion():
			if v := role.Version(pre.CurrentVersion() + 1); v != nil {
				started, source = v.CreatedTime, v.Source
			} else {
				started, source = role.Current().CreatedTime, role.Current().Source
			}
		}
		if source == model.SourceScheduled && r.driftRotating() {
			s.counts["drift rotation"]++ // the retry of the rotation that takes back a drift (22)
		} else if source == model.SourceScheduled {
			due := model.Later(pre.NextVaultRotation, pre.NextAttempt)
			renewal := time.Time{} // a certificate's: two thirds into its lifetime
			if c := pre.Current(); r.k.cert && c != nil {
				renewal = model.Later(c.CreatedTime.Add(c.ExpiresAt.Sub(c.CreatedTime)*2/3), pre.NextAttempt)
				if !pre.Scheduled() || renewal.Before(due) {
					due = renewal
				}
			}
			if pre.Overlap != nil {
				due = model.Later(due, pre.Overlap.Until)
			}
			switch {
			case !pre.Scheduled() && renewal.IsZero():
				s.fail("invariant 17: role %s has no schedule (rotation_period %s, rotation_schedule %q), yet a key rotation (version %d) started at %s without a manual rotate; overlap before it: %+v",
					r.name, pre.RotationPeriod, pre.RotationSchedule, pre.CurrentVersion()+1, started.Format(time.RFC3339Nano), pre.Overlap)
			case started.Before(due):
				s.fail("invariant 17: role %s started a scheduled key rotation (version %d) at %s, before its stored due time %s (next_vault_rotation %s, next_attempt %s, overlap %+v)",
					r.name, pre.CurrentVersion()+1, started.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano), pre.NextVaultRotation.Format(time.RFC3339Nano), pre.NextAttempt.Format(time.RFC3339Nano), pre.Overlap)
			}
			s.counts["key rotation scheduled"]++
		}
	}

	// 15. Overlap. A rotation puts the key it replaces in the overlap, until
	// overlap_period after the new version.
	if c := role.Current(); c != nil && pk == nil && cur == r.k.cur+1 && r.k.curKeyID != "" {
		until := c.CreatedTime.Add(role.OverlapPeriodOrDefault())
		if r.k.cert {
			// A certificate's overlap ends when it expires: the version's record says when,
			// or, once max_versions dropped the version, Auth0's.
			var exp time.Time
			if prev := role.Version(cur - 1); prev != nil {
				exp = prev.ExpiresAt
			} else if exp = s.credentialExpiry(r.clientID, r.k.curKeyID); exp.IsZero() {
				// Deleted at Auth0 too: it expired before it was replaced (a credential
				// added outside Vault held up its renewal), as the certificate served says.
				exp = certificateExpiry(r.k.keys[r.k.curKeyID])
			}
			if !exp.IsZero() && exp.Before(until) {
				until = exp
			}
		}
		ov := role.Overlap
		switch {
		case !now.Before(until):
			// Over already (overlap_period 0, or a late check).
		case ov == nil || !slices.Contains(ov.CredentialIDs, r.k.curKeyID) || !ov.Until.Equal(until):
			s.fail("invariant 15: role %s rotated to version %d at %s, but its overlap %+v does not hold the key it replaced (%s) until %s",
				r.name, cur, c.CreatedTime.Format(time.RFC3339Nano), ov, r.k.curKeyID, until.Format(time.RFC3339Nano))
		}
	}
	if ov, c := role.Overlap, role.Current(); ov != nil && c != nil {
		for _, id := range ov.CredentialIDs {
			if k := r.k.keys[id]; k != nil && id != c.KeyID && ov.Until.After(k.until) {
				k.until = ov.Until
			}
		}
	}
	for _, k := range sortedKeys(r.k.keys) {
		isAttached := slices.Contains(attached, k.id)
		switch {
		case k.dead && isAttached && r.driftKeys[k.id]:
			k.dead = false // detached behind Vault's back, and Vault took it back
		case k.dead && isAttached:
			s.fail("invariant 15: role %s's key %s (version %d), detached before, is back at Auth0 (attached %v)", r.name, k.id, k.version, attached)
		case k.dead:
		case !k.ended && now.Before(k.until) && (!isAttached || !s.keyLogsInCached(app, k, attached)):
			s.fail("invariant 15: role %s's key %s (version %d) must log in until its overlap ends at %s, but it is %s (attached %v)",
				r.name, k.id, k.version, k.until.Format(time.RFC3339Nano), map[bool]string{true: "refused", false: "detached"}[isAttached], attached)
		case !isAttached:
			if s.credentialLogsIn(app, k) {
				s.fail("invariant 15: role %s's key %s (version %d) is detached at Auth0, yet it still logs in", r.name, k.id, k.version)
			}
			k.dead = true
			s.counts["key detached"]++
		}
	}
	r.k.cur = cur
	if c := role.Current(); c != nil {
		r.k.curKeyID = c.KeyID
	}
}

// checkAssertion checks, when the key creds/<name> serves or the credentials attached
// changed since the last check, that assertion/<name> signs with a key that logs in, and
// answers no key material (invariants 14 and 16).
func (s *sim) checkAssertion(r *simRole, current *simKey, attached []string) {
	s.t.Helper()
	fp := current.id + "|" + strings.Join(attached, ",")
	if fp == r.k.assertionFP {
		return
	}
	r.k.assertionFP = fp
	resp, err := s.request(logical.ReadOperation, "assertion/"+r.name, nil)
	if err != nil || resp == nil || resp.IsError() {
		s.fail("invariant 14: reading assertion/%s: %s", r.name, outcome(resp, err))
	}
	if leak := s.keyLeakIn(responseText(resp, err)); leak != "" {
		s.fail("invariant 16: assertion/%s answers private key material (%s)", r.name, leak)
	}
	assertion, _ := resp.Data["client_assertion"].(string)
	if resp.Data["client_id"] != r.clientID || resp.Data["client_assertion_type"] != auth0api.ClientAssertionType || !s.assertionLogsIn(r.clientID, assertion) {
		s.fail("invariant 14: the client assertion assertion/%s signs (with the key of version %d, credential %s, creds serves) does not log in; attached %v", r.name, current.version, current.id, attached)
	}
	s.counts["key check assertion/"]++
}

func sortedKeys(m map[string]*simKey) []*simKey {
	out := make([]*simKey, 0, len(m))
	for _, k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].version < out[j].version || out[i].version == out[j].version && out[i].id < out[j].id
	})
	return out
}

func describeCredentials(stored []emulator.CredentialInfo) string {
	var parts []string
	for _, c := range stored {
		parts = append(parts, fmt.Sprintf("%s(%q)", c.ID, c.Name))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func keyIDOf(sec *model.SecretEntry) string {
	if sec == nil {
		return "<none>"
	}
	return sec.KeyID
}

// redactKey describes a key's secret entry without the key.
func redactKey(sec *model.SecretEntry) string {
	if sec == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{version %d key_id %s kid %s private key set %v}", sec.Version, sec.KeyID, sec.KID, sec.PrivateKey != "")
}

// keyUnsettled reports whether a private_key_jwt role still has work to finish before the
// run may end: a pending key, or an overlap past its end.
func keyUnsettled(role *model.RoleEntry, now time.Time) bool {
	return role.PendingKey != nil || role.Overlap != nil && !now.Before(role.Overlap.Until)
}

// finalKeyCheck: a private_key_jwt role with a version serves a key that logs in, and one
// without never switched its application (invariant 5).
func (s *sim) finalKeyCheck(r *simRole) {
	s.t.Helper()
	role := s.storedRole(r.name)
	stored, attached, _ := s.emu.Credentials(r.clientID)
	if role.CurrentVersion() == 0 {
		if len(stored) > 0 || s.onMethod(r) || !s.authenticates(r.clientID, r.k.secret) {
			s.fail("invariant 5: role %s has no key, yet its application has credentials %s or lost its secret", r.name, describeCredentials(stored))
		}
		return
	}
	resp, err := s.request(logical.ReadOperation, "creds/"+r.name, nil)
	if err != nil || resp == nil || resp.IsError() {
		s.fail("invariant 5: reading creds/%s: %s", r.name, outcome(resp, err))
	}
	d := resp.Data
	str := func(k string) string { v, _ := d[k].(string); return v }
	if r.k.cert {
		d["key_id"] = role.Current().KeyID // creds of a certificate role name no credential
		if str("thumbprint_sha256") != role.Current().Thumbprint {
			d["key_id"] = "a certificate of thumbprint " + str("thumbprint_sha256")
		}
	}
	cur := &simKey{pem: str("private_key"), kid: str("kid"), alg: str("algorithm"), cert: str("certificate")}
	if str("key_id") != role.Current().KeyID || !slices.Contains(attached, str("key_id")) || !s.credentialLogsIn(r.clientID, cur) {
		s.fail("invariant 5: the key creds/%s serves (%s) is not the role's current one (%s), or does not log in (attached %v)", r.name, str("key_id"), role.Current().KeyID, attached)
	}
	if p := str("previous_private_key"); p != "" && !s.credentialLogsIn(r.clientID, &simKey{pem: p, kid: str("previous_kid"), alg: str("algorithm"), cert: str("previous_certificate")}) {
		s.fail("invariant 5: the previous key creds/%s serves (%s, overlap until %v) does not log in", r.name, str("previous_key_id"), d["overlap_until"])
	}
}

// usesKeys reports whether the role rotates a private_key_jwt key pair.
func usesKeys(r *model.RoleEntry) bool {
	return engine.KindFor(r.KindKey()).CredentialType() == model.CredentialPrivateKeyJWT
}

// isStaged reports whether the role rotates with the staged strategy.
func isStaged(r *model.RoleEntry) bool {
	return engine.KindFor(r.KindKey()).Strategy() == model.StrategyStaged
}

// certificateExpiry is when the certificate of k (creds served it) expires; zero if k is
// not a certificate the simulation saw.
func certificateExpiry(k *simKey) time.Time {
	if k == nil || k.cert == "" {
		return time.Time{}
	}
	block, _ := pem.Decode([]byte(k.cert))
	if block == nil {
		return time.Time{}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Time{}
	}
	return cert.NotAfter
}

// noteStalls marks the certificate roles whose current certificate a stalled scheduler
// let expire: the role fell due after the last run of the scheduler (at s.lastRunDue) and
// before now, when the jobs run, and its certificate expires after that due time but
// before a renewal started now can be published (propagation_wait, and some retries).
// Invariants 14 and 18 hold them to nothing until a new version is current.
func (s *sim) noteStalls(sch *engine.Scheduler, now time.Time) {
	for _, r := range s.roles {
		if r.k == nil || !r.k.cert {
			continue
		}
		due, ok := sch.Queue.Due(r.name)
		if !ok || !due.After(s.lastRunDue) || !due.Before(now) {
			continue
		}
		role, err := model.LoadRole(s.ctx, s.base, r.name)
		if err != nil || role == nil || role.Current() == nil {
			continue
		}
		if exp := role.Current().ExpiresAt; exp.After(due) && !exp.After(now.Add(s.propagationWait+simStallMargin)) {
			r.k.stalled = role.CurrentVersion()
			s.counts["certificate expired while the scheduler stalled"]++
		}
	}
}

// simStallMargin is how long after a stall the engine may take, beyond propagation_wait,
// to publish the renewal of a certificate that expired during it: retries of faults met
// on the way.
const simStallMargin = 30 * time.Minute
