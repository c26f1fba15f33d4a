package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestCredsBeforeFirstRotation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	msg := e.userError(logical.ReadOperation, "creds/app", nil)
	wantContains(t, msg, `role "app" has no secret yet`, "vault write -f <mount>/rotate/app", "import_current_secret=true")
	wantContains(t, e.userError(logical.ReadOperation, "creds/nope", nil), `role "nope" does not exist`)
}

func TestCredsServesCurrentAndPrevious(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	imported := e.appSecret(testAppID)
	e.ok(logical.UpdateOperation, "rotate/app", nil)

	got := e.ok(logical.ReadOperation, "creds/app", nil)
	want := map[string]interface{}{
		"client_id":              testAppID,
		"client_secret":          e.appSecret(testAppID),
		"previous_client_secret": imported,
		"domain":                 e.emuURL,
		"version":                2,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("creds %s mismatch (version %v)", k, got["version"])
		}
	}
	if _, err := time.Parse(time.RFC3339, got["last_vault_rotation"].(string)); err != nil {
		t.Errorf("last_vault_rotation = %v", got["last_vault_rotation"])
	}
	// A role without a schedule: consumers re-read every max_ttl (default 5m), and the
	// fields of other states are there, empty.
	if got["ttl"] != int64(300) || got["rotation_period"] != int64(300) {
		t.Errorf("unscheduled role's creds: ttl %v, rotation_period %v; want max_ttl's 300 for both", got["ttl"], got["rotation_period"])
	}
	for _, empty := range []string{"rotation_schedule", "next_vault_rotation", "next_client_secret", "next_switch_time"} {
		if v, ok := got[empty]; !ok || v != "" {
			t.Errorf("unscheduled role's creds: %s = %v, want present and empty", empty, v)
		}
	}
	if got["next_version"] != 0 {
		t.Errorf("next_version = %v, want 0", got["next_version"])
	}

	old := e.ok(logical.ReadOperation, "creds/app", map[string]interface{}{"version": 1})
	if old["client_secret"] != imported || old["version"] != 1 {
		t.Fatalf("version=1 served version %v", old["version"])
	}
	if _, ok := old["previous_client_secret"]; ok {
		t.Fatal("version 1 has no predecessor, yet previous_client_secret was served")
	}
	msg := e.userError(logical.ReadOperation, "creds/app", map[string]interface{}{"version": 7})
	wantContains(t, msg, `role "app" has no version 7; retained versions are 1 to 2`)
}

func TestCredsOfScheduledRoleCarryTTL(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	if ttl := e.ok(logical.ReadOperation, "creds/app", nil)["ttl"]; ttl != int64(300) {
		t.Fatalf("ttl = %v, want the default max_ttl's 300", ttl)
	}
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"max_ttl": "2h"})
	got := e.ok(logical.ReadOperation, "creds/app", nil)
	if got["rotation_period"] != int64(3600) {
		t.Fatalf("rotation_period = %v", got["rotation_period"])
	}
	if ttl := got["ttl"].(int64); ttl < 3590 || ttl > 3600 {
		t.Fatalf("ttl = %d, want about 3600", ttl)
	}
	next, err := time.Parse(time.RFC3339, got["next_vault_rotation"].(string))
	if err != nil || next.Sub(time.Now()) > time.Hour || next.Sub(time.Now()) < 59*time.Minute {
		t.Fatalf("next_vault_rotation = %v", got["next_vault_rotation"])
	}

	// A schedule reports rotation_period too, the interval between its next two times,
	// for Vault Agent 1.13.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": 0, "rotation_schedule": "0 */6 * * *"})
	got = e.ok(logical.ReadOperation, "creds/app", nil)
	if got["rotation_schedule"] != "0 */6 * * *" || got["rotation_period"] != int64(6*3600) || got["ttl"] == nil {
		t.Fatalf("creds of a cron role = %v", got)
	}
}

