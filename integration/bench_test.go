package integration

// BenchmarkVaultQueueRebuild (below) measures the scheduler's queue rebuild at start in a
// real Vault, where every storage read is a gRPC round trip from the plugin to Vault; the
// root package's BenchmarkQueueRebuild measures the same code over in-memory storage.
//
// BenchmarkVaultReadLoad puts a bounded read load on a real Vault dev server: creds of a
// rotated role at auth0/creds/<role>, and, as the reference measured in the same run, a
// KV v2 secret holding the same fields (secret/ is KV v2 in dev mode), plus the role's own
// auth0/roles/<role>. Results are ratios against the reference; nothing is asserted about
// timings. scripts/bench.sh runs it:
//
//	go test -run '^$' -bench '^BenchmarkVaultReadLoad$' -benchtime 1x ./integration

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
)

const (
	// benchLoadWorkers is the number of concurrent clients, each sending its next request as soon
	// as the previous one is answered (a closed loop).
	benchLoadWorkers = 8
	// benchLoadRound is one measured stretch of load on one path; each path gets two rounds,
	// interleaved ABBA so that drift (a warming server, a noisy neighbour) hits both alike.
	benchLoadRound = 5 * time.Second
	// benchLoadWarmup is unmeasured load on each path before the first round.
	benchLoadWarmup = time.Second
	// benchLoadMaxRequests bounds the requests of one round, whatever the server's speed.
	benchLoadMaxRequests = 2_000_000

	benchRoleName    = "bench"
	benchAppClientID = "bench-app"
	benchKVPath      = "secret/data/bench-creds"
)

// benchLoadResult is what one path measured over its rounds.
type benchLoadResult struct {
	requests  int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration
}

func (r *benchLoadResult) add(o benchLoadResult) {
	r.requests += o.requests
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
}

