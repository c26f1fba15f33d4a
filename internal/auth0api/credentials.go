package auth0api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/auth0/go-auth0/management"
)

// The Management API calls of the roles that attach credentials to an application's
// authentication method (private_key_jwt, self_signed_tls_client_auth), on the official SDK.

// The client_authentication_methods Auth0 has credentials for, and their credential types.
const (
	MethodPrivateKeyJWT = "private_key_jwt"
	MethodSelfSignedTLS = "self_signed_tls_client_auth"

	CredentialPublicKey = "public_key"
	CredentialX509Cert  = "x509_cert"
)

// AuthMethods is how an application authenticates: SecretMethod is its
// token_endpoint_auth_method ("" when null, as on a credential method), Attached the ids of
// the credentials of the method asked about, Other the credential methods it uses besides.
type AuthMethods struct {
	SecretMethod string
	Attached     []string
	Other        []string
}

// NewCredential is a credential to register: its type (CredentialPublicKey or
// CredentialX509Cert), name, PEM (a public key or a certificate) and, for a public key,
// signing algorithm.
type NewCredential struct {
	Type      string
	Name      string
	PEM       string
	Algorithm string
}

// UsesSecret reports whether the application still authenticates with a client secret.
func (m *AuthMethods) UsesSecret() bool { return m.SecretMethod != "" && m.SecretMethod != "none" }

// Switching reports whether attaching credentials to the method asked about changes how
// the application authenticates: off its client secret, or off another credential method.
func (m *AuthMethods) Switching() bool { return m.UsesSecret() || len(m.Other) > 0 }

// Current names how the application authenticates now, for messages.
func (m *AuthMethods) Current() string {
	switch {
	case m.UsesSecret():
		return m.SecretMethod
	case len(m.Other) > 0:
		return m.Other[0]
	}
	return m.SecretMethod
}

// CredentialInfo is a credential as Auth0 describes it (no key material).
type CredentialInfo struct {
	ID        string
	Type      string
	Name      string
	KID       string
	Algorithm string
	// Thumbprint is an x509_cert's SHA-256 thumbprint, base64url.
	Thumbprint string
	ExpiresAt  time.Time
}

// AuthMethods reads how clientID authenticates, with the credentials attached to method.
func (c *Management) AuthMethods(ctx context.Context, clientID, method string) (*AuthMethods, error) {
	var client *management.Client
	err := c.call(ctx, nil, func(api *management.Management) (err error) {
		client, err = api.Client.Read(ctx, clientID, management.IncludeFields("client_id", "token_endpoint_auth_method", "client_authentication_methods"))
		return err
	})
	if err != nil {
		return nil, err
	}
	m := &AuthMethods{SecretMethod: client.GetTokenEndpointAuthMethod()}
	cam := client.ClientAuthenticationMethods
	if cam == nil {
		return m, nil
	}
	methods := map[string]*[]management.Credential{}
	if cam.PrivateKeyJWT != nil && cam.PrivateKeyJWT.Credentials != nil {
		methods[MethodPrivateKeyJWT] = cam.PrivateKeyJWT.Credentials
	}
	if cam.SelfSignedTLSClientAuth != nil && cam.SelfSignedTLSClientAuth.Credentials != nil {
		methods[MethodSelfSignedTLS] = cam.SelfSignedTLSClientAuth.Credentials
	}
	if cam.TLSClientAuth != nil && cam.TLSClientAuth.Credentials != nil {
		methods["tls_client_auth"] = cam.TLSClientAuth.Credentials
	}
	for _, name := range []string{MethodPrivateKeyJWT, MethodSelfSignedTLS, "tls_client_auth"} {
		creds, ok := methods[name]
		if !ok || len(*creds) == 0 {
			continue
		}
		if name != method {
			m.Other = append(m.Other, name)
			continue
		}
		for _, cred := range *creds {
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
	return CredentialInfo{ID: cr.GetID(), Type: cr.GetCredentialType(), Name: cr.GetName(), KID: cr.GetKeyID(), Algorithm: cr.GetAlgorithm(), Thumbprint: cr.GetThumbprintSHA256(), ExpiresAt: cr.GetExpiresAt()}
}

// CreateCredential registers nc on clientID.
func (c *Management) CreateCredential(ctx context.Context, clientID string, nc NewCredential) (CredentialInfo, error) {
	var info CredentialInfo
	err := c.callChanging(ctx, nil, func(ctx context.Context, api *management.Management) error {
		credentialType, n, pem := nc.Type, nc.Name, nc.PEM
		cr := &management.Credential{CredentialType: &credentialType, Name: &n, PEM: &pem}
		if nc.Algorithm != "" {
			alg := nc.Algorithm
			cr.Algorithm = &alg
		}
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

// AttachCredentials makes ids the credentials of clientID's method (PATCH, idempotent).
// With switchMethod the same request makes method the application's only one: its
// token_endpoint_auth_method and the other credential methods are set to null (Auth0 then
// refuses its client secret, or the other method's credentials).
func (c *Management) AttachCredentials(ctx context.Context, clientID, method string, ids []string, switchMethod bool) error {
	creds := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		creds = append(creds, map[string]string{"id": id})
	}
	// A map, not management.Client: the SDK's omitempty fields cannot send the JSON null
	// that token_endpoint_auth_method needs to switch the application to private_key_jwt.
	methods := map[string]any{method: map[string]any{"credentials": creds}}
	payload := map[string]any{"client_authentication_methods": methods}
	if switchMethod {
		payload["token_endpoint_auth_method"] = nil
		for _, other := range []string{MethodPrivateKeyJWT, MethodSelfSignedTLS} {
			if other != method {
				methods[other] = nil // Auth0 changes only the methods a PATCH names
			}
		}
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
