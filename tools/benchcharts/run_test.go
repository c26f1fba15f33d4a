package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseString(t *testing.T, s string) *Run {
	t.Helper()
	run, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func parseSample(t *testing.T) *Run {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "bench-sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// near tells whether got is want, to rounding.
func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want)) }

func TestParseHeaderAndMedians(t *testing.T) {
	run := parseString(t, `# vault-plugin-auth0 benchmarks
date:    2026-12-07T12:00:00Z
commit:  abc1234 + uncommitted changes
load:    0.42 0.30 0.25 (1/5/15 min load average before the run)
BenchmarkCredsRead/creds-2   	  171674	      6916 ns/op	         0 reads/op	    3073 B/op	      36 allocs/op
BenchmarkCredsRead/creds-2   	  180021	      6867 ns/op	         0 reads/op	    3077 B/op	      36 allocs/op
BenchmarkCredsRead/creds-2   	  180021	      7001 ns/op	         0 reads/op	    3077 B/op	      36 allocs/op
BenchmarkCredsRead/creds-100-versions-2   	  239124	      5978 ns/op
BenchmarkCredsRead/creds-100-versions-2   	  239124	      6000 ns/op
load after the run: 4.35 2.74 2.02
`)
	if run.Date != "2026-12-07T12:00:00Z" || run.Commit != "abc1234 + uncommitted changes" || run.Load != "0.42 0.30 0.25" || run.LoadAfter != "4.35 2.74 2.02" {
		t.Errorf("header: date %q commit %q load %q after %q", run.Date, run.Commit, run.Load, run.LoadAfter)
	}
	if got, want := run.Stamp(), "make bench 2026-12-07 12:00 UTC, commit abc1234 + uncommitted changes, load 0.42 before"; got != want {
		t.Errorf("Stamp() = %q, want %q", got, want)
	}
	// The -GOMAXPROCS suffix goes, a name's own dashes stay; odd counts take the middle
	// sample, even ones the mean of the two middle ones.
	if v, ok := run.Median("BenchmarkCredsRead/creds", "ns/op"); !ok || v != 6916 {
		t.Errorf("median creds ns/op = %v %v, want 6916", v, ok)
	}
	if v, ok := run.Median("BenchmarkCredsRead/creds-100-versions", "ns/op"); !ok || v != 5989 {
		t.Errorf("median creds-100-versions ns/op = %v %v, want 5989", v, ok)
	}
	if got := run.Samples("BenchmarkCredsRead/creds", "B/op"); len(got) != 3 || got[0] != 3073 {
		t.Errorf("B/op samples = %v", got)
	}
	if _, ok := run.Median("BenchmarkCredsRead/creds", "no-such-unit"); ok {
		t.Error("a unit never reported has a median")
	}
}

// A line printed between a benchmark's name and its results splits them; indented lines
// (logs, the summary) are never benchmark lines, even when they start with "Benchmark".
func TestParseSplitAndIndentedLines(t *testing.T) {
	run := parseString(t, "BenchmarkDueBurst-2   \t2026-12-07T12:03:00.000Z [WARN]  a stray line\n"+
		"another stray line\n"+
		"       1\t99978459902 ns/op\t         0 429s\t      6.702 creds-idle-p50-us\n"+
		"--- BENCH: BenchmarkDueBurst-2\n"+
		"    BenchmarkNotOne 1 2 ns/op\n"+
		"   1000 roles, 3 units\n")
	if v, ok := run.Median("BenchmarkDueBurst", "creds-idle-p50-us"); !ok || v != 6.702 {
		t.Errorf("split line: creds-idle-p50-us = %v %v, want 6.702", v, ok)
	}
	if v, _ := run.Median("BenchmarkDueBurst", "429s"); v != 0 || len(run.Samples("BenchmarkDueBurst", "429s")) != 1 {
		t.Errorf("split line: 429s samples %v", run.Samples("BenchmarkDueBurst", "429s"))
	}
	if names := run.Names("Benchmark"); len(names) != 1 {
		t.Errorf("benchmarks parsed: %v, want only BenchmarkDueBurst", names)
	}
}

func TestParseRejectsBadValue(t *testing.T) {
	if _, err := Parse(strings.NewReader("BenchmarkX-2 \t 5\t 12 ns/op\t 1e999x B/op\n")); err == nil {
		t.Error("a benchmark line with a value that is not a number parsed")
	}
}

