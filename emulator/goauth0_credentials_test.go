package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auth0/go-auth0"
	"github.com/auth0/go-auth0/management"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// TestGoAuth0PrivateKeyJWT drives a migration to private_key_jwt and a key
// rotation with go-auth0, the way the engine does: credentials through
// ClientManager, the PATCHes of client_authentication_methods through
// Management.Request with a map (Client.Update cannot send the JSON null
// token_endpoint_auth_method needs), and the application's own logins with
// go-auth0's private_key_jwt token source. The emulator runs on real time
// here: go-auth0 signs its assertions with time.Now.
func TestGoAuth0PrivateKeyJWT(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	f.srv.AddClient(emulator.Client{ClientID: credAdminID, ClientSecret: credAdminSec, Name: "cred admin",
		Grants: map[string][]string{emulator.ManagementGrant: credScopes}})
	f.srv.AddClient(emulator.Client{ClientID: appID, ClientSecret: appSecret, Name: "app",
		Grants: map[string][]string{emulator.ManagementGrant: {"read:clients"}}})
	ctx := context.Background()
	m := newManagement(t, f, credAdminID, credAdminSec, true)

	// Create a credential; go-auth0 fills the struct from the answer.
	cred := &management.Credential{
		Name:           auth0.String("vault 1"),
		CredentialType: auth0.String("public_key"),
		PEM:            auth0.String(pkixPEM(key(0))),
		Algorithm:      auth0.String("RS256"),
	}
	if err := m.Client.CreateCredential(ctx, appID, cred); err != nil {
		t.Fatalf("CreateCredential: %v", err)
	}
	if !credIDRE.MatchString(cred.GetID()) || cred.GetKeyID() != emulator.KeyID(&key(0).PublicKey) ||
		cred.CreatedAt == nil || cred.ExpiresAt != nil {
		t.Fatalf("created %s", cred)
	}

	// The same key again: a management.Error with Auth0's 409.
	err := m.Client.CreateCredential(ctx, appID, &management.Credential{
		CredentialType: auth0.String("public_key"), PEM: auth0.String(pkixPEM(key(0))),
	})
	var mErr management.Error
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusConflict {
		t.Fatalf("duplicate CreateCredential: %v", err)
	}

	list, err := m.Client.ListCredentials(ctx, appID)
	if err != nil || len(list) != 1 || list[0].GetID() != cred.GetID() {
		t.Fatalf("ListCredentials = %v, %v", list, err)
	}
	got, err := m.Client.GetCredential(ctx, appID, cred.GetID())
	if err != nil || got.GetKeyID() != cred.GetKeyID() || got.GetAlgorithm() != "RS256" {
		t.Fatalf("GetCredential = %v, %v", got, err)
	}
	expiry := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	upd := &management.Credential{ExpiresAt: &expiry}
	if err := m.Client.UpdateCredential(ctx, appID, cred.GetID(), upd); err != nil || !upd.GetExpiresAt().Equal(expiry) {
		t.Fatalf("UpdateCredential: %v, %s", err, upd)
	}

	// Client.Update cannot migrate: it leaves token_endpoint_auth_method
	// out (omitempty), so the client would have both methods.
	methods := func(ids ...string) *management.ClientAuthenticationMethods {
		creds := make([]management.Credential, len(ids))
		for i, id := range ids {
			creds[i] = management.Credential{ID: auth0.String(id)}
		}
		return &management.ClientAuthenticationMethods{PrivateKeyJWT: &management.PrivateKeyJWT{Credentials: &creds}}
	}
	err = m.Client.Update(ctx, appID, &management.Client{ClientAuthenticationMethods: methods(cred.GetID())})
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusBadRequest ||
		!strings.Contains(err.Error(), "cannot both be set") {
		t.Fatalf("Client.Update with client_authentication_methods only: %v", err)
	}

	// The migration PATCH, with the JSON null, through Management.Request.
	migrate := map[string]any{
		"token_endpoint_auth_method":    nil,
		"client_authentication_methods": methods(cred.GetID()),
	}
	if err := m.Request(ctx, http.MethodPatch, m.URI("clients", appID), migrate); err != nil {
		t.Fatalf("migration PATCH: %v", err)
	}
	// go-auth0's Client round-trips the fields.
	c, err := m.Client.Read(ctx, appID)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	pkj := c.GetClientAuthenticationMethods().GetPrivateKeyJWT()
	if c.TokenEndpointAuthMethod != nil || c.ClientSecret != nil || pkj == nil || pkj.Credentials == nil ||
		len(*pkj.Credentials) != 1 || (*pkj.Credentials)[0].GetID() != cred.GetID() {
		t.Fatalf("client after migration: %s", c)
	}

	// The application logs in with go-auth0's private_key_jwt token source
	// (no kid, aud "http://host/", a UUID jti, exp 2 minutes ahead).
	host := f.ts.Listener.Addr().String()
	app, err := management.New(host, management.WithInsecure(),
		management.WithClientCredentialsPrivateKeyJwt(ctx, appID, privatePEM(key(0)), "RS256"), management.WithNoRetries())
	if err != nil {
		t.Fatal(err)
	}
	if own, err := app.Client.Read(ctx, appID, management.IncludeFields("name")); err != nil || own.GetName() != "app" {
		t.Fatalf("Read with a private_key_jwt token: %v, %v", own, err)
	}
	// Its secret no longer works.
	if _, err := newManagement(t, f, appID, appSecret, true).Client.Read(ctx, appID, management.IncludeFields("name")); err == nil {
		t.Fatal("the secret still works after the migration")
	}

	// Rotation: a second key, attach both, then only the new one, then
	// delete the old one (which is refused while attached).
	cred2 := &management.Credential{CredentialType: auth0.String("public_key"), PEM: auth0.String(pkixPEM(key(1))), Algorithm: auth0.String("PS256")}
	if err := m.Client.CreateCredential(ctx, appID, cred2); err != nil {
		t.Fatal(err)
	}
	err = m.Client.DeleteCredential(ctx, appID, cred.GetID())
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusBadRequest {
		t.Fatalf("DeleteCredential of an attached credential: %v", err)
	}
	for _, ids := range [][]string{{cred.GetID(), cred2.GetID()}, {cred2.GetID()}} {
		if err := m.Request(ctx, http.MethodPatch, m.URI("clients", appID),
			map[string]any{"client_authentication_methods": methods(ids...)}); err != nil {
			t.Fatalf("attach %v: %v", ids, err)
		}
	}
	if err := m.Client.DeleteCredential(ctx, appID, cred.GetID()); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	err = m.Client.DeleteCredential(ctx, appID, cred.GetID())
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusNotFound {
		t.Fatalf("DeleteCredential again: %v", err)
	}
	app2, err := management.New(host, management.WithInsecure(),
		management.WithClientCredentialsPrivateKeyJwt(ctx, appID, privatePEM(key(1)), "PS256"), management.WithNoRetries())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app2.Client.Read(ctx, appID, management.IncludeFields("name")); err != nil {
		t.Fatalf("Read with the rotated key: %v", err)
	}

	st := f.srv.Stats()
	if st.CredentialsCreated[appID] != 2 || st.CredentialsDeleted[appID] != 1 || st.AuthMethodPatches[appID] != 3 ||
		st.AssertionLogins[appID] != 2 {
		t.Errorf("stats %+v", st)
	}
}
