//go:build !race

package mvcc

// raceEnabled says the race detector is on, and with it Pebble's
// invariants checks (internal/invariants), which copy keys and values.
const raceEnabled = false
