package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The charts' files, in the order BENCHMARKS.md shows them.
const (
	chartThroughput = "throughput.svg"
	chartLatency    = "latency.svg"
	chartRebuild    = "rebuild.svg"
	chartTokens     = "token-requests.svg"
	chartBurst      = "burst-latency.svg"
	chartMetric     = "metric-cost.svg"
)

// palette: colour-blind-safe (Okabe and Ito).
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{86, 180, 233, 255},  // sky blue
	color.RGBA{213, 94, 0, 255},    // vermilion
}

var grey = color.RGBA{150, 150, 150, 255}

func init() {
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	plotter.DefaultFont = plot.DefaultFont
}

// newPlot is a plot titled with what it shows and, on a second line, the run it shows.
func newPlot(run *Run, title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title + "\n" + run.Stamp()
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.Title.Padding = vg.Points(6)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.TextStyle.Font.Size = vg.Points(10)
	p.Y.Label.TextStyle.Font.Size = vg.Points(10)
	p.X.Tick.Label.Font.Size = vg.Points(8)
	p.Y.Tick.Label.Font.Size = vg.Points(8)
	return p
}

// notMeasured is the chart drawn in place of one whose data the run does not hold: its
// file then says so, rather than keeping a chart of another run.
func notMeasured(run *Run, title, why string) *plot.Plot {
	p := newPlot(run, title)
	p.HideAxes()
	l, _ := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: 0.5, Y: 0.5}}, Labels: []string{"not measured in this run: " + why}})
	l.TextStyle[0].XAlign = draw.XCenter
	l.TextStyle[0].Font.Size = vg.Points(11)
	p.Add(l)
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	return p
}

// plainTicks are gonum's default ticks, written without trailing zeros ("5000", not
// "5000.00").
type plainTicks struct{}

func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}

// unitTicks are a ticker's ticks with a unit after each label. Logarithmic value axes use
// them instead of an axis label: gonum (v0.17.0) reserves an axis label's room around the
// arithmetic middle of the range, far from where it draws the label on a logarithmic
// axis, and squeezes the plot to make room for it.
type unitTicks struct {
	plot.Ticker
	unit string
}

func (t unitTicks) Ticks(min, max float64) []plot.Tick {
	ticks := t.Ticker.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label += " " + t.unit
		}
	}
	return ticks
}

// categories names n bars or groups of bars along X, with room on either side, and gives
// the value axis headroom above the tallest bar (for the labels, and the legend) when it is
// linear.
func categories(p *plot.Plot, names []string, linearTop float64) {
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names))-0.4
	if linearTop > 0 {
		p.Y.Min, p.Y.Max = 0, linearTop
		p.Y.Tick.Marker = plainTicks{}
	}
}

// maxOf is the largest value that is not NaN; 0 if none.
func maxOf(vs ...float64) float64 {
	m := 0.0
	for _, v := range vs {
		if !math.IsNaN(v) && v > m {
			m = v
		}
	}
	return m
}

// plural writes n and the noun, in the plural unless n is 1.
func plural(n float64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%.0f %ss", n, noun)
}

// groupOffset is the offset of bar j of k in a group of bars of width w.
func groupOffset(j, k int, w vg.Length) vg.Length {
	return vg.Length(float64(j)-float64(k-1)/2) * w
}

// logBase is where bars start on a logarithmic axis whose smallest value is least: the
// power of ten below it.
func logBase(least float64) float64 {
	b := math.Pow(10, math.Floor(math.Log10(least)))
	if b >= least {
		b /= 10
	}
	return b
}

