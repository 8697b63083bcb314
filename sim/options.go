package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/cairn-db/cairn/node"
)

// Options configures one run. Fields left zero are drawn from the seed.
type Options struct {
	Seed uint64
	// DurationMicros is the virtual time clients and faults are active.
	// Default 60 s. Healing and the final checks run after it.
	DurationMicros int64
	// Members is the cluster size: 3 or 5, drawn from the seed when 0.
	Members int
	// Clients is the number of concurrent clients; drawn (3 to 8) when 0.
	Clients int
	// NoFaults turns the nemesis off.
	NoFaults bool
	// Faults restricts the nemesis to these kinds; empty means all.
	Faults []FaultKind
	// Auth runs the auth workload (auth.go): users, roles and
	// permissions changing under load, clients holding tokens; every
	// other client acts as the root user.
	Auth bool
	// AuthToken is the auth workload's token kind (authtoken.go): simple,
	// jwt-HS256 or jwt-EdDSA; drawn from the seed when empty.
	AuthToken string
	// Knobs plant bugs in every member (planted-bug tests).
	Knobs node.TestingKnobs
	// Trace, if set, receives the readable trace as the run goes.
	Trace io.Writer
	// KeepTrace keeps the whole trace in Result.Trace.
	KeepTrace bool
	// Limits bound the run's events, queue, messages, heap and wall time;
	// zero fields take the defaults (limits.go).
	Limits Limits
	// MemTableBytes is the members' Pebble memtable size. When 0, a third
	// of the seeds draw small ones (64–256 KiB, flushed by Pebble when
	// full) and the rest 256 MiB (flushed only when the simulator asks).
	MemTableBytes int64
	// LogSegmentBytes is the size of the members' raft log segments. When
	// 0, half the seeds draw small ones (4–256 KiB) and the rest take the
	// node's default.
	LogSegmentBytes int64

	// Planted bugs of the simulator's own clients, for tests that prove the
	// watch and lease checks can fail: a watcher loses one event; lease
	// keep-alives are answered by whichever member gets them (a follower
	// "renews" without the leader); the lock holder writes the fenced key
	// without the fence, and goes on writing after it let its lease go.
	plantDropWatchEvent, plantFollowerKeepAlive, plantUnfencedLock bool
}

// Virtual time constants, in microseconds.
const (
	millisecond = int64(1000)
	second      = 1000 * millisecond

	tickMicros            = 100 * millisecond
	electionTicks         = 10
	requestTimeoutMicros  = 3 * second
	livenessBoundMicros   = 20 * electionTicks * tickMicros
	convergeBoundMicros   = 30 * second
	defaultDurationMicros = 60 * second
)

// resolve fills zero fields from the seed's PRNG and returns the PRNG.
func (o *Options) resolve() *rand.Rand {
	rng := rand.New(rand.NewPCG(o.Seed, 0x63616972_6e73696d)) // "cairnsim"
	if o.DurationMicros == 0 {
		o.DurationMicros = defaultDurationMicros
	}
	if o.Members == 0 {
		o.Members = 3 + 2*rng.IntN(2)
	}
	if o.Clients == 0 {
		o.Clients = 3 + rng.IntN(6)
	}
	if o.Auth && o.AuthToken == "" {
		o.AuthToken = drawAuthToken(o.Seed)
	}
	return rng
}

func (o Options) String() string {
	s := fmt.Sprintf("seed=%d members=%d clients=%d duration=%ds faults=%v knobs=%+v",
		o.Seed, o.Members, o.Clients, o.DurationMicros/second, !o.NoFaults, o.Knobs)
	if o.Auth {
		s += " auth=true auth-token=" + o.AuthToken
	}
	return s
}

// plantedBugs are the node's planted bugs by their -plant name.
var plantedBugs = map[string]node.TestingKnobs{
	"ack-before-durable":           {AckBeforeDurable: true},
	"read-without-readindex":       {ReadWithoutReadIndex: true},
	"skip-applied-index":           {SkipAppliedIndex: true},
	"cut-log-before-switch":        {CutLogBeforeSwitch: true},
	"truncate-before-state-flush":  {TruncateLogBeforeStateFlush: true},
	"read-before-applied":          {ReadBeforeApplied: true},
	"keep-alive-without-readindex": {KeepAliveWithoutReadIndex: true},
	"read-index-without-heartbeat": {ReadIndexWithoutHeartbeat: true},
	"serve-local-stale-view":       {ServeLocalStaleView: true},
	"lease-time-from-ticks":        {LeaseTimeFromTicks: true},
	"watch-skips-handover-event":   {WatchSkipsHandoverEvent: true},
	"watch-resync-forgets-watcher": {WatchResyncForgetsWatcher: true},
	"compact-drops-newest-version": {CompactDropsNewestVersion: true},
	"read-cache-keeps-deleted":     {ReadCacheKeepsDeleted: true},
	"range-stream-unpinned":        {RangeStreamUnpinned: true},
	"lease-checkpoint-ignored":     {LeaseCheckpointIgnoredAtPromotion: true},
	"skip-apply-auth-check":        {SkipApplyAuthCheck: true},
	// Rare in a sweep (about one seed in 50-100 with -faults
	// crash,isolate-leader,slow-disk: a follower must crash between its
	// early acknowledgement and its write); node's
	// TestFollowerAcknowledgesOnlyDurableEntries is its test.
	"follower-sends-ahead":  {FollowerSendsAhead: true},
	"corrupt-applied-value": {CorruptAppliedValue: true},
}

// PlantedBug returns the knobs that plant the bug of that name ("" plants
// none).
func PlantedBug(name string) (node.TestingKnobs, error) {
	if name == "" {
		return node.TestingKnobs{}, nil
	}
	knobs, ok := plantedBugs[name]
	if !ok {
		return node.TestingKnobs{}, fmt.Errorf("unknown planted bug %q (known: %s)", name, PlantedBugNames())
	}
	return knobs, nil
}

// PlantedBugNames lists the planted bugs' names, comma-separated.
func PlantedBugNames() string {
	names := make([]string, 0, len(plantedBugs))
	for name := range plantedBugs {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
