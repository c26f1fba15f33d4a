package auth0

import (
	"context"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// keyAPI is what a private_key_jwt rotation (keys.go) asks of Auth0; *auth0api.Management
// implements it.
type keyAPI interface {
	// AuthMethods reads how clientID authenticates at /oauth/token.
	AuthMethods(ctx context.Context, clientID string) (*auth0api.AuthMethods, error)
	// ListCredentials lists the credentials stored on clientID (attached or not).
	ListCredentials(ctx context.Context, clientID string) ([]auth0api.CredentialInfo, error)
	// CreateCredential registers a public key on clientID. A lost answer is reported as
	// auth0api.ErrOutcomeUnknown: the credential may exist; its name finds it.
	CreateCredential(ctx context.Context, clientID, name, publicPEM, alg string) (auth0api.CredentialInfo, error)
	// AttachCredentials sets the credentials of clientID's private_key_jwt method to ids
	// (PATCH, idempotent). With disableSecret it also sets token_endpoint_auth_method to
	// null in the same request: Auth0 then stops accepting the client secret.
	AttachCredentials(ctx context.Context, clientID string, ids []string, disableSecret bool) error
	// DeleteCredential deletes a detached credential; an unknown one is not an error.
	DeleteCredential(ctx context.Context, clientID, credentialID string) error
}

var _ keyAPI = (*auth0api.Management)(nil)
