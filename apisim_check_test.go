package auth0

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// check verifies, with no request in flight, reading storage and the emulator directly:
//
//   - per role, the engine simulation's invariant 3 as it applies to any role: versions
//     consecutive, at most max_versions retained, each with its secret entry; a staged
//     secret only on a staged role, numbered current+1, with its entry; creds/<name>
//     nothing before the first version, then the current version with its entry's
//     credential, or the next one ahead of the role only while a rotation (a write-ahead
//     entry), a switch (the staged secret) or a key (pending) is in flight, a commit cut
//     short; as previous only a retained version; as next the staged secret; no creds
//     without a role, no role blocked or bound to another application;
//   - no half-stored role: creds/<name> carries the role's definition (client_id,
//     token_audiences, strategy, credential type, schedule), not another write's;
//   - the credential creds serve is one Auth0 accepts (for a secret, the one Auth0 holds,
//     unless a rotation or switch is in flight and Auth0 holds its; for a key, attached);
//   - the active node's caches: its creds cache holds what storage holds, and it caches
//     no token of a role for an audience the role does not list (nor any of a role that
//     lists none, or no longer exists);
//   - no secret or key in the log, no panic reported in it.
func (a *apiSim) check(stage string) {
	ctx := context.Background()
	n := a.node.Load()
	wals := a.walsByRole()
	for _, r := range a.roles {
		if msg := a.checkRole(ctx, n, r, wals[r.name]); msg != "" {
			a.problem("%s: role %s: %s", stage, r.name, msg)
		}
	}
	if msg := a.checkTokenCache(ctx, n); msg != "" {
		a.problem("%s: %s", stage, msg)
	}
	if leak := a.logs.leak(); leak != "" {
		a.problem("%s: %s", stage, leak)
	}
	if lines := a.logs.panicLines(); len(lines) > 0 {
		a.problem("%s: the engine logged a panic: %s", stage, lines[0])
	}
}

