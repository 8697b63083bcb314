//go:build !unix

package mvcc

// allocOffHeap returns n zeroed bytes. Where anonymous mappings are not
// available through package syscall, they are in the Go heap.
func allocOffHeap(n int) []byte { return make([]byte, n) }

func freeOffHeap([]byte) {}
