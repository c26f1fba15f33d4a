package auth0

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/auth0/go-auth0/management"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// auth0API is everything the engine asks of Auth0, behind one small interface; the
// implementation is *managementClient, on the official SDK.
type auth0API interface {
	// RotateSecret asks Auth0 for a new secret for clientID and returns it. It is never
	// retried: once Auth0 applies a rotation the old secret is dead and the only copy of
	// the new one is in that response, so a blind second call would lose it. beforeSend,
	// if not nil, runs after any rate-limit wait, right before the request leaves; if it
	// fails, nothing is sent.
	RotateSecret(ctx context.Context, clientID string, beforeSend func() error) (string, error)
	// ReadClient checks that clientID exists and, with withSecret, returns its current
	// secret (which needs the read:client_keys scope).
	ReadClient(ctx context.Context, clientID string, withSecret bool) (*clientInfo, error)
	// SetClientSecret sets clientID's secret to secret (PATCH, idempotent). Like
	// RotateSecret it reports a lost answer as errOutcomeUnknown.
	SetClientSecret(ctx context.Context, clientID, secret string) error
	// close releases idle connections once the client is replaced.
	close()
}

var _ auth0API = (*managementClient)(nil)

// errNoSecretScope means Auth0 would not return a client's secret: the Management API
// token lacks a scope that grants reading it.
var errNoSecretScope = errors.New("Auth0 does not return the application's client_secret to this Management API application: it needs the read:client_keys scope (read:client_credentials also grants it)")

type clientInfo struct {
	ClientID string
	Name     string
	Secret   string
}

// errOutcomeUnknown marks a rotate-secret call that reached Auth0 but whose answer was lost
// (timeout, reset connection, 5xx): Auth0 may or may not have applied it.
var errOutcomeUnknown = errors.New("the outcome of the rotation at Auth0 is unknown")

// managementClient talks to Auth0 through the official SDK.
type managementClient struct {
	transport *http.Transport
	limiter   *auth0api.RateLimiter
	clock     clock.Clock
	// propagatedBy is when Auth0 accepts the client's secret everywhere: until then, a
	// token refused for it is asked for again (Auth0 documents up to 30 s after a change).
	propagatedBy time.Time
	// build makes a fresh SDK client, with a fresh token source.
	build func() (*management.Management, error)

	mu  sync.Mutex
	api *management.Management
}

// newManagementClient builds a Management API client from config. It does not contact
// Auth0: the first call fetches a token (client credentials), which is then reused until
// it expires.
func newManagementClient(ctx context.Context, cfg *configEntry, limiter *auth0api.RateLimiter, clk clock.Clock) (*managementClient, error) {
	// go-auth0 keeps only the timeout and the transport of this client (not CheckRedirect):
	// the egress rules live in the transport.
	transport, egress := auth0api.NewEgressTransport(cfg.Host)
	httpClient := &http.Client{Timeout: cfg.requestTimeout(), Transport: &auth0api.ObservingTransport{Base: egress, Limiter: limiter, Clock: clk}}
	// The token endpoint is reached through the same client, with the same timeout.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, httpClient)

	c := &managementClient{transport: transport, limiter: limiter, clock: clk}
	if !cfg.LastRootRotation.IsZero() {
		c.propagatedBy = cfg.LastRootRotation.Add(rootAcceptWait)
	}
	c.build = func() (*management.Management, error) {
		var opts []management.Option
		if cfg.Scheme == "http" {
			// Must come before the credentials option, which derives the token URL from the scheme.
			opts = append(opts, management.WithInsecure())
		}
		opts = append(opts,
			management.WithClient(httpClient),
			// The SDK's default retries would replay rotate-secret after a lost response.
			management.WithNoRetries(),
			management.WithClientCredentialsAndAudience(ctx, cfg.ClientID, cfg.ClientSecret, cfg.audience()),
			management.WithUserAgent("vault-plugin-auth0/"+Version),
		)
		api, err := management.New(cfg.Host, opts...)
		if err != nil {
			return nil, fmt.Errorf("building the Auth0 Management API client: %w", err)
		}
		return api, nil
	}
	api, err := c.build()
	if err != nil {
		return nil, err
	}
	c.api = api
	return c, nil
}

// call runs fn against the API, after waiting for the mount's rate limiter (a wait cut
// short by ctx means nothing was sent) and then running beforeSend, if any. A 401 means
// Auth0 no longer accepts the cached token (revoked, or expired early), a 403 that it lacks
// a scope, perhaps granted since it was issued; either way Auth0 did nothing, and fn runs
// once more with a fresh token.
func (c *managementClient) call(ctx context.Context, beforeSend func() error, fn func(api *management.Management) error) error {
	attempt := func(api *management.Management) error {
		if err := c.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("waiting for the Management API rate limit: %w", err)
		}
		if beforeSend != nil {
			if err := beforeSend(); err != nil {
				return err
			}
		}
		return fn(api)
	}
	c.mu.Lock()
	api := c.api
	c.mu.Unlock()
	err := attempt(api)
	for retried := false; ; retried = true {
		switch status := auth0api.ManagementStatus(err); {
		case (status == http.StatusUnauthorized || status == http.StatusForbidden) && !retried:
			// The API refused the cached token, or found a scope missing from it: once more
			// with a fresh one, which carries the scopes granted now (a token keeps those it
			// was issued with for up to a day). Auth0 applied nothing it refused.
		case auth0api.TokenRefused(err) && c.clock.Now().Before(c.propagatedBy):
			// The secret was just rotated and Auth0 may not accept it everywhere yet.
			if serr := clock.Sleep(ctx, c.clock, time.Second); serr != nil {
				return err
			}
		default:
			return err
		}
		fresh, berr := c.build()
		if berr != nil {
			return err
		}
		c.mu.Lock()
		c.api = fresh
		c.mu.Unlock()
		err = attempt(fresh)
	}
}

