package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Members are kept next to the applied index, one key each:
//
//	am <id:8 BE> → membershippb.Member
//
// They change only by applying entries — configuration changes, whose
// context carries the member, and ClusterMemberAttrSet requests, by which a
// member publishes its name and client URLs — so every member agrees on
// them at every applied index, and a snapshot carries them.
var memberPrefix = []byte("am")

func memberKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clone(memberPrefix), id)
}

// memberList is the member metadata as of the applied index. The driver's
// loop writes it; any goroutine reads it. Each change publishes a new map
// (changes are rare), so a reader never waits and never sees one half
// written; published maps and their members are never modified.
type memberList struct {
	p atomic.Pointer[map[uint64]*membershippb.Member]
}

func loadMembers(db *pebble.DB) (map[uint64]*membershippb.Member, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: memberPrefix, UpperBound: []byte("an")})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	members := map[uint64]*membershippb.Member{}
	for ok := it.First(); ok; ok = it.Next() {
		m := &membershippb.Member{}
		if err := unmarshal(it.Value(), m); err != nil {
			return nil, err
		}
		members[m.GetID()] = m
	}
	return members, it.Error()
}

func (l *memberList) set(members map[uint64]*membershippb.Member) {
	l.p.Store(&members)
}

func (l *memberList) current() map[uint64]*membershippb.Member {
	if m := l.p.Load(); m != nil {
		return *m
	}
	return nil
}

// list returns copies, sorted by ID.
func (l *memberList) list() []*membershippb.Member {
	byID := l.current()
	out := make([]*membershippb.Member, 0, len(byID))
	for _, id := range sortedIDs(byID) {
		out = append(out, proto.Clone(byID[id]).(*membershippb.Member))
	}
	return out
}

func sortedIDs(m map[uint64]*membershippb.Member) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// get returns a copy of one member.
func (l *memberList) get(id uint64) (*membershippb.Member, bool) {
	m, ok := l.current()[id]
	if !ok {
		return nil, false
	}
	return proto.Clone(m).(*membershippb.Member), true
}

// put stages a member into b and the list.
func (l *memberList) put(b *pebble.Batch, m *membershippb.Member) error {
	v, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("node: marshal member %x: %v", m.GetID(), err))
	}
	if err := b.Set(memberKey(m.GetID()), v, nil); err != nil {
		return err
	}
	next := maps.Clone(l.current())
	if next == nil {
		next = map[uint64]*membershippb.Member{}
	}
	next[m.GetID()] = proto.Clone(m).(*membershippb.Member)
	l.set(next)
	return nil
}

func (l *memberList) remove(b *pebble.Batch, id uint64) error {
	if err := b.Delete(memberKey(id), nil); err != nil {
		return err
	}
	next := maps.Clone(l.current())
	delete(next, id)
	l.set(next)
	return nil
}

// Members returns the cluster's members as of the applied index, sorted by
// ID; safe for concurrent use.
func (n *Node) Members() []*membershippb.Member { return n.members.list() }

// Member returns one member; safe for concurrent use.
func (n *Node) Member(id uint64) (*membershippb.Member, bool) { return n.members.get(id) }

// applyConfChange applies a configuration change to raft, the stored
// ConfState and the member list, all in b.
func (n *Node) applyConfChange(b *pebble.Batch, cc raftpb.ConfChangeI, out *Output) error {
	if err := n.log.SetConfState(b, n.raw.ApplyConfChange(cc)); err != nil {
		return err
	}
	v2 := cc.AsV2()
	for _, change := range v2.GetChanges() {
		if err := n.applyMemberChange(b, change, v2.GetContext()); err != nil {
			return err
		}
	}
	out.MembershipChanged = true
	if v1, ok := cc.(*raftpb.ConfChange); ok && v1.GetId() != 0 {
		n.memberChangeApplied(v1.GetId(), out)
	}
	return nil
}

func (n *Node) applyMemberChange(b *pebble.Batch, change *raftpb.ConfChangeSingle, context []byte) error {
	id := change.GetNodeId()
	if change.GetType() == raftpb.ConfChangeRemoveNode {
		if id == n.cfg.ID {
			n.removed = true
		}
		return n.members.remove(b, id)
	}
	m, ok := n.members.get(id)
	if !ok {
		m = &membershippb.Member{ID: id}
	}
	if len(context) > 0 {
		if err := mergeContext(m, context); err != nil {
			return err
		}
	}
	if m.RaftAttributes == nil {
		m.RaftAttributes = &membershippb.RaftAttributes{}
	}
	switch change.GetType() {
	case raftpb.ConfChangeAddNode:
		m.RaftAttributes.IsLearner = false
	case raftpb.ConfChangeAddLearnerNode:
		m.RaftAttributes.IsLearner = true
	}
	return n.members.put(b, m)
}

// mergeContext takes the peer URLs a configuration change carries.
func mergeContext(m *membershippb.Member, context []byte) error {
	c := &membershippb.Member{}
	if err := unmarshal(context, c); err != nil {
		return err
	}
	if c.GetID() != 0 && c.GetID() != m.GetID() {
		return fmt.Errorf("configuration change for %x carries member %x: %w", m.GetID(), c.GetID(), errCorrupt)
	}
	if urls := c.GetRaftAttributes().GetPeerUrls(); len(urls) > 0 {
		if m.RaftAttributes == nil {
			m.RaftAttributes = &membershippb.RaftAttributes{}
		}
		m.RaftAttributes.PeerUrls = urls
	}
	if c.MemberAttributes != nil && m.MemberAttributes == nil {
		m.MemberAttributes = c.MemberAttributes
	}
	return nil
}

// applyMemberAttrs records the name and client URLs a member published.
func (n *Node) applyMemberAttrs(b *pebble.Batch, req *membershippb.ClusterMemberAttrSetRequest, out *Output) error {
	m, ok := n.members.get(req.GetMember_ID())
	if !ok {
		return nil // published by a member removed since; nothing to record
	}
	m.MemberAttributes = req.GetMemberAttributes()
	out.MembershipChanged = true
	return n.members.put(b, m)
}

// ErrRemoved is returned by Process once this member has been removed from
// the cluster: it must stop.
var ErrRemoved = errors.New("node: the member has been permanently removed from the cluster")

// bootstrapMembers stages the founding members' metadata.
func (n *Node) bootstrapMembers(b *pebble.Batch) error {
	for _, m := range n.cfg.InitialMembers {
		if err := n.members.put(b, m); err != nil {
			return err
		}
	}
	return nil
}
