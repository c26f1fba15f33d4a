package auth0

// Benchmarks of the scheduler and the creds hot path ("Scale, measured").
//
// They never assert timings: each reports what it measured, next to a reference measured
// by the same run, and scripts/bench.sh turns them into the ratios of BENCHMARKS.md. Run
// them with `make bench`, or one by one, e.g.:
//
//	go test -run '^$' -bench '^BenchmarkQueueRebuild$' -benchtime 5x .
//	go test -run '^$' -bench '^BenchmarkDueBurst$' -benchtime 1x .   # ~110 s
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	sdkqueue "github.com/hashicorp/vault/sdk/queue"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

// benchRoleCounts are the mount sizes the scheduler benchmarks run at, and
// benchRebuildCounts those of the queue rebuild, about evenly spaced on a log scale so that
// its growth with the mount's size can be drawn.
var (
	benchRoleCounts    = []int{10_000, 100_000}
	benchRebuildCounts = []int{1_000, 3_000, 10_000, 30_000, 100_000}
)

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
	for _, n := range benchRebuildCounts {
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
// reference of one atomic add, and against what it is part of, a whole creds read through
// HandleRequest (creds-read: the counter included, as served), with role labels off and on
// (config's metrics_role_labels). Everything runs in parallel on every CPU, as Vault serves
// reads, so that the counter's contention between cores is counted. The counter's share of
// a read is creds-metric / creds-read; the role labels' cost creds-read-role-labels /
// creds-read. (A read without the counter cannot be measured without changing the handler.)
func BenchmarkCredsMetric(b *testing.B) {
	var ref atomic.Int64
	m := metrics.New(func() metrics.Health { return metrics.Health{} })
	s := &logical.InmemStorage{}
	be := benchBackend(b, s)
	benchRequest(b, be, s, logical.UpdateOperation, "config", map[string]interface{}{
		"domain": "http://127.0.0.1:9", "client_id": "vault-mgmt", "client_secret": "not-used",
		"verify_connection": false,
	})
	secret := benchStoreVersions(b, be, s, "app", benchVersions, model.DefaultMaxVersions, rand.New(rand.NewPCG(5, 5)))
	credsRead := func(b *testing.B) {
		if got := benchRequest(b, be, s, logical.ReadOperation, "creds/app", nil).Data["client_secret"]; got != secret { // warm: cache filled
			b.Fatalf("creds served %v", got)
		}
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "creds/app", Storage: s})
				if err != nil || resp == nil || resp.IsError() {
					b.Errorf("read creds/app: %v %v", resp, err)
					return
				}
			}
		})
	}
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
	b.Run("creds-read", credsRead)
	m.SetRoleLabels(true)
	b.Run("creds-metric-role-labels", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.CredsRead("app")
			}
		})
	})
	benchRequest(b, be, s, logical.UpdateOperation, "config", map[string]interface{}{"metrics_role_labels": true, "verify_connection": false})
	b.Run("creds-read-role-labels", credsRead)
	if text, err := be.Metrics.Text(); err != nil || !strings.Contains(string(text), `role_creds_reads_total{role="app"}`) {
		b.Errorf("with metrics_role_labels=true the metrics hold no creds series of role app (%v):\n%s", err, text)
	}
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

	// benchBurstReaders goroutines read creds/<a burst role> once every
	// benchBurstReadInterval each (an open loop: 4,000 reads/s in all, whatever the
	// answers' latency), through the warm-up, the idle stretch and the burst.
	benchBurstReaders      = 4
	benchBurstReadInterval = time.Millisecond
	benchBurstWarmup       = time.Second      // reads not recorded: the creds cache fills
	benchBurstIdle         = 10 * time.Second // reads recorded at idle, before the burst
)

// The phases of BenchmarkDueBurst's reads.
const (
	benchPhaseWarmup = iota // not recorded
	benchPhaseIdle          // nothing due
	benchPhaseBurst         // from the burst falling due until every role is rotated and stored
	benchPhases
)

// benchReads are the creds reads of BenchmarkDueBurst's readers, by phase.
type benchReads struct {
	phase atomic.Int32 // a benchPhase*; the readers record each read in the phase it started in
	done  chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	lat    [benchPhases][]time.Duration
	errors [benchPhases]int
	first  error
}

// benchStartReaders starts benchBurstReaders goroutines reading creds/<one of names, at
// random> through HandleRequest, in the warm-up phase; stop ends them.
func benchStartReaders(be *backend, s logical.Storage, names []string) *benchReads {
	rd := &benchReads{done: make(chan struct{})}
	for r := 0; r < benchBurstReaders; r++ {
		rd.wg.Add(1)
		go func() {
			defer rd.wg.Done()
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			var lat [benchPhases][]time.Duration
			var errs [benchPhases]int
			var first error
			tick := time.NewTicker(benchBurstReadInterval)
			defer tick.Stop()
			for {
				select {
				case <-rd.done:
					rd.mu.Lock()
					for ph := range lat {
						rd.lat[ph] = append(rd.lat[ph], lat[ph]...)
						rd.errors[ph] += errs[ph]
					}
					if rd.first == nil {
						rd.first = first
					}
					rd.mu.Unlock()
					return
				case <-tick.C:
				}
				ph := rd.phase.Load()
				path := "creds/" + names[rng.IntN(len(names))]
				t0 := time.Now()
				resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: path, Storage: s})
				d := time.Since(t0)
				lat[ph] = append(lat[ph], d)
				if err == nil && (resp == nil || resp.IsError()) {
					err = fmt.Errorf("%s answered %v", path, resp)
				}
				if err != nil {
					errs[ph]++
					if first == nil {
						first = err
					}
				}
			}
		}()
	}
	return rd
}

