package model

import (
	"strings"
	"testing"
)

// The audience against the domain, from the config alone: the Management API's
// identifier ends in /api/v2/, and a custom domain needs it set to the canonical domain's.
func TestAudienceAgainstDomain(t *testing.T) {
	cases := []struct {
		name, scheme, host, audience string
		canonical                    bool
		audienceProblem, custom      string // a part of the problem, "" for none
	}{
		{"tenant domain, default audience", "https", "acme.eu.auth0.com", "", true, "", ""},
		{"tenant domain with a port", "https", "acme.auth0.com:443", "", true, "", ""},
		{"custom domain, default audience", "https", "login.acme.com", "", false, "", `domain "login.acme.com" is not an Auth0 tenant domain`},
		{"custom domain, canonical audience", "https", "login.acme.com", "https://acme.eu.auth0.com/api/v2/", false, "", ""},
		{"audience without its trailing slash", "https", "acme.eu.auth0.com", "https://acme.eu.auth0.com/api/v2", true, "trailing slash included", ""},
		{"audience of another API", "https", "login.acme.com", "https://api.acme.com/", false, `audience "https://api.acme.com/" is not a Management API identifier`, ""},
		{"local emulator", "http", "127.0.0.1:8091", "", false, "", ""},
		{"localhost over https", "https", "localhost:8443", "", false, "", ""},
	}
	for _, tc := range cases {
		cfg := &ConfigEntry{Scheme: tc.scheme, Host: tc.host, Audience: tc.audience}
		if got := cfg.CanonicalDomain(); got != tc.canonical {
			t.Errorf("%s: CanonicalDomain %v, want %v", tc.name, got, tc.canonical)
		}
		for _, c := range []struct{ what, got, want string }{
			{"AudienceProblem", cfg.AudienceProblem(), tc.audienceProblem},
			{"CustomDomainProblem", cfg.CustomDomainProblem(), tc.custom},
		} {
			if c.want == "" && c.got != "" || c.want != "" && !strings.Contains(c.got, c.want) {
				t.Errorf("%s: %s %q, want %q", tc.name, c.what, c.got, c.want)
			}
			if c.got != "" && !strings.Contains(c.got, "vault write <mount>/config audience=") {
				t.Errorf("%s: %s %q does not say what to write", tc.name, c.what, c.got)
			}
		}
	}
}
