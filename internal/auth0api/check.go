package auth0api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auth0/go-auth0/management"
)

// What a preflight check (config/check) reads of Auth0: the scopes a Management API token
// carries, which of them each Management API call needs, and what an answer says of the
// tenant's rate limit and clock. Nothing here changes anything at Auth0.

// Need is one permission a Management API call needs: any one of its scopes grants it, as
// Auth0 documents the endpoint. The first is the one to grant.
type Need []string

// The needs of the Management API calls the engine makes.
var (
	// GET /api/v2/clients/{id}: read:clients, or read:client_keys, which reads a client too.
	NeedReadClient = Need{"read:clients", "read:client_keys"}
	// The client_secret field of that GET: read:client_keys, or read:client_credentials.
	NeedReadSecret = Need{"read:client_keys", "read:client_credentials"}
	// POST /api/v2/clients/{id}/rotate-secret, and a PATCH that sets client_secret.
	NeedChangeSecret = Need{"update:client_keys"}
	// A PATCH of a client's other properties (token_endpoint_auth_method, when a
	// credential method replaces the secret).
	NeedUpdateClient = Need{"update:clients", "update:client_keys"}
	// POST /api/v2/clients/{id}/credentials.
	NeedCreateCredential = Need{"create:client_credentials"}
	// GET /api/v2/clients/{id}/credentials.
	NeedReadCredentials = Need{"read:client_credentials"}
	// A PATCH of client_authentication_methods: attaching and detaching credentials.
	NeedAttachCredentials = Need{"update:client_credentials"}
	// DELETE /api/v2/clients/{id}/credentials/{credential_id}.
	NeedDeleteCredential = Need{"delete:client_credentials"}
)

// MetBy reports whether granted holds one of n's scopes.
func (n Need) MetBy(granted []string) bool {
	for _, s := range n {
		if slices.Contains(granted, s) {
			return true
		}
	}
	return false
}

// ScopesToGrant is what to grant, beyond granted, so that every one of needs is met: for
// each need still unmet, its scope that meets the most unmet needs (read:client_keys
// meets both reading a client and reading its secret). Empty when nothing is missing.
func ScopesToGrant(granted []string, needs []Need) []string {
	var grant []string
	for {
		have := append(slices.Clone(granted), grant...)
		var unmet []Need
		for _, n := range needs {
			if !n.MetBy(have) {
				unmet = append(unmet, n)
			}
		}
		if len(unmet) == 0 {
			return grant
		}
		best, meets := "", 0
		for _, s := range unmet[0] {
			count := 0
			for _, n := range unmet {
				if slices.Contains(n, s) {
					count++
				}
			}
			if count > meets {
				best, meets = s, count
			}
		}
		grant = append(grant, best)
	}
}

// ManagementToken obtains a Management API token with s's credentials. It carries the
// scopes Auth0 grants the application now; a token issued earlier keeps those it was
// issued with until it expires.
func ManagementToken(ctx context.Context, s Settings) (*Token, error) {
	req, err := s.tokenRequest()
	if err != nil {
		return nil, err
	}
	return RequestToken(ctx, s, req)
}

// AccessTokenClaims are what an Auth0 access token says of itself.
type AccessTokenClaims struct {
	Scopes   []string // the scope claim, split at spaces
	Audience []string // aud: a string or a list
	Issuer   string
}

// ErrNotJWT means an access token is no JWT, so its scopes cannot be read from it.
var ErrNotJWT = errors.New("the Management API access token Auth0 issued is not a JWT, so its scopes cannot be read from it")

