package chaos

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/chaos/cluster"
	"github.com/cairn-db/cairn/chaos/workload"
	lin "github.com/cairn-db/cairn/linearizability"
)

func TestSummaryLineNamesEveryCheckAndTheVerdict(t *testing.T) {
	res := &Result{
		Config:          Config{Target: cluster.KindCairn, Members: 3, Seed: 7, Duration: time.Minute},
		Stats:           workload.Stats{Ops: 10, Acked: 8, Unknown: 1},
		Timeline:        []TimelineEntry{{Fault: FaultKillOne}, {Fault: FaultLatency}},
		Checks:          []Check{{Name: "linearizability", OK: true}, {Name: "lost-writes", OK: true, Detail: "3 found"}},
		Linearizability: lin.ResultOK,
	}
	want := "chaos cairn 3 members seed 7 1m0s: 10 ops (8 acked, 1 unknown), 2 faults; linearizability ok, lost-writes ok (3 found); linearizable"
	if got := res.Summary(); got != want || !res.Passed() {
		t.Fatalf("summary %q (passed %v), want %q", got, res.Passed(), want)
	}
	res.Checks[1].OK = false
	res.Linearizability = lin.ResultTimeout
	if got := res.Summary(); !strings.HasSuffix(got, "lost-writes FAIL (3 found); NOT linearizable") || res.Passed() {
		t.Fatalf("failing summary %q (passed %v)", got, res.Passed())
	}
	if (&Result{}).Passed() {
		t.Fatal("a result without checks passed")
	}
}

func TestCheckFaults(t *testing.T) {
	if err := CheckFaults(AllFaults); err != nil {
		t.Fatal(err)
	}
	for _, name := range AllFaults {
		if injectors[name] == nil {
			t.Errorf("fault %s has no injector", name)
		}
	}
	// disk-full is the one fault outside AllFaults (it needs tmpfs disks).
	if len(injectors) != len(AllFaults)+1 || injectors[FaultDiskFull] == nil {
		t.Errorf("%d injectors for %d faults and disk-full", len(injectors), len(AllFaults))
	}
	if err := CheckFaults([]string{FaultKillOne, "kill-everything"}); err == nil || !strings.Contains(err.Error(), "kill-everything") {
		t.Fatalf("unknown fault accepted: %v", err)
	}
}

// The seed alone fixes the schedule's draws: which faults, how long each
// lasts, how long the pauses between them are.
func TestScheduleIsSeeded(t *testing.T) {
	draw := func(seed uint64) []string {
		s := &scheduler{rng: rand.New(rand.NewPCG(seed, 0xc4a05)), faults: AllFaults}
		var out []string
		for range 20 {
			out = append(out, s.next(), s.hold().String(), s.quiet().String())
		}
		return out
	}
	a, b, c := draw(1), draw(1), draw(2)
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatal("same seed, different schedules")
	}
	if strings.Join(a, " ") == strings.Join(c, " ") {
		t.Fatal("different seeds, same schedule")
	}
	for i := 0; i < len(a); i += 3 {
		hold, _ := time.ParseDuration(a[i+1])
		quiet, _ := time.ParseDuration(a[i+2])
		if hold < faultHoldMin || hold >= faultHoldMax || quiet < quietMin || quiet >= quietMax {
			t.Fatalf("draw %d out of bounds: hold %v quiet %v", i/3, hold, quiet)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	var cfg Config
	cfg.EnsureDefaults()
	if cfg.Duration != 5*time.Minute || cfg.Members != 3 || cfg.Target != cluster.KindCairn || len(cfg.Faults) != len(AllFaults) {
		t.Fatalf("defaults %+v", cfg)
	}
	if err := cfg.Validate(); err == nil {
		t.Fatal("config without binary validated")
	}
	cfg.Bin = "/bin/true"
	cfg.Faults = []string{"nope"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("unknown fault validated")
	}
}
