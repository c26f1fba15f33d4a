package auth0

import (
	"context"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

func pathToken(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "token/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationVerb:   "read",
				OperationSuffix: "access-token",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeLowerCaseString, Description: "Name of the role.", Required: true},
				"audience": {
					Type:        framework.TypeString,
					Description: "API audience to mint the token for: one of the role's token_audiences. Default: the first of them.",
					Query:       true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:    b.pathTokenRead,
					Summary:     "Mint (or serve the cached) access token for one of the role's token_audiences.",
					Description: pathTokenHelpDesc,
					Responses: map[int][]framework.Response{http.StatusOK: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							"access_token":    {Type: framework.TypeString, Description: "The access token.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
							"token_type":      {Type: framework.TypeString, Description: "Its type, as Auth0 answered it (Bearer)."},
							"expires_in":      {Type: framework.TypeInt64, Description: "Seconds until it expires."},
							"expires_at":      {Type: framework.TypeTime, Description: "When it expires (RFC 3339)."},
							"scope":           {Type: framework.TypeString, Description: "Scopes Auth0 granted, space-separated."},
							"audience":        {Type: framework.TypeString, Description: "API the token is for."},
							"ttl":             {Type: framework.TypeInt64, Description: "Seconds until Vault refreshes it (token_refresh_fraction of its lifetime): when Vault Agent should re-read."},
							"rotation_period": {Type: framework.TypeInt64, Description: "Seconds between refreshes; Vault Agent 1.13 honours ttl only when it is present."},
						},
					}}},
				},
			},
			HelpSynopsis:    pathTokenHelpSyn,
			HelpDescription: pathTokenHelpDesc,
		},
		{
			Pattern: "assertion/" + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: "auth0",
				OperationVerb:   "read",
				OperationSuffix: "client-assertion",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeLowerCaseString, Description: "Name of the role.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:    b.pathAssertionRead,
					Summary:     "Sign a client assertion with the role's current key.",
					Description: pathAssertionHelpDesc,
					Responses: map[int][]framework.Response{http.StatusOK: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							"client_id":             {Type: framework.TypeString, Description: "Client ID of the role's Auth0 application: the assertion's iss and sub."},
							"client_assertion":      {Type: framework.TypeString, Description: "The signed JWT.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
							"client_assertion_type": {Type: framework.TypeString, Description: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer, to send along with it."},
							"expires_at":            {Type: framework.TypeTime, Description: "When the assertion expires (RFC 3339)."},
						},
					}}},
				},
			},
			HelpSynopsis:    pathAssertionHelpSyn,
			HelpDescription: pathAssertionHelpDesc,
		},
	}
}

func (b *backend) pathTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	audience := d.Get("audience").(string)
	// The generation first, then the role it is checked against: a role write after this
	// point keeps the token fetched for it out of the cache, and the fetch checks the role
	// again on what it loads. An audience the role does not list is refused before anything
	// is asked of Auth0.
	b.AwaitRecovery(ctx, name)
	gen := b.Tokens.Generation(name)
	creds, err := b.LoadCredsCached(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if resp := engine.TokenAllowed(name, creds, audience); resp != nil {
		if creds == nil {
			if role, err := model.LoadRole(ctx, req.Storage, name); err != nil || role != nil && len(role.TokenAudiences) > 0 {
				return logical.ErrorResponse("role %q has no credential yet; rotate it first (vault write -f <mount>/rotate/%s)", name, name), err
			}
		}
		return resp, nil
	}
	tok, resp, err := b.Token(ctx, req.Storage, name, audience, creds, gen)
	if resp != nil || err != nil {
		return resp, err
	}
	now := b.Clock.Now()
	data := map[string]interface{}{
		"access_token": tok.AccessToken,
		"token_type":   tok.TokenType,
		"expires_in":   secondsUntil(tok.ExpiresAt, now),
		"expires_at":   tok.ExpiresAt.UTC().Format(time.RFC3339),
		"scope":        tok.Scope,
		"audience":     tok.Audience,
		// Vault Agent re-renders at ttl, when Vault would refresh the token; Agent 1.13
		// honours ttl only when rotation_period is present, so it is given too.
		"ttl":             secondsUntil(tok.RefreshAt, now),
		"rotation_period": int64(tok.RefreshAt.Sub(tok.ObtainedAt).Seconds()),
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathAssertionRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	b.AwaitRecovery(ctx, name)
	creds, err := b.LoadCredsCached(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	switch {
	case creds == nil:
		role, err := model.LoadRole(ctx, req.Storage, name)
		if err != nil || role == nil {
			return logical.ErrorResponse("role %q does not exist", name), err
		}
		if role.AllowAssertions { // only private_key_jwt roles have it
			return logical.ErrorResponse("role %q has no key yet; rotate it first (vault write -f <mount>/rotate/%s)", name, name), nil
		}
		return logical.ErrorResponse("role %q signs no client assertions: that needs credential_type=private_key_jwt and allow_assertions=true", name), nil
	case !creds.AllowAssertions:
		return logical.ErrorResponse("role %q signs no client assertions: that needs credential_type=private_key_jwt and allow_assertions=true", name), nil
	}
	conn, resp, err := b.RequireConnection(ctx, req.Storage)
	if resp != nil || err != nil {
		return resp, err
	}
	ttl := creds.AssertionTTL
	if ttl <= 0 {
		ttl = engine.DefaultAssertionTTL
	}
	now := b.Clock.Now()
	assertion, err := auth0api.SignAssertion(creds.Current.PrivateKey, creds.Current.Algorithm, creds.Current.KID, creds.ClientID, conn.Config.AssertionAudience(), now, ttl)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"client_id":             creds.ClientID,
		"client_assertion":      assertion,
		"client_assertion_type": auth0api.ClientAssertionType,
		"expires_at":            now.Add(ttl).UTC().Format(time.RFC3339),
	}}, nil
}

const pathTokenHelpSyn = `Mint an Auth0 access token with a role's credential, which stays in Vault.`

const pathTokenHelpDesc = `
Exchanges the role's current credential (its client secret, or for a private_key_jwt role
a client assertion signed with its key) at the tenant's /oauth/token (client-credentials
grant) and answers access_token, token_type, expires_in, expires_at, scope and audience.
The role's token_audiences list the APIs it may mint for (the first is the default;
audience= picks another); token_scopes, if set, are requested. An audience the role does
not list is refused without asking Auth0.

Tokens are cached in memory per role and audience and served until
token_refresh_fraction (config, default 0.67) of their lifetime has passed; concurrent
reads of a missing or stale token share one Auth0 request, and a rotation of the role
drops its tokens. ttl counts to that refresh, so Vault Agent re-renders a template before
the token expires. Reading the role shows the cache's hits, misses and Auth0 requests.

The strongest posture for an application that only calls APIs: a policy that allows
token/<its role> and not creds/<its role>, so the credential never leaves Vault.
`

const pathAssertionHelpSyn = `Sign a short-lived client assertion with a private_key_jwt role's key.`

const pathAssertionHelpDesc = `
For a role with credential_type=private_key_jwt and allow_assertions=true: a freshly signed
client assertion (JWT: iss = sub = client_id, aud = "https://<domain>/", a unique jti,
exp = now + assertion_ttl, default 60s, at most 5m) that the application presents at
Auth0 as client_assertion with client_assertion_type
"urn:ietf:params:oauth:client-assertion-type:jwt-bearer", e.g. in an authorization-code
exchange. The private key stays in Vault.
`