// fmtNum writes a value with about three significant digits.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// chartThroughputPlot: requests per second of each path of the read load, and each against
// the no-op plugin.
func chartThroughputPlot(run *Run) *plot.Plot {
	title := "Reads per second, real Vault, 16 clients, paths interleaved"
	paths := run.ReadLoad()
	if len(paths) == 0 {
		return notMeasured(run, title, "BenchmarkVaultReadLoad")
	}
	p := newPlot(run, title)
	var names, labels []string
	var vals []float64
	for _, lp := range paths {
		names = append(names, lp.Label)
		vals = append(vals, lp.ReqPerSec)
		labels = append(labels, fmt.Sprintf("%.0f\nx%.2f", lp.ReqPerSec, lp.VsNoop))
	}
	b := newBars(vals, labels, 0, vg.Points(34), 0, palette[0])
	b.font.Font.Size = vg.Points(8)
	p.Add(b)
	categories(p, names, 1.15*maxOf(vals...))
	p.Y.Label.Text = "requests/s (labels: req/s, x the no-op plugin's)"
	return p
}

// chartLatencyPlot: latency percentiles of each path of the read load.
func chartLatencyPlot(run *Run) *plot.Plot {
	title := "Read latency percentiles, real Vault, 16 clients (same run as the throughput)"
	paths := run.ReadLoad()
	if len(paths) == 0 {
		return notMeasured(run, title, "BenchmarkVaultReadLoad")
	}
	p := newPlot(run, title)
	series := []struct {
		name string
		get  func(LoadPath) float64
	}{
		{"p50", func(l LoadPath) float64 { return l.P50 }},
		{"p90", func(l LoadPath) float64 { return l.P90 }},
		{"p99", func(l LoadPath) float64 { return l.P99 }},
		{"p99.9", func(l LoadPath) float64 { return l.P999 }},
	}
	var names []string
	top := 0.0
	for _, lp := range paths {
		names = append(names, lp.Label)
		top = maxOf(top, lp.P50, lp.P90, lp.P99, lp.P999)
	}
	w := vg.Points(13)
	for j, s := range series {
		var vals []float64
		var labels []string
		for _, lp := range paths {
			v := s.get(lp)
			vals = append(vals, v)
			labels = append(labels, fmtNum(v))
		}
		b := newBars(vals, labels, 0, w, groupOffset(j, len(series), w), palette[j])
		b.font.Font.Size = vg.Points(5.5)
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	categories(p, names, 1.35*top)
	p.Y.Label.Text = "latency (ms), client side"
	return p
}

// roleTicks marks the mount sizes measured.
type roleTicks []int

func (t roleTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for _, n := range t {
		label := strconv.Itoa(n)
		if n >= 1000 && n%1000 == 0 {
			label = strconv.Itoa(n/1000) + "k"
		}
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: label})
	}
	return ticks
}

