package sim

import lin "github.com/cairn-db/cairn/linearizability"

// Read bursts: right when a member may lead without knowing it was
// deposed — the leader cut off or frozen — a few extra
// clients issue linearizable reads back to back at it (clients keep
// talking to the endpoint they know), while the regular clients keep
// writing to the others. A member that serves a read without confirming
// it still leads is caught when the read returns a value older than a
// write the rest of the cluster acknowledged before the read began.
//
// Bursts aim only at members whose leadership is in doubt: reads a
// correct member cannot confirm time out and leave the history, while
// reads a healthy member answers cost the linearizability check (with
// unknown-outcome writes pending, porcupine's search grows with every
// operation) and can catch nothing.

const (
	// burstReaderBase numbers the readers' histories after the lease
	// clients'.
	burstReaderBase = 200
	// burstReadersMin and burstReadersMax bound the readers of one burst.
	burstReadersMin = 2
	burstReadersMax = 4
	// burstMicros is how long a burst at a member cut off or frozen lasts.
	burstMicros = 2 * second
	// burstThinkMaxMicros bounds a reader's pause between reads.
	burstThinkMaxMicros = 20 * millisecond
)

// burstReader is one reading client; it is reused by later bursts, one
// operation at a time, as the history requires of a client.
type burstReader struct {
	w  *world
	id int
	// untilMicros is when the current burst ends.
	untilMicros int64
	target      *member
	// busy is set while a read is in flight or scheduled.
	busy bool
}

// readBurst starts a burst of reads at target for lengthMicros.
func (w *world) readBurst(target *member, lengthMicros int64) {
	if w.sched.nowMicros >= w.opts.DurationMicros || w.failed() || target == nil {
		return
	}
	k := burstReadersMin + w.rng.IntN(burstReadersMax-burstReadersMin+1)
	for len(w.burstReaders) < k {
		w.burstReaders = append(w.burstReaders, &burstReader{w: w, id: burstReaderBase + len(w.burstReaders) + 1})
	}
	w.trace.printf("read burst: %d readers at %s", k, target.name())
	for _, r := range w.burstReaders[:k] {
		r.untilMicros, r.target = w.sched.nowMicros+lengthMicros, target
		if !r.busy {
			r.busy = true
			r.read()
		}
	}
}

func (r *burstReader) read() {
	w := r.w
	if w.sched.nowMicros >= r.untilMicros || w.sched.nowMicros >= w.opts.DurationMicros || w.failed() {
		r.busy = false
		return
	}
	m := r.target
	if !m.up() || m.removed {
		r.busy = false
		return
	}
	key := keys[w.rng.IntN(len(keys))]
	w.recordedOp(r.id, m, lin.Get(key), 0, func(lin.Response, bool) {
		w.sched.after(w.rng.Int64N(burstThinkMaxMicros), r.read)
	})
}
