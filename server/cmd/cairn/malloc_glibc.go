//go:build linux && cgo

package main

/*
#include <malloc.h>
#include <stdlib.h>

// C allocator settings for Pebble's block cache and memtables, which live
// in the C heap. glibc's defaults give each thread an arena of its own and
// raise the threshold above which a block is mmapped (and so returned to
// the kernel when freed) as blocks are freed: a cache that turns over
// large blocks then keeps what it freed resident. With 1 MiB values and a
// keyspace compaction every 10 s, RSS climbed from 241 to 371 MB in 40 s
// with the defaults and stayed between 180 and 232 MB with these.
//
// They are set by a constructor, when the program is loaded, before the Go
// runtime starts a thread: set later (from main), arenas that threads had
// already made stayed, and with 1 KiB values a member's RSS still grew past
// 430 MiB in 90 s against a 320 MiB budget (300 MiB with the arena limit in
// place from the start). The environment's own settings (MALLOC_ARENA_MAX,
// MALLOC_MMAP_THRESHOLD_) win.
#define CAIRN_C_ARENAS_MAX 2
#define CAIRN_C_MMAP_THRESHOLD_BYTES (128 << 10)

__attribute__((constructor)) static void cairn_tune_c_allocator(void) {
#ifdef M_ARENA_MAX
	if (getenv("MALLOC_ARENA_MAX") == NULL) {
		mallopt(M_ARENA_MAX, CAIRN_C_ARENAS_MAX);
	}
#endif
	if (getenv("MALLOC_MMAP_THRESHOLD_") == NULL) {
		mallopt(M_MMAP_THRESHOLD, CAIRN_C_MMAP_THRESHOLD_BYTES);
	}
}
*/
import "C"
