package node

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cairn-db/cairn/node/auth"
	"github.com/cairn-db/cairn/node/mvcc"
	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// keyAppliedIndex holds the index and term of the last applied entry. It
// is written in the same batch as the state that entry produced. The term
// lets a restarted member cut its raft log at an installed snapshot's
// state (recoverLog); a state written before it was kept has only the
// index (8 bytes), and term 0.
var keyAppliedIndex = []byte("aa")

func setAppliedIndex(b *pebble.Batch, index, term uint64) error {
	v := binary.BigEndian.AppendUint64(nil, index)
	return b.Set(keyAppliedIndex, binary.BigEndian.AppendUint64(v, term), nil)
}

func loadAppliedIndex(db *pebble.DB) (index, term uint64, err error) {
	v, closer, err := db.Get(keyAppliedIndex)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("load applied index: %w", err)
	}
	defer closer.Close()
	switch len(v) {
	case 8:
		return binary.BigEndian.Uint64(v), 0, nil
	case 16:
		return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
	}
	return 0, 0, fmt.Errorf("applied index of %d bytes: %w", len(v), errCorrupt)
}

// errCorrupt marks state on disk that contradicts itself.
var errCorrupt = errors.New("node: storage corrupt")

// applyBatchEntryBytes is about what applying an entry writes beyond its
// data: keys, revisions, a version's metadata, index upkeep.
const applyBatchEntryBytes = 128

// applyBatchSizeHint is about the size of the batch that applies ents. A
// batch that starts small doubles its buffer, copying what it holds, each
// time it fills, and Pebble keeps no buffer over 1 MiB for the next one:
// with 100 KiB values those copies were 2 % of a member's CPU.
func applyBatchSizeHint(ents []*raftpb.Entry) int {
	return int(entriesDataBytes(ents)) + len(ents)*applyBatchEntryBytes
}

// apply applies committed entries in one Pebble batch with the applied
// index, then makes the new revisions visible to readers.
func (n *Node) apply(ents []*raftpb.Entry, out *Output) error {
	if len(ents) == 0 {
		return nil
	}
	b := n.db.NewIndexedBatchWithSize(applyBatchSizeHint(ents))
	defer b.Close()
	w := n.store.NewWriter(b)
	defer w.Close() // discards the writer if anything below fails
	for _, e := range ents {
		if err := n.applyEntry(b, w, e, out); err != nil {
			return fmt.Errorf("apply entry %d: %w", e.GetIndex(), err)
		}
		// Until the next sample, the quota counts what applied entries
		// may have added: a burst of writes meets the quota at once, not
		// a sampling interval later.
		n.dbSizeBytes += int64(len(e.GetData()))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	last := ents[len(ents)-1].GetIndex()
	if !n.cfg.Knobs.SkipAppliedIndex {
		if err := setAppliedIndex(b, last, ents[len(ents)-1].GetTerm()); err != nil {
			return err
		}
	}
	if err := n.timed(&n.metrics.backendCommit, func() error { return n.commitState(b, last) }); err != nil {
		return fmt.Errorf("commit applied state: %w", err)
	}
	// The auth state is published before the keyspace: a read that sees
	// the keyspace after a change of the auth state sees that change too,
	// and fails as stale (deferredRead.serve).
	if n.authChanged || n.tokensChanged {
		n.publishAuth(n.authChanged)
		n.authChanged, n.tokensChanged = false, false
	}
	w.Publish()
	out.Events = append(out.Events, w.Events()...)
	n.applied = last
	return nil
}

func (n *Node) applyEntry(b *pebble.Batch, w *mvcc.Writer, e *raftpb.Entry, out *Output) error {
	if e.GetIndex() <= n.applied {
		panic(fmt.Sprintf("node: entry %d applied twice (applied index %d)", e.GetIndex(), n.applied))
	}
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.Data) == 0 {
			n.leaderEntryApplied(e) // a new leader's empty entry
			return nil
		}
		if isHashEntry(e.Data) {
			return n.applyHashEntry(e.GetIndex(), e.Data)
		}
		return n.applyRequest(b, w, e.GetIndex(), e.Data, out)
	case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
		cc, err := unmarshalConfChange(e)
		if err != nil {
			return err
		}
		return n.applyConfChange(b, cc, out)
	}
	return fmt.Errorf("unknown entry type %v: %w", e.GetType(), errCorrupt)
}

