//go:build unix

package mvcc

import (
	"runtime"
	"testing"
	"time"
)

// TestDroppedCacheReleasesItsMemory: a cache large enough for a mapping of
// its own unmaps it once nothing refers to it (a Store replaced after a
// snapshot is installed drops its cache this way).
func TestDroppedCacheReleasesItsMemory(t *testing.T) {
	// The caches of earlier tests are all dropped by now, though their
	// cleanups may not have run yet.
	waitMappedBytes(t, 0)
	const bytesMax = 1 << 20
	c := newLatestCache(bytesMax)
	c.put([]byte("k"), versionMeta{exists: true, createRevision: 1})
	if got := offHeapMappedBytes.Load(); got != bytesMax {
		t.Fatalf("a cache of %d bytes mapped %d", bytesMax, got)
	}
	runtime.KeepAlive(c)
	waitMappedBytes(t, 0)
}

// waitMappedBytes collects garbage until what the caches have mapped is
// want.
func waitMappedBytes(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for offHeapMappedBytes.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes mapped, want %d", offHeapMappedBytes.Load(), want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// The live key set's table is mapped from 64 KiB: growing frees the table
// it leaves, release frees the last, and so does a set dropped without it.
func TestLiveKeySetReleasesItsMemory(t *testing.T) {
	waitMappedBytes(t, 0)
	fill := func() *liveKeySet {
		s := newLiveKeySet(1 << 20)
		for i := range 4 * offHeapBytesMin / 4 * liveKeyLoadMax / 8 {
			if !s.add(uint32(i)*2654435761 | 1) {
				t.Fatal("the set refused a key below its bound")
			}
		}
		if got, want := offHeapMappedBytes.Load(), int64(4*len(s.slots)); got != want || want < 4*offHeapBytesMin {
			t.Fatalf("a set of %d slots maps %d bytes", len(s.slots), got)
		}
		return s
	}
	fill().release()
	if got := offHeapMappedBytes.Load(); got != 0 {
		t.Fatalf("%d bytes mapped after release", got)
	}
	s := fill()
	runtime.KeepAlive(s)
	waitMappedBytes(t, 0)
}
