package main

import (
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// bars is a bar chart whose bars start at base rather than at zero, so that it can be
// drawn on a logarithmic axis (where zero does not exist), with each bar's value written
// above it. Bar i stands at x = i, moved by offset (to set bars side by side in groups).
// A NaN value draws no bar.
type bars struct {
	values []float64
	labels []string // above each bar; "" for none
	base   float64  // 0 on a linear axis; below the smallest value on a logarithmic one
	width  vg.Length
	offset vg.Length
	color  color.Color
	font   text.Style
}

func newBars(values []float64, labels []string, base float64, width, offset vg.Length, c color.Color) *bars {
	return &bars{values: values, labels: labels, base: base, width: width, offset: offset, color: c,
		font: text.Style{Font: font.From(plot.DefaultFont, vg.Points(7)), Handler: plot.DefaultTextHandler,
			XAlign: draw.XCenter, YAlign: draw.YBottom, Color: color.Black}}
}

// Plot draws the bars and their labels.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, v := range b.values {
		if math.IsNaN(v) {
			continue
		}
		x := trX(float64(i)) + b.offset
		y0, y1 := trY(b.base), trY(v)
		rect := []vg.Point{{X: x - b.width/2, Y: y0}, {X: x - b.width/2, Y: y1}, {X: x + b.width/2, Y: y1}, {X: x + b.width/2, Y: y0}}
		c.FillPolygon(b.color, c.ClipPolygonY(rect))
		if i < len(b.labels) && b.labels[i] != "" {
			c.FillText(b.font, vg.Point{X: x, Y: y1 + vg.Points(1.5)}, b.labels[i])
		}
	}
}

// DataRange is the categories' span and the values' (base included).
func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	ymin, ymax = b.base, b.base
	for _, v := range b.values {
		if !math.IsNaN(v) {
			ymin, ymax = math.Min(ymin, v), math.Max(ymax, v)
		}
	}
	return 0, float64(len(b.values) - 1), ymin, ymax
}

// GlyphBoxes keep the bars' width and their labels inside the plot.
func (b *bars) GlyphBoxes(p *plot.Plot) []plot.GlyphBox {
	var boxes []plot.GlyphBox
	for i, v := range b.values {
		if math.IsNaN(v) {
			continue
		}
		box := plot.GlyphBox{X: p.X.Norm(float64(i)), Y: p.Y.Norm(v),
			Rectangle: vg.Rectangle{Min: vg.Point{X: b.offset - b.width/2}, Max: vg.Point{X: b.offset + b.width/2}}}
		if i < len(b.labels) && b.labels[i] != "" {
			w := b.font.Width(b.labels[i])
			box.Rectangle.Min.X = min(box.Rectangle.Min.X, b.offset-w/2)
			box.Rectangle.Max.X = max(box.Rectangle.Max.X, b.offset+w/2)
			box.Rectangle.Max.Y = b.font.Height(b.labels[i]) + vg.Points(1.5)
		}
		boxes = append(boxes, box)
	}
	return boxes
}

// Thumbnail is the bars' sample in the legend.
func (b *bars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	c.FillPolygon(b.color, c.ClipPolygonY(pts))
}
