package auth0

import (
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// indexEntries is the due index as stored, name to due time.
func (e *testEnv) indexEntries() map[string]time.Time {
	e.t.Helper()
	due, _, stale, err := model.LoadDueIndex(e.t.Context(), e.storage)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(stale) > 0 {
		e.t.Fatalf("stale due index entries %v", stale)
	}
	return due
}

// The due index follows every change of a role's due time: create, rotation, schedule
// change, delete; unscheduled roles are not in it.
func TestDueIndexFollowsRoles(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "roles/a", map[string]interface{}{"client_id": testAppID, "rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "2h"})
	e.emu.AddClient(emulator.Client{ClientID: "app-3", Grants: map[string][]string{testAPI: {}}})
	e.ok(logical.UpdateOperation, "roles/manual", map[string]interface{}{"client_id": "app-3"})
	check := func(step string) {
		t.Helper()
		got := e.indexEntries()
		want := map[string]time.Time{}
		for _, name := range []string{"a", "b", "manual"} {
			role, _ := model.LoadRole(t.Context(), e.storage, name)
			if role == nil {
				continue
			}
			if due := engine.DueTime(role, e.clock.Now()); !due.IsZero() {
				want[name] = due.Truncate(time.Second)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: index %v, want %v", step, got, want)
		}
		for name, due := range want {
			if !got[name].Equal(due) {
				t.Fatalf("%s: index has %s at %v, want %v", step, name, got[name], due)
			}
		}
	}
	check("created")
	e.advance(time.Hour)
	check("after a scheduled rotation")
	e.ok(logical.UpdateOperation, "roles/b", map[string]interface{}{"rotation_period": "3h"})
	check("after a schedule change")
	e.ok(logical.DeleteOperation, "roles/a", nil)
	check("after a delete")
	e.ok(logical.UpdateOperation, "roles/b", map[string]interface{}{"rotation_period": 0})
	check("after unscheduling")
}

// A start queues roles from the index before it has read a single role, and the pass
// that reads them corrects what the index got wrong: a due time changed behind its back,
// a duplicate a crash left, an entry of a role that no longer exists.
func TestDueIndexStartAndRepair(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "roles/a", map[string]interface{}{"client_id": testAppID, "rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/b", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "1h"})
	e.b.Cleanup(t.Context())

	// While Vault is down: a's stored due time moves earlier (the index still says later),
	// a crash left a second, later entry for b, and a deleted role left its entry.
	a := e.storedRole("a")
	a.NextVaultRotation = e.clock.Now().Add(10 * time.Minute).UTC()
	if err := model.SaveRole(t.Context(), e.storage, "a", a); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{model.DueIndexKey("b", e.clock.Now().Add(5*time.Hour)), model.DueIndexKey("ghost", e.clock.Now().Add(time.Hour))} {
		if err := e.storage.Put(t.Context(), &logical.StorageEntry{Key: key}); err != nil {
			t.Fatal(err)
		}
	}

	var roleReads atomic.Int64
	hook := func(key string) {
		if strings.HasPrefix(key, model.RoleStoragePrefix) {
			roleReads.Add(1)
		}
	}
	e.storage.onGet.Store(&hook)
	e.clock.autoAdvance = false
	b := restartBackend(t, e, logical.TestSystemView())
	sch := b.Sched.Load()
	<-sch.Loaded
	e.storage.onGet.Store(nil)
	// The queue was first loaded from the index: its three names, one listing.
	wantContains(t, e.logs.String(), `rotation queue loaded: source="due index" roles=3`)
	if n := roleReads.Load(); n < 2 {
		t.Fatalf("the verification read %d roles", n)
	}
	if due, _ := sch.Queue.Due("a"); !due.Equal(a.NextVaultRotation.Truncate(time.Second)) && !due.Equal(a.NextVaultRotation) {
		t.Fatalf("a queued at %v after the verification, want its stored %v", due, a.NextVaultRotation)
	}
	if _, ok := sch.Queue.Due("ghost"); ok {
		t.Fatal("a role that does not exist is queued")
	}
	got := e.indexEntries()
	if _, ok := got["ghost"]; ok || len(got) != 2 {
		t.Fatalf("index after the repair: %v", got)
	}
	keys, _ := e.storage.List(t.Context(), model.DueIndexPrefix)
	slices.Sort(keys)
	if len(keys) != 2 {
		t.Fatalf("index keys %v: duplicates and ghosts must be gone", keys)
	}
}