func TestSeries(t *testing.T) {
	run := parseSample(t)

	paths := run.ReadLoad()
	var keys []string
	for _, p := range paths {
		keys = append(keys, p.Key)
	}
	// Drawn in readLoadPaths' order, only those the run measured.
	if got := strings.Join(keys, " "); got != "noop kv creds token" {
		t.Fatalf("read load paths %q", got)
	}
	tok := paths[3]
	if tok.ReqPerSec != 2450 || !near(tok.VsNoop, 2450.0/2412) || tok.P50 != 6 || tok.P90 != 12.5 || tok.P99 != 15 || tok.P999 != 18.5 || tok.Max != 24 {
		t.Errorf("token/ path: %+v", tok)
	}

	reb := run.Rebuild()
	if len(reb) != 3 || reb[0].Roles != 1000 || reb[1].Roles != 10000 || reb[2].Roles != 100000 {
		t.Fatalf("rebuild points not by size: %+v", reb)
	}
	// 1000 roles: median of 1.2, 1.0, 1.1 ms; 100000: mean of the two samples.
	if !near(reb[0].LoadQueue, 1.1) || !near(reb[0].Verify, 13) || !near(reb[0].Storage, 16) {
		t.Errorf("rebuild at 1000 roles: %+v", reb[0])
	}
	if !near(reb[2].LoadQueue, (152789338+96727167)/2e6) || !near(reb[2].Storage, 1630.813695) {
		t.Errorf("rebuild at 100000 roles: %+v", reb[2])
	}
	if v, ok := run.VaultRebuild(); !ok || v.Roles != 10000 || v.LoadQueue != 64.01 || v.Verify != 1380 {
		t.Errorf("real Vault rebuild: %+v %v", v, ok)
	}

	if tr := run.TokenRequests(); !tr.OK || tr.Direct != 10000 || tr.ViaVault != 1 || tr.Reads != 10000 || tr.Readers != 50 {
		t.Errorf("token requests: %+v", tr)
	}

	bu := run.Burst()
	if !bu.OK || bu.Idle.P50 != 6.702 || bu.Idle.P99 != 55.30 || bu.During.P50 != 8.246 || bu.During.P999 != 146.4 || bu.During.Reads != 351435 || bu.Seconds != 99.98 || bu.ReadErrors != 0 {
		t.Errorf("burst: %+v", bu)
	}

	m := run.MetricCost()
	if !m.OK || m.AtomicAdd != 6 || m.Counter != 8 || m.CounterLabels != 45 || m.Read != 6700 || m.ReadLabels != 6900 {
		t.Errorf("metric cost: %+v", m)
	}
}

// What a run did not measure is missing from its series, not zero.
func TestSeriesMissing(t *testing.T) {
	run := parseString(t, "BenchmarkVaultReadLoad-2 \t 1\t 70 ns/op\t 2000 creds-req/s\t 6000 creds-p50-us\n")
	paths := run.ReadLoad()
	if len(paths) != 1 || paths[0].Key != "creds" || !math.IsNaN(paths[0].VsNoop) || !math.IsNaN(paths[0].P90) || paths[0].P50 != 6 {
		t.Errorf("read load without noop or p90: %+v", paths)
	}
	if run.Burst().OK || run.MetricCost().OK || run.TokenRequests().OK || len(run.Rebuild()) != 0 {
		t.Error("series the run did not measure are reported as measured")
	}
	if _, ok := run.VaultRebuild(); ok {
		t.Error("the real-Vault rebuild is reported without a measurement")
	}
}

// Every chart is written, titled with the run's date and commit; one the run did not
// measure says so.
func TestWriteCharts(t *testing.T) {
	run := parseSample(t)
	dir := t.TempDir()
	files, err := writeCharts(run, dir, "svg")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(charts) {
		t.Fatalf("wrote %d charts, want %d", len(files), len(charts))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("2026-12-07 12:00 UTC, commit abc1234")) {
			t.Errorf("%s: no run stamp in the title", f)
		}
		if bytes.Contains(data, []byte("not measured in this run")) {
			t.Errorf("%s: drawn as not measured", f)
		}
		if bytes.Contains(data, []byte("font-family:Liberation Sans;")) {
			t.Errorf("%s: a font without fallbacks", f)
		}
	}

	partial := parseString(t, "date: 2026-12-07T12:00:00Z\ncommit: abc1234\nBenchmarkCredsMetric/creds-read-2 \t 1\t 6700 ns/op\n")
	if _, err := writeCharts(partial, dir, "svg"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, chartBurst))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("not measured in this run")) {
		t.Errorf("%s of a run without the burst does not say it was not measured", chartBurst)
	}
}

func TestTables(t *testing.T) {
	var buf bytes.Buffer
	writeTables(&buf, parseSample(t), "bench-results/bench-x.txt", "docs/bench")
	out := buf.String()
	for _, want := range []string{
		"| auth0 token/ (hit) | 2450 | x1.02 | 6.00 ms | 12.5 ms | 15.0 ms | 18.5 ms | 24.0 ms |",
		"| 1000 | 1.10 ms | 1.10 µs | 13.0 ms | 13.0 µs | 16.0 ms |",
		"| burst / idle | | x1.23 |",
		"| 10000 | 50 | 10000 | 1 | x0.0001 |",
		"| the creds counter (default) | 8.00 | x0.00119 |",
		"![Reads per second](docs/bench/throughput.svg)",
		"`bench-results/bench-x.txt`",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tables lack %q:\n%s", want, out)
		}
	}
}
