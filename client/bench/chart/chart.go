package chart

import (
	"fmt"
	"html"
	"strings"
)

// Bar is one value in a panel.
type Bar struct {
	Label string  // e.g. "etcd ×1"
	Value float64 // 0 with Note set: no figure
	Note  string  // shown instead of a value ("not supported", "errors")
	Color string  // CSS colour
}

// Row is one case: its throughput and latency bars.
type Row struct {
	Title      string
	RateUnit   string // e.g. "ops/s"
	Rate       []Bar
	LatencyP99 []Bar // milliseconds
}

const (
	rowHeaderPx = 22
	barPx       = 16
	gapPx       = 4
	labelPx     = 70
	panelPx     = 330
	marginPx    = 10
)

// SVG renders rows under title.
func SVG(title string, rows []Row) string {
	var b strings.Builder
	height := marginPx + 30
	for _, r := range rows {
		height += rowHeight(r)
	}
	width := 2*(labelPx+panelPx) + 3*marginPx + 120
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", marginPx, esc(title))
	y := marginPx + 30
	for _, r := range rows {
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s — throughput (%s)</text>`+"\n", marginPx, y+14, esc(r.Title), esc(r.RateUnit))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s — p99 latency (ms, lower is better)</text>`+"\n", 2*marginPx+labelPx+panelPx+60, y+14, esc(r.Title))
		panel(&b, marginPx, y+rowHeaderPx, r.Rate, "%.0f")
		panel(&b, 2*marginPx+labelPx+panelPx+60, y+rowHeaderPx, r.LatencyP99, "%.2f")
		y += rowHeight(r)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func rowHeight(r Row) int {
	n := max(len(r.Rate), len(r.LatencyP99))
	return rowHeaderPx + n*(barPx+gapPx) + 12
}

func panel(b *strings.Builder, x, y int, bars []Bar, format string) {
	var top float64
	for _, bar := range bars {
		top = max(top, bar.Value)
	}
	for i, bar := range bars {
		by := y + i*(barPx+gapPx)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x, by+12, esc(bar.Label))
		if bar.Note != "" || top == 0 {
			fmt.Fprintf(b, `<text x="%d" y="%d" fill="#a00">%s</text>`+"\n", x+labelPx, by+12, esc(bar.Note))
			continue
		}
		w := int(bar.Value / top * panelPx)
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x+labelPx, by, max(w, 1), barPx, esc(bar.Color))
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+labelPx+max(w, 1)+4, by+12, esc(fmt.Sprintf(format, bar.Value)))
	}
}

func esc(s string) string { return html.EscapeString(s) }
