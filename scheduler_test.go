package auth0

import (
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

func TestRotationQueue(t *testing.T) {
	q := engine.NewRotationQueue()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, name := range []string{"c", "a", "d", "b"} {
		q.Schedule(name, base.Add(time.Duration([]int{3, 1, 4, 2}[i])*time.Minute))
	}
	q.Schedule("d", base.Add(30*time.Second)) // moved to the front
	q.Remove("c")
	q.Remove("missing")
	if q.Len() != 3 {
		t.Fatalf("len = %d, want 3", q.Len())
	}
	if _, ok := q.PopDue(base); ok {
		t.Fatal("popped a role before it was due")
	}
	var order []string
	for {
		name, ok := q.PopDue(base.Add(time.Hour))
		if !ok {
			break
		}
		order = append(order, name)
	}
	if fmt.Sprint(order) != "[d a b]" {
		t.Fatalf("order = %v, want [d a b]", order)
	}
	if _, ok := q.Due("a"); ok || q.Len() != 0 {
		t.Fatal("popped roles are still queued")
	}
}

// storedRole reads a role as stored.
func (e *testEnv) storedRole(name string) *model.RoleEntry {
	e.t.Helper()
	role, err := model.LoadRole(e.t.Context(), e.storage, name)
	if err != nil || role == nil {
		e.t.Fatalf("role %s: %v, %v", name, role, err)
	}
	return role
}

// setDue stores a new due time for role name and requeues it, as if time had passed.
func (e *testEnv) setDue(name string, due time.Time) {
	e.t.Helper()
	role := e.storedRole(name)
	role.NextVaultRotation = due
	if err := model.SaveRole(e.t.Context(), e.storage, name, role); err != nil {
		e.t.Fatal(err)
	}
	e.b.Schedule(name, role)
}

func TestScheduledRotation(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "5s"})

	if n := e.advance(4 * time.Second); n != 0 || e.emu.Stats().Rotations[testAppID] != 0 {
		t.Fatalf("rotated before the 5s period (%d jobs)", n)
	}
	if n := e.advance(time.Second); n != 1 || e.emu.Stats().Rotations[testAppID] != 1 {
		t.Fatalf("%d jobs, %d Auth0 rotations at the period; want 1", n, e.emu.Stats().Rotations[testAppID])
	}
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["client_secret"] != e.appSecret(testAppID) || !e.authenticates(testAppID, creds["client_secret"].(string)) {
		t.Fatal("creds do not serve the secret the scheduled rotation produced")
	}
	v := e.ok(logical.ReadOperation, "versions/app", nil)["versions"].(map[string]interface{})
	if v["1"].(map[string]interface{})["source"] != model.SourceScheduled {
		t.Fatalf("version 1 = %v, want source scheduled", v["1"])
	}
	next, _ := time.Parse(time.RFC3339, creds["next_vault_rotation"].(string))
	last, _ := time.Parse(time.RFC3339, creds["last_vault_rotation"].(string))
	if d := next.Sub(last); d != 5*time.Second {
		t.Fatalf("next - last = %v, want the 5s period", d)
	}
	if creds["ttl"] != int64(5) {
		t.Fatalf("ttl = %v, want 5", creds["ttl"])
	}

	// A virtual day: exactly one rotation per period.
	for i := 0; i < 24*60*12; i++ {
		e.advance(5 * time.Second)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 1+24*60*12 {
		t.Fatalf("%d Auth0 rotations in a virtual day at a 5s period, want %d", n, 1+24*60*12)
	}

	// Turning the schedule off takes the role out of the queue.
	e.ok(logical.UpdateOperation, "roles/app", map[string]interface{}{"rotation_period": 0})
	if _, queued := e.b.Sched.Load().Queue.Due("app"); queued {
		t.Fatal("an unscheduled role is still queued")
	}
}

