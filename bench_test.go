package auth0

// Benchmarks of the scheduler and the creds hot path ("Scale, measured").
//
// They never assert timings: each reports what it measured, next to a reference measured
// by the same run, and scripts/bench.sh turns them into the ratios of BENCHMARKS.md. Run
// them with `make bench`, or one by one, e.g.:
//
//	go test -run '^$' -bench '^BenchmarkQueueRebuild$' -benchtime 5x .
//	go test -run '^$' -bench '^BenchmarkDueBurst$' -benchtime 1x .   # ~100 s
//
// Identifiers here start with "bench" so that they cannot collide with the helpers of the
// package's other test files.

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/engine"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/metrics"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/model"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	sdkqueue "github.com/hashicorp/vault/sdk/queue"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// benchRoleCounts are the mount sizes the scheduler benchmarks run at.
var benchRoleCounts = []int{10_000, 100_000}

const (
	benchRotationPeriod = 720 * time.Hour // a monthly rotation
	benchVersions       = 3               // versions held by each stored role
)

// benchRoleName is the name of role i: "role-000042", as a mount's roles might be named.
func benchRoleName(i int) string { return fmt.Sprintf("role-%06d", i) }

// benchRandString returns n characters from the alphabet of Auth0 IDs and secrets.
func benchRandString(r *rand.Rand, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// benchRole is a realistic stored role: a 32-character client ID, a monthly
// rotation_period, max_versions 10 holding 3 versions of 64-character secrets, and a last
// rotation somewhere in the past period, so that due times spread over the next month.
func benchRole(r *rand.Rand, now time.Time) *model.RoleEntry {
	last := now.Add(-time.Duration(r.Int64N(int64(benchRotationPeriod)))).UTC()
	role := &model.RoleEntry{
		Layout:         model.RoleLayout,
		ClientID:       benchRandString(r, 32),
		RotationPeriod: benchRotationPeriod,
		MaxVersions:    model.DefaultMaxVersions,
	}
	for v := benchVersions; v >= 1; v-- {
		role.AddVersion(model.VersionMeta{Source: model.SourceScheduled}, last.Add(-time.Duration(v-1)*benchRotationPeriod))
	}
	role.LastVaultRotation = last
	role.NextVaultRotation = role.NextRotation(last)
	return role
}

// benchStored is a storage filled with n roles, and the roles' names and due times.
type benchStored struct {
	storage *logical.InmemStorage
	names   []string
	dues    []time.Time
}

var (
	benchStoredMu    sync.Mutex
	benchStoredCache = map[int]*benchStored{}
)

// benchStorage returns an InmemStorage holding n roles written by saveRole, built once per
// size and process (the benchmark functions are called several times).
func benchStorage(b *testing.B, n int) *benchStored {
	b.Helper()
	benchStoredMu.Lock()
	defer benchStoredMu.Unlock()
	if s, ok := benchStoredCache[n]; ok {
		return s
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(uint64(n), 1))
	now := time.Now()
	s := &benchStored{storage: &logical.InmemStorage{}, names: make([]string, n), dues: make([]time.Time, n)}
	for i := 0; i < n; i++ {
		name := benchRoleName(i)
		role := benchRole(r, now)
		if err := model.SaveRole(ctx, s.storage, name, role); err != nil {
			b.Fatal(err)
		}
		if err := s.storage.Put(ctx, &logical.StorageEntry{Key: model.DueIndexKey(name, engine.DueTime(role, now))}); err != nil {
			b.Fatal(err)
		}
		s.names[i], s.dues[i] = name, role.NextVaultRotation
	}
	benchStoredCache[n] = s
	return s
}

// BenchmarkQueueRebuild measures the queue rebuild at start over n stored roles: from the
// due index (loadQueue, after which the scheduler dispatches), and with the pass that reads
// every role to correct it (loadQueue+verifyQueue), against the parts of that pass measured
// alone: listing, reading and decoding the roles without a queue
// (storage-list-get-decode), finding and read-locking each role's lock (roleLock-only), and
// the n schedule calls without storage (rotationQueue-schedule); and the same n pushes into
// sdk/queue (sdkqueue-push) as the reference for the queue.
func BenchmarkQueueRebuild(b *testing.B) {
	for _, n := range benchRoleCounts {
		b.Run("roles="+strconv.Itoa(n), func(b *testing.B) {
			st := benchStorage(b, n)
			ctx := context.Background()

			b.Run("loadQueue", func(b *testing.B) {
				be := newBackend()
				defer be.Cancel()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					sch := &engine.Scheduler{Queue: engine.NewRotationQueue(), Storage: st.storage, Index: map[string]string{}, Unreadable: map[string]int{}}
					be.LoadQueue(ctx, sch)
					if got := sch.Queue.Len(); got != n {
						b.Fatalf("loadQueue queued %d roles, want %d", got, n)
					}
				}
			})

			b.Run("loadQueue+verifyQueue", func(b *testing.B) {
				be := newBackend()
				defer be.Cancel()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					sch := &engine.Scheduler{Queue: engine.NewRotationQueue(), Storage: st.storage, Index: map[string]string{}, Unreadable: map[string]int{}}
					be.LoadQueue(ctx, sch)
					be.VerifyQueue(ctx, sch)
					if got := sch.Queue.Len(); got != n {
						b.Fatalf("verifyQueue queued %d roles, want %d", got, n)
					}
				}
			})

			b.Run("storage-list-get-decode", func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					names, err := st.storage.List(ctx, model.RoleStoragePrefix)
					if err != nil {
						b.Fatal(err)
					}
					scheduled := 0
					for _, name := range names {
						role, err := model.LoadRole(ctx, st.storage, name)
						if err != nil {
							b.Fatal(err)
						}
						if role != nil && role.Scheduled() {
							scheduled++
						}
					}
					if scheduled != n {
						b.Fatalf("decoded %d scheduled roles, want %d", scheduled, n)
					}
				}
			})

			// loadQueue read-locks each role while it reads it; the lock is found by hashing
			// the name (locksutil, blake2b).
			b.Run("roleLock-only", func(b *testing.B) {
				be := newBackend()
				defer be.Cancel()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, name := range st.names {
						lock := be.RoleLock(name)
						lock.RLock()
						lock.RUnlock()
					}
				}
			})

			b.Run("rotationQueue-schedule", func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					q := engine.NewRotationQueue()
					for j, name := range st.names {
						q.Schedule(name, st.dues[j])
					}
					if q.Len() != n {
						b.Fatal("lost roles")
					}
				}
			})

			b.Run("sdkqueue-push", func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					q := sdkqueue.New()
					for j, name := range st.names {
						if err := q.Push(&sdkqueue.Item{Key: name, Priority: st.dues[j].UnixNano()}); err != nil {
							b.Fatal(err)
						}
					}
					if q.Len() != n {
						b.Fatal("lost roles")
					}
				}
			})
		})
	}
}