func (c *managementClient) RotateSecret(ctx context.Context, clientID string, beforeSend func() error) (string, error) {
	var secret string
	err := c.callChanging(ctx, beforeSend, func(ctx context.Context, api *management.Management) error {
		client, err := api.Client.RotateSecret(ctx, clientID)
		if err != nil {
			return err
		}
		if secret = client.GetClientSecret(); secret == "" {
			return fmt.Errorf("%w: Auth0 answered rotate-secret without a client_secret", errOutcomeUnknown)
		}
		return nil
	})
	return secret, err
}

func (c *managementClient) SetClientSecret(ctx context.Context, clientID, secret string) error {
	return c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		return api.Client.Update(ctx, clientID, &management.Client{ClientSecret: &secret})
	})
}

// callChanging is call for requests that change state at Auth0: a failure after the
// request left the process, other than an answer that says nothing was done, is
// reported as errOutcomeUnknown.
func (c *managementClient) callChanging(ctx context.Context, beforeSend func() error, fn func(context.Context, *management.Management) error) error {
	return c.call(ctx, beforeSend, func(api *management.Management) error {
		sent := new(auth0api.SendTracker)
		err := fn(auth0api.WithSendTracker(ctx, sent), api)
		if err != nil && !errors.Is(err, errOutcomeUnknown) && auth0api.OutcomeUnknown(err, sent.Sent()) {
			return fmt.Errorf("%w: %w", errOutcomeUnknown, err)
		}
		return err
	})
}

func (c *managementClient) ReadClient(ctx context.Context, clientID string, withSecret bool) (*clientInfo, error) {
	fields := []string{"client_id", "name"}
	if withSecret {
		fields = append(fields, "client_secret")
	}
	var client *management.Client
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		client, err = api.Client.Read(ctx, clientID, management.IncludeFields(fields...))
		return err
	})
	switch status, msg := auth0api.ManagementError(err); {
	case withSecret && status == http.StatusForbidden && strings.Contains(msg, "client_secret"):
		// Auth0: 403 "You cannot read the following fields: client_secret".
		return nil, fmt.Errorf("%w (%v)", errNoSecretScope, err)
	case err != nil:
		return nil, err
	}
	info := &clientInfo{ClientID: client.GetClientID(), Name: client.GetName(), Secret: client.GetClientSecret()}
	if withSecret && info.Secret == "" {
		// Some tenants leave the field out rather than refuse.
		return nil, errNoSecretScope
	}
	return info, nil
}

func (c *managementClient) close() {
	c.transport.CloseIdleConnections()
}

// verifyCredentials obtains a Management API token with cfg's credentials, proving that
// Auth0 accepts them before anything is stored.
func verifyCredentials(ctx context.Context, cfg *configEntry) error {
	httpClient, closeIdle := auth0api.NewEgressClient(cfg.Host, cfg.requestTimeout())
	defer closeIdle()
	cc := clientcredentials.Config{
		ClientID:       cfg.ClientID,
		ClientSecret:   cfg.ClientSecret,
		TokenURL:       cfg.tokenURL(),
		EndpointParams: url.Values{"audience": {cfg.audience()}},
		// One request per check: auto-detection would try Basic, then the body, on every
		// refusal, doubling what a polling verification costs against Auth0's limits.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	_, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
	return err
}

// connection is the config in force and the client built from it.
type connection struct {
	config *configEntry
	client auth0API
}

// connection returns the cached connection, loading config from storage on first use.
// It returns nil, nil when the engine has no config yet.
func (b *backend) connection(ctx context.Context, s logical.Storage) (*connection, error) {
	if c := b.conn.Load(); c != nil {
		return c, nil
	}
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if c := b.conn.Load(); c != nil {
		return c, nil
	}
	cfg, err := loadConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	b.limiter.SetRate(cfg.rateLimit())
	b.credsCache.resize(cfg.credsCacheSize())
	client, err := b.newClient(b.ctx, cfg)
	if err != nil {
		return nil, err
	}
	c := &connection{config: cfg, client: client}
	b.conn.Store(c)
	return c, nil
}

// newClient builds the Management API client for cfg.
func (b *backend) newClient(ctx context.Context, cfg *configEntry) (auth0API, error) {
	return newManagementClient(ctx, cfg, b.limiter, b.clock)
}

// resetConnection drops the cached connection; the next use rebuilds it from storage.
// Callers change storage first: a rebuild racing with them then either read the old
// config and is dropped here, or already reads the new one.
func (b *backend) resetConnection() {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	if c := b.conn.Swap(nil); c != nil {
		c.client.close()
	}
}

// requireConnection is connection for handlers that cannot work without config.
func (b *backend) requireConnection(ctx context.Context, s logical.Storage) (*connection, *logical.Response, error) {
	c, err := b.connection(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, logical.ErrorResponse(errNotConfigured), nil
	}
	return c, nil, nil
}

// auth0Failure turns an error from Auth0 into what the caller should see: a response that
// says what to do where the operator can act (credentials, scopes, unknown application),
// a 502 where Auth0 or the network failed. what names the operation, e.g. "rotating the
// secret of client_id \"abc\"". Auth0's messages never contain secrets.
func auth0Failure(what string, err error) (*logical.Response, error) {
	switch {
	case errors.Is(err, errNoSecretScope):
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
	if errors.Is(err, errOutcomeUnknown) {
		return errOutcomeUnknown.Error() + ": " + auth0api.DescribeTransportError(err)
	}
	return auth0api.DescribeTransportError(err)
}