// ParseAccessToken reads the claims of an Auth0 access token (a JWT), without checking its
// signature: it came straight from the token endpoint, and the API it is for checks it.
func ParseAccessToken(token string) (*AccessTokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, ErrNotJWT
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, ErrNotJWT
	}
	var raw struct {
		Scope    string          `json:"scope"`
		Audience json.RawMessage `json:"aud"`
		Issuer   string          `json:"iss"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, ErrNotJWT
	}
	claims := &AccessTokenClaims{Scopes: strings.Fields(raw.Scope), Issuer: raw.Issuer}
	var one string
	if json.Unmarshal(raw.Audience, &one) == nil {
		claims.Audience = []string{one}
	} else {
		_ = json.Unmarshal(raw.Audience, &claims.Audience)
	}
	return claims, nil
}

// GrantedScopes obtains a Management API token with s's credentials and reads from the
// token itself the scopes Auth0 grants the application now, with its audience and issuer.
func GrantedScopes(ctx context.Context, s Settings) (*AccessTokenClaims, error) {
	tok, err := ManagementToken(ctx, s)
	if err != nil {
		return nil, err
	}
	return ParseAccessToken(tok.AccessToken)
}

// RateLimitState is the tenant's Management API bucket as an answer's x-ratelimit-*
// headers report it: its size (Limit, the most requests it holds at once), what Remaining
// after that request, and when it is full again (Reset; zero when not sent).
type RateLimitState struct {
	Limit, Remaining int
	Reset            time.Time
}

// ParseRateLimit reads the x-ratelimit-* headers; ok is false without a usable
// x-ratelimit-limit.
func ParseRateLimit(h http.Header) (st RateLimitState, ok bool) {
	limit, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit")))
	if err != nil || limit <= 0 {
		return RateLimitState{}, false
	}
	st.Limit = limit
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining"))); err == nil {
		st.Remaining = n
	}
	if secs, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && secs > 0 {
		st.Reset = time.Unix(secs, 0)
	}
	return st, true
}

// Answer is what one Management API answer said of the tenant, and when it came.
type Answer struct {
	Status       int
	RateLimit    RateLimitState
	HasRateLimit bool
	// Date is Auth0's clock as the Date header gives it (to the second); zero without one.
	Date time.Time
	// Sent and Received bound the answer on the engine's clock.
	Sent, Received time.Time
}

// ClockSkew is how far the engine's clock is ahead of Auth0's (negative: behind), from the
// Date header: zero when the two agree within the header's one-second resolution and the
// request's round trip. ok is false when Auth0 sent no Date.
func (a *Answer) ClockSkew() (skew time.Duration, ok bool) {
	if a.Date.IsZero() {
		return 0, false
	}
	// Auth0 read its clock somewhere in [Date, Date+1s), the engine's ran from Sent to
	// Received: unless no overlap of the two fits, the clocks may agree.
	if !a.Sent.After(a.Date.Add(time.Second)) && !a.Date.After(a.Received) {
		return 0, true
	}
	mid := a.Sent.Add(a.Received.Sub(a.Sent) / 2)
	return mid.Sub(a.Date.Add(time.Second / 2)), true
}

// answerRecorder keeps the last Management API answer to the requests of one context.
type answerRecorder struct {
	mu     sync.Mutex
	answer *Answer
}

type answerRecorderKey struct{}

func (r *answerRecorder) record(resp *http.Response, sent, received time.Time) {
	a := &Answer{Status: resp.StatusCode, Sent: sent, Received: received}
	a.RateLimit, a.HasRateLimit = ParseRateLimit(resp.Header)
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		a.Date = d
	}
	r.mu.Lock()
	r.answer = a
	r.mu.Unlock()
}

func (r *answerRecorder) last() *Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answer
}

// Observe reads the Management API application's own client (GET
// /api/v2/clients/{clientID}, its client_id only) for what Auth0's answer says of the
// tenant: its rate limit and its clock. An answer that refuses the read (a missing scope)
// says as much, and is returned with its error; the Answer is nil when no Management API
// answer arrived.
func (c *Management) Observe(ctx context.Context, clientID string) (*Answer, error) {
	rec := &answerRecorder{}
	ctx = context.WithValue(ctx, answerRecorderKey{}, rec)
	err := c.call(ctx, nil, func(api *management.Management) error {
		_, err := api.Client.Read(ctx, clientID, management.IncludeFields("client_id"))
		return err
	})
	return rec.last(), err
}