func TestManualRotationAndDeleteUpdateQueue(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	q := e.b.Sched.Load().Queue
	first, ok := q.Due("app")
	if !ok {
		t.Fatal("a scheduled role was not queued on create")
	}
	e.clock.Advance(time.Minute)
	e.ok(logical.UpdateOperation, "rotate/app", nil)
	second, _ := q.Due("app")
	if second.Sub(first).Round(time.Second) != time.Minute { // (each Auth0 call waits 1ms for the test's rate limit)
		t.Fatalf("a manual rotation a minute later did not push the next rotation back a minute: %v -> %v", first, second)
	}
	if role := e.storedRole("app"); !second.Equal(role.NextVaultRotation) {
		t.Fatalf("queue says %v, storage says %v", second, role.NextVaultRotation)
	}
	e.ok(logical.DeleteOperation, "roles/app", nil)
	if _, ok := q.Due("app"); ok {
		t.Fatal("a deleted role is still queued")
	}
}

// restartBackend builds a new backend on e's storage and clock, as Vault does when it
// reloads the mount, with the given system view, and initializes it.
func restartBackend(t *testing.T, e *testEnv, sys logical.SystemView) *backend {
	t.Helper()
	b := startBackendWithClock(t, e.storage, sys, hclog.Trace, e.logs, e.clock)
	e.b = b
	return b
}

// After a restart the queue is rebuilt from storage at the persisted times: nothing rotates
// early, and what fell due while Vault was down rotates promptly.
func TestQueueRebuiltAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "roles/later", map[string]interface{}{"client_id": testAppID, "rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/overdue", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "1h"})
	e.emu.AddClient(emulator.Client{ClientID: "app-3", Grants: map[string][]string{testAPI: {}}})
	e.ok(logical.UpdateOperation, "roles/manual", map[string]interface{}{"client_id": "app-3"})
	later := e.storedRole("later")

	// Vault goes down; while it is, "overdue" falls due.
	e.b.Cleanup(t.Context())
	overdue := e.storedRole("overdue")
	overdue.NextVaultRotation = e.clock.Now().Add(-time.Minute)
	if err := model.SaveRole(t.Context(), e.storage, "overdue", overdue); err != nil {
		t.Fatal(err)
	}

	b2 := restartBackend(t, e, logical.TestSystemView())
	sch := b2.Sched.Load()
	<-sch.Loaded
	if due, ok := sch.Queue.Due("later"); !ok || !due.Equal(later.NextVaultRotation) {
		t.Fatalf("later queued at %v (%v), want the persisted %v", due, ok, later.NextVaultRotation)
	}
	if _, ok := sch.Queue.Due("manual"); ok {
		t.Fatal("a role without a schedule was queued")
	}
	if n := e.runDue(); n != 1 || e.emu.Stats().Rotations[testApp2ID] != 1 {
		t.Fatalf("%d jobs ran; want the overdue role rotated", n)
	}
	if e.emu.Stats().Rotations[testAppID] != 0 {
		t.Fatal("a role that was not due rotated after the restart")
	}
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
			e.b.Cleanup(t.Context())
			e.setDue("app", e.clock.Now().Add(-time.Minute)) // overdue

			sys := logical.StaticSystemView{ReplicationStateVal: tc.state, LocalMountVal: tc.local}
			b := restartBackend(t, e, sys)
			if running := b.Sched.Load() != nil; running != tc.running {
				t.Fatalf("scheduler running = %v, want %v", running, tc.running)
			}
			e.advance(time.Hour)
			want := 0
			if tc.running {
				want = 1
			}
			if n := e.emu.Stats().Rotations[testAppID]; n != want {
				t.Fatalf("%d rotations, want %d", n, want)
			}
		})
	}
}

