package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/auth0/go-auth0"
	"github.com/auth0/go-auth0/management"
	"golang.org/x/oauth2"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// newManagement builds a real go-auth0 Management client against the
// emulator. WithInsecure must come first so the token URL uses http.
func newManagement(t *testing.T, f *fixture, id, secret string, withAudience bool) *management.Management {
	t.Helper()
	ctx := context.Background()
	host := f.ts.Listener.Addr().String()
	creds := management.WithClientCredentials(ctx, id, secret)
	if withAudience {
		creds = management.WithClientCredentialsAndAudience(ctx, id, secret, f.aud)
	}
	m, err := management.New(host, management.WithInsecure(), creds, management.WithNoRetries())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGoAuth0Client(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	ctx := context.Background()
	m := newManagement(t, f, adminID, adminSecret, true)

	c, err := m.Client.Read(ctx, targetID, management.IncludeFields("client_secret"))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if c.GetClientSecret() != "target-secret" || c.ClientID != nil {
		t.Fatalf("Read with IncludeFields(client_secret) = %s", c)
	}

	c, err = m.Client.Read(ctx, targetID, management.ExcludeFields("client_secret"))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if c.ClientSecret != nil || c.GetClientID() != targetID || c.GetAppType() != "non_interactive" || c.GetName() != "target" {
		t.Fatalf("Read with ExcludeFields(client_secret) = %s", c)
	}

	rotated, err := m.Client.RotateSecret(ctx, targetID)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	newSecret := rotated.GetClientSecret()
	if !secretRE.MatchString(newSecret) || rotated.GetClientID() != targetID {
		t.Fatalf("RotateSecret returned %s", rotated)
	}
	if s, _ := f.srv.ClientSecret(targetID); s != newSecret {
		t.Fatalf("emulator secret %q != returned %q", s, newSecret)
	}

	// Update with a chosen secret through the SDK.
	chosen := "chosen-secret-0123456789-0123456789-0123456789-01"
	if err := m.Client.Update(ctx, targetID, &management.Client{ClientSecret: auth0.String(chosen)}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if s, _ := f.srv.ClientSecret(targetID); s != chosen {
		t.Fatalf("secret after Update = %q", s)
	}

	// Errors come back as management.Error with Auth0's status.
	_, err = m.Client.Read(ctx, "does-not-exist")
	var mErr management.Error
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusNotFound {
		t.Fatalf("Read unknown client: %v", err)
	}

	st := f.srv.Stats()
	if st.Rotations[targetID] != 1 || st.SecretPatches[targetID] != 1 || st.TokensIssued != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestGoAuth0RotateOwnSecret(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	ctx := context.Background()

	// WithClientCredentials (no explicit audience) over http asks for
	// "http://<host>/api/v2/", which the emulator accepts as well.
	m := newManagement(t, f, adminID, adminSecret, false)
	rotated, err := m.Client.RotateSecret(ctx, adminID)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}

	// A fresh client with the old secret cannot get a token any more.
	stale := newManagement(t, f, adminID, adminSecret, true)
	if _, err := stale.Client.Read(ctx, targetID); err == nil {
		t.Fatal("old secret still works after rotation")
	}
	fresh := newManagement(t, f, adminID, rotated.GetClientSecret(), true)
	c, err := fresh.Client.Read(ctx, adminID, management.IncludeFields("client_secret"))
	if err != nil {
		t.Fatalf("Read with new secret: %v", err)
	}
	if c.GetClientSecret() != rotated.GetClientSecret() {
		t.Fatal("Read returned a different secret")
	}

	// An expired token is refused with 401 (go-auth0 caches the token, so
	// it does not fetch a new one by itself).
	f.srv.ExpireTokens()
	_, err = fresh.Client.Read(ctx, adminID)
	var mErr management.Error
	if !errors.As(err, &mErr) || mErr.Status() != http.StatusUnauthorized {
		t.Fatalf("Read with expired token: %v", err)
	}
}

// TestGoAuth0SecretReadScope: without read:client_keys a read of the secret
// fails with Auth0's 403, so the SDK returns an error rather than a client
// without its secret.
func TestGoAuth0SecretReadScope(t *testing.T) {
	f := newFixture(t, emulator.Options{})
	ctx := context.Background()
	m := newManagement(t, f, readerID, otherSecret, true)

	for name, opts := range map[string][]management.RequestOption{
		"IncludeFields(client_secret)": {management.IncludeFields("client_id", "client_secret")},
		"all fields":                   nil,
	} {
		_, err := m.Client.Read(ctx, targetID, opts...)
		var mErr management.Error
		if !errors.As(err, &mErr) || mErr.Status() != http.StatusForbidden ||
			!strings.Contains(err.Error(), "You cannot read the following fields: client_secret") {
			t.Fatalf("Read with %s: %v", name, err)
		}
	}
	c, err := m.Client.Read(ctx, targetID, management.ExcludeFields("client_secret"))
	if err != nil || c.ClientSecret != nil || c.GetName() != "target" {
		t.Fatalf("Read excluding the secret: %v, %v", c, err)
	}
}

// TestGoAuth0TokenEndpointErrors: the token endpoint's OAuth-shaped errors
// reach the SDK's caller as oauth2.RetrieveError.
func TestGoAuth0TokenEndpointErrors(t *testing.T) {
	tests := []struct {
		name      string
		opts      emulator.Options
		fault     *emulator.Fault
		wantCode  string
		wantDesc  string
		wantHTTP  int
		wantStats func(st emulator.Stats) bool
	}{
		{"global limit as 500", emulator.Options{}, &emulator.Fault{Status: 500}, "access_denied", "Global limit has been reached", 500, nil},
		{"token rate limit", emulator.Options{TokenRateLimit: 1}, nil, "too_many_requests", "Global limit has been reached", 429,
			func(st emulator.Stats) bool {
				return st.RateLimited >= 1 && st.TokenRequests[adminID] == st.RateLimited+1
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			if tc.fault != nil {
				f.srv.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
					if p == emulator.BeforeApply && r.URL.Path == "/oauth/token" {
						return tc.fault
					}
					return nil
				})
			} else {
				f.token(adminID, adminSecret) // use up the bucket
			}
			_, err := newManagement(t, f, adminID, adminSecret, true).Client.Read(context.Background(), targetID)
			var rErr *oauth2.RetrieveError
			if !errors.As(err, &rErr) || rErr.ErrorCode != tc.wantCode || rErr.ErrorDescription != tc.wantDesc || rErr.Response.StatusCode != tc.wantHTTP {
				t.Fatalf("Read: %v", err)
			}
			if tc.wantStats != nil && !tc.wantStats(f.srv.Stats()) {
				t.Fatalf("stats = %+v", f.srv.Stats())
			}
		})
	}
}
