package integration

import (
	"strings"
	"testing"
)

// vault list -detailed auth0/roles (Vault's ListResponseWithInfo) and vault read
// auth0/status, through the real CLI, with an operator token whose policy allows just that.
func TestListDetailedAndStatus(t *testing.T) {
	t.Parallel()
	f, app := newRotatedApp(t)
	v := f.v
	v.WritePolicy(t, "auth0-monitor", `
path "auth0/roles" { capabilities = ["list"] }
path "auth0/status" { capabilities = ["read"] }
`)
	token := v.CreateToken(t, "auth0-monitor")
	out := v.MustCLI(t, token, "list", "-detailed", mount+"/roles")
	for _, want := range []string{"myapp", app.ClientID, "immediate", "client_secret", "current_version"} {
		if !strings.Contains(out, want) {
			t.Fatalf("vault list -detailed lacks %q:\n%s", want, out)
		}
	}
	status := v.MustCLIJSON(t, token, "read", mount+"/status")
	data, _ := status["data"].(map[string]any)
	if data == nil || data["roles"] != float64(1) || data["scheduler_running"] != true || data["last_auth0_success"] == nil {
		t.Fatalf("status %v", status)
	}
	if failing, _ := data["roles_failing"].([]any); len(failing) != 0 {
		t.Fatalf("a healthy mount reports failing roles: %v", failing)
	}
	// The monitor may not read secrets.
	if _, err := v.CLI(t, token, "read", mount+"/creds/myapp"); err == nil {
		t.Fatal("the monitoring token read creds")
	}
}
