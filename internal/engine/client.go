package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// auth0API is everything the engine asks of Auth0, behind one small interface; the
// implementation is *auth0api.Management, on the official SDK.
type auth0API interface {
	// RotateSecret asks Auth0 for a new secret for clientID and returns it. It is never
	// retried: once Auth0 applies a rotation the old secret is dead and the only copy of
	// the new one is in that response, so a blind second call would lose it. beforeSend,
	// if not nil, runs after any rate-limit wait, right before the request leaves; if it
	// fails, nothing is sent.
	RotateSecret(ctx context.Context, clientID string, beforeSend func() error) (string, error)
	// ReadClient checks that clientID exists and, with withSecret, returns its current
	// secret (which needs the read:client_keys scope).
	ReadClient(ctx context.Context, clientID string, withSecret bool) (*auth0api.ClientInfo, error)
	// SetClientSecret sets clientID's secret to secret (PATCH, idempotent). Like
	// RotateSecret it reports a lost answer as auth0api.ErrOutcomeUnknown.
	SetClientSecret(ctx context.Context, clientID, secret string) error
	// Observe reads the Management API application's own client (clientID) for what
	// Auth0's answer says of the tenant: its rate limit and its clock (config/check).
	Observe(ctx context.Context, clientID string) (*auth0api.Answer, error)
	// Close releases idle connections once the client is replaced.
	Close()
}

var _ auth0API = (*auth0api.Management)(nil)

// connection is the config in force and the client built from it.
type connection struct {
	Config *model.ConfigEntry
	Client auth0API
}

// Connection returns the cached connection, loading config from storage on first use.
// It returns nil, nil when the engine has no config yet.
func (b *Engine) Connection(ctx context.Context, s logical.Storage) (*connection, error) {
	if c := b.Conn.Load(); c != nil {
		return c, nil
	}
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if c := b.Conn.Load(); c != nil {
		return c, nil
	}
	cfg, err := model.LoadConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	b.Limiter.SetRate(cfg.RateLimitOrDefault())
	b.CredsCache.resize(cfg.CredsCacheSizeOrDefault())
	b.Metrics.SetRoleLabels(cfg.MetricsRoleLabels)
	var c *connection
	if cfg.UsesKey() {
		// While its first key waits out propagation_wait, a mount switched to
		// private_key_jwt has a client secret Auth0 refuses already: the pending key works.
		c, err = b.rootKeyConnection(ctx, s, cfg)
	} else {
		var client auth0API
		client, err = b.newClient(b.ctx, cfg)
		c = &connection{Config: cfg, Client: client}
	}
	if err != nil {
		return nil, err
	}
	b.Conn.Store(c)
	return c, nil
}

// newClient builds the Management API client for cfg.
func (b *Engine) newClient(ctx context.Context, cfg *model.ConfigEntry) (auth0API, error) {
	return auth0api.NewManagement(ctx, b.SettingsOf(cfg), b.Limiter, b.Clock)
}

// SettingsOf is what the Auth0 side needs of cfg: its client secret, or once it has one
// its key (rootkey.go), which signs assertions on the engine's clock.
func (b *Engine) SettingsOf(cfg *model.ConfigEntry) auth0api.Settings {
	s := auth0api.Settings{
		Host: cfg.Host, Scheme: cfg.Scheme, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		Audience: cfg.AudienceOrDefault(), TokenURL: cfg.TokenURL(), Timeout: cfg.RequestTimeoutOrDefault(),
		UserAgent: "vault-plugin-auth0/" + b.version, AssertionAudience: cfg.AssertionAudience(), Now: b.Clock.Now,
		Observer: b.Metrics,
	}
	if cfg.HasKey() {
		cur := cfg.RootKey.Current()
		s.ClientSecret, s.PrivateKey, s.KID, s.Algorithm = "", cfg.PrivateKey, cur.KID, cur.Algorithm
	}
	if !cfg.LastRootRotation.IsZero() {
		s.PropagatedBy = cfg.LastRootRotation.Add(rootAcceptWait)
	}
	return s
}

