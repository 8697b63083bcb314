package node

import "go.etcd.io/raft/v3"

// A client may ask that a stream be served only while the member has a
// leader (etcd's `hasleader` metadata, clientv3.WithRequireLeader, which
// Kubernetes sets on every watch). The server refuses such a stream at
// once when the member knows no leader, and cancels the open ones once the
// member has known none for leaderlessElectionTimeoutsMax election
// timeouts in a row, as etcd does: a watcher on a member cut off from its
// quorum learns it and moves on instead of waiting in silence. Whether
// that moment has come is decided here, on the node's ticks, so the
// simulator drives the same decision the server acts on.

// leaderlessElectionTimeoutsMax is how many election timeouts in a row
// without a leader make LeaderLost true (etcd's maxNoLeaderCnt).
const leaderlessElectionTimeoutsMax = 3

// trackLeader counts the ticks since the member last knew a leader. Tick
// only.
func (n *Node) trackLeader() {
	if n.raw.BasicStatus().Lead == raft.None {
		n.leaderlessTicks++
	} else {
		n.leaderlessTicks = 0
	}
}

// LeaderLost reports whether the member has known no leader for
// leaderlessElectionTimeoutsMax election timeouts in a row: the streams
// that require a leader must be canceled with `etcdserver: no leader`.
// Driver's loop only, like Tick.
func (n *Node) LeaderLost() bool {
	return n.leaderlessTicks >= leaderlessElectionTimeoutsMax*n.cfg.ElectionTicks
}
