package node

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLevelZeroCompactsBeforeWritesStop checks that a member's database
// keeps the level 0 thresholds after Pebble fills in its defaults, and that
// compactions out of level 0 start well before writes stop (at equal
// thresholds every put would wait for a compaction).
func TestLevelZeroCompactsBeforeWritesStop(t *testing.T) {
	cfg := testConfig(1, []uint64{1}, vfs.NewMem())
	cfg.EnsureDefaults()
	opts := pebbleOptions(cfg, nil, stateDB)
	opts.EnsureDefaults()
	if opts.L0CompactionThreshold != levelZeroCompactionSublevels {
		t.Errorf("L0CompactionThreshold = %d, want %d", opts.L0CompactionThreshold, levelZeroCompactionSublevels)
	}
	if opts.L0StopWritesThreshold < 2*opts.L0CompactionThreshold {
		t.Errorf("writes stop at %d sublevels, compactions start at %d: want at least twice", opts.L0StopWritesThreshold, opts.L0CompactionThreshold)
	}
}