// Failed scheduled rotations are recorded with their count and retried after a growing
// delay, persisted as the role's next attempt; creds tell consumers to come back then,
// not every second.
func TestScheduledFailuresBackOffAndRecover(t *testing.T) {
	e := newTestEnv(t)
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.BeforeApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") {
			return &emulator.Fault{Status: http.StatusServiceUnavailable}
		}
		return nil
	})
	e.configureWithRole(map[string]interface{}{"import_current_secret": true, "rotation_period": "5s"})
	requests := func() int { return e.emu.Stats().Requests }

	e.advance(5 * time.Second)
	var gaps []time.Duration
	last := e.clock.Now()
	for len(gaps) < 6 {
		before := requests()
		e.advance(time.Second)
		if requests() > before {
			// Rounded: each Management API call also waits 1ms for the test's rate limit.
			gaps = append(gaps, e.clock.Now().Sub(last).Round(time.Second))
			last = e.clock.Now()
		}
	}
	// The test jitter picks the longest delay: base, then doubling, capped.
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 320 * time.Second}
	if fmt.Sprint(gaps) != fmt.Sprint(want) {
		t.Fatalf("attempts %v apart, want %v", gaps, want)
	}
	role := e.ok(logical.ReadOperation, "roles/app", nil)
	failure := role["last_rotation_failure"].(map[string]interface{})
	wantContains(t, failure["message"].(string), "503")
	if failure["consecutive_failures"] != 7 {
		t.Fatalf("consecutive_failures = %v, want 7", failure["consecutive_failures"])
	}
	stored := e.storedRole("app")
	if failure["next_attempt"] != stored.NextAttempt.Format(time.RFC3339) || !stored.NextAttempt.Equal(e.clock.Now().Add(640*time.Second)) {
		t.Fatalf("next_attempt = %v, stored %v; want now + 640s", failure["next_attempt"], stored.NextAttempt)
	}
	creds := e.ok(logical.ReadOperation, "creds/app", nil)
	if creds["ttl"] != int64(300) {
		t.Fatalf("creds ttl while failing = %v, want 300 (max_ttl; the next attempt is in 640), not 1", creds["ttl"])
	}
	// Each failed attempt moved last_vault_rotation: a consumer re-reading at ttl accepts
	// the answer instead of waiting for a rotation that did not come.
	if creds["last_vault_rotation"] != stored.LastFailure.Time.Format(time.RFC3339) {
		t.Fatalf("last_vault_rotation while failing = %v, want the last attempt %v", creds["last_vault_rotation"], stored.LastFailure.Time)
	}
	wantContains(t, e.logs.String(), "rotation failed", "consecutive_failures=7")

	e.emu.SetFaults(nil)
	e.advance(640 * time.Second)
	if r := e.storedRole("app"); r.LastFailure != nil || r.CurrentVersion() != 2 || !r.NextAttempt.IsZero() {
		t.Fatalf("after recovery: failure %v, version %d", r.LastFailure, r.CurrentVersion())
	}
	if v := e.ok(logical.ReadOperation, "creds/app", nil); v["client_secret"] != e.appSecret(testAppID) || v["ttl"] != int64(5) {
		t.Fatalf("after recovery creds serve %v (ttl %v), not Auth0's secret", v["version"], v["ttl"])
	}
}

func TestMissedWindowWaitsForNextTime(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_schedule": "0 3 * * *", "rotation_window": "1h"})
	e.setDue("app", e.clock.Now().Add(-2*time.Hour).Truncate(time.Minute))
	e.runDue()
	r := e.storedRole("app")
	if r.NextVaultRotation.Hour() != 3 || r.NextVaultRotation.Minute() != 0 || !r.NextVaultRotation.After(e.clock.Now()) {
		t.Fatalf("next = %v, want the next 03:00 UTC", r.NextVaultRotation)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 0 {
		t.Fatalf("rotated %d times outside the window", n)
	}
	wantContains(t, e.logs.String(), "rotation window missed")
}

// Due roles are worked off at the mount's rate limit: consecutive Management API requests
// are at least 1/rate_limit apart in the engine's time.
func TestScheduledBurstRespectsRateLimit(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"rate_limit": 4})
	const roles = 12
	for i := 0; i < roles; i++ {
		id := fmt.Sprintf("burst-%d", i)
		e.emu.AddClient(emulator.Client{ClientID: id, Grants: map[string][]string{testAPI: {}}})
		e.ok(logical.UpdateOperation, "roles/"+id, map[string]interface{}{"client_id": id, "rotation_period": "1h"})
	}
	var sent []time.Time
	e.emu.SetFaults(func(p emulator.Phase, r *http.Request, _ string) *emulator.Fault {
		if p == emulator.BeforeApply && strings.HasSuffix(r.URL.Path, "/rotate-secret") {
			sent = append(sent, e.clock.Now())
		}
		return nil
	})
	if n := e.advance(time.Hour); n != roles {
		t.Fatalf("%d jobs ran, want %d", n, roles)
	}
	if len(sent) != roles {
		t.Fatalf("%d rotations sent, want %d", len(sent), roles)
	}
	for i := 1; i < len(sent); i++ {
		if gap := sent[i].Sub(sent[i-1]); gap < 250*time.Millisecond {
			t.Fatalf("requests %d and %d were %v apart, less than 1/rate_limit", i-1, i, gap)
		}
	}
}

