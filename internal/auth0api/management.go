package auth0api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/clock"
)

// Settings is what the Management API client, and the checks of credentials at the token
// endpoint, need of a mount's config.
type Settings struct {
	Host, Scheme string // the domain, and "http" for a loopback emulator
	ClientID     string
	ClientSecret string
	Audience     string // the Management API's
	TokenURL     string
	Timeout      time.Duration
	UserAgent    string
	// PropagatedBy is when Auth0 accepts the client's secret everywhere, after a root
	// rotation: until then a refused token is asked for again.
	PropagatedBy time.Time
	// PrivateKey (PKCS #8 PEM), with its KID and Algorithm, authenticates the client with
	// private_key_jwt instead of ClientSecret: each token request carries a client
	// assertion signed at Now(), for AssertionAudience.
	PrivateKey, KID, Algorithm string
	AssertionAudience          string
	Now                        func() time.Time
	// Observer, if set, is told of the requests of the clients built from these settings
	// that no RateLimiter reports (the token endpoint's for roles and for proofs).
	Observer Observer
}

// UsesKey reports whether s authenticates with a private key.
func (s Settings) UsesKey() bool { return s.PrivateKey != "" }

// tokenRequest is a Management API token request with s's credentials.
func (s Settings) tokenRequest() (TokenRequest, error) {
	r := TokenRequest{ClientID: s.ClientID, Audience: s.Audience, Secret: s.ClientSecret}
	if s.UsesKey() {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		assertion, err := SignAssertion(s.PrivateKey, s.Algorithm, s.KID, s.ClientID, s.AssertionAudience, now(), ManagementAssertionTTL)
		if err != nil {
			return r, err
		}
		r.Secret, r.Assertion = "", assertion
	}
	return r, nil
}

// ErrNoSecretScope means Auth0 would not return a client's secret: the Management API
// token lacks a scope that grants reading it.
var ErrNoSecretScope = errors.New("Auth0 does not return the application's client_secret to this Management API application: it needs the read:client_keys scope (read:client_credentials also grants it)")

// ClientInfo is an application as ReadClient found it.
type ClientInfo struct {
	ClientID string
	Name     string
	Secret   string
}

// ErrOutcomeUnknown marks a rotate-secret call that reached Auth0 but whose answer was lost
// (timeout, reset connection, 5xx): Auth0 may or may not have applied it.
var ErrOutcomeUnknown = errors.New("the outcome of the rotation at Auth0 is unknown")

// Management is the Management API client of a mount, on the official SDK.
type Management struct {
	transport *http.Transport
	limiter   *RateLimiter
	clock     clock.Clock
	// propagatedBy is when Auth0 accepts the client's secret everywhere: until then, a
	// token refused for it is asked for again (Auth0 documents up to 30 s after a change).
	propagatedBy time.Time
	// build makes a fresh SDK client, with a fresh token source.
	build func() (*management.Management, error)
	// expires is when the token of a client built with a static token (private_key_jwt)
	// is renewed; zero for a client that renews its own (client_secret).
	expires time.Time

	mu  sync.Mutex
	api *management.Management
}