func (r *benchLoadResult) perSecond() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// percentile returns the p-th percentile (0 < p <= 100) of the latencies, nearest rank.
func (r *benchLoadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	i := int(float64(len(r.latencies))*p/100+0.999999) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// benchRunLoad sends GET /v1/<path> with token from benchLoadWorkers goroutines for d (or until
// benchLoadMaxRequests), and returns the answers counted and timed. Anything but a 200 is an
// error.
func benchRunLoad(client *http.Client, addr, token, path string, d time.Duration) benchLoadResult {
	var (
		mu  sync.Mutex
		res benchLoadResult
		wg  sync.WaitGroup
	)
	perWorker := benchLoadMaxRequests / benchLoadWorkers
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < benchLoadWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			errs := 0
			for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
				req, err := http.NewRequest(http.MethodGet, addr+"/v1/"+path, nil)
				if err != nil {
					errs++
					continue
				}
				req.Header.Set("X-Vault-Token", token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					errs++
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.latencies)
	return res
}

// BenchmarkVaultReadLoad measures reads of auth0/creds/<role> from a real Vault against
// reads of a KV v2 secret of the same content, and of auth0/roles/<role>, under the same
// closed-loop load. It runs the load once whatever b.N is (use -benchtime 1x): about 35 s,
// plus starting Vault.
func BenchmarkVaultReadLoad(b *testing.B) {
	// Emulator on 127.0.0.1, dev server, plugin registered and mounted at auth0/.
	f := newFixture(b)
	emu, v, emuURL, mgmt := f.emu, f.v, f.emuURL, f.mgmt
	emu.AddClient(emulator.Client{ClientID: benchAppClientID, Name: "Bench App", Grants: map[string][]string{apiAudience: {}}})

	v.MustCLI(b, v.RootToken, "write", mount+"/config",
		"domain="+emuURL, "client_id="+mgmt.ClientID, "client_secret="+mgmt.ClientSecret)
	v.MustCLI(b, v.RootToken, "write", mount+"/roles/"+benchRoleName, "client_id="+benchAppClientID, "rotation_period=720h")
	v.MustCLI(b, v.RootToken, "write", "-f", mount+"/rotate/"+benchRoleName)

	credsPath := mount + "/creds/" + benchRoleName
	status, creds, errs := v.Request(b, v.RootToken, http.MethodGet, credsPath, nil)
	if status != http.StatusOK || creds["client_secret"] == nil {
		b.Fatalf("GET %s: %d %v %v", credsPath, status, creds, errs)
	}
	// The reference: the same fields, stored in KV v2.
	if status, _, errs := v.Request(b, v.RootToken, http.MethodPut, benchKVPath, map[string]any{"data": creds}); status != http.StatusOK {
		b.Fatalf("PUT %s: %d %v", benchKVPath, status, errs)
	}
	rolePath := mount + "/roles/" + benchRoleName

	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        benchLoadWorkers * 2,
			MaxIdleConnsPerHost: benchLoadWorkers * 2,
		},
	}
	defer client.CloseIdleConnections()

	// kv is the reference; roles (the same plugin, the same single storage read, no
	// secret) separates what the plugin round trip costs from what creds itself costs.
	targets := []struct{ name, path string }{
		{"kv", benchKVPath},
		{"roles", rolePath},
		{"creds", credsPath},
	}
	results := map[string]*benchLoadResult{}
	bodies := map[string]int{}
	for _, tg := range targets {
		results[tg.name] = &benchLoadResult{}
		bodies[tg.name] = len(v.Do(b, v.RootToken, http.MethodGet, tg.path, nil).Raw)
		benchRunLoad(client, v.Addr, v.RootToken, tg.path, benchLoadWarmup)
	}
	order := append(slices.Clone(targets), targets...)
	slices.Reverse(order[len(targets):]) // kv roles creds creds roles kv
	b.ResetTimer()
	for _, tg := range order {
		results[tg.name].add(benchRunLoad(client, v.Addr, v.RootToken, tg.path, benchLoadRound))
	}
	b.StopTimer()

	for _, tg := range targets {
		if r := results[tg.name]; r.errors > 0 || r.requests == 0 {
			b.Errorf("%s: %d requests, %d errors", tg.name, r.requests, r.errors)
		}
	}
	c, r, k := results["creds"], results["roles"], results["kv"]
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, tg := range targets {
		res := results[tg.name]
		b.ReportMetric(res.perSecond(), tg.name+"-req/s")
		b.ReportMetric(us(res.percentile(50)), tg.name+"-p50-us")
		b.ReportMetric(us(res.percentile(99)), tg.name+"-p99-us")
	}
	b.ReportMetric(c.perSecond()/k.perSecond(), "creds/kv-req/s")
	b.ReportMetric(c.perSecond()/r.perSecond(), "creds/roles-req/s")

	b.Logf("%d workers, closed loop, 2 rounds of %v per path (order kv roles creds creds roles kv), root token, Vault at %s",
		benchLoadWorkers, benchLoadRound, v.Addr)
	b.Logf("%-6s %9s %9s %10s %10s %10s   body", "path", "requests", "req/s", "p50", "p99", "max")
	for _, tg := range targets {
		res := results[tg.name]
		b.Logf("%-6s %9d %9.0f %10v %10v %10v   %d B", tg.name, res.requests, res.perSecond(),
			res.percentile(50).Round(time.Microsecond), res.percentile(99).Round(time.Microsecond),
			res.percentile(100).Round(time.Microsecond), bodies[tg.name])
	}
	for _, ref := range []*benchLoadResult{k, r} {
		name := "kv"
		if ref == r {
			name = "roles"
		}
		b.Logf("ratio creds/%s: throughput x%.3f, p50 x%.3f, p99 x%.3f", name,
			c.perSecond()/ref.perSecond(),
			float64(c.percentile(50))/float64(ref.percentile(50)),
			float64(c.percentile(99))/float64(ref.percentile(99)))
	}
}

const (
	// benchRebuildRoles is the number of roles the real-Vault rebuild runs over.
	benchRebuildRoles = 10_000
	// benchRebuildTimeout bounds creating the roles, and separately waiting for the rebuild.
	benchRebuildTimeout = 5 * time.Minute
)

// benchQueueLoaded matches the plugin's log line at the end of loadQueue, and
// benchLogField one key=value of it (Vault re-orders a plugin's fields).
var (
	benchQueueLoaded = regexp.MustCompile(`rotation queue loaded:[^\n]*`)
	benchLogField    = regexp.MustCompile(`\b(duration|roles|scheduled)=(\S+)`)
)

