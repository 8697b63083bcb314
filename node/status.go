package node

import (
	"slices"
	"sync/atomic"

	"go.etcd.io/raft/v3"
)

// statusCell publishes Status to other goroutines: the driver's loop
// writes it, anyone reads it, and a reader never waits.
type statusCell struct {
	p atomic.Pointer[Status]
}

func (c *statusCell) load() Status {
	if s := c.p.Load(); s != nil {
		return *s
	}
	return Status{}
}

// setHard replaces everything but the soft state (leader and role), which
// raft reports separately. Called only from the driver's loop.
func (c *statusCell) setHard(s Status) {
	old := c.load()
	s.Leader, s.IsLeader = old.Leader, old.IsLeader
	c.p.Store(&s)
}

// setSoft records raft's soft state. Called only from the driver's loop.
func (c *statusCell) setSoft(ss *raft.SoftState) {
	s := c.load()
	s.Leader = ss.Lead
	s.IsLeader = ss.RaftState == raft.StateLeader
	c.p.Store(&s)
}

func (s Status) isLearner() bool { return slices.Contains(s.Learners, s.ID) }