// benchHeapInUse returns the bytes of live heap objects after a full collection.
func benchHeapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchQueueMemory reports the heap bytes per role retained by what build returns, build
// being given n names and due times. The names are allocated inside the measurement, since
// the queue is what keeps a role's name alive between ticks.
func benchQueueMemory(b *testing.B, n int, build func(names []string, dues []int64) any) {
	r := rand.New(rand.NewPCG(uint64(n), 2))
	now := time.Now().UnixNano()
	dues := make([]int64, n)
	for i := range dues {
		dues[i] = now + r.Int64N(int64(benchRotationPeriod))
	}
	var total uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		before := benchHeapInUse()
		b.StartTimer()
		names := make([]string, n)
		for j := range names {
			names[j] = benchRoleName(j)
		}
		q := build(names, dues)
		b.StopTimer()
		after := benchHeapInUse()
		runtime.KeepAlive(q)
		if after > before {
			total += after - before
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(n), "B/role")
}

// BenchmarkQueueMemory measures the heap held per role by the scheduler's rotationQueue
// (names included) against sdk/queue holding the same names and priorities.
func BenchmarkQueueMemory(b *testing.B) {
	for _, n := range benchRoleCounts {
		b.Run("roles="+strconv.Itoa(n), func(b *testing.B) {
			b.Run("rotationQueue", func(b *testing.B) {
				benchQueueMemory(b, n, func(names []string, dues []int64) any {
					q := engine.NewRotationQueue()
					for i, name := range names {
						q.Schedule(name, time.Unix(0, dues[i]))
					}
					return q
				})
			})
			b.Run("sdkqueue", func(b *testing.B) {
				benchQueueMemory(b, n, func(names []string, dues []int64) any {
					q := sdkqueue.New()
					for i, name := range names {
						if err := q.Push(&sdkqueue.Item{Key: name, Priority: dues[i]}); err != nil {
							b.Fatal(err)
						}
					}
					return q
				})
			})
		})
	}
}

