package main

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// The series the charts draw, taken from a Run. A value that the run did not measure is
// NaN; a series the run did not measure at all is nil or has OK false.

// LoadPath is one path of BenchmarkVaultReadLoad: its throughput and latency percentiles,
// in milliseconds.
type LoadPath struct {
	Key, Label               string
	ReqPerSec                float64
	P50, P90, P99, P999, Max float64 // ms
	VsNoop                   float64 // throughput / the no-op plugin's, same run
}

// readLoadPaths are BenchmarkVaultReadLoad's paths, in the order they are drawn, and
// their labels.
var readLoadPaths = []struct{ key, label string }{
	{"noop", "no-op plugin"},
	{"kvext", "KV v2 external"},
	{"kv", "KV v2 built-in"},
	{"roles", "auth0 roles/"},
	{"creds", "auth0 creds/"},
	{"creds100", "creds/, 100 versions"},
	{"token", "auth0 token/ (hit)"},
}

const readLoad = "BenchmarkVaultReadLoad"

// ReadLoad is what BenchmarkVaultReadLoad measured, path by path; paths it did not measure
// are left out.
func (run *Run) ReadLoad() []LoadPath {
	ms := func(key, p string) float64 {
		if v, ok := run.Median(readLoad, key+"-"+p+"-us"); ok {
			return v / 1e3
		}
		return math.NaN()
	}
	noop, _ := run.Median(readLoad, "noop-req/s")
	var out []LoadPath
	for _, p := range readLoadPaths {
		rps, ok := run.Median(readLoad, p.key+"-req/s")
		if !ok {
			continue
		}
		lp := LoadPath{Key: p.key, Label: p.label, ReqPerSec: rps, VsNoop: math.NaN(),
			P50: ms(p.key, "p50"), P90: ms(p.key, "p90"), P99: ms(p.key, "p99"), P999: ms(p.key, "p999"), Max: ms(p.key, "max")}
		if noop > 0 {
			lp.VsNoop = rps / noop
		}
		out = append(out, lp)
	}
	return out
}

// RebuildPoint is the queue rebuild over one mount size, in milliseconds (medians).
type RebuildPoint struct {
	Roles int
	// LoadQueue: the queue from the due index (the scheduler dispatches from then on);
	// Verify: that plus the pass reading every role; Storage: listing, reading and
	// decoding every role alone.
	LoadQueue, Verify, Storage float64
}

// Rebuild is BenchmarkQueueRebuild (in memory) by mount size, smallest first.
func (run *Run) Rebuild() []RebuildPoint {
	const prefix = "BenchmarkQueueRebuild/roles="
	sizes := map[int]bool{}
	for _, name := range run.Names(prefix) {
		n, _, _ := strings.Cut(strings.TrimPrefix(name, prefix), "/")
		if roles, err := strconv.Atoi(n); err == nil {
			sizes[roles] = true
		}
	}
	var out []RebuildPoint
	for roles := range sizes {
		at := func(sub string) float64 {
			if v, ok := run.Median(prefix+strconv.Itoa(roles)+"/"+sub, "ns/op"); ok {
				return v / 1e6
			}
			return math.NaN()
		}
		out = append(out, RebuildPoint{Roles: roles, LoadQueue: at("loadQueue"), Verify: at("loadQueue+verifyQueue"), Storage: at("storage-list-get-decode")})
	}
	slices.SortFunc(out, func(a, b RebuildPoint) int { return a.Roles - b.Roles })
	return out
}

// VaultRebuild is BenchmarkVaultQueueRebuild: the same rebuild in a real Vault after a
// plugin reload, in milliseconds; ok false when the run did not measure it (or did not say
// over how many roles).
func (run *Run) VaultRebuild() (p RebuildPoint, ok bool) {
	const name = "BenchmarkVaultQueueRebuild"
	roles, ok1 := run.Median(name, "roles")
	lq, ok2 := run.Median(name, "ms-loadQueue")
	vq, ok3 := run.Median(name, "ms-verifyQueue")
	if !ok1 || !ok2 {
		return RebuildPoint{}, false
	}
	if !ok3 {
		vq = math.NaN()
	}
	return RebuildPoint{Roles: int(roles), LoadQueue: lq, Verify: vq, Storage: math.NaN()}, true
}

// TokenRequests is BenchmarkVaultTokenLoad's count of Auth0 /oauth/token requests for the
// same reads of an access token, with and without token/.
type TokenRequests struct {
	Reads, Readers, Direct, ViaVault float64
	OK                               bool
}

func (run *Run) TokenRequests() TokenRequests {
	const name = "BenchmarkVaultTokenLoad"
	d, ok1 := run.Median(name, "auth0-token-requests-direct")
	v, ok2 := run.Median(name, "auth0-token-requests-via-vault")
	nan := func(v float64, ok bool) float64 {
		if !ok {
			return math.NaN()
		}
		return v
	}
	return TokenRequests{Reads: nan(run.Median(name, "reads")), Readers: nan(run.Median(name, "readers")), Direct: d, ViaVault: v, OK: ok1 && ok2}
}

// Latencies are read latency percentiles, in microseconds.
type Latencies struct {
	Reads                    float64
	P50, P90, P99, P999, Max float64
}

// Burst is BenchmarkDueBurst: creds reads at idle and while the burst rotates, and the
// burst itself.
type Burst struct {
	Idle, During                      Latencies
	Seconds, Requests, Rate429, Roles float64
	ReadErrors                        float64
	OK                                bool // the reads were measured
}

func (run *Run) Burst() Burst {
	const name = "BenchmarkDueBurst"
	get := func(unit string) (float64, bool) { return run.Median(name, unit) }
	val := func(unit string) float64 {
		if v, ok := get(unit); ok {
			return v
		}
		return math.NaN()
	}
	lat := func(phase string) Latencies {
		p := "creds-" + phase + "-"
		return Latencies{Reads: val(p + "reads"), P50: val(p + "p50-us"), P90: val(p + "p90-us"), P99: val(p + "p99-us"), P999: val(p + "p999-us"), Max: val(p + "max-us")}
	}
	_, ok1 := get("creds-idle-p50-us")
	_, ok2 := get("creds-burst-p50-us")
	return Burst{Idle: lat("idle"), During: lat("burst"), Seconds: val("s-total"), Requests: val("api-requests"),
		Rate429: val("429s"), Roles: val("roles-rotated"), ReadErrors: val("creds-read-errors"), OK: ok1 && ok2}
}

// MetricCost is BenchmarkCredsMetric, in nanoseconds per operation (all in parallel on
// every CPU).
type MetricCost struct {
	AtomicAdd, Counter, CounterLabels, Read, ReadLabels float64
	OK                                                  bool // the counter and the read were measured
}

func (run *Run) MetricCost() MetricCost {
	ns := func(sub string) float64 {
		if v, ok := run.Median("BenchmarkCredsMetric/"+sub, "ns/op"); ok {
			return v
		}
		return math.NaN()
	}
	m := MetricCost{AtomicAdd: ns("atomic-add"), Counter: ns("creds-metric"), CounterLabels: ns("creds-metric-role-labels"),
		Read: ns("creds-read"), ReadLabels: ns("creds-read-role-labels")}
	m.OK = !math.IsNaN(m.Counter) && !math.IsNaN(m.Read)
	return m
}
