package sim

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"time"
)

// Limits bound one run, so that a broken build's seed fails loudly, naming
// the bound, instead of running for minutes or eating the machine (one ran
// a single seed for over 300 s at 8.5 GB in a message storm). A zero field
// takes its default; the defaults are far above what healthy seeds reach
// (docs/simulation.md has the measured peaks). Totals scale with the run's
// virtual time: its duration plus what the end-of-run checks may take.
type Limits struct {
	// EventsMax bounds the virtual events executed (message deliveries,
	// ticks, Process calls, client steps). Default
	// DefaultEventsPerVirtualSecondMax per virtual second of the run.
	EventsMax int64
	// QueuedEventsMax bounds the events waiting in the scheduler's queue at
	// once: every message in flight and every timer. Default
	// DefaultQueuedEventsMax.
	QueuedEventsMax int
	// MessagesInFlightMax bounds the raft messages sent and not yet
	// delivered or dropped. Default DefaultMessagesInFlightMax.
	MessagesInFlightMax int
	// HeapBytesMax bounds the process's heap in use (live and not yet
	// swept objects, runtime/metrics /memory/classes/heap/objects:bytes),
	// sampled every limitSampleEvents events. Default DefaultHeapBytesMax.
	HeapBytesMax uint64
	// WallTimeMax bounds the wall-clock time of the simulation, checked
	// with the heap (the linearizability search has its own guard).
	// Default DefaultWallTimePerVirtualSecondMax per virtual second of the
	// run: a run may not be slower than real time, where healthy ones are
	// 50 to 150 times faster. It is the only wall-clock bound of a run, and
	// never decides a healthy seed's verdict.
	WallTimeMax time.Duration
}

// Default limits, each far above the peaks of a 200-seed sweep of 60
// virtual seconds (docs/simulation.md).
const (
	DefaultEventsPerVirtualSecondMax   = 20_000
	DefaultQueuedEventsMax             = 10_000
	DefaultMessagesInFlightMax         = 2_000
	DefaultHeapBytesMax                = 1 << 30
	DefaultWallTimePerVirtualSecondMax = time.Second
)

// checksBoundMicros bounds the virtual time the end-of-run checks take
// after the run's duration: liveness, the final read, convergence.
const checksBoundMicros = livenessBoundMicros + requestTimeoutMicros + convergeBoundMicros

// limitSampleEvents is how often, in events, the run samples its heap and
// wall time: reading runtime/metrics costs about a microsecond, an event
// tens.
const limitSampleEvents = 4096

// WithDefaults returns the limits a run of durationMicros applies: l with
// its zero fields set to the defaults.
func (l Limits) WithDefaults(durationMicros int64) Limits {
	l.ensureDefaults(durationMicros)
	return l
}

// ensureDefaults fills zero fields with the defaults for a run of
// durationMicros.
func (l *Limits) ensureDefaults(durationMicros int64) {
	virtualSeconds := (durationMicros + checksBoundMicros + second - 1) / second
	if l.EventsMax == 0 {
		l.EventsMax = DefaultEventsPerVirtualSecondMax * virtualSeconds
	}
	if l.QueuedEventsMax == 0 {
		l.QueuedEventsMax = DefaultQueuedEventsMax
	}
	if l.MessagesInFlightMax == 0 {
		l.MessagesInFlightMax = DefaultMessagesInFlightMax
	}
	if l.HeapBytesMax == 0 {
		l.HeapBytesMax = DefaultHeapBytesMax
	}
	if l.WallTimeMax == 0 {
		l.WallTimeMax = DefaultWallTimePerVirtualSecondMax * time.Duration(virtualSeconds)
	}
}

// Usage is what a run used of each limited quantity: the total of events,
// the peaks of the others.
type Usage struct {
	Events               int64         `json:"events"`
	QueuedEventsPeak     int           `json:"queued_events_peak"`
	MessagesInFlightPeak int           `json:"messages_in_flight_peak"`
	HeapBytesPeak        uint64        `json:"heap_bytes_peak"`
	WallTime             time.Duration `json:"wall_ns"`
	// LinearizabilityCheck is the wall time of porcupine's search, and
	// LinearizabilitySteps the model steps it took, which its own budget
	// bounds (lin.SearchStepsPerOperation).
	LinearizabilityCheck time.Duration `json:"linearizability_check_ns"`
	LinearizabilitySteps int64         `json:"linearizability_steps"`
}

// limiter counts a run's use of its limits and fails the run at the first
// one exceeded.
type limiter struct {
	limits Limits
	usage  Usage
	start  time.Time
	sample []metrics.Sample
}

const heapInUseMetric = "/memory/classes/heap/objects:bytes"

func newLimiter(limits Limits, durationMicros int64) *limiter {
	limits.ensureDefaults(durationMicros)
	return &limiter{limits: limits, start: time.Now(), sample: []metrics.Sample{{Name: heapInUseMetric}}}
}

// afterEvent accounts one executed event, with the queue and the network
// as it left them, and returns the exceeded limit's description, or "".
func (l *limiter) afterEvent(queuedEvents, messagesInFlight int) string {
	u := &l.usage
	u.Events++
	u.QueuedEventsPeak = max(u.QueuedEventsPeak, queuedEvents)
	u.MessagesInFlightPeak = max(u.MessagesInFlightPeak, messagesInFlight)
	switch {
	case u.Events > l.limits.EventsMax:
		return fmt.Sprintf("events executed: more than %d", l.limits.EventsMax)
	case queuedEvents > l.limits.QueuedEventsMax:
		return fmt.Sprintf("events queued: %d, more than %d", queuedEvents, l.limits.QueuedEventsMax)
	case messagesInFlight > l.limits.MessagesInFlightMax:
		return fmt.Sprintf("messages in flight: %d, more than %d", messagesInFlight, l.limits.MessagesInFlightMax)
	}
	if u.Events%limitSampleEvents == 1 {
		return l.sampleHeapAndWallTime()
	}
	return ""
}

// sampleHeapAndWallTime reads the heap in use and the wall time so far.
func (l *limiter) sampleHeapAndWallTime() string {
	metrics.Read(l.sample)
	heap := l.sample[0].Value.Uint64()
	if heap > l.limits.HeapBytesMax {
		// The sample counts garbage not yet collected, from this run or an
		// earlier one in the same worker; only what a collection leaves
		// counts against the limit. (A seed that passed alone failed here
		// in a 1,000-seed sweep.)
		runtime.GC()
		metrics.Read(l.sample)
		heap = l.sample[0].Value.Uint64()
	}
	l.usage.HeapBytesPeak = max(l.usage.HeapBytesPeak, heap)
	l.usage.WallTime = time.Since(l.start)
	switch {
	case heap > l.limits.HeapBytesMax:
		return fmt.Sprintf("heap in use: %.1f MiB, more than %.1f MiB", float64(heap)/(1<<20), float64(l.limits.HeapBytesMax)/(1<<20))
	case l.usage.WallTime > l.limits.WallTimeMax:
		return fmt.Sprintf("wall time: %v, more than %v", l.usage.WallTime.Round(time.Millisecond), l.limits.WallTimeMax)
	}
	return ""
}

// finish takes the last sample, for the run's Usage.
func (l *limiter) finish() Usage {
	l.sampleHeapAndWallTime()
	return l.usage
}