// ResetConnection drops the cached connection; the next use rebuilds it from storage.
// Callers change storage first: a rebuild racing with them then either read the old
// config and is dropped here, or already reads the new one.
func (b *Engine) ResetConnection() {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	b.drift.noScope.Store(false) // the config changed: its scopes may have too
	if c := b.Conn.Swap(nil); c != nil {
		c.Client.Close()
	}
}

// RequireConnection is connection for handlers that cannot work without config.
func (b *Engine) RequireConnection(ctx context.Context, s logical.Storage) (*connection, *logical.Response, error) {
	c, err := b.Connection(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, logical.ErrorResponse(errNotConfigured), nil
	}
	return c, nil, nil
}

// Auth0Failure turns an error from Auth0 into what the caller should see: a response that
// says what to do where the operator can act (credentials, scopes, unknown application),
// a 502 where Auth0 or the network failed. what names the operation, e.g. "rotating the
// secret of client_id \"abc\"". Auth0's messages never contain secrets.
func Auth0Failure(what string, err error) (*logical.Response, error) {
	switch {
	case errors.Is(err, auth0api.ErrNoSecretScope):
		return logical.ErrorResponse("%s: %s; grant that scope to the Management API application in Auth0 (Applications > APIs > Auth0 Management API > Machine to Machine Applications)", what, err), nil
	case auth0api.IsTokenFailure(err) && !auth0api.IsOAuthAnswer(err):
		// Not an OAuth answer: whatever the domain is, it did not answer as Auth0.
		return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("%s: %s", what, auth0api.DescribeTransportError(err)))
	case auth0api.IsTokenFailure(err):
		status, code, desc, _, _ := auth0api.TokenAnswer(err)
		if desc == "" {
			desc = http.StatusText(status)
		}
		return logical.ErrorResponse("%s: Auth0 refused a Management API token (%s: %s); check client_id, client_secret and audience in the engine's config and that the application is authorized for the Management API", what, code, desc), nil
	}
	switch status, msg := auth0api.ManagementError(err); {
	case status == 0:
	case status == http.StatusUnauthorized:
		return logical.ErrorResponse("%s: Auth0 rejected the Management API token (%s); check the engine's config", what, msg), nil
	case status == http.StatusForbidden:
		return logical.ErrorResponse("%s: Auth0 refused (%s); grant the missing scope to the Management API application in Auth0 (Applications > APIs > Auth0 Management API > Machine to Machine Applications)", what, msg), nil
	case status == http.StatusNotFound:
		return logical.ErrorResponse("%s: Auth0 has no such application (%s); check the client_id", what, msg), nil
	case status == http.StatusTooManyRequests:
		return nil, logical.CodedError(http.StatusTooManyRequests, fmt.Sprintf("%s: Auth0 rate limit reached (%s); try again later", what, msg))
	case status < 500:
		return logical.ErrorResponse("%s: Auth0 refused the request (%s)", what, msg), nil
	}
	return nil, logical.CodedError(http.StatusBadGateway, fmt.Sprintf("%s: %s", what, publicError(err)))
}

// publicError is err as a caller may see it: a transport failure (no HTTP answer) in the
// generic words of auth0api.DescribeTransportError, anything else as it is.
func publicError(err error) string {
	if !auth0api.IsTransportFailure(err) && !errors.Is(err, auth0api.ErrRedirect) {
		return err.Error()
	}
	if errors.Is(err, auth0api.ErrOutcomeUnknown) {
		return auth0api.ErrOutcomeUnknown.Error() + ": " + auth0api.DescribeTransportError(err)
	}
	return auth0api.DescribeTransportError(err)
}

// DescribeTokenError says why a token request failed, from Auth0's answer when there is
// one. Anything else (no answer, or an answer that is not Auth0's) is described in the same
// generic words, so that the answer does not tell what listens at an address.
func DescribeTokenError(err error) string {
	if status, code, desc, _, _ := auth0api.TokenAnswer(err); auth0api.IsOAuthAnswer(err) {
		return fmt.Sprintf("Auth0 answered %d %s: %s", status, code, desc)
	}
	if auth0api.IsTokenFailure(err) || auth0api.IsTransportFailure(err) {
		return auth0api.DescribeTransportError(err)
	}
	return err.Error()
}
