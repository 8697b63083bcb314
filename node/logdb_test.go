package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/node/raftlog"
	"github.com/cockroachdb/pebble/v2"
)

// A crash loses the applied state's unflushed writes, and the member
// applies the raft log's entries again: it restarts with every
// acknowledged write, even after its log was truncated.
func TestCrashReappliesTheLogSinceTheStateFlush(t *testing.T) {
	for _, name := range []string{"", "truncate-before-state-flush"} {
		t.Run(fmt.Sprintf("plant=%q", name), func(t *testing.T) {
			h := newHarness(t, []uint64{1}, func(c *Config) {
				c.SnapshotCount, c.SnapshotCatchUpEntries = 8, 2
				c.Knobs.TruncateLogBeforeStateFlush = name != ""
			})
			for i := range 30 {
				h.put(1, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
			}
			if h.node(1).log.TruncatedIndex() <= bootstrapIndex {
				t.Fatal("the log was never truncated: the test shows nothing")
			}
			before := h.node(1).RaftState()
			h.crash(1)
			err := h.tryOpen(1)
			if name != "" {
				if !errors.Is(err, raftlog.ErrCorrupt) {
					t.Fatalf("open after a crash with the log truncated past the durable state: %v, want a corrupt log", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckRecovery(before, h.node(1).RaftState(), 0, false); err != nil {
				t.Fatal(err)
			}
			h.settle()
			for i := range 30 {
				if v, ok := h.get(1, fmt.Sprintf("k%02d", i)); !ok || v != fmt.Sprint(i) {
					t.Fatalf("k%02d after the crash: %q, %v; want %d", i, v, ok, i)
				}
			}
		})
	}
}

// A member whose state database holds its raft log, as every member's did
// before the log had a database of its own, moves it there when it opens,
// and goes on with the same log and HardState.
func TestOpenMovesTheRaftLogOutOfTheStateDatabase(t *testing.T) {
	h := newHarness(t, []uint64{1}, nil)
	for i := range 5 {
		h.put(1, fmt.Sprintf("k%d", i), "v")
	}
	before := h.node(1).RaftState()
	m := h.members[1]
	if err := h.node(1).Close(); err != nil {
		t.Fatal(err)
	}
	// Make the old layout: the log's keys in the state database, and no
	// log database.
	live, err := liveDBName(m.fs, m.cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := func() *pebble.Options { return &pebble.Options{FS: m.fs, Logger: quietPebbleLogger{}} }
	state, err := pebble.Open(m.fs.PathJoin(m.cfg.Dir, live), opts())
	if err != nil {
		t.Fatal(err)
	}
	logPath := m.fs.PathJoin(m.cfg.Dir, logDBName)
	log, err := pebble.Open(logPath, opts())
	if err != nil {
		t.Fatal(err)
	}
	if found, err := copySpans(log, state, logKeys); err != nil || !found {
		t.Fatalf("copy the log into the state database: %v, %v", found, err)
	}
	if err := errors.Join(state.Flush(), state.Close(), log.Close(), m.fs.RemoveAll(logPath)); err != nil {
		t.Fatal(err)
	}

	h.open(1)
	if got := h.node(1).RaftState(); got != before {
		t.Fatalf("raft state after the move: %+v, want %+v", got, before)
	}
	h.settle()
	h.put(1, "after", "move")
	for _, k := range []string{"k0", "k4", "after"} {
		if _, ok := h.get(1, k); !ok {
			t.Fatalf("%s missing after the move", k)
		}
	}
}
