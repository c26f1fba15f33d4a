package integration

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// edgeCNAMEKey is the custom domain key the emulated tenant's mTLS edge forwards.
const edgeCNAMEKey = "integration-cname-api-key"

const (
	ctRole           = "certapp"
	ctRotationPeriod = 8 * time.Second
	ctOverlapPeriod  = 4 * time.Second
	ctRotations      = 3
	ctDeadline       = 3 * time.Minute
)

// ctRendered is what ctTemplate renders.
type ctRendered struct {
	Version             int    `json:"version"`
	Certificate         string `json:"certificate"`
	PrivateKey          string `json:"private_key"`
	Thumbprint          string `json:"thumbprint_sha256"`
	PreviousCertificate string `json:"previous_certificate"`
	PreviousPrivateKey  string `json:"previous_private_key"`
	PreviousThumbprint  string `json:"previous_thumbprint_sha256"`
}

func ctTemplate(role string) string {
	return `{{ with secret "auth0/creds/` + role + `" }}{
  "version": {{ .Data.version | toJSON }},
  "certificate": {{ .Data.certificate | toJSON }},
  "private_key": {{ .Data.private_key | toJSON }},
  "thumbprint_sha256": {{ .Data.thumbprint_sha256 | toJSON }},
  "previous_certificate": {{ .Data.previous_certificate | toJSON }},
  "previous_private_key": {{ .Data.previous_private_key | toJSON }},
  "previous_thumbprint_sha256": {{ .Data.previous_thumbprint_sha256 | toJSON }}
}
{{ end }}`
}

func ctReadRendered(path string) (ctRendered, error) {
	var r ctRendered
	raw, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(raw, &r)
}

