//go:build !race

package watch

// raceEnabled says the race detector is on.
const raceEnabled = false
