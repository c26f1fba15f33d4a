package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// vault list -detailed auth0/roles shows each role's application, strategy, credential
// type, version, next rotation and failure.
func TestRoleListDetailed(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/staged", map[string]interface{}{"client_id": testApp2ID, "rotation_strategy": "staged"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	data := e.ok(logical.ListOperation, "roles/", nil)
	info := data["key_info"].(map[string]interface{})
	app := info["app"].(map[string]interface{})
	if app["client_id"] != testAppID || app["rotation_strategy"] != "immediate" || app["credential_type"] != "client_secret" || app["current_version"] != 1 || app["next_vault_rotation"] == nil {
		t.Fatalf("app in the detailed list: %v", app)
	}
	if st := info["staged"].(map[string]interface{}); st["rotation_strategy"] != "staged" || st["current_version"] != 0 {
		t.Fatalf("staged in the detailed list: %v", st)
	}
	if keys := data["keys"].([]string); len(keys) != 2 {
		t.Fatalf("keys %v", keys)
	}
}

// auth0/status names what an operator must look at: failing roles and since when,
// overdue and blocked roles, rotations in flight, a rate-limit pause, the last success.
func TestStatus(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	quiet := e.ok(logical.ReadOperation, "status", nil)
	if quiet["roles"] != 1 || len(quiet["roles_failing"].([]interface{})) != 0 || len(quiet["rotations_overdue"].([]interface{})) != 0 || quiet["last_auth0_success"] == nil || quiet["scheduler_running"] != true {
		t.Fatalf("status of a healthy mount: %v", quiet)
	}

	// Auth0 fails every rotation from now on: the role fails, with since at the first failure.
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, id string) *emulator.Fault {
		if p == emulator.BeforeApply && id == testAppID {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})
	first := e.clock.Now().Add(time.Hour)
	e.advance(time.Hour)
	e.advance(time.Hour)
	st := e.ok(logical.ReadOperation, "status", nil)
	failing := st["roles_failing"].([]interface{})
	if len(failing) != 1 {
		t.Fatalf("roles_failing %v", failing)
	}
	f := failing[0].(map[string]interface{})
	if f["role"] != "app" || f["consecutive_failures"].(int) < 2 || f["since"] != first.UTC().Format(time.RFC3339) {
		t.Fatalf("failing entry %v; want since %s", f, first.UTC().Format(time.RFC3339))
	}

	// A rotation left in flight, and a role the scheduler did not run when due.
	e.emu.SetFaults(nil)
	if _, err := framework.PutWAL(t.Context(), e.storage, engine.WALKindRotation, &engine.RotationWAL{Role: "app", ClientID: testAppID, BaseVersion: 1}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(3 * time.Hour) // nothing runs the due jobs
	st = e.ok(logical.ReadOperation, "status", nil)
	// (A 503 answer is ambiguous, so the failed rotations left their entries too.)
	if n := len(st["rotations_in_flight"].([]interface{})); n != walCount(t, e.storage) || n < 1 || len(st["rotations_overdue"].([]interface{})) != 1 {
		t.Fatalf("in flight %v, overdue %v", st["rotations_in_flight"], st["rotations_overdue"])
	}
}
