package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// agentTemplate is API.md's Vault Agent template.
const agentTemplate = `{{ with secret "auth0/creds/myapp" }}AUTH0_CLIENT_ID={{ .Data.client_id }}
AUTH0_CLIENT_SECRET={{ .Data.client_secret }}{{ end }}`

// TestAgentRendersCurrentSecret runs Vault Agent with an application's token
// and checks that the rendered file holds the secret Auth0 accepts, before
// and after a rotation.
func TestAgentRendersCurrentSecret(t *testing.T) {
	t.Parallel()
	f, app := newRotatedApp(t)
	v, root := f.v, f.v.RootToken

	v.WritePolicy(t, "myapp-app", `path "auth0/creds/myapp" { capabilities = ["read"] }`)
	token := v.CreateToken(t, "myapp-app")

	// The role has no rotation schedule: creds' ttl is its max_ttl, at which the agent
	// re-reads the secret (whatever static_secret_render_interval says), so 10s lets it
	// pick up a manual rotation quickly.
	v.MustCLI(t, root, "write", mount+"/roles/myapp", "max_ttl=10s")
	agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{
		Token:    token,
		Template: agentTemplate,
	})

	want := func(secret string) string {
		return "AUTH0_CLIENT_ID=" + app.ClientID + "\nAUTH0_CLIENT_SECRET=" + secret
	}
	first := f.secret(t, app.ClientID)
	got := vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return s != "" }, 30*time.Second)
	if got != want(first) {
		t.Fatalf("rendered file:\n%s\nwant AUTH0_CLIENT_ID=%s and the current secret", got, app.ClientID)
	}
	if code := authenticate(t, f.emuURL, app.ClientID, renderedSecret(t, got)); code != http.StatusOK {
		t.Errorf("authenticating with the rendered secret: status %d, want 200", code)
	}

	// After a rotation the agent renders the new secret.
	f.rotate(t, root, "myapp")
	second := f.secret(t, app.ClientID)
	got = vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return s != want(first) }, 30*time.Second)
	if got != want(second) {
		t.Fatalf("re-rendered file:\n%s\nwant AUTH0_CLIENT_ID=%s and the new secret", got, app.ClientID)
	}
	if code := authenticate(t, f.emuURL, app.ClientID, renderedSecret(t, got)); code != http.StatusOK {
		t.Errorf("authenticating with the re-rendered secret: status %d, want 200", code)
	}
	if agent.Exited() {
		t.Errorf("agent exited:\n%s", agent.Logs())
	}
}

// renderedSecret extracts AUTH0_CLIENT_SECRET from a rendered file.
func renderedSecret(t *testing.T, content string) string {
	t.Helper()
	for _, line := range strings.Split(content, "\n") {
		if s, ok := strings.CutPrefix(line, "AUTH0_CLIENT_SECRET="); ok {
			return s
		}
	}
	t.Fatalf("no AUTH0_CLIENT_SECRET line in:\n%s", content)
	return ""
}