// chartRebuildPlot: the queue rebuild's time against the number of roles, log-log, in
// memory, with the real Vault's measurement as single points.
func chartRebuildPlot(run *Run) *plot.Plot {
	title := "Queue rebuild at start against the number of roles (log-log, medians)"
	pts := run.Rebuild()
	if len(pts) == 0 {
		return notMeasured(run, title, "BenchmarkQueueRebuild")
	}
	p := newPlot(run, title)
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var sizes roleTicks
	for _, pt := range pts {
		sizes = append(sizes, pt.Roles)
	}
	p.X.Tick.Marker = sizes
	p.Y.Tick.Marker = unitTicks{plot.LogTicks{Prec: -1}, "ms"}
	series := []struct {
		name string
		get  func(RebuildPoint) float64
	}{
		{"from the due index (in memory): scheduling starts", func(r RebuildPoint) float64 { return r.LoadQueue }},
		{"and the pass reading every role (in memory)", func(r RebuildPoint) float64 { return r.Verify }},
		{"reading every role alone, no queue (in memory)", func(r RebuildPoint) float64 { return r.Storage }},
	}
	for j, s := range series {
		var xys plotter.XYs
		var labels []string
		for _, pt := range pts {
			if v := s.get(pt); !math.IsNaN(v) && v > 0 {
				xys = append(xys, plotter.XY{X: float64(pt.Roles), Y: v})
				labels = append(labels, fmtNum(v)+" ms")
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			continue
		}
		line.Color, points.Color = palette[j], palette[j]
		points.Shape = draw.CircleGlyph{}
		if j == 2 {
			line.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		}
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
		if j == 2 {
			continue // close to the pass: its labels would cover the pass's (the table has them)
		}
		if l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels}); err == nil {
			for i := range l.TextStyle {
				l.TextStyle[i].Font.Size = vg.Points(7)
				l.TextStyle[i].Color = palette[j]
			}
			l.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(-9)}
			if j == 1 {
				l.Offset.Y = vg.Points(3)
			}
			p.Add(l)
		}
	}
	if v, ok := run.VaultRebuild(); ok {
		var xys plotter.XYs
		var labels []string
		for _, y := range []struct {
			v    float64
			what string
		}{{v.LoadQueue, "from the index"}, {v.Verify, "pass reading every role"}} {
			if !math.IsNaN(y.v) && y.v > 0 {
				xys = append(xys, plotter.XY{X: float64(v.Roles), Y: y.v})
				labels = append(labels, "real Vault, "+y.what+": "+fmtNum(y.v)+" ms")
			}
		}
		if s, err := plotter.NewScatter(xys); err == nil && len(xys) > 0 {
			s.Shape = draw.BoxGlyph{}
			s.Radius = vg.Points(4)
			s.Color = palette[5]
			p.Add(s)
			p.Legend.Add(fmt.Sprintf("real Vault after a plugin reload (%d roles)", v.Roles), s)
			if l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels}); err == nil {
				for i := range l.TextStyle {
					l.TextStyle[i].Font.Size = vg.Points(7)
					l.TextStyle[i].Color = palette[5]
					l.TextStyle[i].XAlign = draw.XRight
				}
				l.Offset = vg.Point{X: vg.Points(-7), Y: vg.Points(-3)}
				p.Add(l)
			}
		}
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(8)
	p.X.Label.Text = "roles in the mount"
	return p
}

// chartTokensPlot: Auth0 token requests for the same reads of an access token, with and
// without token/.
func chartTokensPlot(run *Run) *plot.Plot {
	t := run.TokenRequests()
	title := "Auth0 /oauth/token requests for the same reads of an access token (log scale)"
	if !math.IsNaN(t.Reads) && !math.IsNaN(t.Readers) {
		title = fmt.Sprintf("Auth0 /oauth/token requests for %.0f reads of an access token by %.0f readers (log scale)", t.Reads, t.Readers)
	}
	if !t.OK {
		return notMeasured(run, title, "BenchmarkVaultTokenLoad")
	}
	p := newPlot(run, title)
	vals := []float64{t.Direct, t.ViaVault}
	labels := []string{plural(t.Direct, "request"), plural(t.ViaVault, "request")}
	least := math.Max(math.Min(t.Direct, t.ViaVault), 1)
	b := newBars(vals, labels, logBase(least), vg.Points(60), 0, palette[0])
	b.font.Font.Size = vg.Points(9)
	p.Add(b)
	categories(p, []string{"each reader asks Auth0\n(without token/)", "each reader reads\nauth0/token/<role> (real Vault)"}, 0)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = unitTicks{plot.LogTicks{Prec: -1}, ""}
	return p
}