// BenchmarkIdleTick measures what the dispatcher does on a tick when no role is due: one
// popDue(time.Now()) on a queue of n roles due in the coming month. The reference is the
// same tick with sdk/queue, which cannot peek: pop the head, find it not due, push it
// back (a deep copy).
func BenchmarkIdleTick(b *testing.B) {
	for _, n := range benchRoleCounts {
		b.Run("roles="+strconv.Itoa(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(uint64(n), 3))
			start := time.Now().Add(time.Hour) // nothing falls due while the benchmark runs
			names := make([]string, n)
			dues := make([]time.Time, n)
			for i := range names {
				names[i] = benchRoleName(i)
				dues[i] = start.Add(time.Duration(r.Int64N(int64(benchRotationPeriod))))
			}

			b.Run("popDue", func(b *testing.B) {
				q := engine.NewRotationQueue()
				for i, name := range names {
					q.Schedule(name, dues[i])
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, ok := q.PopDue(time.Now()); ok {
						b.Fatal("popped a role that is not due")
					}
				}
			})

			b.Run("sdkqueue-pop-push", func(b *testing.B) {
				q := sdkqueue.New()
				for i, name := range names {
					if err := q.Push(&sdkqueue.Item{Key: name, Priority: dues[i].UnixNano()}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					it, err := q.Pop()
					if err != nil {
						b.Fatal(err)
					}
					if it.Priority <= time.Now().UnixNano() {
						b.Fatal("popped a role that is not due")
					}
					if err := q.Push(it); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// benchCountingStorage counts storage reads.
type benchCountingStorage struct {
	logical.Storage
	gets atomic.Int64
}

func (s *benchCountingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	return s.Storage.Get(ctx, key)
}

// benchBackend is a backend on in-memory storage as backend_test.go's newTestEnv builds
// one, for a testing.B: logs discarded, Initialize called (the scheduler runs).
func benchBackend(b *testing.B, s logical.Storage) *backend {
	b.Helper()
	be := startBackend(b, s, logical.TestSystemView(), hclog.Warn, io.Discard)
	if sch := be.Sched.Load(); sch != nil {
		<-sch.Loaded
	}
	return be
}

// benchRequest runs a request through the backend as Vault would (writes to new paths are
// creates) and fails the benchmark on any error.
func benchRequest(b *testing.B, be *backend, s logical.Storage, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	b.Helper()
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: s}
	if op == logical.UpdateOperation {
		if check, exists, _ := be.HandleExistenceCheck(context.Background(), req); check && !exists {
			req.Operation = logical.CreateOperation
		}
	}
	resp, err := be.HandleRequest(context.Background(), req)
	if err != nil {
		b.Fatalf("%s %s: %v", op, path, err)
	}
	if resp != nil && resp.IsError() {
		b.Fatalf("%s %s: %v", op, path, resp.Error())
	}
	return resp
}

// BenchmarkCredsRead measures a read of creds/<name> through HandleRequest (the framework's
// routing and field parsing included) against a read of roles/<name>, which reads the same
// storage entry, and counts storage reads per operation. creds-100-versions is creds of a
// role retaining the most versions allowed (100) instead of 3. Storage is in memory: in Vault
// each read is also a gRPC round trip to Vault and a decryption, not measured here.
func BenchmarkCredsRead(b *testing.B) {
	s := &benchCountingStorage{Storage: &logical.InmemStorage{}}
	be := benchBackend(b, s)
	// verify_connection=false: the client is built from config without contacting Auth0,
	// which creds never calls.
	benchRequest(b, be, s, logical.UpdateOperation, "config", map[string]interface{}{
		"domain": "http://127.0.0.1:9", "client_id": "vault-mgmt", "client_secret": "not-used",
		"verify_connection": false,
	})
	r := rand.New(rand.NewPCG(4, 4))
	app := benchStoreVersions(b, be, s, "app", benchVersions, model.DefaultMaxVersions, r)
	// The same role at max_versions=100 with 100 versions retained.
	full := benchStoreVersions(b, be, s, "full", model.MaxMaxVersions, model.MaxMaxVersions, r)
	for _, tc := range []struct {
		name, path string
		want       string
	}{
		{"creds", "creds/app", app},
		{"roles", "roles/app", ""},
		{"creds-100-versions", "creds/full", full},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			resp := benchRequest(b, be, s, logical.ReadOperation, tc.path, nil) // warm: connection built
			if tc.want != "" && resp.Data["client_secret"] != tc.want {
				b.Fatalf("creds served %v", resp.Data["client_secret"])
			}
			b.ReportAllocs()
			gets := s.gets.Load()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: tc.path, Storage: s})
				if err != nil || resp == nil || resp.IsError() {
					b.Fatalf("read %s: %v %v", tc.path, resp, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(s.gets.Load()-gets)/float64(b.N), "reads/op")
		})
	}
}

// BenchmarkCredsMetric measures what the metrics add to a creds read: the count of
// Metrics.CredsRead, without role labels (the default) and with them, against the
// reference of one atomic add in the same run.
func BenchmarkCredsMetric(b *testing.B) {
	var ref atomic.Int64
	m := metrics.New(func() metrics.Health { return metrics.Health{} })
	b.Run("atomic-add", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ref.Add(1)
			}
		})
	})
	b.Run("creds-metric", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.CredsRead("app")
			}
		})
	})
	m.SetRoleLabels(true)
	b.Run("creds-metric-role-labels", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.CredsRead("app")
			}
		})
	})
}