func (rd *benchReads) stop() {
	close(rd.done)
	rd.wg.Wait()
}

// benchPercentile is the p-th percentile (0 < p <= 100) of sorted latencies, nearest rank.
func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchmarkDueBurst makes 1,000 roles fall due at once on a mount whose config says
// rate_limit=10, against an emulator that allows 10 Management API requests per second, and
// measures the time until every role is rotated (the ideal is 100 s), the 429s Auth0
// answered and the Management API requests made. Meanwhile readers read the same roles'
// creds at a steady 4,000 reads/s: their latency percentiles during the burst are reported
// against those of the same reads at idle, measured just before in the same run. The roles
// hold one version each before the burst, as roles that fall due do. It runs the burst once
// whatever b.N is (use -benchtime 1x): about 100 s, plus 11 s of reads at idle.
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

	// The roles are stored directly, each with a first version committed by the engine and
	// not scheduled yet: creating them through roles/ would check each client_id at Auth0,
	// another 100 s at this rate limit.
	r := rand.New(rand.NewPCG(6, 6))
	names := make([]string, benchBurstRoles)
	roles := make([]*model.RoleEntry, benchBurstRoles)
	for i, id := range ids {
		names[i] = fmt.Sprintf("burst-%04d", i)
		roles[i] = &model.RoleEntry{Layout: model.RoleLayout, ClientID: id, RotationPeriod: benchRotationPeriod, MaxVersions: model.DefaultMaxVersions}
		if _, err := be.CommitVersion(s, names[i], roles[i], benchRandString(r, 64), model.SourceScheduled, "", time.Now()); err != nil {
			b.Fatal(err)
		}
	}

	// Reads at idle: nothing is due.
	reads := benchStartReaders(be, s, names)
	readersStopped := false
	defer func() {
		if !readersStopped {
			reads.stop()
		}
	}()
	time.Sleep(benchBurstWarmup)
	reads.phase.Store(benchPhaseIdle)
	time.Sleep(benchBurstIdle)

	// The burst: every role falls due now.
	b.ResetTimer()
	reads.phase.Store(benchPhaseBurst)
	start := time.Now()
	for i, name := range names {
		lock := be.RoleLock(name)
		lock.Lock()
		roles[i].NextVaultRotation = start
		if err := model.SaveRole(ctx, s, name, roles[i]); err != nil {
			lock.Unlock()
			b.Fatal(err)
		}
		be.Schedule(name, roles[i])
		lock.Unlock()
	}

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
		for _, name := range names {
			role, err := model.LoadRole(ctx, s, name)
			if err == nil && role != nil && role.CurrentVersion() >= 2 {
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
	reads.phase.Store(benchPhaseWarmup) // reads after the burst are not recorded
	b.StopTimer()
	reads.stop()
	readersStopped = true
	stored = storedCount()

	st := emu.Stats()
	ideal := time.Duration(benchBurstRoles/benchBurstRateLimit) * time.Second
	b.ReportMetric(elapsed.Seconds(), "s-total")
	b.ReportMetric(elapsed.Seconds()/ideal.Seconds(), "x-ideal")
	b.ReportMetric(float64(st.RateLimited), "429s")
	b.ReportMetric(float64(st.Requests), "api-requests")
	b.ReportMetric(float64(distinct), "roles-rotated")

	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	pct := map[string]float64{"p50": 50, "p90": 90, "p99": 99, "p999": 99.9, "max": 100}
	var summary []string
	for _, ph := range []struct {
		name  string
		phase int
	}{{"idle", benchPhaseIdle}, {"burst", benchPhaseBurst}} {
		lat := reads.lat[ph.phase]
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat)), "creds-"+ph.name+"-reads")
		line := fmt.Sprintf("%s: %d reads", ph.name, len(lat))
		for _, p := range []string{"p50", "p90", "p99", "p999", "max"} {
			d := benchPercentile(lat, pct[p])
			b.ReportMetric(us(d), "creds-"+ph.name+"-"+p+"-us")
			line += fmt.Sprintf(" %s %v", p, d.Round(time.Microsecond))
		}
		summary = append(summary, line)
	}
	readErrors := reads.errors[benchPhaseIdle] + reads.errors[benchPhaseBurst]
	b.ReportMetric(float64(readErrors), "creds-read-errors")

	b.Logf("%d roles due at once, rate_limit=%d/s at the mount and at the emulator: %d rotated at Auth0 (%d rotate-secret applied, %d stored) in %.1fs (ideal %.0fs, x%.3f); first after %.2fs, half after %.1fs; %d Management API requests, %d answered 429",
		benchBurstRoles, benchBurstRateLimit, distinct, total, stored, elapsed.Seconds(), ideal.Seconds(), elapsed.Seconds()/ideal.Seconds(),
		firstDone.Seconds(), halfDone.Seconds(), st.Requests, st.RateLimited)
	b.Logf("creds reads of the burst's roles, %d readers, one read per %v each, in process (HandleRequest): %s", benchBurstReaders, benchBurstReadInterval, strings.Join(summary, "; "))
	if distinct < benchBurstRoles || stored < benchBurstRoles {
		b.Errorf("within %v only %d of %d roles were rotated at Auth0 and %d stored", benchBurstTimeout, distinct, benchBurstRoles, stored)
	}
	if readErrors > 0 {
		b.Errorf("%d creds reads failed (idle %d, burst %d); first: %v", readErrors, reads.errors[benchPhaseIdle], reads.errors[benchPhaseBurst], reads.first)
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
