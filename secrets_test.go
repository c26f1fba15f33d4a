package auth0

import (
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// Secrets never appear in logs (at trace level), in config reads, rotate responses, role or
// versions reads, or error messages, whatever happens.
func TestSecretsNeverLeak(t *testing.T) {
	e := newTestEnv(t)
	var outputs []string
	record := func(resp *logical.Response, err error) {
		if err != nil {
			outputs = append(outputs, err.Error())
		}
		if resp != nil {
			outputs = append(outputs, fmt.Sprintf("%v %v", resp.Data, resp.Warnings))
		}
	}
	secrets := []string{e.mgmtSecret(), e.appSecret(testAppID)}

	// A wrong secret, then the right one.
	record(e.request(logical.UpdateOperation, "config", map[string]interface{}{
		"domain": e.emuURL, "client_id": testMgmtID, "client_secret": "wrong-" + e.mgmtSecret(),
	}))
	secrets = append(secrets, "wrong-"+e.mgmtSecret())
	e.configure()
	record(e.request(logical.ReadOperation, "config", nil))
	record(e.request(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true, "rotation_period": "1h"}))

	for i := 0; i < 3; i++ {
		record(e.request(logical.UpdateOperation, "rotate/app", nil))
		secrets = append(secrets, e.appSecret(testAppID))
	}
	// Failures of every kind, including after Auth0 applied the rotation.
	for _, f := range []*emulator.Fault{{Status: 500}, {Status: 403}, {Status: 429, RetryAfter: 1}, {Drop: true}} {
		fault := f
		e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
			if p == emulator.AfterApply || fault.Status != 0 {
				return fault
			}
			return nil
		})
		record(e.request(logical.UpdateOperation, "rotate/app", nil))
		secrets = append(secrets, e.appSecret(testAppID))
	}
	e.emu.SetFaults(nil)
	e.storage.failPuts.Store(engine.StoreAttempts)
	record(e.request(logical.UpdateOperation, "rotate/app", nil))
	secrets = append(secrets, e.appSecret(testAppID))
	record(e.request(logical.ReadOperation, "roles/app", nil))
	record(e.request(logical.ReadOperation, "versions/app", nil))
	record(e.request(logical.ReadOperation, "creds/app", map[string]interface{}{"version": 99}))

	logs := e.logs.String()
	if !strings.Contains(logs, "rotated client secret") {
		t.Fatalf("trace logs did not capture the engine's logging:\n%s", logs)
	}
	for i, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("secret %d appears in the logs", i)
		}
		for _, out := range outputs {
			if strings.Contains(out, secret) {
				t.Errorf("secret %d appears in a response or error: %.80s…", i, out)
			}
		}
	}
	if len(outputs) < 10 {
		t.Fatalf("only %d outputs were checked", len(outputs))
	}
}

func TestSensitiveFieldsAreMarked(t *testing.T) {
	b := newBackend()
	for _, p := range b.Paths {
		for name, field := range p.Fields {
			if strings.Contains(name, "secret") && name != "import_current_secret" {
				if field.DisplayAttrs == nil || !field.DisplayAttrs.Sensitive {
					t.Errorf("%s: field %s is not marked sensitive", p.Pattern, name)
				}
			}
			if field.Description == "" {
				t.Errorf("%s: field %s has no description", p.Pattern, name)
			}
		}
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("%s: missing help", p.Pattern)
		}
	}
}