func (n *Node) applyRequest(b *pebble.Batch, w *mvcc.Writer, index uint64, data []byte, out *Output) error {
	req := n.proposals.take(data)
	if req == nil {
		req = &pb.InternalRaftRequest{}
		if err := unmarshal(data, req); err != nil {
			return err
		}
	}
	if attrs := req.GetClusterMemberAttrSet(); attrs != nil {
		out.Done = append(out.Done, Completion{ID: req.GetHeader().GetID()})
		return n.applyMemberAttrs(b, attrs, out)
	}
	c := Completion{ID: req.GetHeader().GetID()}
	if a := req.GetAlarm(); a != nil {
		resp, err := n.applyAlarm(b, w.Rev(), a)
		if err != nil {
			return fmt.Errorf("apply alarm: %w", err)
		}
		c.Response = resp
		out.Done = append(out.Done, c)
		return nil
	}
	if d := req.GetDowngradeInfoSet(); d != nil {
		resp, err := n.applyDowngrade(b, w.Rev(), d)
		if err != nil {
			return fmt.Errorf("apply downgrade: %w", err)
		}
		c.Response = resp
		out.Done = append(out.Done, c)
		return nil
	}
	if auth.IsRequest(req) {
		return n.applyAuth(b, w, req, out)
	}
	if req.GetAuthenticate() != nil {
		n.applyAuthenticate(w, index, req, out)
		return nil
	}
	if cp := req.GetLeaseCheckpoint(); cp != nil {
		return n.applyLeaseCheckpoint(b, req.GetHeader().GetID(), cp, out)
	}
	if c.Err = n.refusedByAlarm(req); c.Err != nil {
		n.metrics.proposalsFailed.Add(1)
		out.Done = append(out.Done, c)
		return nil
	}
	reqErr, err := n.checkWrite(w, req)
	if err != nil {
		return fmt.Errorf("check permissions: %w", err)
	}
	if c.Err = reqErr; c.Err != nil {
		n.metrics.proposalsFailed.Add(1)
		out.Done = append(out.Done, c)
		return nil
	}
	if isLeaseRequest(req) {
		return n.applyLease(b, w, req, out)
	}
	if n.cfg.Knobs.CorruptAppliedValue {
		c.Response, c.Err = applyCorruptly(w, req)
	} else {
		c.Response, c.Err = applyToStore(w, req)
	}
	if c.Err == nil {
		n.completeHeader(c.Response)
		n.metrics.noteApplied(req)
	}
	if req.GetCompaction().GetPhysical() && c.Err == nil {
		n.physical = append(n.physical, c)
		out.Applied = append(out.Applied, c.ID)
		return nil
	}
	out.Done = append(out.Done, c)
	return nil
}

// applyToStore dispatches one request. Its error is the request's result,
// for the client, not a failure of the member.
func applyToStore(w *mvcc.Writer, req *pb.InternalRaftRequest) (proto.Message, error) {
	switch {
	case req.Put != nil:
		return w.Put(req.Put)
	case req.DeleteRange != nil:
		return w.DeleteRange(req.DeleteRange)
	case req.Txn != nil:
		return w.Txn(req.Txn)
	case req.Compaction != nil:
		return w.Compact(req.Compaction)
	}
	return nil, fmt.Errorf("node: request %x of a kind this member cannot apply", req.GetHeader().GetID())
}

func unmarshal(data []byte, m proto.Message) error {
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("decode %T: %v: %w", m, err, errCorrupt)
	}
	return nil
}

// pebbleLogger is the default Pebble logger: it drops Pebble's
// informational chatter (its timing is Pebble's, not the node's) and keeps
// errors, which go to the raft logger.
type pebbleLogger struct{ l raft.Logger }

func (p pebbleLogger) Infof(string, ...any)              {}
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Errorf(format, args...) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	err := fatalStorageError{fmt.Sprintf(format, args...)}
	p.l.Errorf("%v", err)
	panic(err)
}

// fatalStorageError is how Pebble's fatal errors (a failed WAL write or
// sync) leave Pebble: Fatalf must not return, or Pebble would report the
// commit as done. Process recovers it and fails the member.
type fatalStorageError struct{ msg string }

func (e fatalStorageError) Error() string { return "storage failed: " + e.msg }

func (e fatalStorageError) Unwrap() error { return ErrStorageFailed }

// ErrStorageFailed is wrapped by the error Process returns when the disk
// failed under the raft log or Pebble (a write or sync); the member must
// stop.
var ErrStorageFailed = errors.New("node: storage failed")
