//go:build unix

package mvcc

import (
	"fmt"
	"sync/atomic"
	"syscall"
)

// offHeapMappedBytes is what allocOffHeap has mapped and freeOffHeap not
// yet released: a store dropped without its memory released would show
// here (TestDroppedCacheReleasesItsMemory).
var offHeapMappedBytes atomic.Int64

// offHeapBytesMin is the size from which allocOffHeap maps memory of its
// own: below it the Go heap's share of a small cache (the simulator's, a
// few hundred bytes) is not worth a mapping of a whole page.
const offHeapBytesMin = 64 << 10

// allocOffHeap returns n zeroed bytes outside the Go heap, which the
// garbage collector neither scans nor counts toward its target: an
// anonymous private mapping, whose pages the kernel backs as they are
// first written. freeOffHeap releases them.
func allocOffHeap(n int) []byte {
	if n < offHeapBytesMin {
		return make([]byte, n)
	}
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(fmt.Sprintf("mvcc: map %d bytes: %v", n, err))
	}
	offHeapMappedBytes.Add(int64(n))
	return mem
}

// freeOffHeap releases memory from allocOffHeap; nothing may use it after.
func freeOffHeap(mem []byte) {
	if len(mem) < offHeapBytesMin {
		return
	}
	if err := syscall.Munmap(mem); err != nil {
		panic(fmt.Sprintf("mvcc: unmap %d bytes: %v", len(mem), err))
	}
	offHeapMappedBytes.Add(-int64(len(mem)))
}
