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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vault-plugin-auth0/vault-plugin-auth0/emulator"
	"github.com/vault-plugin-auth0/vault-plugin-auth0/internal/vaulttest"
)

const (
	// benchLoadWorkers is the number of concurrent clients, each sending its next request as soon
	// as the previous one is answered (a closed loop).
	benchLoadWorkers = 16
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

// BenchmarkVaultReadLoad measures reads of auth0/creds/<role> from a real Vault against the
// references that bound it, all on one server, under the same closed-loop load, in one
// run, paths interleaved (ABC…CBA) so that drift hits all alike:
//
//   - noop: a plugin that answers a constant creds-shaped map without touching storage
//     (internal/noopplugin): the ceiling of any external plugin;
//   - kvext: HashiCorp's KV v2 built as an external plugin (vault-plugin-secrets-kv
//     v0.25.0, tools/kv), holding the same fields;
//   - kv: Vault's built-in KV v2 (secret/ in dev mode), the same fields;
//   - roles: auth0/roles/<role>, the same plugin reading one storage entry per request;
//   - creds100: creds of a role retaining 100 versions;
//   - token: auth0/token/<role>, an access token answered from the token cache (a hit:
//     the first read, in the warm-up, asks the emulator once).
//
// Each path reports its throughput and its latency percentiles (p50, p90, p99, p99.9) and
// maximum. It runs the load once whatever b.N is (use -benchtime 1x): about 80 s, plus
// setting up.
func BenchmarkVaultReadLoad(b *testing.B) {
	root, err := vaulttest.FindRepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	// One plugin directory holding the engine, the no-op plugin and the external KV.
	dir := b.TempDir()
	if _, err := vaulttest.BuildPluginInto(dir, pluginVersion); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-C", root, "-o", filepath.Join(dir, "noop-plugin"), "./internal/noopplugin").CombinedOutput(); err != nil {
		b.Fatalf("building the no-op plugin: %v\n%s", err, out)
	}
	kvBin := filepath.Join(root, "bin", "bench-plugins", "vault-plugin-secrets-kv")
	if err := copyFile(kvBin, filepath.Join(dir, "kv-external")); err != nil {
		b.Fatalf("the external KV plugin (make bench-plugins builds it): %v", err)
	}
	emu, emuURL, mgmt := startEmulator(b)
	v := vaulttest.StartDevServer(b, dir)
	sha, err := vaulttest.FileSHA256(filepath.Join(dir, vaulttest.PluginName))
	if err != nil {
		b.Fatal(err)
	}
	v.RegisterPlugin(b, dir, sha, pluginVersion)
	v.Mount(b, mount, pluginVersion)
	// tools/kv serves KV in its version 2 mode by itself: Vault 1.13 takes the version=2
	// mount option only for the built-in kv type.
	for _, p := range []struct{ name, mountPath string }{{"noop-plugin", "noop"}, {"kv-external", "kvext"}} {
		sum, err := vaulttest.FileSHA256(filepath.Join(dir, p.name))
		if err != nil {
			b.Fatal(err)
		}
		v.MustCLI(b, v.RootToken, "plugin", "register", "-sha256="+sum, "-command="+p.name, "secret", p.name)
		v.MustCLI(b, v.RootToken, "secrets", "enable", "-path="+p.mountPath, p.name)
	}

	emu.AddClient(emulator.Client{ClientID: benchAppClientID, Name: "Bench App", Grants: map[string][]string{apiAudience: {}}})
	emu.AddClient(emulator.Client{ClientID: benchAppClientID + "-100", Name: "Bench App 100", Grants: map[string][]string{apiAudience: {}}})
	v.MustCLI(b, v.RootToken, "write", mount+"/config",
		"domain="+emuURL, "client_id="+mgmt.ClientID, "client_secret="+mgmt.ClientSecret, "rate_limit=1000")
	v.MustCLI(b, v.RootToken, "write", mount+"/roles/"+benchRoleName, "client_id="+benchAppClientID, "rotation_period=720h", "token_audiences="+apiAudience)
	v.MustCLI(b, v.RootToken, "write", "-f", mount+"/rotate/"+benchRoleName)
	v.MustCLI(b, v.RootToken, "write", "-f", mount+"/rotate/"+benchRoleName) // previous_client_secret too
	v.MustCLI(b, v.RootToken, "write", mount+"/roles/"+benchRoleName+"100", "client_id="+benchAppClientID+"-100", "rotation_period=720h", "max_versions=100")
	for i := 0; i < 100; i++ {
		if r := v.Do(b, v.RootToken, http.MethodPut, mount+"/rotate/"+benchRoleName+"100", nil); r.Status/100 != 2 {
			b.Fatalf("rotation %d of %s100: %d %v", i, benchRoleName, r.Status, r.Errors)
		}
	}

	credsPath := mount + "/creds/" + benchRoleName
	status, creds, errs := v.Request(b, v.RootToken, http.MethodGet, credsPath, nil)
	if status != http.StatusOK || creds["client_secret"] == nil {
		b.Fatalf("GET %s: %d %v %v", credsPath, status, creds, errs)
	}
	// The KV references hold the same fields.
	for _, p := range []string{benchKVPath, "kvext/data/bench-creds"} {
		if status, _, errs := v.Request(b, v.RootToken, http.MethodPut, p, map[string]any{"data": creds}); status != http.StatusOK {
			b.Fatalf("PUT %s: %d %v", p, status, errs)
		}
	}

	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        benchLoadWorkers * 2,
			MaxIdleConnsPerHost: benchLoadWorkers * 2,
		},
	}
	defer client.CloseIdleConnections()

	targets := []struct{ name, path string }{
		{"noop", "noop/creds/" + benchRoleName},
		{"kvext", "kvext/data/bench-creds"},
		{"kv", benchKVPath},
		{"roles", mount + "/roles/" + benchRoleName},
		{"creds", credsPath},
		{"creds100", mount + "/creds/" + benchRoleName + "100"},
		{"token", mount + "/token/" + benchRoleName},
	}
	results := map[string]*benchLoadResult{}
	bodies := map[string]int{}
	for _, tg := range targets {
		results[tg.name] = &benchLoadResult{}
		bodies[tg.name] = len(v.Do(b, v.RootToken, http.MethodGet, tg.path, nil).Raw)
		benchRunLoad(client, v.Addr, v.RootToken, tg.path, benchLoadWarmup)
	}
	order := append(slices.Clone(targets), targets...)
	slices.Reverse(order[len(targets):])
	var names []string
	for _, tg := range order {
		names = append(names, tg.name)
	}
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
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, tg := range targets {
		res := results[tg.name]
		b.ReportMetric(res.perSecond(), tg.name+"-req/s")
		b.ReportMetric(us(res.percentile(50)), tg.name+"-p50-us")
		b.ReportMetric(us(res.percentile(90)), tg.name+"-p90-us")
		b.ReportMetric(us(res.percentile(99)), tg.name+"-p99-us")
		b.ReportMetric(us(res.percentile(99.9)), tg.name+"-p999-us")
		b.ReportMetric(us(res.percentile(100)), tg.name+"-max-us")
	}
	c := results["creds"]
	b.ReportMetric(c.perSecond()/results["noop"].perSecond(), "creds/noop-req/s")
	b.ReportMetric(results["creds100"].perSecond()/c.perSecond(), "creds100/creds-req/s")
	b.ReportMetric(results["token"].perSecond()/results["noop"].perSecond(), "token/noop-req/s")

	b.Logf("%d workers, closed loop, 2 rounds of %v per path (order %s), root token, Vault at %s",
		benchLoadWorkers, benchLoadRound, strings.Join(names, " "), v.Addr)
	b.Logf("%-9s %9s %9s %10s %10s %10s %10s %10s   body", "path", "requests", "req/s", "p50", "p90", "p99", "p99.9", "max")
	for _, tg := range targets {
		res := results[tg.name]
		b.Logf("%-9s %9d %9.0f %10v %10v %10v %10v %10v   %d B", tg.name, res.requests, res.perSecond(),
			res.percentile(50).Round(time.Microsecond), res.percentile(90).Round(time.Microsecond),
			res.percentile(99).Round(time.Microsecond), res.percentile(99.9).Round(time.Microsecond),
			res.percentile(100).Round(time.Microsecond), bodies[tg.name])
	}
	for _, pair := range [][2]string{{"creds", "noop"}, {"creds", "kvext"}, {"creds", "kv"}, {"creds", "roles"}, {"creds100", "creds"}, {"token", "noop"}, {"token", "creds"}} {
		x, ref := results[pair[0]], results[pair[1]]
		b.Logf("ratio %s/%s: throughput x%.3f, p50 x%.3f, p99 x%.3f", pair[0], pair[1],
			x.perSecond()/ref.perSecond(),
			float64(x.percentile(50))/float64(ref.percentile(50)),
			float64(x.percentile(99))/float64(ref.percentile(99)))
	}
}

