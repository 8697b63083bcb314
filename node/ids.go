package node

// idGenerator hands out request IDs unique across the cluster and across
// restarts: the top 16 bits are the member's, the rest a counter that starts
// at a random point, so a restarted member does not reuse IDs of requests
// that may still sit unapplied in the log.
type idGenerator struct {
	prefix uint64
	// counter is the last ID's low 48 bits.
	counter uint64
}

const idCounterMask = 1<<48 - 1

func newIDGenerator(memberID uint64, r Rand) idGenerator {
	return idGenerator{prefix: memberID << 48, counter: r.Uint64() & idCounterMask}
}

func (g *idGenerator) next() uint64 {
	g.counter = (g.counter + 1) & idCounterMask
	return g.prefix | g.counter
}
