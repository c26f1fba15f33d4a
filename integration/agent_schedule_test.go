package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

// TestAgentFollowsScheduledRotation: a role with a short rotation_period that nobody
// rotates by hand, and a Vault Agent left at its default static_secret_render_interval
// (5 minutes). The agent must re-render right after each scheduled rotation, guided by the
// ttl and rotation_period that creds return, and the rendered secret must authenticate.
func TestAgentFollowsScheduledRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	v := f.v
	f.configure(t)
	app := f.addApp(t, "myapp-id", "My App")
	v.MustCLI(t, v.RootToken, "write", mount+"/roles/myapp", "client_id="+app.ClientID, "rotation_period=5s")

	v.WritePolicy(t, "myapp-app", `path "auth0/creds/myapp" { capabilities = ["read"] }`)
	agent := vaulttest.StartAgentWithOptions(t, v, vaulttest.AgentOptions{
		Token:    v.CreateToken(t, "myapp-app"),
		Template: agentTemplate,
	})

	// The first scheduled rotation gives the role its first secret; the agent renders it.
	first := vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return s != "" }, 30*time.Second)
	firstSecret := renderedSecret(t, first)

	// The next scheduled rotation must reach the file well before the 5-minute default.
	second := vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return s != first }, 30*time.Second)
	secondSecret := renderedSecret(t, second)
	// The file may lag Auth0 by one rotation at most: it holds a secret Vault served.
	current := f.secret(t, app.ClientID)
	if secondSecret != current {
		// A rotation may have happened between the render and this check; the agent
		// then follows within ttl.
		second = vaulttest.WaitForFile(t, agent.RenderedPath, func(s string) bool { return renderedSecret(t, s) == f.secret(t, app.ClientID) }, 15*time.Second)
		secondSecret = renderedSecret(t, second)
	}
	if code := authenticate(t, f.emuURL, app.ClientID, secondSecret); code != http.StatusOK {
		t.Fatalf("the re-rendered secret: status %d at Auth0, want 200", code)
	}
	if code := authenticate(t, f.emuURL, app.ClientID, firstSecret); code != http.StatusUnauthorized {
		t.Fatalf("the first rendered secret: status %d at Auth0 after it was rotated away, want 401", code)
	}
	if n := f.rotations(app.ClientID); n < 2 {
		t.Fatalf("Auth0 saw %d rotations, want at least 2 scheduled ones", n)
	}
	versions := dataOf(t, v.MustCLIJSON(t, v.RootToken, "read", mount+"/versions/myapp"))
	list := versions["versions"].(map[string]any)
	for n, meta := range list {
		if src := meta.(map[string]any)["source"]; src != "scheduled" {
			t.Fatalf("version %s has source %v; nobody rotated by hand", n, src)
		}
	}
	if agent.Exited() {
		t.Fatalf("agent exited:\n%s", agent.Logs())
	}
}
