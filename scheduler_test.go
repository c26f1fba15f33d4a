package auth0

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

func TestRotationQueue(t *testing.T) {
	q := newRotationQueue()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, name := range []string{"c", "a", "d", "b"} {
		q.schedule(name, base.Add(time.Duration([]int{3, 1, 4, 2}[i])*time.Minute))
	}
	q.schedule("d", base.Add(30*time.Second)) // moved to the front
	q.remove("c")
	q.remove("missing")
	if q.len() != 3 {
		t.Fatalf("len = %d, want 3", q.len())
	}
	if _, ok := q.popDue(base); ok {
		t.Fatal("popped a role before it was due")
	}
	var order []string
	for {
		name, ok := q.popDue(base.Add(time.Hour))
		if !ok {
			break
		}
		order = append(order, name)
	}
	if fmt.Sprint(order) != "[d a b]" {
		t.Fatalf("order = %v, want [d a b]", order)
	}
	if _, ok := q.due("a"); ok || q.len() != 0 {
		t.Fatal("popped roles are still queued")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestScheduledRotation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "5s"})
	created := time.Now()

	waitFor(t, 10*time.Second, "the first scheduled rotation", func() bool {
		return e.emu.Stats().Rotations[testAppID] >= 1
	})
	if elapsed := time.Since(created); elapsed < 4*time.Second {
		t.Fatalf("rotated %v after creation, before the 5s period", elapsed)
	}
	waitFor(t, 5*time.Second, "the version to be stored", func() bool {
		role, _ := loadRole(t.Context(), e.storage, "app")
		return role.latest() != nil
	})
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != e.appSecret(testAppID) || !e.authenticates(testAppID, creds["client_secret"].(string)) {
		t.Fatal("creds do not serve the secret the scheduled rotation produced")
	}
	v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if v["1"].(map[string]interface{})["source"] != sourceScheduled {
		t.Fatalf("version 1 = %v, want source scheduled", v["1"])
	}
	next, _ := time.Parse(time.RFC3339, creds["next_vault_rotation"].(string))
	last, _ := time.Parse(time.RFC3339, creds["last_vault_rotation"].(string))
	if d := next.Sub(last); d != 5*time.Second {
		t.Fatalf("next - last = %v, want the 5s period", d)
	}

	// Turning the schedule off takes the role out of the queue.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": 0})
	if _, queued := e.b.sched.Load().queue.due("app"); queued {
		t.Fatal("an unscheduled role is still queued")
	}
}

func TestManualRotationAndDeleteUpdateQueue(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	q := e.b.sched.Load().queue
	first, ok := q.due("app")
	if !ok {
		t.Fatal("a scheduled role was not queued on create")
	}
	time.Sleep(1100 * time.Millisecond)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	second, _ := q.due("app")
	if !second.After(first) {
		t.Fatalf("a manual rotation did not push the next rotation back: %v -> %v", first, second)
	}
	role, _ := loadRole(t.Context(), e.storage, "app")
	if !second.Equal(role.NextVaultRotation) {
		t.Fatalf("queue says %v, storage says %v", second, role.NextVaultRotation)
	}
	e.ok(logical.DeleteOperation, "roles/app", nil)
	if _, ok := q.due("app"); ok {
		t.Fatal("a deleted role is still queued")
	}
}

// After a restart the queue is rebuilt from storage at the persisted times: nothing rotates
// early, and what fell due while Vault was down rotates promptly.
func TestQueueRebuiltAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "roles/later", map[string]interface{}{"client_id": testAppID, "rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/overdue", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/manual", map[string]interface{}{"client_id": testApp2ID})
	later, _ := loadRole(t.Context(), e.storage, "later")

	// Vault goes down; while it is, "overdue" falls due.
	e.b.Cleanup(t.Context())
	overdue, _ := loadRole(t.Context(), e.storage, "overdue")
	overdue.NextVaultRotation = time.Now().Add(-time.Minute)
	if err := saveRole(t.Context(), e.storage, "overdue", overdue); err != nil {
		t.Fatal(err)
	}

	b2 := restartBackend(t, e, logical.TestSystemView())
	sch := b2.sched.Load()
	<-sch.loaded
	if due, ok := sch.queue.due("later"); !ok || !due.Equal(later.NextVaultRotation) {
		t.Fatalf("later queued at %v (%v), want the persisted %v", due, ok, later.NextVaultRotation)
	}
	if _, ok := sch.queue.due("manual"); ok {
		t.Fatal("a role without a schedule was queued")
	}
	waitFor(t, 5*time.Second, "the overdue role to rotate", func() bool {
		return e.emu.Stats().Rotations[testApp2ID] == 1
	})
	if e.emu.Stats().Rotations[testAppID] != 0 {
		t.Fatal("a role that was not due rotated after the restart")
	}
}

// restartBackend builds a new backend on e's storage, as Vault does when it reloads the
// mount, with the given system view, and initializes it.
func restartBackend(t *testing.T, e *testEnv, sys logical.SystemView) *backend {
	t.Helper()
	return startBackend(t, e.storage, sys, hclog.Trace, e.logs)
}

