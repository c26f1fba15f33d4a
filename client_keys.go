package auth0

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// The Management API calls of private_key_jwt roles (keys.go), on the official SDK.

// keyAPI is what a private_key_jwt rotation asks of Auth0; *managementClient implements it.
type keyAPI interface {
	// AuthMethods reads how clientID authenticates at /oauth/token.
	AuthMethods(ctx context.Context, clientID string) (*authMethods, error)
	// ListCredentials lists the credentials stored on clientID (attached or not).
	ListCredentials(ctx context.Context, clientID string) ([]credentialInfo, error)
	// CreateCredential registers a public key on clientID. A lost answer is reported as
	// errOutcomeUnknown: the credential may exist; its name finds it.
	CreateCredential(ctx context.Context, clientID, name, publicPEM, alg string) (credentialInfo, error)
	// AttachCredentials sets the credentials of clientID's private_key_jwt method to ids
	// (PATCH, idempotent). With disableSecret it also sets token_endpoint_auth_method to
	// null in the same request: Auth0 then stops accepting the client secret.
	AttachCredentials(ctx context.Context, clientID string, ids []string, disableSecret bool) error
	// DeleteCredential deletes a detached credential; an unknown one is not an error.
	DeleteCredential(ctx context.Context, clientID, credentialID string) error
}

var _ keyAPI = (*managementClient)(nil)

// authMethods is how an application authenticates: SecretMethod is its
// token_endpoint_auth_method ("" when null, as on private_key_jwt), Attached the ids of the
// credentials of its private_key_jwt method.
type authMethods struct {
	SecretMethod string
	Attached     []string
}

// usesSecret reports whether the application still authenticates with a client secret.
func (m *authMethods) usesSecret() bool { return m.SecretMethod != "" && m.SecretMethod != "none" }

// credentialInfo is a credential as Auth0 describes it (no key material).
type credentialInfo struct {
	ID        string
	Name      string
	KID       string
	Algorithm string
	ExpiresAt time.Time
}

func (c *managementClient) AuthMethods(ctx context.Context, clientID string) (*authMethods, error) {
	var client *management.Client
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		client, err = api.Client.Read(ctx, clientID, management.IncludeFields("client_id", "token_endpoint_auth_method", "client_authentication_methods"))
		return err
	})
	if err != nil {
		return nil, err
	}
	m := &authMethods{SecretMethod: client.GetTokenEndpointAuthMethod()}
	if cam := client.ClientAuthenticationMethods; cam != nil && cam.PrivateKeyJWT != nil && cam.PrivateKeyJWT.Credentials != nil {
		for _, cred := range *cam.PrivateKeyJWT.Credentials {
			if id := cred.GetID(); id != "" {
				m.Attached = append(m.Attached, id)
			}
		}
	}
	return m, nil
}

func (c *managementClient) ListCredentials(ctx context.Context, clientID string) ([]credentialInfo, error) {
	var creds []*management.Credential
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		creds, err = api.Client.ListCredentials(ctx, clientID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]credentialInfo, 0, len(creds))
	for _, cr := range creds {
		out = append(out, toCredentialInfo(cr))
	}
	return out, nil
}

func toCredentialInfo(cr *management.Credential) credentialInfo {
	return credentialInfo{ID: cr.GetID(), Name: cr.GetName(), KID: cr.GetKeyID(), Algorithm: cr.GetAlgorithm(), ExpiresAt: cr.GetExpiresAt()}
}

func (c *managementClient) CreateCredential(ctx context.Context, clientID, name, publicPEM, alg string) (credentialInfo, error) {
	var info credentialInfo
	err := c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		credentialType, n, key, a := "public_key", name, publicPEM, alg
		cr := &management.Credential{CredentialType: &credentialType, Name: &n, PEM: &key, Algorithm: &a}
		if err := api.Client.CreateCredential(ctx, clientID, cr); err != nil {
			return err
		}
		if info = toCredentialInfo(cr); info.ID == "" {
			return errors.Join(errOutcomeUnknown, errors.New("Auth0 answered the credential's creation without its id"))
		}
		return nil
	})
	return info, err
}

func (c *managementClient) AttachCredentials(ctx context.Context, clientID string, ids []string, disableSecret bool) error {
	creds := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		creds = append(creds, map[string]string{"id": id})
	}
	// A map, not management.Client: the SDK's omitempty fields cannot send the JSON null
	// that token_endpoint_auth_method needs to switch the application to private_key_jwt.
	payload := map[string]any{
		"client_authentication_methods": map[string]any{"private_key_jwt": map[string]any{"credentials": creds}},
	}
	if disableSecret {
		payload["token_endpoint_auth_method"] = nil
	}
	return c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		return api.Request(ctx, http.MethodPatch, api.URI("clients", clientID), payload)
	})
}

func (c *managementClient) DeleteCredential(ctx context.Context, clientID, credentialID string) error {
	err := c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		return api.Client.DeleteCredential(ctx, clientID, credentialID)
	})
	if auth0api.ManagementStatus(err) == http.StatusNotFound {
		return nil // already gone: what a retry after a lost answer finds
	}
	return err
}

// verifyAssertion obtains a token for clientID with a client assertion signed by key, proving
// that Auth0 accepts the key. A 403 (authenticated, audience not granted) counts as accepted.
func verifyAssertion(ctx context.Context, cfg *configEntry, clientID, assertion string) error {
	httpClient, closeIdle := auth0api.NewEgressClient(cfg.Host, cfg.requestTimeout())
	defer closeIdle()
	cc := clientcredentials.Config{
		ClientID: clientID,
		TokenURL: cfg.tokenURL(),
		EndpointParams: url.Values{
			"audience":              {cfg.audience()},
			"client_assertion_type": {auth0api.ClientAssertionType},
			"client_assertion":      {assertion},
		},
		AuthStyle: oauth2.AuthStyleInParams,
	}
	_, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, httpClient))
	return err
}
