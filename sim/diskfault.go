package sim

import (
	"time"

	"github.com/cairn-db/cairn/node"
)

// closeWallMax bounds, in wall time, closing one member's database at the
// end of a run; closing takes milliseconds. A close that does not finish
// (Pebble wedged by a panic that unwound through it while it held a lock)
// fails the run as a limit and the database is abandoned, so a seed can
// never hang its worker here.
const closeWallMax = 10 * time.Second

// closeWithin closes n, giving up after bound. Nothing else touches n
// meanwhile: the simulation is single-threaded and waits here.
func closeWithin(n *node.Node, bound time.Duration) bool {
	done := make(chan struct{})
	go func() {
		n.Close()
		close(done)
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}
