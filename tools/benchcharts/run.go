package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Run is one make bench run, as scripts/bench.sh wrote it: the header it prints before the
// benchmarks, and every value of every benchmark line.
type Run struct {
	// From the header; empty when absent.
	Date      string // "2026-12-07T04:59:38Z"
	Commit    string // "110cd28", or "110cd28 + uncommitted changes"
	Machine   string
	Go        string
	Vault     string
	Load      string // the 1, 5 and 15 minute load averages before the run
	LoadAfter string // and after it

	// values[name][unit] are the samples of one metric of one benchmark, in the order of
	// the file; name is without the -GOMAXPROCS suffix ("BenchmarkCredsRead/creds").
	values map[string]map[string][]float64
}

// procsSuffix is the -GOMAXPROCS suffix go test appends to a benchmark's name.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// Parse reads the output of scripts/bench.sh. A benchmark line starts with the benchmark's
// name, then "<iterations>" and value-unit pairs, as go test prints it; when something else
// was printed between a benchmark's name and its results (a stray log line), the results
// follow on a later line of their own, and are put back with the name. Indented lines
// (logs, the summary) are never benchmark lines.
func Parse(r io.Reader) (*Run, error) {
	run := &Run{values: map[string]map[string][]float64{}}
	header := []struct {
		prefix string
		field  *string
	}{
		{"load after the run:", &run.LoadAfter}, // before "load:"
		{"date:", &run.Date}, {"commit:", &run.Commit}, {"machine:", &run.Machine},
		{"go:", &run.Go}, {"vault:", &run.Vault}, {"load:", &run.Load},
	}
	pending := "" // a benchmark name whose results are still to come
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.HasPrefix(line, "Benchmark") {
			name := procsSuffix.ReplaceAllString(fields[0], "")
			if !isResults(fields[1:]) {
				pending = name // the results come on a later line
				continue
			}
			pending = ""
			if err := run.add(name, fields[1:]); err != nil {
				return nil, fmt.Errorf("line %d: %v", lineNo, err)
			}
			continue
		}
		if pending != "" && isResults(fields) {
			if err := run.add(pending, fields); err != nil {
				return nil, fmt.Errorf("line %d: %v", lineNo, err)
			}
			pending = ""
			continue
		}
		for _, h := range header {
			if *h.field == "" && strings.HasPrefix(line, h.prefix) {
				*h.field = strings.TrimSpace(strings.TrimPrefix(line, h.prefix))
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// "0.42 0.30 0.25 (1/5/15 min load average before the run)": the numbers.
	run.Load, _, _ = strings.Cut(run.Load, " (")
	return run, nil
}

// isResults tells whether fields are the results part of a benchmark line: an iteration
// count, then value-unit pairs.
func isResults(fields []string) bool {
	if len(fields) < 3 || len(fields)%2 == 0 {
		return false
	}
	if _, err := strconv.ParseInt(fields[0], 10, 64); err != nil {
		return false
	}
	_, err := strconv.ParseFloat(fields[1], 64)
	return err == nil
}

// add records the results of one benchmark line: fields are the iteration count and the
// value-unit pairs.
func (run *Run) add(name string, fields []string) error {
	if !isResults(fields) {
		return fmt.Errorf("benchmark %s: results %q are not an iteration count and value-unit pairs", name, strings.Join(fields, " "))
	}
	units := run.values[name]
	if units == nil {
		units = map[string][]float64{}
		run.values[name] = units
	}
	for i := 1; i+1 < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return fmt.Errorf("benchmark %s: value %q: %v", name, fields[i], err)
		}
		units[fields[i+1]] = append(units[fields[i+1]], v)
	}
	return nil
}

// Median is the median of the samples of name's unit, and whether there were any.
func (run *Run) Median(name, unit string) (float64, bool) {
	s := slices.Clone(run.values[name][unit])
	if len(s) == 0 {
		return 0, false
	}
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// Samples are the samples of name's unit, in the order of the file.
func (run *Run) Samples(name, unit string) []float64 { return run.values[name][unit] }

// Names are the benchmarks with the given prefix, sorted.
func (run *Run) Names(prefix string) []string {
	var names []string
	for n := range run.values {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Stamp names the run in charts' titles: when it started (UTC), at which commit, and the
// load average before it.
func (run *Run) Stamp() string {
	when := run.Date
	if t, err := time.Parse(time.RFC3339, run.Date); err == nil {
		when = t.UTC().Format("2006-01-02 15:04 UTC")
	}
	if when == "" {
		when = "unknown date"
	}
	commit := run.Commit
	if commit == "" {
		commit = "unknown"
	}
	s := "make bench " + when + ", commit " + commit
	if f := strings.Fields(run.Load); len(f) > 0 {
		s += ", load " + f[0] + " before"
	}
	return s
}
