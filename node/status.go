package node

import (
	"sync"

	"go.etcd.io/raft/v3"
)

// statusCell publishes Status to other goroutines.
type statusCell struct {
	mu sync.Mutex
	// s is guarded by mu.
	s Status
}

func (c *statusCell) load() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// setHard replaces everything but the soft state (leader and role), which
// raft reports separately.
func (c *statusCell) setHard(s Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Leader, s.IsLeader = c.s.Leader, c.s.IsLeader
	c.s = s
}

func (c *statusCell) setSoft(ss *raft.SoftState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Leader = ss.Lead
	c.s.IsLeader = ss.RaftState == raft.StateLeader
}
