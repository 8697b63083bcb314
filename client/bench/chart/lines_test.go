package chart

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestLinesIsWellFormedAndScales(t *testing.T) {
	out := Lines("RSS <soak>", []LinePanel{{
		Title: "20 KiB", XUnit: "s", YUnit: "MB",
		Lines: []Line{{Label: "etcd", Values: []float64{0, 150, 300}, Color: "#888"}, {Label: "budget", Values: []float64{320, 320, 320}, Color: "#c00", Dashed: true}},
	}})
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
	}
	// The y axis ends at 400 (the round number above 320); x at 2 s.
	if !strings.Contains(out, ">400<") || !strings.Contains(out, "stroke-dasharray") || !strings.Contains(out, "RSS &lt;soak&gt;") {
		t.Fatalf("scale, dashed bound or escaped title missing:\n%s", out)
	}
	for _, top := range []float64{0.5, 1, 7, 99, 320, 2663} {
		end, ticks := niceTicks(top)
		if end < top || len(ticks) < 2 || len(ticks) > 7 || ticks[0] != 0 {
			t.Errorf("niceTicks(%v) = %v, %v", top, end, ticks)
		}
	}
}
