package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// token/<name> mints access tokens with a role's credential, so that an application that
// only needs tokens never holds the credential. Tokens are cached per role and audience,
// in memory only: a hit reads no storage and calls nobody; a miss, or a token past
// token_refresh_fraction of its lifetime, asks Auth0 once for all concurrent readers.

const (
	// tokenAcceptWindow is how long after a credential changed a refusal of it is taken
	// for Auth0's propagation (up to 30 s documented) and retried.
	tokenAcceptWindow = 30 * time.Second
	// minTokenPause bounds the wait after a 429 at /oauth/token that says no longer.
	minTokenPause = time.Second
)

// cachedToken is an access token as Auth0 issued it.
type cachedToken struct {
	AccessToken string
	TokenType   string
	Scope       string
	Audience    string
	ObtainedAt  time.Time
	ExpiresAt   time.Time
	RefreshAt   time.Time
}

// TokenKey identifies a cache entry; audience "" is the role's default.
type TokenKey struct{ Role, Audience string }

// tokenStats counts, per role on this node, what token/ cost Auth0.
type tokenStats struct {
	Hits, Misses, Requests, Failures atomic.Int64
}

const (
	// MaxTokenPause caps the wait after a 429 at /oauth/token: whatever Auth0's headers
	// say, one request goes out again after this long.
	MaxTokenPause = 5 * time.Minute
	// TokenRefusalMemory is how long a refusal of a role's token request (403, 400, a
	// credential refused after the propagation window) is answered from memory, so that
	// readers of a role Auth0 refuses do not each send a request.
	TokenRefusalMemory = 15 * time.Second
)

// tokenRefusal is a refused token request, remembered until until.
type tokenRefusal struct {
	err   error
	until time.Time
}

// tokenCache holds the tokens of every role of the mount.
type tokenCache struct {
	Mu      sync.Mutex
	Entries map[TokenKey]*cachedToken
	Refused map[TokenKey]tokenRefusal
	// A fetch reads its role's generation before it checks the role, and stores its token
	// only if the generation is unchanged: a role write, rotation, delete or config change
	// in between means the token may be for a credential or audience no longer in force.
	// seq numbers every change; gen holds the number of the role's last one, and floor,
	// that of the last change that forgot roles (a delete, a config change), for roles
	// gen does not list. So the maps hold only roles that exist.
	seq   uint64
	floor uint64
	Gen   map[string]uint64
	Stats map[string]*tokenStats
	// pausedUntil holds token requests back after Auth0 answered 429: per client_id for a
	// rate limit, under "" for the tenant's machine-to-machine quota.
	pausedUntil map[string]time.Time
	flight      singleflight.Group
}

func newTokenCache() *tokenCache {
	return &tokenCache{
		Entries:     map[TokenKey]*cachedToken{},
		Refused:     map[TokenKey]tokenRefusal{},
		Gen:         map[string]uint64{},
		Stats:       map[string]*tokenStats{},
		pausedUntil: map[string]time.Time{},
	}
}

func (c *tokenCache) Get(k TokenKey) *cachedToken {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.Entries[k]
}

func (c *tokenCache) StatsOf(role string) *tokenStats {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	st := c.Stats[role]
	if st == nil {
		st = new(tokenStats)
		c.Stats[role] = st
	}
	return st
}

func (c *tokenCache) Generation(role string) uint64 {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	return c.generationLocked(role)
}

func (c *tokenCache) generationLocked(role string) uint64 {
	if g, ok := c.Gen[role]; ok {
		return g
	}
	return c.floor
}

// put stores tok unless the role's tokens were dropped since gen was read.
func (c *tokenCache) put(k TokenKey, gen uint64, tok *cachedToken) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.generationLocked(k.Role) == gen {
		c.Entries[k] = tok
		delete(c.Refused, k)
	}
}

// refusal is the remembered refusal for k, if it is of generation gen and not over.
func (c *tokenCache) refusal(k TokenKey, now time.Time) error {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	r, ok := c.Refused[k]
	if !ok {
		return nil
	}
	if !now.Before(r.until) {
		delete(c.Refused, k)
		return nil
	}
	return r.err
}

// refuse remembers that Auth0 refused k's token request, unless the role changed since gen.
func (c *tokenCache) refuse(k TokenKey, gen uint64, err error, until time.Time) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if c.generationLocked(k.Role) == gen {
		c.Refused[k] = tokenRefusal{err: err, until: until}
	}
}

