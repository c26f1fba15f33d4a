package auth0

import (
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRoleCreateReadListDelete(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h", "max_versions": 3})
	e.ok(logical.UpdateOperation, "roles/other", map[string]interface{}{"client_id": testApp2ID, "rotation_schedule": "0 3 * * SUN", "rotation_window": "2h"})

	got := e.ok(logical.ReadOperation, "roles/app", nil)
	want := map[string]interface{}{
		"client_id": testAppID, "rotation_period": int64(3600), "rotation_schedule": "",
		"rotation_window": int64(0), "max_versions": 3, "current_version": 0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("role read %s = %#v, want %#v", k, got[k], v)
		}
	}
	next, err := time.Parse(time.RFC3339, got["next_vault_rotation"].(string))
	if err != nil || time.Until(next) < 59*time.Minute || time.Until(next) > time.Hour {
		t.Errorf("next_vault_rotation = %v, want about an hour from now", got["next_vault_rotation"])
	}
	if _, ok := got["last_vault_rotation"]; ok {
		t.Error("last_vault_rotation shown before any rotation")
	}

	other := e.ok(logical.ReadOperation, "roles/other", nil)
	if other["rotation_schedule"] != "0 3 * * SUN" || other["rotation_window"] != int64(7200) {
		t.Errorf("schedule role read = %v", other)
	}
	next, _ = time.Parse(time.RFC3339, other["next_vault_rotation"].(string))
	if next.Weekday() != time.Sunday || next.Hour() != 3 || next.Minute() != 0 || !next.After(time.Now()) {
		t.Errorf("next_vault_rotation = %v, want the next Sunday 03:00 UTC", next)
	}

	list := e.ok(logical.ListOperation, "roles/", nil)
	if keys := list["keys"].([]string); len(keys) != 2 || keys[0] != "app" || keys[1] != "other" {
		t.Fatalf("list = %v", list)
	}

	// Delete removes the role from Vault and changes nothing in Auth0.
	secret := e.appSecret(testAppID)
	e.ok(logical.DeleteOperation, "roles/app", nil)
	if resp, err := e.request(logical.ReadOperation, "roles/app", nil); resp != nil || err != nil {
		t.Fatalf("read after delete = %v, %v", resp, err)
	}
	if e.appSecret(testAppID) != secret || e.emu.Stats().Rotations[testAppID] != 0 {
		t.Fatal("deleting a role changed the application in Auth0")
	}
}

func TestRoleUpdate(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})

	// Switching from a period to a schedule needs the period cleared in the same write.
	msg := e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_schedule": "*/5 * * * *"})
	wantContains(t, msg, "mutually exclusive", "rotation_period=0")
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_schedule": "*/5 * * * *", "rotation_period": 0})
	got := e.ok(logical.ReadOperation, "roles/app", nil)
	if got["rotation_period"] != int64(0) || got["rotation_schedule"] != "*/5 * * * *" {
		t.Fatalf("after switch: %v", got)
	}
	next, _ := time.Parse(time.RFC3339, got["next_vault_rotation"].(string))
	if next.Minute()%5 != 0 || time.Until(next) > 5*time.Minute {
		t.Fatalf("next_vault_rotation %v does not follow */5", next)
	}

	// Clearing the schedule clears a window and the next rotation.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_window": "10m"})
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_schedule": ""})
	got = e.ok(logical.ReadOperation, "roles/app", nil)
	if got["rotation_window"] != int64(0) || got["next_vault_rotation"] != nil {
		t.Fatalf("after clearing the schedule: %v", got)
	}

	msg = e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testApp2ID})
	wantContains(t, msg, "client_id cannot be changed", `"app-1"`)
	msg = e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"import_current_secret": true})
	wantContains(t, msg, "import_current_secret is accepted only when the role is created")
}

func TestRoleRejectsBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	cases := []struct {
		name string
		data map[string]interface{}
		want string
	}{
		{"no client_id", map[string]interface{}{}, "client_id is required"},
		{"empty client_id", map[string]interface{}{"client_id": " "}, "client_id must not be empty"},
		{"period too short", map[string]interface{}{"client_id": testAppID, "rotation_period": "2s"}, "rotation_period must be 0 (no automatic rotation) or at least 5s"},
		{"negative period", map[string]interface{}{"client_id": testAppID, "rotation_period": "-5m"}, "cannot provide negative value"},
		{"period and schedule", map[string]interface{}{"client_id": testAppID, "rotation_period": "1h", "rotation_schedule": "0 * * * *"}, "mutually exclusive"},
		{"window without schedule", map[string]interface{}{"client_id": testAppID, "rotation_window": "1h"}, "rotation_window is only valid with rotation_schedule"},
		{"window too short", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "0 * * * *", "rotation_window": "10s"}, "rotation_window must be 0 (no limit) or at least 1m0s"},
		{"six cron fields", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "0 0 * * * *"}, "expected 5 fields"},
		{"cron descriptor", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "@daily"}, "descriptors"},
		{"cron time zone", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "TZ=Europe/Paris 0 3 * * *"}, "UTC"},
		{"cron out of range", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "61 * * * *"}, `invalid rotation_schedule "61 * * * *"`},
		{"max_versions zero", map[string]interface{}{"client_id": testAppID, "max_versions": 0}, "max_versions must be between 1 and 100, got 0"},
		{"max_versions too many", map[string]interface{}{"client_id": testAppID, "max_versions": 101}, "max_versions must be between 1 and 100, got 101"},
		{"unknown application", map[string]interface{}{"client_id": "no-such-app"}, `checking client_id "no-such-app" in Auth0: Auth0 has no such application`},
		{"schedule that never fires", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "0 0 30 2 *"}, `invalid rotation_schedule "0 0 30 2 *": it never fires`},
		{"schedule on the 31st of a 30-day month", map[string]interface{}{"client_id": testAppID, "rotation_schedule": "0 0 31 4,6,9,11 *"}, "never fires"},
		{"the Management API application", map[string]interface{}{"client_id": testMgmtID}, `client_id "vault-mgmt" is the mount's own Management API application`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantContains(t, e.userError(logical.UpdateOperation, "roles/app", tc.data), tc.want)
			if role, err := model.LoadRole(t.Context(), e.storage, "app"); role != nil || err != nil {
				t.Fatalf("role stored after a rejected write: %+v, %v", role, err)
			}
		})
	}
}

func TestRoleNeedsConfig(t *testing.T) {
	e := newTestEnv(t)
	msg := e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
	wantContains(t, msg, "not configured yet", "config")
}

func TestRoleImportCurrentSecret(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})

	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != e.appSecret(testAppID) || creds["version"] != 1 {
		t.Fatalf("imported creds = version %v; want version 1 with Auth0's current secret", creds["version"])
	}
	versions := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if src := versions["1"].(map[string]interface{})["source"]; src != model.SourceImport {
		t.Fatalf("version 1 source = %v, want import", src)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
		t.Fatalf("import rotated the secret %d times", n)
	}
}

// Auth0 answers a read of client_secret with 403 unless the token has read:client_keys or
// read:client_credentials.
func TestRoleImportScopes(t *testing.T) {
	for _, scope := range []string{"read:client_keys", "read:client_credentials"} {
		t.Run(scope, func(t *testing.T) {
			e := newTestEnv(t, "read:clients", "update:client_keys", scope)
			e.configure()
			e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true})
			if creds := e.ok(logical.ReadOperation, "creds/app", nil); creds["client_secret"] != e.appSecret(testAppID) {
				t.Fatal("the imported secret is not Auth0's")
			}
		})
	}
}