func TestSecondsUntil(t *testing.T) {
	now := time.Date(2026, 1, 31, 23, 59, 0, 0, time.UTC)
	cases := []struct {
		at   time.Time
		want int64
	}{
		{now.Add(time.Hour), 3600},
		{now.Add(1500 * time.Millisecond), 2},
		{now, 1},
		{now.Add(-time.Hour), 1},
	}
	for _, tc := range cases {
		if got := secondsUntil(tc.at, now); got != tc.want {
			t.Errorf("secondsUntil(%v) = %d, want %d", tc.at.Sub(now), got, tc.want)
		}
	}
}

// The hot path reads one storage entry on a cache miss and none on a hit, once the
// config is cached; with the cache disabled, exactly one per read. It never calls Auth0.
func TestCredsHotPathBudget(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.ReadOperation, "config", nil)
	e.ok(logical.ReadOperation, "creds/app", nil) // warms the config cache

	const reads = 50
	readsCost := func() int64 {
		gets := e.storage.gets.Load()
		for i := 0; i < reads; i++ {
			e.ok(logical.ReadOperation, "creds/app", nil)
		}
		return e.storage.gets.Load() - gets
	}
	if got := readsCost(); got != 0 {
		t.Fatalf("%d cached creds reads made %d storage reads, want 0", reads, got)
	}
	e.ok(logical.UpdateOperation, "rotate/app", nil) // drops the entry
	if got := readsCost(); got != 1 {
		t.Fatalf("%d creds reads after a rotation made %d storage reads, want 1", reads, got)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"creds_cache_size": 0})
	e.ok(logical.ReadOperation, "creds/app", nil)
	requests := e.emu.Stats().Requests
	if got := readsCost(); got != reads {
		t.Fatalf("%d uncached creds reads made %d storage reads, want %d", reads, got, reads)
	}
	if got := e.emu.Stats().Requests - requests; got != 0 {
		t.Fatalf("creds reads made %d Auth0 requests", got)
	}
}

func TestVersions(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	e.ok(logical.UpdateOperation, "rotate/app", nil)

	got := e.ok(logical.ReadOperation, "versions/app", nil)
	if got["current_version"] != 2 || got["oldest_version"] != 1 || got["max_versions"] != model.DefaultMaxVersions {
		t.Fatalf("versions = %v", got)
	}
	versions := got["versions"].(map[string]interface{})
	for v, source := range map[string]string{"1": model.SourceImport, "2": model.SourceRotate} {
		meta := versions[v].(map[string]interface{})
		if meta["source"] != source || len(meta) != 2 {
			t.Errorf("version %s = %v, want source %s and created_time only", v, meta, source)
		}
		if _, err := time.Parse(time.RFC3339Nano, meta["created_time"].(string)); err != nil {
			t.Errorf("created_time: %v", err)
		}
	}
	empty := newTestEnv(t)
	empty.configureWithRole(nil)
	if got := empty.ok(logical.ReadOperation, "versions/app", nil); got["current_version"] != 0 || len(got["versions"].(map[string]interface{})) != 0 {
		t.Fatalf("versions of a never-rotated role = %v", got)
	}
}

// A blocked role's creds do not tell consumers to re-read every second: nothing happens
// until the operator acts, so ttl is max_ttl.
func TestBlockedRoleCredsTTL(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h", "import_current_secret": true})
	role := e.storedRole("app")
	role.Blocked = "test: blocked"
	role.NextVaultRotation = e.clock.Now().Add(-time.Minute) // overdue, never to run
	if err := e.b.StoreRoleState(t.Context(), e.storage, "app", role); err != nil {
		t.Fatal(err)
	}
	if ttl := e.ok(logical.ReadOperation, "creds/app", nil)["ttl"]; ttl != int64(300) {
		t.Fatalf("blocked role: ttl %v, want 300 (max_ttl)", ttl)
	}
}