// Clean returns promptly whatever the workers do: a scheduled rotation parked in the rate
// limiter (a 429 asked for five minutes) is abandoned, and nothing reached Auth0.
func TestCleanReturnsWhileWorkersWait(t *testing.T) {
	e := newTestEnv(t)
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.b.Cleanup(t.Context())
	// A backend with its dispatcher and workers, as in Vault, on the virtual clock.
	e.clock.autoAdvance = false
	b := buildBackend(t, e.storage, logical.TestSystemView(), hclog.Trace, e.logs, e.clock, false)
	<-b.Sched.Load().Loaded
	b.Limiter.Observe(&http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"300"}}}, e.clock.Now())
	role := e.storedRole("app")
	role.NextVaultRotation = e.clock.Now() // due: a worker takes it and waits in the limiter
	if err := model.SaveRole(t.Context(), e.storage, "app", role); err != nil {
		t.Fatal(err)
	}
	b.Schedule("app", role)
	e.clock.awaitTimer(2 * time.Minute)

	cleaned := make(chan struct{})
	go func() {
		b.Cleanup(t.Context())
		close(cleaned)
	}()
	select {
	case <-cleaned:
	case <-time.After(engine.StopWait + 5*time.Second): // a bound on a hang, not a timing
		t.Fatal("Clean did not return while a worker waited in the rate limiter")
	}
	if n := e.emu.Stats().Rotations[testAppID]; n != 0 || walCount(t, e.storage) != 0 {
		t.Fatalf("%d rotations, %d entries: an abandoned wait must send nothing and record nothing in flight", n, walCount(t, e.storage))
	}
}

// Errors at start (listing roles, reading config, listing rotations left in flight) are
// retried with backoff until they succeed; a role that cannot be read is queued for a
// retry, and once read it is queued at its own due time.
func TestStartErrorsAreRetried(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": "24h"})
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/two", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "2h"})
	e.b.Cleanup(t.Context())

	e.storage.failLists.Store(3) // the rotations in flight, then roles, twice
	prefix := model.RoleKey("two")
	e.storage.failGetPrefix.Store(&prefix)
	e.storage.failGets.Store(2)
	e.clock.autoAdvance = false
	b := restartBackend(t, e, logical.TestSystemView())
	e.b = b
	sch := b.Sched.Load()
	// The start runs in the background; its backoff waits pass as the virtual clock moves.
	for loaded := false; !loaded; {
		select {
		case <-sch.Loaded:
			loaded = true
		case <-time.After(time.Millisecond):
			e.clock.Advance(time.Minute)
		}
	}
	for _, key := range []string{"app", "two", engine.RootQueueKey} {
		if _, ok := sch.Queue.Due(key); !ok {
			t.Fatalf("%s is not queued after start errors", key)
		}
	}
	// The retries of "two" come due before its schedule; the second one reads it.
	for i := 0; i < 2; i++ {
		retry, _ := sch.Queue.Due("two")
		e.clock.Set(retry)
		e.runDue()
	}
	if due, _ := sch.Queue.Due("two"); !due.Equal(e.storedRole("two").NextVaultRotation) {
		t.Fatalf("two queued at %v once readable, want its next_vault_rotation %v", due, e.storedRole("two").NextVaultRotation)
	}
	if n := e.emu.Stats().Rotations[testApp2ID]; n != 0 {
		t.Fatalf("%d rotations of two's application; reading it late must not rotate it early", n)
	}
	wantContains(t, e.logs.String(), "startup step failed; retrying", "could not read stored state")
}

