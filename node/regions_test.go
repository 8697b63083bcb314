package node

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestRegionEnd(t *testing.T) {
	for _, tc := range []struct{ start, want []byte }{
		{[]byte("kv\x00a\x00\x01"), []byte("kw")},
		{[]byte("kc"), []byte("kd")},
		{[]byte("aa"), []byte("ab")},
		{[]byte("k"), []byte("l")},
		{[]byte("k\xff\x01"), []byte("l")},
		{[]byte("\xff\xff\x00"), nil},
		{[]byte{}, nil},
	} {
		if got := regionEnd(tc.start); !bytes.Equal(got, tc.want) {
			t.Errorf("regionEnd(%q) = %q, want %q", tc.start, got, tc.want)
		}
	}
}

// TestFlushSplitsTablesAtRegions flushes a memtable holding keys of several
// regions, as one applied batch holds, and checks that no table spans two,
// with a member's options and with those of the offline tools (import,
// restore, offline defragment).
func TestFlushSplitsTablesAtRegions(t *testing.T) {
	member := testConfig(1, []uint64{1}, vfs.NewMem())
	member.EnsureDefaults()
	t.Run("member", func(t *testing.T) { flushSplitsTablesAtRegions(t, pebbleOptions(member, nil, stateDB)) })
	t.Run("offline", func(t *testing.T) { flushSplitsTablesAtRegions(t, offlineOptions(vfs.NewMem())) })
}

func flushSplitsTablesAtRegions(t *testing.T, opts *pebble.Options) {
	db, err := pebble.Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	regions := []string{"aa", "kc", "kd", "ki", "km", "kv"}
	for _, r := range regions {
		for i := range 100 {
			if err := b.Set(fmt.Appendf(nil, "%s%04d", r, i), []byte("v"), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	tables, err := db.SSTables()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, level := range tables {
		for _, tab := range level {
			lo, hi := tab.Smallest.UserKey, tab.Largest.UserKey
			if !bytes.Equal(lo[:regionPrefixBytes], hi[:regionPrefixBytes]) {
				t.Errorf("table %s spans %q to %q", tab.FileNum, lo, hi)
			}
			seen[string(lo[:regionPrefixBytes])] = true
		}
	}
	if len(seen) != len(regions) {
		t.Errorf("tables of %d regions, want %d: %v", len(seen), len(regions), seen)
	}
}
