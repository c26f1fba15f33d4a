// Command benchcharts draws the charts of one make bench run: it reads the raw output that
// scripts/bench.sh saved (bench-results/bench-<time>.txt: go test -bench lines with custom
// metrics), writes one SVG per chart into a directory (docs/bench/ by default), each
// titled with the run's date and commit, and prints the same run's tables in Markdown, as
// BENCHMARKS.md shows them beside the charts. A chart whose benchmark the run did not
// include is drawn saying so, so that no file keeps a chart of an older run.
//
//	go run . -o ../../docs/bench ../../bench-results/bench-20261207T045938Z.txt
//
// It lives in its own module (tools/benchcharts) so that gonum/plot never enters the
// plugin's go.mod.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("o", "docs/bench", "directory the SVG charts are written to")
	format := flag.String("format", "svg", "svg, or png for a preview")
	links := flag.String("links", "docs/bench", "the charts' directory as the Markdown tables link to it (relative to BENCHMARKS.md)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: benchcharts [-o dir] [-format svg|png] [-links dir] bench-results/bench-<time>.txt\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if *format != "svg" && *format != "png" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out, *format, *links); err != nil {
		fmt.Fprintln(os.Stderr, "benchcharts:", err)
		os.Exit(1)
	}
}

func run(input, out, format, links string) error {
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", input, err)
	}
	if len(r.values) == 0 {
		return fmt.Errorf("%s: no benchmark results", input)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	files, err := writeCharts(r, out, format)
	if err != nil {
		return err
	}
	writeTables(os.Stdout, r, filepath.ToSlash(input), links)
	for _, f := range files {
		fmt.Fprintf(os.Stderr, "benchcharts: wrote %s\n", f)
	}
	return nil
}