// NewManagement builds a Management API client from s. It does not contact
// Auth0: the first call fetches a token (client credentials), which is then reused until
// it expires.
func NewManagement(ctx context.Context, s Settings, limiter *RateLimiter, clk clock.Clock) (*Management, error) {
	// go-auth0 keeps only the timeout and the transport of this client (not CheckRedirect):
	// the egress rules live in the transport.
	transport, egress := NewEgressTransport(s.Host)
	httpClient := &http.Client{Timeout: s.Timeout, Transport: &ObservingTransport{Base: egress, Limiter: limiter, Clock: clk}}
	// The token endpoint is reached through the same client, with the same timeout.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, httpClient)

	c := &Management{transport: transport, limiter: limiter, clock: clk, propagatedBy: s.PropagatedBy}
	c.build = func() (*management.Management, error) {
		var opts []management.Option
		if s.Scheme == "http" {
			// Must come before the credentials option, which derives the token URL from the scheme.
			opts = append(opts, management.WithInsecure())
		}
		opts = append(opts,
			management.WithClient(httpClient),
			// The SDK's default retries would replay rotate-secret after a lost response.
			management.WithNoRetries(),
		)
		if s.UsesKey() {
			// The SDK's own private_key_jwt token source signs on the wall clock; the
			// token is asked for here, on the engine's, and handed to the SDK.
			req, err := s.tokenRequest()
			if err != nil {
				return nil, err
			}
			tok, err := RequestToken(ctx, s, req)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.expires = clk.Now().Add(tok.Lifetime * 9 / 10)
			c.mu.Unlock()
			opts = append(opts, management.WithStaticToken(tok.AccessToken))
		} else {
			opts = append(opts, management.WithClientCredentialsAndAudience(ctx, s.ClientID, s.ClientSecret, s.Audience))
		}
		opts = append(opts, management.WithUserAgent(s.UserAgent))
		api, err := management.New(s.Host, opts...)
		if err != nil {
			return nil, fmt.Errorf("building the Auth0 Management API client: %w", err)
		}
		return api, nil
	}
	if s.UsesKey() {
		return c, nil // the first call asks for a token
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
func (c *Management) call(ctx context.Context, beforeSend func() error, fn func(api *management.Management) error) error {
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
	if !c.expires.IsZero() && !c.clock.Now().Before(c.expires) {
		api = nil // its static token is due for renewal
	}
	c.mu.Unlock()
	if api == nil {
		fresh, err := c.rebuild()
		if err != nil {
			return err
		}
		api = fresh
	}
	err := attempt(api)
	for retried := false; ; retried = true {
		switch status := ManagementStatus(err); {
		case (status == http.StatusUnauthorized || status == http.StatusForbidden) && !retried:
			// The API refused the cached token, or found a scope missing from it: once more
			// with a fresh one, which carries the scopes granted now (a token keeps those it
			// was issued with for up to a day). Auth0 applied nothing it refused.
		case TokenRefused(err) && c.clock.Now().Before(c.propagatedBy):
			// The secret was just rotated and Auth0 may not accept it everywhere yet.
			if serr := clock.Sleep(ctx, c.clock, time.Second); serr != nil {
				return err
			}
		default:
			return err
		}
		fresh, berr := c.rebuild()
		if berr != nil {
			return err
		}
		err = attempt(fresh)
	}
}

// rebuild makes a fresh SDK client, with a fresh token, and uses it from now on.
func (c *Management) rebuild() (*management.Management, error) {
	fresh, err := c.build()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.api = fresh
	c.mu.Unlock()
	return fresh, nil
}

func (c *Management) RotateSecret(ctx context.Context, clientID string, beforeSend func() error) (string, error) {
	var secret string
	err := c.callChanging(ctx, beforeSend, func(ctx context.Context, api *management.Management) error {
		client, err := api.Client.RotateSecret(ctx, clientID)
		if err != nil {
			return err
		}
		if secret = client.GetClientSecret(); secret == "" {
			return fmt.Errorf("%w: Auth0 answered rotate-secret without a client_secret", ErrOutcomeUnknown)
		}
		return nil
	})
	return secret, err
}

func (c *Management) SetClientSecret(ctx context.Context, clientID, secret string) error {
	return c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		return api.Client.Update(ctx, clientID, &management.Client{ClientSecret: &secret})
	})
}

// callChanging is call for requests that change state at Auth0: a failure after the
// request left the process, other than an answer that says nothing was done, is
// reported as ErrOutcomeUnknown.
func (c *Management) callChanging(ctx context.Context, beforeSend func() error, fn func(context.Context, *management.Management) error) error {
	return c.call(ctx, beforeSend, func(api *management.Management) error {
		sent := new(SendTracker)
		err := fn(WithSendTracker(ctx, sent), api)
		if err != nil && !errors.Is(err, ErrOutcomeUnknown) && OutcomeUnknown(err, sent.Sent()) {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return err
	})
}

func (c *Management) ReadClient(ctx context.Context, clientID string, withSecret bool) (*ClientInfo, error) {
	fields := []string{"client_id", "name"}
	if withSecret {
		fields = append(fields, "client_secret")
	}
	var client *management.Client
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		client, err = api.Client.Read(ctx, clientID, management.IncludeFields(fields...))
		return err
	})
	switch status, msg := ManagementError(err); {
	case withSecret && status == http.StatusForbidden && strings.Contains(msg, "client_secret"):
		// Auth0: 403 "You cannot read the following fields: client_secret".
		return nil, fmt.Errorf("%w (%v)", ErrNoSecretScope, err)
	case err != nil:
		return nil, err
	}
	info := &ClientInfo{ClientID: client.GetClientID(), Name: client.GetName(), Secret: client.GetClientSecret()}
	if withSecret && info.Secret == "" {
		// Some tenants leave the field out rather than refuse.
		return nil, ErrNoSecretScope
	}
	return info, nil
}

// Close releases idle connections once the client is replaced.
func (c *Management) Close() {
	c.transport.CloseIdleConnections()
}