// DropRole forgets the role's tokens and refusals: after a rotation, a role change, or an
// invalidation from another node.
func (c *tokenCache) DropRole(role string) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	c.seq++
	c.Gen[role] = c.seq
	c.dropEntriesLocked(role)
}

// ForgetRole is dropRole for a deleted role: nothing of it stays in memory.
func (c *tokenCache) ForgetRole(role string) {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	c.seq++
	c.floor = c.seq
	delete(c.Gen, role)
	delete(c.Stats, role)
	c.dropEntriesLocked(role)
}

func (c *tokenCache) dropEntriesLocked(role string) {
	for k := range c.Entries {
		if k.Role == role {
			delete(c.Entries, k)
		}
	}
	for k := range c.Refused {
		if k.Role == role {
			delete(c.Refused, k)
		}
	}
}

// DropAll forgets every token, refusal and pause: the config changed, so the tenant, the
// endpoint or the refresh fraction they were obtained under may have.
func (c *tokenCache) DropAll() {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	c.seq++
	c.floor = c.seq
	clear(c.Gen)
	clear(c.Entries)
	clear(c.Refused)
	clear(c.pausedUntil)
}

// pause holds back token requests for scope ("" for all) until until, at most maxTokenPause
// from now.
func (c *tokenCache) pause(scope string, until, now time.Time) time.Time {
	if limit := now.Add(MaxTokenPause); until.After(limit) {
		until = limit
	}
	c.Mu.Lock()
	defer c.Mu.Unlock()
	if until.After(c.pausedUntil[scope]) {
		c.pausedUntil[scope] = until
	}
	return c.pausedUntil[scope]
}

// pausedFor is until when requests for clientID are held back (zero if they are not).
func (c *tokenCache) pausedFor(clientID string, now time.Time) time.Time {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	until := model.Later(c.pausedUntil[""], c.pausedUntil[clientID])
	for scope, t := range c.pausedUntil {
		if !now.Before(t) {
			delete(c.pausedUntil, scope)
		}
	}
	return until
}

// Paused is the latest pause in force, for status.
func (c *tokenCache) Paused() time.Time {
	c.Mu.Lock()
	defer c.Mu.Unlock()
	var until time.Time
	for _, t := range c.pausedUntil {
		until = model.Later(until, t)
	}
	return until
}

// Token answers a token read for requested, the audience the caller asked for ("" for the
// default of creds, the role as the caller loaded and checked it). gen is the role's token
// generation, read before the caller loaded creds: the fetch checks the role again on what
// it loads, and stores its token only if the role did not change since.
func (b *Engine) Token(ctx context.Context, s logical.Storage, name, requested string, creds *model.CredsEntry, gen uint64) (*cachedToken, *logical.Response, error) {
	key := TokenKey{name, canonicalAudience(creds, requested)}
	// The fetch is for a named audience: readers share it only if they want the same one,
	// whatever each takes for the role's default.
	audience := requested
	if audience == "" {
		audience = creds.TokenAudiences[0]
	}
	now := b.Clock.Now()
	st := b.Tokens.StatsOf(name)
	cached := b.Tokens.Get(key)
	if cached != nil && cached.Audience != audience {
		// Stored under the role's default by a reader that took another audience for it
		// (a role write reordering token_audiences in between): not this one's token.
		cached = nil
	}
	if cached != nil && now.Before(cached.RefreshAt) {
		st.Hits.Add(1)
		b.Metrics.TokenRead(true)
		return cached, nil, nil
	}
	st.Misses.Add(1)
	b.Metrics.TokenRead(false)
	err := b.Tokens.refusal(key, now)
	if err == nil {
		// The generation is part of the flight: a read that comes after a rotation dropped
		// the role's tokens starts its own fetch, with the new credential, rather than
		// wait on one that started with the old.
		var v any
		v, err, _ = b.Tokens.flight.Do(name+"\x00"+audience+"\x00"+strconv.FormatUint(gen, 10), func() (v any, err error) {
			defer b.recoverInto("token fetch", &err)
			if tok := b.Tokens.Get(key); tok != nil && tok.Audience == audience && b.Clock.Now().Before(tok.RefreshAt) {
				return tok, nil // a concurrent fetch just stored it
			}
			tok, err := b.fetchToken(s, name, audience, key, gen)
			if err != nil {
				return nil, err
			}
			b.Tokens.put(key, gen, tok)
			return tok, nil
		})
		if err == nil {
			return v.(*cachedToken), nil, nil
		}
	}
	if cached != nil && now.Before(cached.ExpiresAt) && !errors.As(err, new(notAllowed)) {
		// Auth0 refused or failed the refresh, but the token in hand is still valid.
		b.logger().Warn("could not refresh an access token; serving the cached one until it expires", "role", name, "audience", cached.Audience, "expires_at", cached.ExpiresAt.Format(time.RFC3339), "error", err)
		return cached, nil, nil
	}
	var er errorResponse
	if errors.As(err, &er) {
		return nil, er.Response, nil
	}
	return nil, nil, err
}

