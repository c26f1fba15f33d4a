package engine

import (
	"context"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/auth0api"
)

// keyAPI is what the rotation of an attached credential (keys.go) asks of Auth0; *auth0api.Management
// implements it.
type keyAPI interface {
	// AuthMethods reads how clientID authenticates at /oauth/token, with the credentials
	// attached to method.
	AuthMethods(ctx context.Context, clientID, method string) (*auth0api.AuthMethods, error)
	// ListCredentials lists the credentials stored on clientID (attached or not).
	ListCredentials(ctx context.Context, clientID string) ([]auth0api.CredentialInfo, error)
	// CreateCredential registers a public key or certificate on clientID. A lost answer
	// is reported as auth0api.ErrOutcomeUnknown: the credential may exist; its name finds
	// it.
	CreateCredential(ctx context.Context, clientID string, cred auth0api.NewCredential) (auth0api.CredentialInfo, error)
	// AttachCredentials sets the credentials of clientID's method to ids (PATCH,
	// idempotent). With switchMethod the same request makes method the application's
	// only one: Auth0 then stops accepting its client secret (or other credentials).
	AttachCredentials(ctx context.Context, clientID, method string, ids []string, switchMethod bool) error
	// DeleteCredential deletes a detached credential; an unknown one is not an error.
	DeleteCredential(ctx context.Context, clientID, credentialID string) error
}

var _ keyAPI = (*auth0api.Management)(nil)
