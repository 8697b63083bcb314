package chart

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestSVGIsWellFormedAndScalesBars(t *testing.T) {
	rows := []Row{{
		Title: "put <1>", RateUnit: "ops/s",
		Rate:       []Bar{{Label: "etcd", Value: 100, Color: "#888"}, {Label: "cairn", Value: 50, Color: "#06c"}},
		LatencyP99: []Bar{{Label: "etcd", Value: 2, Color: "#888"}, {Label: "cairn", Note: "not supported"}},
	}}
	out := SVG("title & more", rows)
	dec := xml.NewDecoder(strings.NewReader(out))
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed XML: %v\n%s", err, out)
		}
	}
	full := `width="330"`
	half := `width="165"`
	if !strings.Contains(out, full) || !strings.Contains(out, half) {
		t.Fatalf("bars not scaled to the largest value:\n%s", out)
	}
	if !strings.Contains(out, "not supported") || !strings.Contains(out, "put &lt;1&gt;") {
		t.Fatalf("note or escaped title missing:\n%s", out)
	}
}
