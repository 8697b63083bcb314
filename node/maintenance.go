package node

import (
	"context"
	"fmt"

	"github.com/cairn-db/cairn/node/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The Maintenance service's answers that a member computes from its own
// state, outside raft: Status, Hash, HashKV, Defragment. Each is safe for
// concurrent use; it reads only state the loop has published.

const (
	// EtcdVersion is the etcd release whose API cairn serves: Status and
	// /version report it where etcd reports its own version, since clients
	// (Kubernetes among them) gate features on it.
	EtcdVersion = "3.7.3"
	// ClusterVersion is the cluster and storage version etcd EtcdVersion
	// reports: its major and minor version.
	ClusterVersion = "3.7.0"
)

// ErrNoLeader is etcd's Status error when the member knows no leader.
const errNoLeaderText = "etcdserver: no leader"

// DBSize is the applied state's size on disk in bytes, and the part of it
// that holds live data: the state database's live tables and blob files,
// plus what was written to it since its last flush. Neither counts the
// files Pebble has made obsolete: it deletes them on a goroutine of its
// own, at a time no simulator seed controls, and the quota's verdict on a
// write (which compares this size) changed with that timing from one run
// of a seed to the next. (etcd's "in use" is bbolt's pages in use; Pebble
// has no free pages, and the space of compacted versions comes back as
// Pebble compacts the tables holding them, which Defragment forces.) The
// state database has no write-ahead log: what was applied since its last
// flush is only in its memtable, and counts, as it does in etcd's bbolt
// file at once. Safe for concurrent use.
func (n *Node) DBSize() (total, inUse int64) {
	m := n.view.metrics()
	unflushed := n.stateFlushes.unflushedBytes.Load()
	obsolete := m.Table.Local.ObsoleteSize + m.BlobFiles.Local.ObsoleteSize + m.WAL.ObsoletePhysicalSize
	total = int64(m.DiskSpaceUsage()-obsolete) + unflushed
	inUse = int64(m.Table.Local.LiveSize+m.BlobFiles.Local.LiveSize) + unflushed
	return total, inUse
}

// StatusResponse is etcd's Status of this member: versions, database
// sizes and quota, raft's indexes and term, the leader, and as errors "no
// leader" and the active alarms.
func (n *Node) StatusResponse() *pb.StatusResponse {
	st := n.status.load()
	total, inUse := n.DBSize()
	resp := &pb.StatusResponse{
		Header:           &pb.ResponseHeader{ClusterId: n.cfg.ClusterID, MemberId: n.cfg.ID, Revision: n.view.Rev(), RaftTerm: st.Term},
		Version:          EtcdVersion,
		StorageVersion:   ClusterVersion,
		DbSize:           total,
		DbSizeInUse:      inUse,
		DbSizeQuota:      n.cfg.Limits.QuotaBackendBytes,
		Leader:           st.Leader,
		RaftIndex:        st.CommitIndex,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.AppliedIndex,
		IsLearner:        st.isLearner(),
		DowngradeInfo:    n.downgrade.info(),
	}
	if st.Leader == 0 {
		resp.Errors = append(resp.Errors, errNoLeaderText)
	}
	for _, a := range n.Alarms() {
		resp.Errors = append(resp.Errors, AlarmText(a))
	}
	return resp
}

// AlarmText is an alarm as etcd prints it in Status errors.
func AlarmText(a *pb.AlarmMember) string {
	return fmt.Sprintf("memberID:%d alarm:%s", a.GetMemberID(), a.GetAlarm())
}

// HashKV answers etcd's HashKV on this member: the hash of the keyspace
// at req's revision (0: the latest applied), which is the same on every
// member at the same revision, with the compacted revision (-1 if none)
// and, in the header, the member's current revision.
func (n *Node) HashKV(req *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	var h mvcc.KeyValueHash
	var err error
	n.view.With(func(s *mvcc.Store) { h, err = s.HashByRev(req.GetRevision()) })
	if err != nil {
		return nil, err
	}
	return &pb.HashKVResponse{Header: n.localHeader(h.CurrentRevision), Hash: h.Hash,
		CompactRevision: h.CompactRevision, HashRevision: h.Revision}, nil
}

// Hash answers etcd's Hash on this member: the keyspace's hash at the
// latest applied revision (etcd hashes its whole bbolt file; cairn's other
// state — members, leases, alarms — is not covered).
func (n *Node) Hash() (*pb.HashResponse, error) {
	resp, err := n.HashKV(&pb.HashKVRequest{})
	if err != nil {
		return nil, err
	}
	return &pb.HashResponse{Header: resp.GetHeader(), Hash: resp.GetHash()}, nil
}

// Defragment compacts the member's database to give back space (see
// mvcc.Store.Defragment); reads and writes go on meanwhile. A snapshot
// install waits for it to finish.
func (n *Node) Defragment(ctx context.Context) (*pb.DefragmentResponse, error) {
	var err error
	n.view.With(func(s *mvcc.Store) { err = s.Defragment(ctx) })
	if err != nil {
		return nil, err
	}
	return &pb.DefragmentResponse{Header: n.localHeader(n.view.Rev())}, nil
}

// localHeader is the header of an answer served outside the loop.
func (n *Node) localHeader(rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: n.cfg.ClusterID, MemberId: n.cfg.ID, Revision: rev, RaftTerm: n.status.load().Term}
}

// CompactionDebtBytes is Pebble's estimate of the bytes it must compact
// to bring its LSM back into shape; safe for concurrent use.
func (n *Node) CompactionDebtBytes() uint64 { return n.view.metrics().Compact.EstimatedDebt }