// chartBurstPlot: creds read latency percentiles at idle and during the burst.
func chartBurstPlot(run *Run) *plot.Plot {
	title := "creds/ read latency at idle and while 1,000 due roles rotate at 10 req/s (in process)"
	bu := run.Burst()
	if !bu.OK {
		return notMeasured(run, title, "BenchmarkDueBurst (BENCH_SKIP_BURST=1?)")
	}
	p := newPlot(run, title)
	cats := []string{"p50", "p90", "p99", "p99.9"}
	get := func(l Latencies) []float64 { return []float64{l.P50, l.P90, l.P99, l.P999} }
	w := vg.Points(30)
	for j, s := range []struct {
		name string
		lat  Latencies
	}{{fmt.Sprintf("idle, before the burst (%.0f reads)", bu.Idle.Reads), bu.Idle}, {fmt.Sprintf("during the burst (%.0f reads, %.0f s)", bu.During.Reads, bu.Seconds), bu.During}} {
		vals := get(s.lat)
		var labels []string
		for _, v := range vals {
			labels = append(labels, fmtNum(v))
		}
		b := newBars(vals, labels, 0, w, groupOffset(j, 2, w), palette[j])
		b.font.Font.Size = vg.Points(7)
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	categories(p, cats, 1.3*maxOf(append(get(bu.Idle), get(bu.During)...)...))
	p.Y.Label.Text = "latency (µs) of HandleRequest creds/<role>"
	return p
}

// chartMetricPlot: what the creds counter costs against a whole creds read.
func chartMetricPlot(run *Run) *plot.Plot {
	title := "The creds/ metric's cost against a creds/ read (in process, parallel; ns per op, log scale)"
	m := run.MetricCost()
	if !m.OK {
		return notMeasured(run, title, "BenchmarkCredsMetric")
	}
	p := newPlot(run, title)
	items := []struct {
		name string
		v    float64
	}{
		{"one atomic add\n(reference)", m.AtomicAdd},
		{"the creds counter\n(default)", m.Counter},
		{"the counter,\nrole labels on", m.CounterLabels},
		{"a creds/ read\n(counter included)", m.Read},
		{"a creds/ read,\nrole labels on", m.ReadLabels},
	}
	var names, labels []string
	var vals []float64
	least := math.Inf(1)
	for i, it := range items {
		names = append(names, it.name)
		vals = append(vals, it.v)
		label := fmtNum(it.v) + " ns"
		if !math.IsNaN(it.v) {
			least = math.Min(least, it.v)
			if i != 3 {
				label += "\n" + ratio(it.v, m.Read) + " a read"
			}
		}
		labels = append(labels, label)
	}
	b := newBars(vals, labels, logBase(least), vg.Points(40), 0, palette[0])
	b.font.Font.Size = vg.Points(7)
	p.Add(b)
	categories(p, names, 0)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = unitTicks{plot.LogTicks{Prec: -1}, "ns"}
	return p
}

// chart is one chart: its file, and how to draw it from a run, at what size.
type chart struct {
	file string
	draw func(*Run) *plot.Plot
	w, h vg.Length
}

var charts = []chart{
	{chartThroughput, chartThroughputPlot, 8 * vg.Inch, 4.5 * vg.Inch},
	{chartLatency, chartLatencyPlot, 9 * vg.Inch, 4.5 * vg.Inch},
	{chartRebuild, chartRebuildPlot, 8 * vg.Inch, 5 * vg.Inch},
	{chartTokens, chartTokensPlot, 7.5 * vg.Inch, 4.5 * vg.Inch},
	{chartBurst, chartBurstPlot, 7 * vg.Inch, 4.5 * vg.Inch},
	{chartMetric, chartMetricPlot, 8 * vg.Inch, 4.5 * vg.Inch},
}

// svgFonts gives the SVG's text fallbacks: gonum names the font whose metrics it laid the
// text out with (Liberation Sans) and nothing else, so that a viewer without it would fall
// back to its default, often a serif. Arial has Liberation Sans' metrics.
var svgFonts = strings.NewReplacer("font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")

// writeCharts draws every chart of run into dir, in format ("svg", or "png" for a preview),
// and answers the files written.
func writeCharts(run *Run, dir, format string) ([]string, error) {
	var files []string
	for _, c := range charts {
		file := filepath.Join(dir, strings.TrimSuffix(c.file, ".svg")+"."+format)
		wt, err := c.draw(run).WriterTo(c.w, c.h, format)
		if err != nil {
			return files, fmt.Errorf("%s: %w", file, err)
		}
		var buf bytes.Buffer
		if _, err := wt.WriteTo(&buf); err != nil {
			return files, fmt.Errorf("%s: %w", file, err)
		}
		data := buf.Bytes()
		if format == "svg" {
			data = []byte(svgFonts.Replace(buf.String()))
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			return files, err
		}
		files = append(files, file)
	}
	return files, nil
}