// canonicalAudience is the cache's name for requested: "" for the role's default.
func canonicalAudience(creds *model.CredsEntry, requested string) string {
	if len(creds.TokenAudiences) > 0 && requested == creds.TokenAudiences[0] {
		return ""
	}
	return requested
}

// markRotating records that a job of role name runs, until the returned func is called:
// token/ waits for it when Auth0 refuses the credential it holds.
func (b *Engine) markRotating(name string) func() {
	done := make(chan struct{})
	b.rotating.Store(name, done)
	return func() {
		b.rotating.CompareAndDelete(name, done)
		close(done)
	}
}

// awaitRotation waits for a job of role name running on this node to end, and reports
// whether there was one. The wait is for another goroutine, not for time to pass; the real
// timer only bounds a hang.
func (b *Engine) awaitRotation(ctx context.Context, name string) bool {
	v, ok := b.rotating.Load(name)
	if !ok {
		return false
	}
	bound := time.NewTimer(tokenAcceptWindow)
	defer bound.Stop()
	select {
	case <-v.(chan struct{}):
	case <-bound.C:
	case <-ctx.Done():
	}
	return true
}

// errorResponse lets a fetch in a singleflight group return a user-facing response.
type errorResponse struct{ *logical.Response }

func (e errorResponse) Error() string { return failureMessage(e.Response, nil) }

// notAllowed is a fetch's refusal of a role state that no longer allows the request: the
// role changed after the caller checked it. A cached token is not served in its place.
type notAllowed struct{ *logical.Response }

func (e notAllowed) Error() string { return failureMessage(e.Response, nil) }
func (e notAllowed) Unwrap() error { return errorResponse(e) }

