package node

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/cairn-db/cairn/node/lease"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Lease checkpoints (etcd's LeaseCheckpoint feature gate, on when
// Config.LeaseCheckpointInterval is positive): the leader proposes the
// remaining TTL of its leases every interval (node/lease/checkpoint.go
// decides which), every member applies them into its lessor and its lease
// records, and a member promoted later starts each lease from its last
// checkpoint, not its full TTL. A checkpoint survives a restart: etcd
// 3.7.3 persists them whenever the cluster version is 3.6 or later, that
// is always, whatever LeaseCheckpointPersist says.
//
// A keep-alive must not be undone by a checkpoint taken before it: the
// leader clears a lease's checkpoint through raft before it renews a lease
// that has one applied or in flight, and renews when the clearing applies;
// and it proposes no checkpoint of a lease while a clearing of it is in
// flight.

// Bounds of checkpointing.
const (
	// leaseCheckpointBatchMax bounds the checkpoints of one proposal, and
	// so of one tick (etcd batches up to 1000).
	leaseCheckpointBatchMax = 1000
	// clearingKeepAlivesMax bounds the keep-alives waiting for their
	// lease's checkpoint to be cleared; beyond it a keep-alive fails with
	// "etcdserver: too many requests".
	clearingKeepAlivesMax = 4096
)

// leaseCheckpoints is the leader's state of checkpointing.
type leaseCheckpoints struct {
	// clearing are keep-alives waiting for the clearing of their lease's
	// checkpoint, by the request ID the clearing was proposed under.
	// Bound: clearingKeepAlivesMax.
	clearing map[uint64]*pb.LeaseKeepAliveRequest
	// inFlight counts the checkpoint proposals of each lease this leader
	// made that have not applied. A proposal lost with the leadership
	// leaves its count until the lessor is demoted, which resets all.
	// Bound: one key per lease.
	inFlight map[int64]int
}

// reset forgets the leader's checkpointing state at demotion; the
// keep-alives waiting are completed with ErrNotLeader (the driver asks the
// new leader).
func (c *leaseCheckpoints) reset(n *Node) {
	for _, id := range sortedClearingIDs(c.clearing) {
		n.completed = append(n.completed, Completion{ID: id, Err: ErrNotLeader})
	}
	c.clearing, c.inFlight = nil, nil
}

func sortedClearingIDs(m map[uint64]*pb.LeaseKeepAliveRequest) []uint64 {
	return slices.Sorted(maps.Keys(m))
}

// proposeCheckpoint proposes checkpoints under request ID id, on the
// leader only, and reports whether raft took the proposal. Unlike a
// client's write it is never parked to be proposed again: a checkpoint
// forwarded later by a deposed leader could apply after a keep-alive and
// cut the renewed lease back; the next leader takes its own.
func (n *Node) proposeCheckpoint(id uint64, cps []*pb.LeaseCheckpoint) bool {
	if !n.isLeader() {
		return false
	}
	if err := n.proposeNow(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: id},
		LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: cps}}); err != nil {
		return false
	}
	if n.checkpoints.inFlight == nil {
		n.checkpoints.inFlight = map[int64]int{}
	}
	for _, cp := range cps {
		n.checkpoints.inFlight[cp.GetID()]++
	}
	return true
}

// proposeDueCheckpoints proposes, on the primary, the checkpoints due now
// (leaseTick).
func (n *Node) proposeDueCheckpoints() {
	var cps []*pb.LeaseCheckpoint
	for _, cp := range n.lessor.DueCheckpoints(n.now(), leaseCheckpointBatchMax) {
		if n.checkpoints.inFlight[cp.ID] > 0 {
			continue // the applying proposal schedules the next one
		}
		cps = append(cps, &pb.LeaseCheckpoint{ID: cp.ID, Remaining_TTL: cp.RemainingSeconds})
	}
	if len(cps) > 0 {
		n.proposeCheckpoint(n.ids.next(), cps) // if raft drops it, the next leader checkpoints
	}
}

