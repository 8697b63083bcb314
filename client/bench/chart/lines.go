package chart

import (
	"fmt"
	"strings"
)

// Line is one series of a line panel: Values[i] is at x = i.
type Line struct {
	Label  string
	Values []float64
	Color  string // CSS colour
	// Dashed draws it dashed (a bound rather than a measurement).
	Dashed bool
}

// LinePanel is one chart of lines over a shared x axis.
type LinePanel struct {
	Title          string
	XUnit, YUnit   string // axis labels, e.g. "s", "MB"
	Lines          []Line
	yTop, xEnd     float64
	yTicks, xTicks []float64
}

const (
	linePanelWidthPx  = 420
	linePanelHeightPx = 170
	lineAxisPx        = 44 // left of the plot, for the y tick labels
	linePanelsPerRow  = 2
)

// Lines renders panels under title, two per row, each with its own scale
// starting at zero and a legend.
func Lines(title string, panels []LinePanel) string {
	rows := (len(panels) + linePanelsPerRow - 1) / linePanelsPerRow
	cellW, cellH := lineAxisPx+linePanelWidthPx+2*marginPx, linePanelHeightPx+70
	width, height := linePanelsPerRow*cellW+marginPx, 40+rows*cellH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", marginPx, esc(title))
	for i, p := range panels {
		x := marginPx + (i%linePanelsPerRow)*cellW
		y := 40 + (i/linePanelsPerRow)*cellH
		linePanel(&b, x, y, scaled(p))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// scaled sets the panel's axis ends and ticks from its values.
func scaled(p LinePanel) LinePanel {
	for _, l := range p.Lines {
		p.xEnd = max(p.xEnd, float64(len(l.Values)-1))
		for _, v := range l.Values {
			p.yTop = max(p.yTop, v)
		}
	}
	p.yTop, p.yTicks = niceTicks(p.yTop)
	p.xEnd, p.xTicks = niceTicks(p.xEnd)
	return p
}

// niceTicks rounds top up to a round number and returns ticks from 0 to it.
func niceTicks(top float64) (float64, []float64) {
	if top <= 0 {
		return 1, []float64{0, 1}
	}
	step := 1.0
	for top/step > 5 {
		switch {
		case top/(step*2) <= 5:
			step *= 2
		case top/(step*5) <= 5:
			step *= 5
		default:
			step *= 10
		}
	}
	var ticks []float64
	for v := 0.0; v < top+step; v += step {
		ticks = append(ticks, v)
	}
	return ticks[len(ticks)-1], ticks
}

func linePanel(b *strings.Builder, x, y int, p LinePanel) {
	plotX, plotY := x+lineAxisPx, y+20
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x, y+12, esc(p.Title))
	px := func(v float64) float64 { return float64(plotX) + v/p.xEnd*linePanelWidthPx }
	py := func(v float64) float64 { return float64(plotY+linePanelHeightPx) - v/p.yTop*linePanelHeightPx }
	for _, t := range p.yTicks {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", plotX, py(t), plotX+linePanelWidthPx, py(t))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n", plotX-4, py(t)+4, t)
	}
	for _, t := range p.xTicks {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", px(t), plotY+linePanelHeightPx+14, t)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", plotX+linePanelWidthPx-20, plotY+linePanelHeightPx+28, esc(p.XUnit))
	fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x, plotY+8, esc(p.YUnit))
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", plotX, plotY, linePanelWidthPx, linePanelHeightPx)
	for i, l := range p.Lines {
		var pts []string
		for j, v := range l.Values {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(float64(j)), py(v)))
		}
		dash := ""
		if l.Dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"%s/>`+"\n", strings.Join(pts, " "), esc(l.Color), dash)
		lx := plotX + 8 + i*130
		ly := plotY + linePanelHeightPx + 42
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly-4, lx+18, ly-4, esc(l.Color), dash)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", lx+22, ly, esc(l.Label))
	}
}