// fetchToken asks Auth0 for an access token for audience with the role's current
// credential, checking again on the role it loads that the audience is allowed; key and gen
// are the cache entry the caller would fill, for a refusal. It runs on the backend's
// context: concurrent readers share it, and one going away must not cancel it for the
// others.
func (b *Engine) fetchToken(s logical.Storage, name, audience string, key TokenKey, gen uint64) (*cachedToken, error) {
	ctx := b.ctx
	conn, resp, err := b.RequireConnection(ctx, s)
	if resp != nil {
		return nil, errorResponse{resp}
	}
	if err != nil {
		return nil, err
	}
	creds, err := b.LoadCredsCached(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if resp := TokenAllowed(name, creds, audience); resp != nil {
		return nil, notAllowed{resp}
	}
	st := b.Tokens.StatsOf(name)
	for waited := false; ; {
		now := b.Clock.Now()
		if until := b.Tokens.pausedFor(creds.ClientID, now); now.Before(until) {
			return nil, logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf("Auth0's /oauth/token answered 429 (rate limit); Vault asks again after %s", until.UTC().Format(time.RFC3339)))
		}
		st.Requests.Add(1)
		b.Metrics.TokenFetch()
		tok, err := b.requestToken(ctx, conn.Config, creds, audience)
		if err == nil {
			return tok, nil
		}
		st.Failures.Add(1)
		answered, code, desc, header, ok := auth0api.TokenAnswer(err)
		if !ok || answered < 400 {
			return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("requesting an access token for role %q from Auth0: %s", name, auth0api.DescribeTransportError(err)))
		}
		if desc == "" {
			desc = http.StatusText(answered)
		}
		what := fmt.Sprintf("Auth0 refused an access token for role %q (client_id %q, audience %q): %s: %s", name, creds.ClientID, audience, code, desc)
		if answered == http.StatusUnauthorized {
			// A rotation of the role may be under way: Auth0 may already have replaced
			// the credential this request used. Wait for it, then use what it stored.
			if !waited {
				waited = b.awaitRotation(ctx, name)
			}
			if fresh, err := b.LoadCredsCached(ctx, s, name); err == nil && fresh != nil && fresh.Current.Version != creds.Current.Version {
				if resp := TokenAllowed(name, fresh, audience); resp != nil {
					return nil, notAllowed{resp}
				}
				creds = fresh
				continue
			}
		}
		var refusal error
		switch status := answered; {
		case status == http.StatusUnauthorized && b.Clock.Now().Before(creds.Current.CreatedTime.Add(tokenAcceptWindow)):
			// A credential a moment old: Auth0 may not accept it everywhere yet.
			if err := clock.Sleep(ctx, b.Clock, time.Second); err != nil {
				return nil, err
			}
			continue
		case status == http.StatusUnauthorized:
			refusal = logical.CodedError(http.StatusBadGateway, what+"; Auth0 no longer accepts the credential Vault holds (version "+strconv.Itoa(creds.Current.Version)+"). If the role is being rotated on another node, the next read uses the new one; otherwise it was changed outside Vault: rotate the role (vault write -f <mount>/rotate/"+name+"; a staged role needs switch_now=true, a key role in its overlap end_overlap=true)")
		case status == http.StatusTooManyRequests:
			// Auth0 limits token requests per application; its machine-to-machine quota
			// is the tenant's, and holds back every role.
			quota := strings.Contains(strings.ToLower(desc), "quota")
			scope := creds.ClientID
			if quota {
				scope = ""
			}
			now := b.Clock.Now()
			until := b.Tokens.pause(scope, now.Add(auth0api.TokenRetryAfter(header, now, minTokenPause)), now).UTC().Format(time.RFC3339)
			if quota {
				return nil, logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf("%s; the tenant's machine-to-machine token quota is exhausted: raise it in Auth0 or wait for it to reset (Vault asks again after %s)", what, until))
			}
			return nil, logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf("%s; Vault asks again after %s", what, until))
		case status == http.StatusForbidden:
			refusal = errorResponse{logical.ErrorResponse("%s; authorize the application for that API (and scopes) in Auth0 (Applications > APIs > Machine to Machine Applications)", what)}
		case status < 500:
			refusal = errorResponse{logical.ErrorResponse("%s", what)}
		default:
			return nil, logical.CodedError(http.StatusBadGateway, what)
		}
		b.Tokens.refuse(key, gen, refusal, b.Clock.Now().Add(TokenRefusalMemory))
		return nil, refusal
	}
}

// requestToken makes one client-credentials request with the credential creds serve.
func (b *Engine) requestToken(ctx context.Context, cfg *model.ConfigEntry, creds *model.CredsEntry, audience string) (*cachedToken, error) {
	req := auth0api.TokenRequest{ClientID: creds.ClientID, Audience: audience, Scopes: creds.TokenScopes}
	if err := KindFor(creds.KindKey()).authenticate(b, cfg, creds, &req); err != nil {
		return nil, err
	}
	now := b.Clock.Now()
	tok, err := auth0api.RequestToken(ctx, b.SettingsOf(cfg), req)
	if err != nil {
		return nil, err
	}
	return &cachedToken{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		Scope:       tok.Scope,
		Audience:    audience,
		ObtainedAt:  now,
		ExpiresAt:   now.Add(tok.Lifetime),
		RefreshAt:   now.Add(time.Duration(math.Floor(float64(tok.Lifetime) * cfg.TokenRefreshFractionOrDefault()))),
	}, nil
}

const (
	DefaultAssertionTTL = time.Minute
	MaxAssertionTTL     = 5 * time.Minute
	MinAssertionTTL     = 10 * time.Second
)

// TokenAllowed says why token/ refuses a request for audience, nil when it may proceed.
func TokenAllowed(name string, creds *model.CredsEntry, audience string) *logical.Response {
	switch {
	case creds == nil:
		return logical.ErrorResponse("role %q does not exist or has no token_audiences", name)
	case len(creds.TokenAudiences) == 0:
		return logical.ErrorResponse("role %q mints no access tokens: set token_audiences on it (the APIs its application may call)", name)
	case audience != "" && !slices.Contains(creds.TokenAudiences, audience):
		return logical.ErrorResponse("role %q may not mint tokens for audience %q; its token_audiences are %v", name, audience, creds.TokenAudiences)
	}
	return nil
}
