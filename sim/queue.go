package sim

import "container/heap"

// event is something that happens at a virtual time. Events at the same
// time run in the order they were scheduled, so the run is deterministic.
type event struct {
	atMicros int64
	seq      uint64
	run      func()
}

// eventQueue is a min-heap of events by (atMicros, seq).
type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].atMicros != q[j].atMicros {
		return q[i].atMicros < q[j].atMicros
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// scheduler owns virtual time and the queue.
type scheduler struct {
	nowMicros int64
	seq       uint64
	queue     eventQueue
	// onPanic receives a panic raised by an event (a member stopping
	// loudly on a broken invariant); the run records it as a failure.
	onPanic func(recovered any)
}

func (s *scheduler) after(delayMicros int64, run func()) {
	if delayMicros < 0 {
		panic("sim: event scheduled in the past")
	}
	s.seq++
	heap.Push(&s.queue, &event{atMicros: s.nowMicros + delayMicros, seq: s.seq, run: run})
}

// step runs the next event if it is due by untilMicros.
func (s *scheduler) step(untilMicros int64) bool {
	if len(s.queue) == 0 || s.queue[0].atMicros > untilMicros {
		return false
	}
	e := heap.Pop(&s.queue).(*event)
	s.nowMicros = e.atMicros
	s.run(e)
	return true
}

func (s *scheduler) run(e *event) {
	defer func() {
		if r := recover(); r != nil {
			s.onPanic(r)
		}
	}()
	e.run()
}