// mtlsLogin asks the tenant's mTLS edge for a token presenting certPEM, as an application
// does, and answers the status.
func mtlsLogin(edge *emulator.MTLSEdge, clientID, certPEM, keyPEM string) (int, error) {
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return 0, fmt.Errorf("the certificate and key do not pair: %w", err)
	}
	resp, err := edge.Client(pair).PostForm(edge.URL+"/oauth/token", url.Values{
		"grant_type": {"client_credentials"},
		"client_id":  {clientID},
		"audience":   {apiAudience},
	})
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestCertOverlapOnRealVault is the zero-downtime proof for self_signed_tls_client_auth on
// a real Vault: the first rotation cuts an application on a client secret over to mTLS;
// then the role rotates on its schedule while a real Vault Agent renders the certificate,
// its key, and during each overlap the previous ones. The application presents the
// rendered certificate to the tenant's mTLS edge (a real TLS handshake) and must never
// be refused. The Agent must render the overlap (the previous certificate next to the
// new one), every replaced certificate must be refused once its overlap is over, and
// Auth0 must never hold more than two credentials, nor at the end any Vault does not.
func TestCertOverlapOnRealVault(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t)
	v, root := f.v, f.v.RootToken
	v.MustCLI(t, root, "write", mount+"/config", "rate_limit=20")
	app := f.addApp(t, "cert-zd-app-id", "Cert ZD App")
	edge := emulator.NewMTLSEdge(f.emu, edgeCNAMEKey)
	t.Cleanup(edge.Close)

	v.MustCLI(t, root, "write", mount+"/roles/"+ctRole, "client_id="+app.ClientID,
		"credential_type=self_signed_tls_client_auth", "allow_auth_method_change=true", "certificate_ttl=1h",
		"rotation_period="+ctRotationPeriod.String(), "overlap_period="+ctOverlapPeriod.String())
	secret := f.secret(t, app.ClientID)
	first := dataOf(t, f.rotate(t, root, ctRole))
	if n := num(t, first, "version"); n != 1 {
		t.Fatalf("the first rotation answered version %d: %v", n, first)
	}
	for k, x := range first {
		if s, ok := x.(string); ok && (strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "CERTIFICATE")) {
			t.Fatalf("rotate answered key material in %q", k)
		}
	}
	if !f.emu.UsesSelfSignedTLS(app.ClientID) {
		t.Fatal("after the first rotation the application is not on self_signed_tls_client_auth")
	}
	if code := authenticate(t, f.emuURL, app.ClientID, secret); code != http.StatusUnauthorized {
		t.Fatalf("the client secret after the cutover: status %d, want 401", code)
	}

	v.WritePolicy(t, ctRole+"-app", `path "auth0/creds/`+ctRole+`" { capabilities = ["read"] }`)
	agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{
		Token:    v.CreateToken(t, ctRole+"-app"),
		Template: ctTemplate(ctRole),
	})
	vaulttest.WaitForFile(t, agent.RenderedPath, func(string) bool {
		r, err := ctReadRendered(agent.RenderedPath)
		return err == nil && r.Version == 1 && r.Certificate != ""
	}, 30*time.Second)

	// The application: logs in with whatever the Agent rendered last, all the time.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu        sync.Mutex
		logins    int
		failures  []string
		seen      = map[string]ctRendered{} // by thumbprint: every certificate rendered
		overlaps  int                       // renders showing a previous certificate
		wg        sync.WaitGroup
		lastShown int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			r, err := ctReadRendered(agent.RenderedPath)
			if err != nil || r.Certificate == "" {
				time.Sleep(50 * time.Millisecond) // a render in progress
				continue
			}
			status, err := mtlsLogin(edge, app.ClientID, r.Certificate, r.PrivateKey)
			mu.Lock()
			logins++
			if err != nil || status != http.StatusOK {
				failures = append(failures, fmt.Sprintf("%s: version %d: status %d %v", time.Now().Format("15:04:05.000"), r.Version, status, err))
			}
			if _, ok := seen[r.Thumbprint]; !ok {
				seen[r.Thumbprint] = r
			}
			if r.PreviousCertificate != "" && r.Version != lastShown {
				overlaps++
				lastShown = r.Version
				if prev, ok := seen[r.PreviousThumbprint]; !ok || prev.Certificate != r.PreviousCertificate {
					failures = append(failures, fmt.Sprintf("version %d renders a previous certificate the Agent never rendered as current", r.Version))
				}
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	deadline := time.Now().Add(ctDeadline)
	for {
		role := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/roles/"+ctRole))
		if num(t, role, "current_version") >= 1+ctRotations {
			break
		}
		if agent.Exited() {
			t.Fatalf("the Vault Agent exited:\n%s", agent.Logs())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d scheduled rotations by the deadline: %v", ctRotations, role)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Past the last overlap (and the scheduler's slack), then stop the application.
	time.Sleep(ctOverlapPeriod + 2*time.Second)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("the application was refused %d times in %d logins: %s", len(failures), logins, strings.Join(failures, "; "))
	}
	if overlaps < ctRotations-1 {
		t.Fatalf("the Agent rendered a previous certificate for %d rotations, want at least %d", overlaps, ctRotations-1)
	}
	// Every certificate replaced before the last overlap ended is refused now; the current
	// one works.
	creds := dataOf(t, v.MustCLIJSON(t, root, "read", mount+"/creds/"+ctRole))
	current := str(t, creds, "thumbprint_sha256")
	refused := 0
	for thumb, r := range seen {
		status, err := mtlsLogin(edge, app.ClientID, r.Certificate, r.PrivateKey)
		switch {
		case err != nil:
			t.Fatal(err)
		case thumb == current && status != http.StatusOK:
			t.Fatalf("the current certificate is refused: %d", status)
		case thumb != current && thumb != str(t, creds, "previous_thumbprint_sha256") && status != http.StatusUnauthorized:
			t.Fatalf("a replaced certificate (version %d) still logs in after its overlap: %d", r.Version, status)
		case thumb != current && status == http.StatusUnauthorized:
			refused++
		}
	}
	stored, _, _ := f.emu.Credentials(app.ClientID)
	if len(stored) > emulator.MaxCredentials || len(stored) == 0 {
		t.Fatalf("Auth0 holds %d credentials", len(stored))
	}
	stats := f.emu.Stats()
	t.Logf("%d logins through the edge, none refused; %d certificates rendered, %d overlaps rendered, %d replaced certificates refused after their overlap; Auth0 created %d credentials, deleted %d; %d mTLS logins",
		logins, len(seen), overlaps, refused, stats.CredentialsCreated[app.ClientID], stats.CredentialsDeleted[app.ClientID], stats.MTLSLogins[app.ClientID])
}