// clearBeforeRenew starts clearing the checkpoint of a keep-alive's lease,
// if it has one applied or in flight, and reports whether it did: the
// keep-alive (request id) then completes when the clearing applies.
func (n *Node) clearBeforeRenew(id uint64, r *pb.LeaseKeepAliveRequest) bool {
	if n.cfg.LeaseCheckpointInterval <= 0 || !n.isLeader() || !n.lessor.IsPrimary() ||
		(n.lessor.RemainingSeconds(r.GetID()) == 0 && n.checkpoints.inFlight[r.GetID()] == 0) {
		return false
	}
	if len(n.checkpoints.clearing) >= clearingKeepAlivesMax {
		n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCRequestTooManyRequests})
		return true
	}
	if !n.proposeCheckpoint(id, []*pb.LeaseCheckpoint{{ID: r.GetID()}}) {
		n.completed = append(n.completed, Completion{ID: id, Err: ErrNotLeader})
		return true
	}
	if n.checkpoints.clearing == nil {
		n.checkpoints.clearing = map[uint64]*pb.LeaseKeepAliveRequest{}
	}
	n.checkpoints.clearing[id] = r
	return true
}

// applyLeaseCheckpoint applies checkpoints (request ID id): each lease's
// remaining TTL goes into the lessor and its record. A keep-alive waiting
// for this clearing renews now. Its error is a failure of the member.
func (n *Node) applyLeaseCheckpoint(b *pebble.Batch, id uint64, req *pb.LeaseCheckpointRequest, out *Output) error {
	now := n.now()
	for _, cp := range req.GetCheckpoints() {
		if c := n.checkpoints.inFlight[cp.GetID()]; c > 1 {
			n.checkpoints.inFlight[cp.GetID()] = c - 1
		} else {
			delete(n.checkpoints.inFlight, cp.GetID())
		}
		if !n.lessor.Checkpoint(cp.GetID(), cp.GetRemaining_TTL(), now) {
			continue // revoked meanwhile
		}
		l, _ := n.lessor.Lookup(cp.GetID())
		if err := b.Set(leaseRecordKey(cp.GetID()), encodeLeaseRecord(l.TTLSeconds, cp.GetRemaining_TTL()), nil); err != nil {
			return fmt.Errorf("checkpoint lease %x: %w", cp.GetID(), err)
		}
	}
	if r, ok := n.checkpoints.clearing[id]; ok {
		delete(n.checkpoints.clearing, id)
		c := Completion{ID: id}
		c.Response, c.Err = n.keepAlive(r)
		out.Done = append(out.Done, c)
	}
	return nil
}

// encodeLeaseRecord is a lease record's value: the granted TTL, and, once
// checkpointed, the remaining TTL (seconds, 8 bytes big-endian each).
func encodeLeaseRecord(ttlSeconds, remainingSeconds int64) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(ttlSeconds))
	if remainingSeconds == 0 {
		return v
	}
	return binary.BigEndian.AppendUint64(v, uint64(remainingSeconds))
}

// recoverLeaseRecord adds a stored lease to the lessor.
func recoverLeaseRecord(l *lease.Lessor, id int64, v []byte) error {
	if len(v) != 8 && len(v) != 16 {
		return fmt.Errorf("lease record of %x = %x: %w", id, v, errCorrupt)
	}
	l.Recover(id, int64(binary.BigEndian.Uint64(v)))
	if len(v) == 16 {
		l.Checkpoint(id, int64(binary.BigEndian.Uint64(v[8:])), tickEpoch)
	}
	return nil
}

// LeasePrimary reports whether the member's lessor tracks expiries (it
// leads and has applied its first entry). For the simulator's checks;
// call it only from the driver's goroutine.
func (n *Node) LeasePrimary() bool { return n.lessor.IsPrimary() }

// LeaseCheckpointed returns a lease's applied checkpoint (0: none) and, on
// the primary, the whole seconds it has left; ok is false for an unknown
// lease. For the simulator's checks; call it only from the driver's
// goroutine.
func (n *Node) LeaseCheckpointed(id int64) (checkpointSeconds, leftSeconds int64, ok bool) {
	if !n.lessor.Exists(id) {
		return 0, 0, false
	}
	if n.lessor.IsPrimary() {
		_, leftSeconds, _ = n.lessor.TimeToLive(id, n.now())
	}
	return n.lessor.RemainingSeconds(id), leftSeconds, true
}