// benchStoreVersions stores role name holding n versions of random secrets, through the
// engine's own commit, and returns the current secret.
func benchStoreVersions(b *testing.B, be *backend, s logical.Storage, name string, n, maxVersions int, r *rand.Rand) string {
	b.Helper()
	role := &model.RoleEntry{Layout: model.RoleLayout, ClientID: benchRandString(r, 32), RotationPeriod: benchRotationPeriod, MaxVersions: maxVersions}
	var secret string
	for i := 0; i < n; i++ {
		secret = benchRandString(r, 64)
		if _, err := be.CommitVersion(s, name, role, secret, model.SourceScheduled, "", time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return secret
}

const (
	benchBurstRoles     = 1000
	benchBurstRateLimit = 10 // per second, at the emulator and in the mount's config
	// benchBurstTimeout bounds the wait; the ideal is benchBurstRoles/benchBurstRateLimit.
	benchBurstTimeout = 10 * time.Minute
)

// BenchmarkDueBurst makes 1,000 roles fall due at once on a mount whose config says
// rate_limit=10, against an emulator that allows 10 Management API requests per second, and
// measures the time until every role is rotated (the ideal is 100 s), the 429s Auth0
// answered and the Management API requests made. It runs the burst once whatever b.N is
// (use -benchtime 1x): about 100 s.
func BenchmarkDueBurst(b *testing.B) {
	ctx := context.Background()
	emu := emulator.New(emulator.Options{RateLimit: benchBurstRateLimit})
	srv := httptest.NewServer(emu) // 127.0.0.1
	b.Cleanup(srv.Close)
	mgmt := emu.AddClient(emulator.Client{ClientID: "vault-mgmt", Name: "Vault",
		Grants: map[string][]string{emulator.ManagementGrant: {"read:clients", "read:client_keys", "update:client_keys"}}})
	ids := make([]string, benchBurstRoles)
	for i := range ids {
		ids[i] = fmt.Sprintf("burst-app-%04d", i)
		emu.AddClient(emulator.Client{ClientID: ids[i], Grants: map[string][]string{"https://api.example.test/": {}}})
	}

	s := &logical.InmemStorage{}
	be := benchBackend(b, s)
	benchRequest(b, be, s, logical.UpdateOperation, "config", map[string]interface{}{
		"domain": srv.URL, "client_id": mgmt.ClientID, "client_secret": mgmt.ClientSecret,
		"rate_limit": float64(benchBurstRateLimit),
	})

	// The roles are stored directly: creating them through roles/ would check each
	// client_id at Auth0, another 100 s at this rate limit.
	start := time.Now()
	for i, id := range ids {
		name := fmt.Sprintf("burst-%04d", i)
		role := &model.RoleEntry{Layout: model.RoleLayout, ClientID: id, RotationPeriod: benchRotationPeriod, MaxVersions: model.DefaultMaxVersions, NextVaultRotation: start}
		lock := be.RoleLock(name)
		lock.Lock()
		if err := model.SaveRole(ctx, s, name, role); err != nil {
			lock.Unlock()
			b.Fatal(err)
		}
		be.Schedule(name, role)
		lock.Unlock()
	}
	b.ResetTimer()

	rotatedCount := func() (distinct, total int) {
		for _, n := range emu.Stats().Rotations {
			if n > 0 {
				distinct++
			}
			total += n
		}
		return distinct, total
	}
	storedCount := func() int {
		stored := 0
		for i := range ids {
			role, err := model.LoadRole(ctx, s, fmt.Sprintf("burst-%04d", i))
			if err == nil && role != nil && role.Current() != nil {
				stored++
			}
		}
		return stored
	}
	// Done when Auth0 has rotated every application and storage holds every new secret.
	deadline := start.Add(benchBurstTimeout)
	var firstDone, halfDone time.Duration
	distinct, total, stored := 0, 0, 0
	for !time.Now().After(deadline) {
		distinct, total = rotatedCount()
		if distinct >= 1 && firstDone == 0 {
			firstDone = time.Since(start)
		}
		if distinct >= benchBurstRoles/2 && halfDone == 0 {
			halfDone = time.Since(start)
		}
		if distinct >= benchBurstRoles {
			if stored = storedCount(); stored >= benchBurstRoles {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stored = storedCount()

	st := emu.Stats()
	ideal := time.Duration(benchBurstRoles/benchBurstRateLimit) * time.Second
	b.ReportMetric(elapsed.Seconds(), "s-total")
	b.ReportMetric(elapsed.Seconds()/ideal.Seconds(), "x-ideal")
	b.ReportMetric(float64(st.RateLimited), "429s")
	b.ReportMetric(float64(st.Requests), "api-requests")
	b.ReportMetric(float64(distinct), "roles-rotated")
	b.Logf("%d roles due at once, rate_limit=%d/s at the mount and at the emulator: %d rotated at Auth0 (%d rotate-secret applied, %d stored) in %.1fs (ideal %.0fs, x%.3f); first after %.2fs, half after %.1fs; %d Management API requests, %d answered 429",
		benchBurstRoles, benchBurstRateLimit, distinct, total, stored, elapsed.Seconds(), ideal.Seconds(), elapsed.Seconds()/ideal.Seconds(),
		firstDone.Seconds(), halfDone.Seconds(), st.Requests, st.RateLimited)
	if distinct < benchBurstRoles || stored < benchBurstRoles {
		b.Errorf("within %v only %d of %d roles were rotated at Auth0 and %d stored", benchBurstTimeout, distinct, benchBurstRoles, stored)
	}
}

// BenchmarkCredsCacheMemory measures the heap the creds read cache holds at 100,000 roles:
// entries decoded from JSON as loadCreds decodes them (a scheduled client_secret role with
// its current and previous secrets), filled through the cache as reads fill it; with the
// cache sized for every role, and with the default bound (10,000), which holds the rest
// out. B/role is per role read, entries is what the cache kept.
func BenchmarkCredsCacheMemory(b *testing.B) {
	const n = 100_000
	now := time.Now().UTC()
	raw := make([][]byte, n)
	for i := range raw {
		e := model.CredsEntry{
			ClientID: fmt.Sprintf("client-%08d-abcdefghijklmnopqrstu", i), RotationPeriod: 720 * time.Hour, NextVaultRotation: now,
			Current:  &model.SecretEntry{Version: 2, Secret: fmt.Sprintf("%064d", i), CreatedTime: now, Source: model.SourceScheduled, WALID: fmt.Sprintf("%036d", i)},
			Previous: &model.SecretEntry{Version: 1, Secret: fmt.Sprintf("%063dp", i), CreatedTime: now, Source: model.SourceRotate, WALID: fmt.Sprintf("%035dp", i)},
		}
		var err error
		if raw[i], err = json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
	for _, size := range []int{n, model.DefaultCredsCacheSize} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			var total uint64
			held := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				before := benchHeapInUse()
				b.StartTimer()
				c := engine.NewCredsCache(size)
				for j := 0; j < n; j++ {
					e := new(model.CredsEntry)
					if err := json.Unmarshal(raw[j], e); err != nil {
						b.Fatal(err)
					}
					name := benchRoleName(j)
					_, gen := c.Get(name)
					c.Fill(name, e, gen)
				}
				b.StopTimer()
				after := benchHeapInUse()
				held = c.Len()
				runtime.KeepAlive(c)
				if after > before {
					total += after - before
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total)/float64(b.N)/float64(n), "B/role")
			b.ReportMetric(float64(total)/float64(b.N)/float64(max(held, 1)), "B/entry")
			b.ReportMetric(float64(held), "entries")
		})
	}
}
