package integration

import (
	"net/http"
	"strings"
	"testing"
)

// TestPolicies checks that the path layout lets an application read only its
// own secret and a pipeline rotate without reading.
func TestPolicies(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	v, root := f.v, f.v.RootToken
	f.configure(t)
	myapp := f.addApp(t, "myapp-id", "My App")
	other := f.addApp(t, "other-id", "Other App")
	f.createRole(t, "myapp", myapp.ClientID)
	f.createRole(t, "other", other.ClientID)
	f.rotate(t, root, "myapp")
	f.rotate(t, root, "other")

	v.WritePolicy(t, "myapp-app", `path "auth0/creds/myapp" { capabilities = ["read"] }`)
	v.WritePolicy(t, "myapp-rotator", `path "auth0/rotate/myapp" { capabilities = ["update"] }`)
	appToken := v.CreateToken(t, "myapp-app")
	rotatorToken := v.CreateToken(t, "myapp-rotator")

	// currentVersion reads myapp's served version as root.
	currentVersion := func(t *testing.T) int {
		t.Helper()
		status, data, errs := v.Request(t, root, http.MethodGet, mount+"/creds/myapp", nil)
		if status != http.StatusOK {
			t.Fatalf("root reading creds/myapp: status %d: %v", status, errs)
		}
		return num(t, data, "version")
	}

	cases := []struct {
		name   string
		token  string
		method string
		path   string
		want   int
		// rotated is how many rotations Auth0 must see for myapp.
		rotated int
		// check, when set, inspects a successful answer; before is
		// myapp's version before the request.
		check func(t *testing.T, data map[string]any, before int)
	}{
		{
			name: "app reads its creds", token: appToken, method: http.MethodGet,
			path: mount + "/creds/myapp", want: http.StatusOK,
			check: func(t *testing.T, data map[string]any, before int) {
				if got := str(t, data, "client_id"); got != myapp.ClientID {
					t.Errorf("client_id = %q, want %q", got, myapp.ClientID)
				}
				if got := num(t, data, "version"); got != before {
					t.Errorf("version = %d, want %d", got, before)
				}
				secret := str(t, data, "client_secret")
				if secret != f.secret(t, myapp.ClientID) {
					t.Errorf("client_secret is not Auth0's current secret of %s", myapp.ClientID)
				}
				if code := authenticate(t, f.emuURL, myapp.ClientID, secret); code != http.StatusOK {
					t.Errorf("authenticating with the served secret: status %d, want 200", code)
				}
			},
		},
		{name: "app cannot read other creds", token: appToken, method: http.MethodGet, path: mount + "/creds/other", want: http.StatusForbidden},
		{
			name: "app reads an older version", token: appToken, method: http.MethodGet,
			path: mount + "/creds/myapp?version=1", want: http.StatusOK,
			check: func(t *testing.T, data map[string]any, before int) {
				if got := num(t, data, "version"); got != 1 {
					t.Errorf("version = %d, want 1", got)
				}
			},
		},
		{name: "app cannot read version metadata", token: appToken, method: http.MethodGet, path: mount + "/versions/myapp", want: http.StatusForbidden},
		{name: "app cannot rotate", token: appToken, method: http.MethodPost, path: mount + "/rotate/myapp", want: http.StatusForbidden},
		{name: "app cannot read config", token: appToken, method: http.MethodGet, path: mount + "/config", want: http.StatusForbidden},
		{name: "app cannot read its role", token: appToken, method: http.MethodGet, path: mount + "/roles/myapp", want: http.StatusForbidden},
		{
			name: "rotator rotates", token: rotatorToken, method: http.MethodPost,
			path: mount + "/rotate/myapp", want: http.StatusOK, rotated: 1,
			check: func(t *testing.T, data map[string]any, before int) {
				if got := num(t, data, "version"); got != before+1 {
					t.Errorf("version = %d, want %d", got, before+1)
				}
				if got := currentVersion(t); got != before+1 {
					t.Errorf("creds now serve version %d, want %d", got, before+1)
				}
				for k := range data {
					if strings.Contains(k, "secret") {
						t.Errorf("rotate answer has a field %q", k)
					}
				}
			},
		},
		{name: "rotator cannot read creds", token: rotatorToken, method: http.MethodGet, path: mount + "/creds/myapp", want: http.StatusForbidden},
		{name: "rotator cannot rotate other", token: rotatorToken, method: http.MethodPost, path: mount + "/rotate/other", want: http.StatusForbidden},
		{name: "rotator cannot read config", token: rotatorToken, method: http.MethodGet, path: mount + "/config", want: http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := currentVersion(t)
			rotationsBefore := f.rotations(myapp.ClientID)
			otherBefore := f.rotations(other.ClientID)

			status, data, errs := v.Request(t, tc.token, tc.method, tc.path, nil)
			if status != tc.want {
				t.Fatalf("%s %s: status %d, want %d (errors %v)", tc.method, tc.path, status, tc.want, errs)
			}
			if tc.want == http.StatusForbidden {
				if msg := strings.Join(errs, " "); !strings.Contains(msg, "permission denied") {
					t.Errorf("403 errors = %q, want permission denied", msg)
				}
				if data != nil {
					t.Errorf("403 answer carries data: %v", keys(data))
				}
			}
			if tc.check != nil {
				tc.check(t, data, before)
			}
			if got := f.rotations(myapp.ClientID) - rotationsBefore; got != tc.rotated {
				t.Errorf("Auth0 saw %d rotations of %s, want %d", got, myapp.ClientID, tc.rotated)
			}
			if got := f.rotations(other.ClientID) - otherBefore; got != 0 {
				t.Errorf("Auth0 saw %d rotations of %s, want 0", got, other.ClientID)
			}
		})
	}
}