func TestNoSchedulerWhereStorageIsReadOnly(t *testing.T) {
	cases := []struct {
		name    string
		state   consts.ReplicationState
		local   bool
		running bool
	}{
		{"primary", 0, false, true},
		{"performance standby", consts.ReplicationPerformanceStandby, false, false},
		{"performance secondary", consts.ReplicationPerformanceSecondary, false, false},
		{"local mount on a performance secondary", consts.ReplicationPerformanceSecondary, true, true},
		{"DR secondary", consts.ReplicationDRSecondary, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.configureWithRole(map[string]interface{}{"rotation_period": "5s"})
			role, _ := loadRole(t.Context(), e.storage, "app")
			role.NextVaultRotation = time.Now().Add(-time.Minute) // overdue
			if err := saveRole(t.Context(), e.storage, "app", role); err != nil {
				t.Fatal(err)
			}
			e.b.Cleanup(t.Context())

			sys := logical.StaticSystemView{ReplicationStateVal: tc.state, LocalMountVal: tc.local}
			b := restartBackend(t, e, sys)
			if running := b.sched.Load() != nil; running != tc.running {
				t.Fatalf("scheduler running = %v, want %v", running, tc.running)
			}
			if tc.running {
				waitFor(t, 5*time.Second, "the overdue rotation", func() bool { return e.emu.Stats().Rotations[testAppID] == 1 })
				return
			}
			time.Sleep(2 * tickInterval)
			if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
				t.Fatalf("%d rotations where storage is read-only", n)
			}
		})
	}
}

func TestScheduledFailuresBackOffAndRecover(t *testing.T) {
	e := newTestEnv(t)
	e.b.retryBase = 200 * time.Millisecond
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.BeforeApply && r.Method == http.MethodPost {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})
	e.configureWithRole(map[string]interface{}{"rotation_period": "5s"})
	role, _ := loadRole(t.Context(), e.storage, "app")
	role.NextVaultRotation = time.Now()
	_ = saveRole(t.Context(), e.storage, "app", role)
	e.b.schedule("app", role)

	var failures []time.Time
	waitFor(t, 15*time.Second, "three failed attempts", func() bool {
		r, _ := loadRole(t.Context(), e.storage, "app")
		if f := r.LastFailure; f != nil && (len(failures) == 0 || f.ConsecutiveFailures > len(failures)) {
			failures = append(failures, time.Now())
		}
		return len(failures) >= 3
	})
	got := e.ok(logical.ReadOperation, "roles/app", nil)["last_rotation_failure"].(map[string]interface{})
	wantContains(t, got["message"].(string), "503")
	if got["consecutive_failures"].(int) < 3 {
		t.Fatalf("consecutive_failures = %v", got["consecutive_failures"])
	}
	wantContains(t, e.logs.String(), "scheduled rotation failed; will retry")

	e.emu.SetFaults(nil)
	waitFor(t, 15*time.Second, "recovery", func() bool {
		r, _ := loadRole(t.Context(), e.storage, "app")
		return r.LastFailure == nil && r.latest() != nil
	})
	if v := e.ok(logical.ReadOperation, "creds/app", nil); v["client_secret"] != e.appSecret(testAppID) {
		t.Fatal("after recovery creds do not serve Auth0's secret")
	}
}

func TestMissedWindowWaitsForNextTime(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_schedule": "0 3 * * *", "rotation_window": "1h"})
	role, _ := loadRole(t.Context(), e.storage, "app")
	missed := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	role.NextVaultRotation = missed
	_ = saveRole(t.Context(), e.storage, "app", role)
	e.b.schedule("app", role)

	waitFor(t, 5*time.Second, "the missed window to be handled", func() bool {
		r, _ := loadRole(t.Context(), e.storage, "app")
		return r.NextVaultRotation.After(time.Now())
	})
	r, _ := loadRole(t.Context(), e.storage, "app")
	if r.NextVaultRotation.Hour() != 3 || r.NextVaultRotation.Minute() != 0 {
		t.Fatalf("next = %v, want the next 03:00 UTC", r.NextVaultRotation)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
		t.Fatalf("rotated %d times outside the window", n)
	}
	wantContains(t, e.logs.String(), "rotation window missed")
}

// Due roles are worked off at the mount's rate limit, without provoking 429s.
func TestScheduledBurstRespectsRateLimit(t *testing.T) {
	e := newTestEnv(t)
	e.emu.SetRateLimit(5)
	e.configure()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"rate_limit": 4})
	const roles = 12
	for i := 0; i < roles; i++ {
		id := fmt.Sprintf("burst-%d", i)
		e.emu.AddClient(emulator.Client{ClientID: id, Grants: map[string][]string{testAPI: {}}})
		e.ok(logical.UpdateOperation, "roles/"+id, map[string]interface{}{"client_id": id, "rotation_period": "1h"})
	}
	now := time.Now()
	for i := 0; i < roles; i++ {
		name := fmt.Sprintf("burst-%d", i)
		role, _ := loadRole(t.Context(), e.storage, name)
		role.NextVaultRotation = now
		_ = saveRole(t.Context(), e.storage, name, role)
		e.b.schedule(name, role)
	}
	waitFor(t, 20*time.Second, "every due role to rotate", func() bool {
		total := 0
		for _, n := range e.emu.Stats().Rotations {
			total += n
		}
		return total == roles
	})
	if n := e.emu.Stats().RateLimited; n != 0 {
		t.Fatalf("Auth0 answered %d requests with 429", n)
	}
}