// A role that can never be read (here: every read of it fails; in Vault, for example, a
// stray entry a crash left behind in the file backend) does not hold back the schedules of
// the other roles, nor the root's: they rotate when due, and the unreadable one is retried
// with a growing backoff.
func TestUnreadableRoleDoesNotBlockOthers(t *testing.T) {
	e := newTestEnv(t)
	e.configure()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"root_rotation_period": "2h"})
	e.configureWithRole(map[string]interface{}{"rotation_period": "1h"})
	e.ok(logical.UpdateOperation, "roles/two", map[string]interface{}{"client_id": testApp2ID, "rotation_period": "1h"})
	e.b.Cleanup(t.Context())

	prefix := model.RoleKey("two")
	e.storage.failGetPrefix.Store(&prefix)
	e.storage.failGets.Store(1 << 30)
	e.clock.autoAdvance = false
	b := restartBackend(t, e, logical.TestSystemView())
	e.b = b
	sch := b.Sched.Load()
	for waited := 0; ; waited++ {
		if waited == 1000 {
			t.Fatal("the queue never finished loading while one role could not be read")
		}
		select {
		case <-sch.Loaded:
		case <-time.After(time.Millisecond):
			e.clock.Advance(time.Minute)
			continue
		}
		break
	}
	e.clock.setAutoAdvance(true) // the rotations below run on this goroutine
	start := e.clock.Now()
	for e.clock.Now().Sub(start) < 3*time.Hour {
		e.advance(time.Minute)
	}
	if n := e.emu.Stats().Rotations[testAppID]; n < 2 {
		t.Fatalf("app rotated %d times in 3h with a 1h period while role two was unreadable", n)
	}
	if n := e.emu.Stats().Rotations[testApp2ID]; n != 0 {
		t.Fatalf("two's application rotated %d times though its role could not be read", n)
	}
	if n := e.emu.Stats().SecretPatches[testMgmtID]; n < 1 {
		t.Fatalf("the root rotated %d times in 3h with a 2h period while role two was unreadable", n)
	}
	if got := strings.Count(e.logs.String(), "could not read stored state"); got < 3 || got > 12 {
		t.Fatalf("%d failed reads of two logged in 3h; want a retry with a growing backoff", got)
	}
}

// Write-ahead entries are local storage, and reconciliation calls Auth0 only where
// storage is writable.
func TestWriteAheadEntriesAreLocalAndGuarded(t *testing.T) {
	e := newTestEnv(t)
	local := e.b.PathsSpecial.LocalStorage
	if len(local) != 1 || local[0] != framework.WALPrefix {
		t.Fatalf("local storage paths = %v, want %s", local, framework.WALPrefix)
	}
	e.configureWithRole(map[string]interface{}{"import_current_secret": true})
	if _, err := framework.PutWAL(t.Context(), e.storage, engine.WALKindRotation, &engine.RotationWAL{Role: "app", ClientID: testAppID, BaseVersion: 1}); err != nil {
		t.Fatal(err)
	}
	e.b.Cleanup(t.Context())
	sys := logical.StaticSystemView{ReplicationStateVal: consts.ReplicationPerformanceStandby}
	b := restartBackend(t, e, sys)
	requests := e.emu.Stats().Requests
	resp, err := b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.RollbackOperation, Storage: e.storage, Data: map[string]interface{}{"immediate": true},
	})
	if err != nil || resp == nil || !resp.IsError() {
		t.Fatalf("rollback on a performance standby answered %v, %v; want an error", resp, err)
	}
	wantContains(t, resp.Error().Error(), "where storage is writable")
	if n := e.emu.Stats().Requests - requests; n != 0 || walCount(t, e.storage) != 1 {
		t.Fatalf("%d Auth0 requests, %d entries left; want none and the entry kept", n, walCount(t, e.storage))
	}
}
