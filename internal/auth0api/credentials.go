package auth0api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/auth0/go-auth0/management"
)

// The Management API calls of private_key_jwt roles, on the official SDK.

// AuthMethods is how an application authenticates: SecretMethod is its
// token_endpoint_auth_method ("" when null, as on private_key_jwt), Attached the ids of the
// credentials of its private_key_jwt method.
type AuthMethods struct {
	SecretMethod string
	Attached     []string
}

// UsesSecret reports whether the application still authenticates with a client secret.
func (m *AuthMethods) UsesSecret() bool { return m.SecretMethod != "" && m.SecretMethod != "none" }

// CredentialInfo is a credential as Auth0 describes it (no key material).
type CredentialInfo struct {
	ID        string
	Name      string
	KID       string
	Algorithm string
	ExpiresAt time.Time
}

func (c *Management) AuthMethods(ctx context.Context, clientID string) (*AuthMethods, error) {
	var client *management.Client
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		client, err = api.Client.Read(ctx, clientID, management.IncludeFields("client_id", "token_endpoint_auth_method", "client_authentication_methods"))
		return err
	})
	if err != nil {
		return nil, err
	}
	m := &AuthMethods{SecretMethod: client.GetTokenEndpointAuthMethod()}
	if cam := client.ClientAuthenticationMethods; cam != nil && cam.PrivateKeyJWT != nil && cam.PrivateKeyJWT.Credentials != nil {
		for _, cred := range *cam.PrivateKeyJWT.Credentials {
			if id := cred.GetID(); id != "" {
				m.Attached = append(m.Attached, id)
			}
		}
	}
	return m, nil
}

func (c *Management) ListCredentials(ctx context.Context, clientID string) ([]CredentialInfo, error) {
	var creds []*management.Credential
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		creds, err = api.Client.ListCredentials(ctx, clientID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]CredentialInfo, 0, len(creds))
	for _, cr := range creds {
		out = append(out, toCredentialInfo(cr))
	}
	return out, nil
}

func toCredentialInfo(cr *management.Credential) CredentialInfo {
	return CredentialInfo{ID: cr.GetID(), Name: cr.GetName(), KID: cr.GetKeyID(), Algorithm: cr.GetAlgorithm(), ExpiresAt: cr.GetExpiresAt()}
}

func (c *Management) CreateCredential(ctx context.Context, clientID, name, publicPEM, alg string) (CredentialInfo, error) {
	var info CredentialInfo
	err := c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		credentialType, n, key, a := "public_key", name, publicPEM, alg
		cr := &management.Credential{CredentialType: &credentialType, Name: &n, PEM: &key, Algorithm: &a}
		if err := api.Client.CreateCredential(ctx, clientID, cr); err != nil {
			return err
		}
		if info = toCredentialInfo(cr); info.ID == "" {
			return errors.Join(ErrOutcomeUnknown, errors.New("Auth0 answered the credential's creation without its id"))
		}
		return nil
	})
	return info, err
}

func (c *Management) AttachCredentials(ctx context.Context, clientID string, ids []string, disableSecret bool) error {
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

func (c *Management) DeleteCredential(ctx context.Context, clientID, credentialID string) error {
	err := c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		return api.Client.DeleteCredential(ctx, clientID, credentialID)
	})
	if ManagementStatus(err) == http.StatusNotFound {
		return nil // already gone: what a retry after a lost answer finds
	}
	return err
}
