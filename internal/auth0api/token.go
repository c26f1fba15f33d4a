package auth0api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TokenRequest is one client-credentials request at the token endpoint: for ClientID and
// Audience, authenticated by Secret or, for private_key_jwt, by a signed Assertion.
type TokenRequest struct {
	ClientID  string
	Audience  string
	Scopes    []string
	Secret    string
	Assertion string
}

// Token is what the token endpoint granted. Lifetime is expires_in as Auth0 sent it.
type Token struct {
	AccessToken, TokenType, Scope string
	Lifetime                      time.Duration
}

// RequestToken makes one client-credentials request at s's token endpoint, under the
// egress rules: one request, the credentials in the body (auto-detection would try Basic,
// then the body, on every refusal, doubling what a polling check costs against Auth0's
// limits). A refusal is an *oauth2.RetrieveError (TokenAnswer reads it).
func RequestToken(ctx context.Context, s Settings, r TokenRequest) (*Token, error) {
	params := url.Values{"audience": {r.Audience}}
	if len(r.Scopes) > 0 {
		params.Set("scope", strings.Join(r.Scopes, " "))
	}
	cc := clientcredentials.Config{
		ClientID:       r.ClientID,
		ClientSecret:   r.Secret,
		TokenURL:       s.TokenURL,
		EndpointParams: params,
		AuthStyle:      oauth2.AuthStyleInParams,
	}
	if r.Assertion != "" {
		params.Set("client_assertion_type", ClientAssertionType)
		params.Set("client_assertion", r.Assertion)
	}
	httpClient, closeIdle := NewEgressClient(s.Host, s.Timeout)
	defer closeIdle()
	if s.Observer != nil {
		httpClient.Transport = &observedTransport{base: httpClient.Transport, observer: s.Observer}
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
	if err != nil {
		return nil, err
	}
	// expires_in, read as Auth0 sent it: oauth2's Expiry is computed on the wall clock.
	lifetime := time.Duration(numberOf(tok.Extra("expires_in"))) * time.Second
	if lifetime <= 0 {
		lifetime = time.Until(tok.Expiry)
	}
	scope, _ := tok.Extra("scope").(string)
	return &Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Scope: scope, Lifetime: lifetime}, nil
}

// VerifyCredentials obtains a Management API token with s's credentials, proving that
// Auth0 accepts them before anything is stored.
func VerifyCredentials(ctx context.Context, s Settings) error {
	_, err := ManagementToken(ctx, s)
	return err
}

// VerifyAssertion obtains a token for clientID with a signed client assertion, proving
// that Auth0 accepts its key. A 403 (authenticated, audience not granted) is the caller's
// to count as accepted (TokenForbidden).
func VerifyAssertion(ctx context.Context, s Settings, clientID, assertion string) error {
	_, err := RequestToken(ctx, s, TokenRequest{ClientID: clientID, Assertion: assertion, Audience: s.Audience})
	return err
}

// TokenRetryAfter is how long the token endpoint's 429 says to wait: Retry-After (seconds)
// or x-ratelimit-reset (unix seconds), at least least.
func TokenRetryAfter(h http.Header, now time.Time, least time.Duration) time.Duration {
	d := least
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil && time.Duration(secs)*time.Second > d {
		d = time.Duration(secs) * time.Second
	} else if reset, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64); err == nil {
		if until := time.Unix(reset, 0).Sub(now); until > d {
			d = until
		}
	}
	return d
}

// numberOf reads a JSON number that oauth2 may hand over as float64, json.Number or string.
func numberOf(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	case string:
		f, _ := strconv.ParseFloat(n, 64)
		return f
	}
	return 0
}
