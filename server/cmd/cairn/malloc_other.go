//go:build !(linux && cgo)

package main

// tuneCAllocator does nothing: without cgo Pebble's memory is Go's, and
// elsewhere than Linux the C allocator is not glibc's.
func tuneCAllocator() {}