func (a *apiSim) checkRole(ctx context.Context, n *apiNode, r *apiRole, wals int) string {
	role, err := model.LoadRole(ctx, a.base, r.name)
	if err != nil {
		return err.Error()
	}
	creds, err := model.LoadCreds(ctx, a.base, r.name)
	if err != nil {
		return err.Error()
	}
	if msg := a.checkCredsCache(n, r.name, creds); msg != "" {
		return msg
	}
	if role == nil {
		a.mu.Lock()
		createCut := a.createCut[r.name]
		a.mu.Unlock()
		switch {
		case creds == nil:
		case createCut:
			a.count("check: creds left by a create cut short")
		case apiAllowed("orphan-creds"):
			a.count("allowed: creds of a role that does not exist")
		default:
			return fmt.Sprintf("creds/%s serves version %d of a role that does not exist (a create or delete cut short)", r.name, creds.Current.Version)
		}
		return ""
	}
	if role.ClientID != r.clientID || role.Blocked != "" {
		return fmt.Sprintf("binds %s (want %s), blocked %q", role.ClientID, r.clientID, role.Blocked)
	}
	if cut, _ := a.deleteState(r.name); cut {
		a.count("check: role left by a delete cut short")
		return "" // its creds and secrets may be gone: it serves nothing until deleted again
	}

	// Versions.
	cur := role.CurrentVersion()
	if len(role.Versions) > role.MaxVersions {
		return fmt.Sprintf("retains %d versions, max_versions is %d", len(role.Versions), role.MaxVersions)
	}
	secrets := map[int]*model.SecretEntry{}
	for i, v := range role.Versions {
		if i > 0 && v.Version != role.Versions[i-1].Version+1 {
			return "versions not consecutive: " + describeVersions(role)
		}
		sec, err := model.LoadSecret(ctx, a.base, r.name, role, v.Version)
		if err != nil || sec == nil || sec.Version != v.Version || sec.Secret == "" && sec.PrivateKey == "" {
			return fmt.Sprintf("retained version %d has secret entry %s (%v)", v.Version, redact(sec), err)
		}
		a.logs.addSecret(sec.Secret)
		secrets[v.Version] = sec
	}

	// Staged state.
	var staged *model.SecretEntry
	if st := role.Staged; st != nil {
		if !isStaged(role) || st.Version != cur+1 {
			return fmt.Sprintf("stores staged version %d with strategy %q at version %d", st.Version, role.RotationStrategy, cur)
		}
		staged, err = model.LoadSecret(ctx, a.base, r.name, nil, st.Version)
		if err != nil || staged == nil || staged.Version != st.Version || staged.Source != model.SourceStaged || staged.Secret == "" {
			return fmt.Sprintf("staged version %d has secret entry %s (%v)", st.Version, redact(staged), err)
		}
		a.logs.addSecret(staged.Secret)
	}
	if role.PendingKey != nil && !r.keys {
		return "a client-secret role has a pending key"
	}

	// What creds serve.
	if creds == nil {
		if cur > 0 {
			return fmt.Sprintf("has version %d, but creds/%s holds nothing", cur, r.name)
		}
		return ""
	}
	if creds.Current == nil {
		return "creds hold no current version"
	}
	served := creds.Current.Version
	switch {
	case served == cur && cur > 0:
		if !sameCredential(creds.Current, secrets[cur]) {
			return fmt.Sprintf("creds serve version %d with another credential than its secret entry", cur)
		}
		if staged != nil && (creds.Next == nil || creds.Next.Secret != staged.Secret) {
			return fmt.Sprintf("stages version %d, but creds do not publish it as next", staged.Version)
		}
	case served == cur+1 && staged != nil && creds.Current.Secret == staged.Secret:
		a.count("check: creds ahead of a switch")
	case served == cur+1 && r.keys && role.PendingKey != nil && role.PendingKey.Version == served:
		a.count("check: creds ahead of a pending key")
	case served == cur+1 && !r.keys && wals > 0:
		sec, err := model.LoadSecret(ctx, a.base, r.name, nil, served)
		if err != nil || !sameCredential(creds.Current, sec) {
			return fmt.Sprintf("creds serve version %d ahead of the role (version %d), and no secret entry of the rotation in flight matches it", served, cur)
		}
		a.count("check: creds ahead of a rotation")
	default:
		return fmt.Sprintf("creds serve version %d; the role's current version is %d (rotations in flight %d, staged %v, pending key %v); versions %s",
			served, cur, wals, role.Staged != nil, role.PendingKey != nil, describeVersions(role))
	}
	if p := creds.Previous; p != nil && !sameCredential(p, secrets[p.Version]) {
		return fmt.Sprintf("creds serve as previous version %d, which the role does not retain (or with another credential); versions %s", p.Version, describeVersions(role))
	}
	if creds.Next != nil && staged == nil {
		a.count("check: stale next")
	}

	// No half-stored role.
	want := *creds
	engine.CredsMeta(role, &want)
	halfStored := creds.ClientID != want.ClientID || !slices.Equal(creds.TokenAudiences, want.TokenAudiences) || creds.Strategy != want.Strategy ||
		creds.CredentialType != want.CredentialType || creds.RotationPeriod != want.RotationPeriod || creds.RotationSchedule != want.RotationSchedule
	if halfStored && apiAllowed("half-stored") {
		a.count("allowed: half-stored role")
	} else if halfStored {
		return fmt.Sprintf("half-stored: creds/%s carries token_audiences %v, strategy %q, period %s, schedule %q; the role %v, %q, %s, %q",
			r.name, creds.TokenAudiences, creds.Strategy, creds.RotationPeriod, creds.RotationSchedule,
			role.TokenAudiences, role.RotationStrategy, role.RotationPeriod, role.RotationSchedule)
	}

	// The credential served is one Auth0 accepts.
	if r.keys {
		if _, attached, _ := a.emu.Credentials(r.clientID); !slices.Contains(attached, creds.Current.KeyID) {
			return fmt.Sprintf("creds serve key %s (version %d), which Auth0 does not have attached (%v)", creds.Current.KeyID, served, attached)
		}
		return ""
	}
	auth0, _ := a.emu.ClientSecret(r.clientID)
	switch {
	case auth0 == creds.Current.Secret:
	case wals > 0:
		a.count("check: Auth0 ahead, rotation in flight")
	case staged != nil && auth0 == staged.Secret:
		a.count("check: Auth0 holds the staged secret")
	default:
		cancelled := ""
		if len(role.Cancelled) > 0 {
			c := role.Cancelled[len(role.Cancelled)-1]
			cancelled = fmt.Sprintf("; last cancelled stage: version %d, switching %s, cancelled %s",
				c.Version, c.StagedTime.Format(time.TimeOnly), c.CancelledTime.Format(time.TimeOnly))
		}
		return fmt.Sprintf("creds serve version %d, a secret Auth0 refuses: Auth0 holds neither it, nor a staged secret, and no rotation is in flight; strategy %q, versions %s%s",
			served, role.RotationStrategy, describeVersions(role), cancelled)
	}
	return ""
}

// sameCredential reports whether a and b hold the same version and credential.
func sameCredential(a, b *model.SecretEntry) bool {
	return a != nil && b != nil && a.Version == b.Version && a.Secret == b.Secret && a.PrivateKey == b.PrivateKey && a.KeyID == b.KeyID
}