// BenchmarkVaultQueueRebuild creates 10,000 scheduled roles in a real Vault, reloads the
// plugin (as a restart or a leadership change does) and reads how long the rebuild of the
// rotation queue took from the plugin's own log line ("rotation queue loaded ...
// duration=..."), and how long from the reload request until that line. It runs once
// whatever b.N is (use -benchtime 1x).
func BenchmarkVaultQueueRebuild(b *testing.B) {
	f := newFixture(b)
	emu, v, emuURL, mgmt := f.emu, f.v, f.emuURL, f.mgmt
	for i := 0; i < benchRebuildRoles; i++ {
		emu.AddClient(emulator.Client{ClientID: fmt.Sprintf("rebuild-app-%05d", i), Grants: map[string][]string{apiAudience: {}}})
	}

	// rate_limit=1000: each role creation checks its client_id at Auth0 (the emulator).
	v.MustCLI(b, v.RootToken, "write", mount+"/config",
		"domain="+emuURL, "client_id="+mgmt.ClientID, "client_secret="+mgmt.ClientSecret, "rate_limit=1000")

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: benchLoadWorkers * 2, MaxIdleConnsPerHost: benchLoadWorkers * 2,
	}}
	defer client.CloseIdleConnections()
	createStart := time.Now()
	deadline := createStart.Add(benchRebuildTimeout)
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < benchLoadWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := int(next.Add(1)) - 1
				if i >= benchRebuildRoles {
					return
				}
				body := fmt.Sprintf(`{"client_id":"rebuild-app-%05d","rotation_period":"720h"}`, i)
				req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/%s/roles/rebuild-%05d", v.Addr, mount, i), strings.NewReader(body))
				req.Header.Set("X-Vault-Token", v.RootToken)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("PUT roles/rebuild-%05d: %s", i, resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	created := min(int(next.Load()), benchRebuildRoles) - int(failed.Load())
	if created != benchRebuildRoles {
		b.Fatalf("created %d of %d roles in %v (first error: %v)", created, benchRebuildRoles, time.Since(createStart), firstErr.Load())
	}
	createTime := time.Since(createStart)

	seen := len(v.Logs()) // only lines written after the reload count
	b.ResetTimer()
	reloadStart := time.Now()
	r := v.Do(b, v.RootToken, http.MethodPut, "sys/plugins/reload/backend", map[string]any{"mounts": []string{mount + "/"}})
	if r.Status/100 != 2 {
		b.Fatalf("reloading the plugin: %d %v", r.Status, r.Errors)
	}
	var line string
	waitUntil := time.Now().Add(benchRebuildTimeout)
	for time.Now().Before(waitUntil) {
		if logs := v.Logs(); len(logs) > seen {
			if line = benchQueueLoaded.FindString(logs[seen:]); line != "" {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	sinceReload := time.Since(reloadStart)
	b.StopTimer()
	if line == "" {
		b.Fatalf("no new %q line in the Vault log within %v of the reload", "rotation queue loaded", benchRebuildTimeout)
	}
	fields := map[string]string{}
	for _, f := range benchLogField.FindAllStringSubmatch(line, -1) {
		fields[f[1]] = f[2]
	}
	d, err := time.ParseDuration(fields["duration"])
	if err != nil {
		b.Fatalf("log line %q: %v", line, err)
	}
	if want := fmt.Sprint(benchRebuildRoles); fields["roles"] != want || fields["scheduled"] != want {
		b.Errorf("the rebuild saw roles=%s scheduled=%s, want %s", fields["roles"], fields["scheduled"], want)
	}
	b.ReportMetric(d.Seconds()*1e3, "ms-loadQueue")
	b.ReportMetric(float64(d.Microseconds())/benchRebuildRoles, "us/role")
	b.ReportMetric(sinceReload.Seconds()*1e3, "ms-reload-to-loaded")
	b.Logf("%d roles created in %v; after a plugin reload loadQueue took %v (%.1f us/role), %v from the reload request until its log line",
		benchRebuildRoles, createTime.Round(time.Millisecond), d, float64(d.Microseconds())/benchRebuildRoles, sinceReload.Round(time.Millisecond))
}
