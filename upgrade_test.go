package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// v010Role is a role entry exactly as v0.1.0 stored it at roles/<name>: definition, state
// and every retained secret in one entry.
type v010Role struct {
	ClientID          string        `json:"client_id"`
	RotationPeriod    time.Duration `json:"rotation_period,omitempty"`
	RotationSchedule  string        `json:"rotation_schedule,omitempty"`
	RotationWindow    time.Duration `json:"rotation_window,omitempty"`
	MaxVersions       int           `json:"max_versions"`
	Versions          []v010Version `json:"versions,omitempty"`
	LastVaultRotation time.Time     `json:"last_vault_rotation,omitempty"`
	NextVaultRotation time.Time     `json:"next_vault_rotation,omitempty"`
	Warning           string        `json:"warning,omitempty"`
}

type v010Version struct {
	Version     int       `json:"version"`
	Secret      string    `json:"secret"`
	CreatedTime time.Time `json:"created_time"`
	Source      string    `json:"source"`
}

func putV010Role(t *testing.T, s logical.Storage, name string, r v010Role) {
	t.Helper()
	entry, err := logical.StorageEntryJSON(model.RoleKey(name), r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), entry); err != nil {
		t.Fatal(err)
	}
}

// A mount written by v0.1.0 upgrades in place when the new build starts: secrets move out
// of the role entries, creds serve exactly what they served, applications are claimed,
// and roles that v0.1.0 let share an application, or that hold a schedule that cannot fire,
// are reported and never rotated.
func TestUpgradeFromV010Layout(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.b.Cleanup(t.Context()) // v0.1.0 wrote what follows, then the mount is upgraded
	now := e.clock.Now().UTC()
	secret := e.appSecret(testAppID)
	putV010Role(t, e.storage, "app", v010Role{
		ClientID: testAppID, RotationPeriod: time.Hour, MaxVersions: 10,
		Versions: []v010Version{
			{Version: 4, Secret: "old-secret-4", CreatedTime: now.Add(-2 * time.Hour), Source: model.SourceScheduled},
			{Version: 5, Secret: secret, CreatedTime: now.Add(-time.Minute), Source: model.SourceRotate},
		},
		LastVaultRotation: now.Add(-time.Minute), NextVaultRotation: now.Add(59 * time.Minute),
	})
	// v0.1.0 accepted a second role on the same application.
	putV010Role(t, e.storage, "twin", v010Role{ClientID: testAppID, RotationPeriod: time.Hour, MaxVersions: 10,
		Versions:          []v010Version{{Version: 1, Secret: "twin-secret", CreatedTime: now, Source: model.SourceImport}},
		NextVaultRotation: now.Add(-time.Hour)})
	// …and a schedule that never fires, whose next time it stored as the zero time.
	putV010Role(t, e.storage, "never", v010Role{ClientID: testApp2ID, RotationSchedule: "0 0 30 2 *", MaxVersions: 10})

	// Creds are served right away, also before the upgrade (a standby reads as it is).
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != secret || creds["previous_client_secret"] != "old-secret-4" || creds["version"] != 5 {
		t.Fatalf("creds of a v0.1.0 role = version %v", creds["version"])
	}

	restartBackend(t, e, logical.TestSystemView())
	<-e.b.Sched.Load().Loaded
	role := e.storedRole("app")
	if role.Layout != model.RoleLayout || role.CurrentVersion() != 5 || len(role.Versions) != 2 {
		t.Fatalf("upgraded role: layout %d, version %d, %d versions", role.Layout, role.CurrentVersion(), len(role.Versions))
	}
	raw, _ := e.storage.Get(t.Context(), model.RoleKey("app"))
	if strings.Contains(string(raw.Value), secret) || strings.Contains(string(raw.Value), "old-secret-4") {
		t.Fatal("the upgraded role entry still holds a secret")
	}
	after := e.ok(logical.ReadOperation, "creds/app", nil)
	for _, k := range []string{"client_secret", "previous_client_secret", "version", "last_vault_rotation", "next_vault_rotation"} {
		if after[k] != creds[k] {
			t.Fatalf("creds %s changed across the upgrade: %v -> %v", k, creds[k], after[k])
		}
	}
	if old := e.ok(logical.ReadOperation, "creds/app", map[string]interface{}{"version": 4}); old["client_secret"] != "old-secret-4" {
		t.Fatal("an older version's secret was lost")
	}
	if owner, _ := model.LoadOwner(t.Context(), e.storage, testAppID); owner != "app" {
		t.Fatalf("owner of %s = %q, want app (first by name)", testAppID, owner)
	}
	twin := e.ok(logical.ReadOperation, "roles/twin", nil)
	wantContains(t, twin["rotation_blocked"].(string), `already managed by role "app"`)
	never := e.ok(logical.ReadOperation, "roles/never", nil)
	wantContains(t, never["rotation_blocked"].(string), `rotation_schedule "0 0 30 2 *" never fires`)
	wantContains(t, e.logs.String(), "role not rotated until its operator acts")

	// A virtual week: app rotates hourly, twin (overdue when it was written) and never
	// do not rotate at all.
	for i := 0; i < 7*24; i++ {
		e.advance(time.Hour)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 7*24 {
		t.Fatalf("%d rotations of %s in a week, want %d (app hourly, twin never)", n, testAppID, 7*24)
	}
	if n := e.emu.Stats().Rotations[testApp2ID]; n != 0 {
		t.Fatalf("a schedule that never fires rotated %d times", n)
	}
	if creds := e.ok(logical.ReadOperation, "creds/app", nil); !e.authenticates(testAppID, creds["client_secret"].(string)) {
		t.Fatal("the served secret does not authenticate after a week")
	}
	// The twin is refused by hand too, naming the owner.
	wantContains(t, e.userError(logical.UpdateOperation, "rotate/twin", nil), `already managed by role "app"`)
}

// Every role entry this build writes is unreadable by v0.1.0, whose role struct v010Role
// mirrors: after a downgrade, v0.1.0 answers errors for such a role and never rotates it,
// instead of serving an empty secret. This build still reads both shapes.
func TestDowngradeToV010IsRefused(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	e.ok(logical.UpdateOperation, "roles/fresh", map[string]interface{}{"client_id": testApp2ID})
	for _, name := range []string{"app", "fresh"} {
		raw, err := e.storage.Get(t.Context(), model.RoleKey(name))
		if err != nil || raw == nil {
			t.Fatalf("role %s not stored: %v", name, err)
		}
		var old v010Role
		err = raw.DecodeJSON(&old)
		if err == nil {
			t.Fatalf("v0.1.0 decodes role %s as written now (client_id %q, %d versions): a downgrade would serve an empty secret", name, old.ClientID, len(old.Versions))
		}
		wantContains(t, err.Error(), "versions")
	}
	role := e.storedRole("app")
	if role.CurrentVersion() != 2 || len(role.Versions) != 2 {
		t.Fatalf("role read back: version %d, %d versions", role.CurrentVersion(), len(role.Versions))
	}
}

// A due time no schedule can produce (zero, or absurd), left by an older build, never
// reaches the queue: the role is reported, not rotated every second.
func TestStoredAbsurdDueTimeIsNotQueued(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.b.Cleanup(t.Context())
	role := e.storedRole("app")
	role.NextVaultRotation = time.Time{}
	if err := model.SaveRole(t.Context(), e.storage, "app", role); err != nil {
		t.Fatal(err)
	}
	restartBackend(t, e, logical.TestSystemView())
	for i := 0; i < 100; i++ {
		e.advance(time.Second)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
		t.Fatalf("%d rotations of a role with a zero due time", n)
	}
	read := e.ok(logical.ReadOperation, "roles/app", nil)
	wantContains(t, read["rotation_blocked"].(string), "not one its schedule can produce")
	// Writing the schedule again repairs it.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": "2h"})
	if read := e.ok(logical.ReadOperation, "roles/app", nil); read["rotation_blocked"] != nil {
		t.Fatalf("still blocked: %v", read["rotation_blocked"])
	}
	e.advance(2 * time.Hour)
	if n := e.emu.Stats().Rotations[testAppID]; n != 1 {
		t.Fatalf("%d rotations after repair, want 1", n)
	}
}