// checkCredsCache: the node's cached creds of name, if any, are what storage holds.
func (a *apiSim) checkCredsCache(n *apiNode, name string, stored *model.CredsEntry) string {
	l := n.b.CredsCache.Lru.Load()
	if l == nil {
		return ""
	}
	cached, ok := l.Peek(name)
	if !ok {
		return ""
	}
	got, _ := json.Marshal(cached)
	want, _ := json.Marshal(stored)
	if stored == nil || string(got) != string(want) {
		v := 0
		if stored != nil {
			v = stored.Current.Version
		}
		return fmt.Sprintf("node %d's creds cache holds version %d, storage version %d (or another entry)", n.id, cached.Current.Version, v)
	}
	return ""
}

// checkTokenCache: every token the node caches is for an audience its role lists.
func (a *apiSim) checkTokenCache(ctx context.Context, n *apiNode) string {
	return a.checkTokensOf(ctx, n, func(string) bool { return true })
}

// checkTokensOf is checkTokenCache for the roles of, here or when every request stopped;
// while requests run, the caller holds the role's lock, so that no change of the role is
// half done (a change drops the role's tokens before it releases the lock).
func (a *apiSim) checkTokensOf(ctx context.Context, n *apiNode, of func(role string) bool) string {
	n.b.Tokens.Mu.Lock()
	cached := map[engine.TokenKey]string{} // the audience each token is for
	for k, tok := range n.b.Tokens.Entries {
		if of(k.Role) {
			cached[k] = tok.Audience
		}
	}
	n.b.Tokens.Mu.Unlock()
	for k, aud := range cached {
		creds, err := model.LoadCreds(ctx, a.base, k.Role)
		listed := creds != nil && len(creds.TokenAudiences) > 0 &&
			(k.Audience == "" && aud == creds.TokenAudiences[0] || k.Audience != "" && slices.Contains(creds.TokenAudiences, k.Audience))
		a.mu.Lock()
		failed := a.failedWrite[k.Role]
		a.mu.Unlock()
		switch {
		case err != nil:
			return err.Error()
		case !listed && failed && apiAllowed("failed-write-token"):
			a.count("allowed: token cached by a failed role write")
		case creds == nil || len(creds.TokenAudiences) == 0:
			return fmt.Sprintf("node %d caches a token of role %s for audience %q, and the role lists none (or has no credential)", n.id, k.Role, k.Audience)
		case k.Audience != "" && !slices.Contains(creds.TokenAudiences, k.Audience):
			return fmt.Sprintf("node %d caches a token of role %s for audience %q, which the role does not list (it lists %v)", n.id, k.Role, k.Audience, creds.TokenAudiences)
		case !listed:
			return fmt.Sprintf("node %d caches, as role %s's default, a token for audience %q; the role's default is %q", n.id, k.Role, aud, creds.TokenAudiences[0])
		}
	}
	return ""
}

// walsByRole counts the rotation write-ahead entries in storage, by role.
func (a *apiSim) walsByRole() map[string]int {
	ctx := context.Background()
	out := map[string]int{}
	ids, err := framework.ListWAL(ctx, a.base)
	if err != nil {
		a.problem("listing write-ahead entries: %v", err)
		return out
	}
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, a.base, id)
		if err != nil || entry == nil || entry.Kind != engine.WALKindRotation {
			continue
		}
		if w, err := engine.DecodeRotationWAL(entry.Data); err == nil {
			out[w.Role]++
		}
	}
	return out
}

// secretLogsIn reports whether the emulator gives clientID a token for secret.
func (a *apiSim) secretLogsIn(clientID, secret string) bool {
	return a.login(url.Values{"client_id": {clientID}, "client_secret": {secret}})
}

// keyLogsIn reports whether the emulator gives clientID a token for a client assertion
// signed with privatePEM, as an application signs it.
func (a *apiSim) keyLogsIn(clientID, privatePEM, kid, alg string) bool {
	key, err := auth0api.ParsePrivateKey(privatePEM)
	if err != nil {
		a.problem("a served private key does not parse: %v", err)
		return false
	}
	host := strings.TrimPrefix(a.emuURL, "http://")
	assertion, err := emulator.SignAssertion(key, alg, kid, clientID, "https://"+host+"/", a.clock.Now(), time.Minute)
	if err != nil {
		a.problem("signing an assertion with a served key: %v", err)
		return false
	}
	return a.login(url.Values{"client_id": {clientID}, "client_assertion_type": {auth0api.ClientAssertionType}, "client_assertion": {assertion}})
}

func (a *apiSim) login(form url.Values) bool {
	form.Set("grant_type", "client_credentials")
	form.Set("audience", apiAudiences[0])
	req, err := http.NewRequest(http.MethodPost, a.emuURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		a.problem("login: %v", err)
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(simProbeHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.problem("login: %v", err)
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