// copyFile copies an executable.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o755)
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
	benchQueueLoaded   = regexp.MustCompile(`rotation queue loaded:[^\n]*`)
	benchQueueVerified = regexp.MustCompile(`rotation queue verified against every role:[^\n]*`)
	benchLogField      = regexp.MustCompile(`\b(duration|roles|queued)=(\S+)`)
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
	// Queued beside the roles: the mount's drift sweep (drift_check_period, on by default);
	// no root rotation (no root_rotation_period).
	if fields["roles"] != fmt.Sprint(benchRebuildRoles) || fields["queued"] != fmt.Sprint(benchRebuildRoles+1) {
		b.Errorf("the rebuild saw roles=%s queued=%s, want %d roles and %d queued (the drift sweep too)", fields["roles"], fields["queued"], benchRebuildRoles, benchRebuildRoles+1)
	}
	// The pass that reads every role to correct the index-built queue, in the background.
	var verified string
	for time.Now().Before(waitUntil) {
		if verified = benchQueueVerified.FindString(v.Logs()[seen:]); verified != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var vd time.Duration
	for _, f := range benchLogField.FindAllStringSubmatch(verified, -1) {
		if f[1] == "duration" {
			vd, _ = time.ParseDuration(f[2])
		}
	}
	if vd == 0 {
		b.Fatalf("no %q line with a duration within %v of the reload", "rotation queue verified", benchRebuildTimeout)
	}
	b.ReportMetric(benchRebuildRoles, "roles")
	b.ReportMetric(d.Seconds()*1e3, "ms-loadQueue")
	b.ReportMetric(float64(d.Microseconds())/benchRebuildRoles, "us/role")
	b.ReportMetric(sinceReload.Seconds()*1e3, "ms-reload-to-loaded")
	b.ReportMetric(vd.Seconds()*1e3, "ms-verifyQueue")
	b.ReportMetric(float64(vd.Microseconds())/benchRebuildRoles, "us/role-verify")
	b.Logf("%d roles created in %v; after a plugin reload the queue was loaded from the due index in %v (%.1f us/role), %v from the reload request until its log line; the background pass that reads every role took %v (%.1f us/role)",
		benchRebuildRoles, createTime.Round(time.Millisecond), d, float64(d.Microseconds())/benchRebuildRoles, sinceReload.Round(time.Millisecond), vd, float64(vd.Microseconds())/benchRebuildRoles)
}
