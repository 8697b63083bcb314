package compare

import (
	"strings"
	"testing"
)

func TestEtcdToolRecordRendersRoundsAndRatioOfMedians(t *testing.T) {
	record := `put etcd 1 10000.4 20.1
put cairn 1 15000 ?
put etcd 2 12000 19.0
put cairn 2 13000 18.2

range-serializable etcd 1 20000 12.5
range-serializable cairn 1 30000 10.0
put etcd 3 11000 21.0
put cairn 3 16000 17.0
`
	workloads, err := ParseEtcdToolRecord(strings.NewReader(record))
	if err != nil {
		t.Fatal(err)
	}
	if len(workloads) != 2 || workloads[0].Name != "put" || len(workloads[0].Etcd) != 3 || len(workloads[0].Cairn) != 3 {
		t.Fatalf("workloads %+v", workloads)
	}
	table := EtcdToolTable(workloads)
	// put: medians 11,000 and 15,000.
	for _, want := range []string{
		"| put | 10,000 / 12,000 / 11,000 | 15,000 / 13,000 / 16,000 | **1.36** | 20.1 / 19.0 / 21.0 | ? / 18.2 / 17.0 |",
		"| range (serializable) | 20,000 | 30,000 | **1.50** | 12.5 | 10.0 |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	doc := RenderDoc(Reports{EtcdTool: &EtcdToolReport{Date: "d", Command: "make bench-etcdtool", Workloads: workloads}}, "c.svg", "s.svg")
	if !strings.Contains(doc, "Command: `make bench-etcdtool`") || !strings.Contains(doc, "**1.36**") {
		t.Fatalf("doc lacks the run:\n%s", doc)
	}
	doc = RenderDoc(Reports{}, "c.svg", "s.svg")
	_, section, _ := strings.Cut(doc, "## etcd's own benchmark tool")
	section, _, _ = strings.Cut(section, "\n## ")
	if !strings.Contains(section, "Not run yet on this checkout.") || strings.Contains(section, "| workload |") {
		t.Fatalf("the section without a run should hold a placeholder only:\n%s", section)
	}
}

func TestEtcdToolRecordRefusesMalformedLines(t *testing.T) {
	for _, record := range []string{
		"",
		"put etcd 1 100\n",
		"put etcd 1 fast 2.0\n",
		"put etcd 1 100 slow\n",
		"put zookeeper 1 100 2.0\n",
	} {
		if _, err := ParseEtcdToolRecord(strings.NewReader(record)); err == nil {
			t.Errorf("record %q: no error", record)
		}
	}
}