func TestRoleImportNeedsReadClientKeys(t *testing.T) {
	e := newTestEnv(t, "read:clients", "update:client_keys")
	e.configure()
	msg := e.userError(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID, "import_current_secret": true})
	wantContains(t, msg, "does not return the application's client_secret", "read:client_keys", "grant that scope")
	if role, _ := model.LoadRole(t.Context(), e.storage, "app"); role != nil {
		t.Fatal("role stored after a failed import")
	}
	// Without import, read:clients is enough.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"client_id": testAppID})
}

// One application per role on a mount: a second role naming it, a config naming a role's
// application, and concurrent creates are refused, naming the owner; a delete frees it.
func TestOwnership(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	wantContains(t, e.userError(logical.UpdateOperation, "roles/second", map[string]interface{}{"client_id": testAppID}),
		`client_id "app-1" is already managed by role "app"`)
	if role, _ := model.LoadRole(t.Context(), e.storage, "second"); role != nil {
		t.Fatal("the refused role was stored")
	}
	wantContains(t, e.userError(logical.UpdateOperation, "config", map[string]interface{}{"client_id": testAppID, "client_secret": e.appSecret(testAppID), "verify_connection": false}),
		`client_id "app-1" is the application of role "app"`, "nothing was stored")
	if cfg := e.storedConfig(); cfg.ClientID != testMgmtID {
		t.Fatalf("config client_id = %q after a refused write", cfg.ClientID)
	}
	// An update of the owner itself is fine.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": "1h"})

	e.ok(logical.DeleteOperation, "roles/app", nil)
	e.ok(logical.UpdateOperation, "roles/second", map[string]interface{}{"client_id": testAppID})
	if owner, _ := model.LoadOwner(t.Context(), e.storage, testAppID); owner != "second" {
		t.Fatalf("owner after delete and create = %q", owner)
	}
}

func TestOwnershipUnderConcurrentCreates(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	const writers = 16
	var wg sync.WaitGroup
	results := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := e.request(logical.UpdateOperation, fmt.Sprintf("roles/r%d", i), map[string]interface{}{"client_id": testAppID})
			if err == nil && resp != nil && resp.IsError() {
				err = resp.Error()
			}
			results[i] = err
		}(i)
	}
	wg.Wait()
	var winners []string
	for i, err := range results {
		if err == nil {
			winners = append(winners, fmt.Sprintf("r%d", i))
		} else if !strings.Contains(err.Error(), "is already managed by role") {
			t.Fatalf("r%d: %v", i, err)
		}
	}
	names, _ := e.storage.List(t.Context(), model.RoleStoragePrefix)
	if len(winners) != 1 || len(names) != 1 || names[0] != winners[0] {
		t.Fatalf("winners %v, stored roles %v; want exactly one", winners, names)
	}
}

// A role write that lowers max_versions fails half-way (storing what creds serves): the
// role entry, written last, is unchanged, so creds never serve a previous version the role
// no longer retains. (Found by the simulation.)
func TestRoleWriteFailingHalfWayLeavesNoStaleCreds(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.storage.failPutsUnder(model.CredsStoragePrefix, 1)
	if _, err := e.request(logical.UpdateOperation, "roles/app", map[string]interface{}{"max_versions": 1}); err == nil {
		t.Fatal("the role write succeeded with storage failing")
	}
	if role := e.storedRole("app"); role.MaxVersions != model.DefaultMaxVersions || len(role.Versions) != 2 {
		t.Fatalf("the failed write changed the role: max_versions %d, %d versions", role.MaxVersions, len(role.Versions))
	}
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"max_versions": 1})
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["previous_client_secret"] != "" || len(e.storedRole("app").Versions) != 1 {
		t.Fatal("creds serve a previous version that max_versions=1 does not retain")
	}
	if sec, _ := model.LoadSecret(t.Context(), e.storage, "app", nil, 1); sec != nil {
		t.Fatal("the dropped version's secret is still stored")
	}
}
