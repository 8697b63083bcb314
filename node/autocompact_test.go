package node

import (
	"reflect"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// compaction is one decision of the compactor: at tick, compact to rev.
type compaction struct {
	tick uint64
	rev  int64
}

// runCompactor drives a compactor for ticks ticks over a keyspace written
// once a tick (revision 1+tick). A proposed compaction applies at once
// unless lost is set; leaderFrom is the first tick at which it leads.
func runCompactor(cfg Config, ticks, leaderFrom uint64, lost bool) []compaction {
	cfg.RequestTimeoutTicks = 70
	c := newAutoCompactor(&cfg, 0, 1)
	var out []compaction
	var compactRev int64
	for t := uint64(1); t <= ticks; t++ {
		if target := c.tick(t, int64(1+t), compactRev, t >= leaderFrom); target != 0 {
			out = append(out, compaction{t, target})
			if !lost {
				compactRev = target
			}
		}
	}
	return out
}

// TestAutoCompactorPeriodic pins etcd 3.7's periodic rule at 100 ms ticks
// and a one-hour retention: samples every 6 min (3600 ticks); the first
// compaction after an hour, to the revision of the start; then hourly, to
// the oldest of the 11 samples kept (66 min old).
func TestAutoCompactorPeriodic(t *testing.T) {
	cfg := Config{AutoCompactionMode: AutoCompactionPeriodic, AutoCompactionRetention: time.Hour, TickInterval: 100 * time.Millisecond}
	got := runCompactor(cfg, 110000, 0, false)
	want := []compaction{{36000, 1}, {72000, 1 + 32400}, {108000, 1 + 68400}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compactions %v, want %v", got, want)
	}
	// A retention of a day still compacts hourly, keeping a day.
	cfg.AutoCompactionRetention = 24 * time.Hour
	got = runCompactor(cfg, 24*36000+2*36000, 0, false)
	want = []compaction{{24 * 36000, 1}, {25 * 36000, 1 + 36000 - 3600}, {26 * 36000, 1 + 2*36000 - 3600}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("day retention: compactions %v, want %v", got, want)
	}
	// A member that leads only later compacts with the samples it kept.
	cfg.AutoCompactionRetention = time.Hour
	if got := runCompactor(cfg, 50000, 40000, false); !reflect.DeepEqual(got, []compaction{{43200, 1 + 3600}}) {
		t.Fatalf("late leader: %v", got)
	}
}

// TestAutoCompactorRevision pins the revision rule: every 5 minutes, the
// current revision minus the retention, if positive and new.
func TestAutoCompactorRevision(t *testing.T) {
	cfg := Config{AutoCompactionMode: AutoCompactionRevision, AutoCompactionRetainRevisions: 4000, TickInterval: 100 * time.Millisecond}
	got := runCompactor(cfg, 9000, 0, false)
	want := []compaction{{6000, 6001 - 4000}, {9000, 9001 - 4000}} // at 3000 the target is negative
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("compactions %v, want %v", got, want)
	}
	if got := runCompactor(cfg, 9000, 7000, false); !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("follower until 7000: %v", got)
	}
	// A compaction that never applies is proposed again at the next check.
	if got := runCompactor(cfg, 9000, 0, true); !reflect.DeepEqual(got, want) {
		t.Fatalf("lost compactions: %v", got)
	}
	if newAutoCompactor(&Config{}, 0, 1) != nil {
		t.Fatal("compactor without a mode")
	}
}

// TestAutoCompactionThroughRaft runs the compactor inside a node: the
// leader proposes the compaction, it applies, and reads below it fail as
// etcd's do.
func TestAutoCompactionThroughRaft(t *testing.T) {
	h := newHarness(t, []uint64{1}, func(c *Config) {
		// One tick is a minute: the revision mode checks every 5 ticks.
		c.TickInterval = time.Minute
		c.AutoCompactionMode = AutoCompactionRevision
		c.AutoCompactionRetainRevisions = 3
	})
	for i := range 10 {
		h.put(1, "k", string(rune('a'+i)))
	}
	rev := h.node(1).Store().Rev()
	for range 5 {
		h.tick()
	}
	if got := h.node(1).Store().CompactRev(); got != rev-3 {
		t.Fatalf("compacted to %d, want %d", got, rev-3)
	}
	_, err := h.serve(1, Request{Range: &pb.RangeRequest{Key: []byte("k"), Revision: rev - 4}})
	if err != rpctypes.ErrGRPCCompacted {
		t.Fatalf("read below the compaction: %v", err)
	}
	if _, err := h.serve(1, Request{Range: &pb.RangeRequest{Key: []byte("k"), Revision: rev - 3}}); err != nil {
		t.Fatalf("read at the compaction: %v", err)
	}
}

func TestAutoCompactionConfig(t *testing.T) {
	for _, cfg := range []Config{
		{ID: 1, Dir: "d", Rand: &seqRand{}, ElectionTicks: 10, HeartbeatTicks: 1, AutoCompactionMode: AutoCompactionPeriodic},
		{ID: 1, Dir: "d", Rand: &seqRand{}, ElectionTicks: 10, HeartbeatTicks: 1, AutoCompactionMode: AutoCompactionRevision},
	} {
		if cfg.Validate() == nil {
			t.Errorf("%v without a retention accepted", cfg.AutoCompactionMode)
		}
	}
}
