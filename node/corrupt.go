package node

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cairn-db/cairn/node/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// Corruption checks compare the members' HashKV at one revision and raise
// the replicated CORRUPT alarm when they differ, as etcd's periodic
// (--corrupt-check-time) and compaction-hash (--compact-hash-check-time)
// checks do. etcd's leader asks each peer for its hash over HTTP and
// decides from whatever answers it got; here the question and the answers
// travel through raft, so the whole check is a function of the log:
//
//  1. The leader, every CorruptCheckTicks (or CompactHashCheckTicks, when a
//     compaction applied since the last one), proposes a check entry
//     naming a revision: its latest one (periodic) or the compacted one
//     (compaction).
//  2. Every member that applies the check asks its driver, through
//     Output.HashRequests, to hash its keyspace at that revision. The hash
//     is a full scan, so the driver computes it off the loop (the
//     simulator at once) and hands it to ReportHash, which proposes a
//     report entry.
//  3. Every member records the reports as they apply. The member that
//     leads at the first tick after the last member's report applied (or
//     after the check timed out) decides as etcd's leader does and
//     proposes the CORRUPT alarms.
//
// Reports compare only at an equal compacted revision: a member that
// hashed after a later compaction applied covers less history.
//
// The check and report entries are not etcd requests: their data starts
// with a zero byte, which no encoded InternalRaftRequest starts with (it
// would be field number 0), and they change no revision.

// hashCheckKind says which of etcd's checks a check entry runs, and so
// which members a mismatch marks.
type hashCheckKind uint8

const (
	// hashCheckPeriodic is --corrupt-check-time: the leader compares each
	// member's hash with its own and marks the first member (by ID) that
	// differs, as etcd's PeriodicCheck does, even when the leader is the
	// odd one.
	hashCheckPeriodic hashCheckKind = 1
	// hashCheckCompaction is --compact-hash-check-time: the hashes at the
	// compacted revision are grouped, and the members outside a group of
	// a quorum are marked; with no such group, member 0 (the whole
	// cluster), as etcd's CompactHashCheck does.
	hashCheckCompaction hashCheckKind = 2
)

func (k hashCheckKind) String() string {
	if k == hashCheckCompaction {
		return "compaction hash check"
	}
	return "periodic corruption check"
}

// Encoded check and report entries.
const (
	hashEntryMarker     = 0x00
	hashEntryCheck      = 0x01
	hashEntryReport     = 0x02
	hashCheckEntryBytes = 2 + 1 + 8
	// hashReportEntryBytes: check index, member, revision, compacted
	// revision, hash.
	hashReportEntryBytes = 2 + 8 + 8 + 8 + 8 + 4
)

const (
	// hashChecksMax bounds the checks a member tracks at once; an older
	// one is dropped for a newer one (its decision is then skipped).
	hashChecksMax = 4
)

// HashRequest asks the driver to hash this member's keyspace at Revision
// (Node.HashKV, safe off the loop) and to hand the answer to ReportHash.
type HashRequest struct {
	// CheckIndex is the raft index of the check entry: the check's ID.
	CheckIndex uint64
	Revision   int64
}

// hashReport is one member's answer to a check.
type hashReport struct {
	member     uint64
	compactRev int64
	hash       uint32
}

// hashCheck is a check this member applied, with the reports applied so
// far, sorted by member.
type hashCheck struct {
	index         uint64
	kind          hashCheckKind
	revision      int64
	appliedAtTick uint64
	reports       []hashReport
	decided       bool
}

// corruptionChecks is the member's part in the checks. Only the loop
// touches it.
type corruptionChecks struct {
	// periodicAtTick and compactionAtTick are when this member, leading,
	// last considered proposing each kind of check.
	periodicAtTick, compactionAtTick uint64
	// compactRevChecked is the compacted revision of the last compaction
	// check proposed here.
	compactRevChecked int64
	// checks are the checks applied and not yet expired, oldest first.
	// Invariant: len(checks) <= hashChecksMax.
	checks []*hashCheck
	// wanted are the hashes the driver is to compute, handed out by the
	// next Process. Invariant: len(wanted) <= hashChecksMax.
	wanted []HashRequest
	// decided counts the checks this member decided as leader.
	decided uint64
}

func encodeHashCheck(kind hashCheckKind, rev int64) []byte {
	b := []byte{hashEntryMarker, hashEntryCheck, byte(kind)}
	return binary.BigEndian.AppendUint64(b, uint64(rev))
}

func encodeHashReport(checkIndex uint64, r hashReport, rev int64) []byte {
	b := []byte{hashEntryMarker, hashEntryReport}
	b = binary.BigEndian.AppendUint64(b, checkIndex)
	b = binary.BigEndian.AppendUint64(b, r.member)
	b = binary.BigEndian.AppendUint64(b, uint64(rev))
	b = binary.BigEndian.AppendUint64(b, uint64(r.compactRev))
	return binary.BigEndian.AppendUint32(b, r.hash)
}

// isHashEntry says whether an entry's data is a check or a report.
func isHashEntry(data []byte) bool { return len(data) > 0 && data[0] == hashEntryMarker }

// corruptionCheckTick runs once a tick: it settles the checks applied
// and, on the leader, proposes the checks that are due.
func (n *Node) corruptionCheckTick() {
	n.settleHashChecks()
	if !n.isLeader() {
		return
	}
	c := &n.corruption
	if every := uint64(n.cfg.CorruptCheckTicks); every > 0 && n.ticks-c.periodicAtTick >= every {
		c.periodicAtTick = n.ticks
		n.proposeHashEntry(encodeHashCheck(hashCheckPeriodic, n.store.Rev()))
	}
	if every := uint64(n.cfg.CompactHashCheckTicks); every > 0 && n.ticks-c.compactionAtTick >= every {
		c.compactionAtTick = n.ticks
		if rev := n.store.CompactRev(); rev > c.compactRevChecked {
			c.compactRevChecked = rev
			n.proposeHashEntry(encodeHashCheck(hashCheckCompaction, rev))
		}
	}
}

// proposeHashEntry proposes a check or a report. Nobody waits for it: if
// it never applies, the check goes without it.
func (n *Node) proposeHashEntry(data []byte) {
	n.submit(parkedProposal{id: n.ids.next(), data: data, sinceTick: n.ticks})
}

// settleHashChecks decides, on the leader, the checks every member has
// reported on, and drops the checks older than RequestTimeoutTicks after
// the leader decided them from the reports it has, as etcd's leader goes
// on without the peers that did not answer. Decisions are taken here, on
// a tick, not while entries apply: their alarm proposals then never
// interleave with a Ready being handled.
func (n *Node) settleHashChecks() {
	c := &n.corruption
	timeout := uint64(n.cfg.RequestTimeoutTicks)
	membersCount := len(n.raftMembers())
	leader := n.isLeader()
	kept := c.checks[:0]
	for _, check := range c.checks {
		expired := n.ticks-check.appliedAtTick >= timeout
		if leader && !check.decided && (expired || len(check.reports) >= membersCount) {
			n.decideHashCheck(check)
		}
		if !expired {
			kept = append(kept, check)
		}
	}
	clear(c.checks[len(kept):])
	c.checks = kept
}

// applyHashEntry applies a check or a report entry at raft index index.
func (n *Node) applyHashEntry(index uint64, data []byte) error {
	switch {
	case len(data) == hashCheckEntryBytes && data[1] == hashEntryCheck:
		kind := hashCheckKind(data[2])
		if kind != hashCheckPeriodic && kind != hashCheckCompaction {
			return fmt.Errorf("hash check entry %d of kind %d: %w", index, kind, errCorrupt)
		}
		n.applyHashCheck(&hashCheck{index: index, kind: kind, revision: int64(binary.BigEndian.Uint64(data[3:])), appliedAtTick: n.ticks})
		return nil
	case len(data) == hashReportEntryBytes && data[1] == hashEntryReport:
		checkIndex := binary.BigEndian.Uint64(data[2:])
		r := hashReport{
			member:     binary.BigEndian.Uint64(data[10:]),
			compactRev: int64(binary.BigEndian.Uint64(data[26:])),
			hash:       binary.BigEndian.Uint32(data[34:]),
		}
		n.applyHashReport(checkIndex, int64(binary.BigEndian.Uint64(data[18:])), r)
		return nil
	}
	return fmt.Errorf("hash entry %d of %d bytes: %w", index, len(data), errCorrupt)
}

func (n *Node) applyHashCheck(check *hashCheck) {
	c := &n.corruption
	if len(c.checks) == hashChecksMax {
		c.checks = slices.Delete(c.checks, 0, 1)
	}
	c.checks = append(c.checks, check)
	if len(c.wanted) == hashChecksMax {
		c.wanted = slices.Delete(c.wanted, 0, 1)
	}
	c.wanted = append(c.wanted, HashRequest{CheckIndex: check.index, Revision: check.revision})
}

// applyHashReport records a member's report; the leader decides on its
// next tick once every member has reported (settleHashChecks).
func (n *Node) applyHashReport(checkIndex uint64, rev int64, r hashReport) {
	i := slices.IndexFunc(n.corruption.checks, func(c *hashCheck) bool { return c.index == checkIndex })
	if i < 0 {
		return // expired, or applied before this member's restart
	}
	check := n.corruption.checks[i]
	if rev != check.revision {
		panic(fmt.Sprintf("node: report of member %x hashes revision %d for check %d of revision %d", r.member, rev, checkIndex, check.revision))
	}
	if !slices.Contains(n.raftMembers(), r.member) {
		return
	}
	at, found := slices.BinarySearchFunc(check.reports, r.member, func(x hashReport, id uint64) int {
		return cmp.Compare(x.member, id)
	})
	if found {
		return // a member that re-applied the check after a crash reports twice
	}
	check.reports = slices.Insert(check.reports, at, r)
}

// raftMembers are the members in raft's configuration, voters and
// learners: those a check expects a report from (etcd asks every member).
func (n *Node) raftMembers() []uint64 {
	cs := n.log.ConfState()
	return append(slices.Clone(cs.GetVoters()), cs.GetLearners()...)
}

// takeWanted hands out the hashes to compute, for Output.HashRequests.
func (c *corruptionChecks) takeWanted() []HashRequest {
	w := c.wanted
	c.wanted = nil
	return w
}

// ReportHash hands this member's hash for a HashRequest to the check: it
// proposes the report. A failed hash (the revision was compacted
// meanwhile) reports nothing, as a peer that does not answer etcd's
// leader.
func (n *Node) ReportHash(req HashRequest, resp *pb.HashKVResponse, err error) {
	if err != nil || resp == nil {
		n.cfg.Logger.Warningf("%x cannot hash revision %d for check %d: %v", n.cfg.ID, req.Revision, req.CheckIndex, err)
		return
	}
	r := hashReport{member: n.cfg.ID, compactRev: resp.GetCompactRevision(), hash: resp.GetHash()}
	n.proposeHashEntry(encodeHashReport(req.CheckIndex, r, req.Revision))
}

// decideHashCheck decides a check from its reports, as etcd's leader
// does, and proposes the CORRUPT alarms it finds. The leader's own report
// is the reference; without it there is no decision.
func (n *Node) decideHashCheck(check *hashCheck) {
	check.decided = true
	own, ok := check.findReport(n.cfg.ID)
	if !ok {
		return
	}
	n.corruption.decided++
	var marked []uint64
	switch check.kind {
	case hashCheckPeriodic:
		marked = periodicMismatch(own, check.reports)
	case hashCheckCompaction:
		marked = compactionMismatch(own, check.reports, len(n.raftMembers()))
	}
	for _, id := range marked {
		n.cfg.Logger.Warningf("%s of revision %d (leader %x, hash %08x, compacted revision %d): member %x differs; raising CORRUPT",
			check.kind, check.revision, n.cfg.ID, own.hash, own.compactRev, id)
		n.raiseCorrupt(id)
	}
}

func (c *hashCheck) findReport(member uint64) (hashReport, bool) {
	i := slices.IndexFunc(c.reports, func(r hashReport) bool { return r.member == member })
	if i < 0 {
		return hashReport{}, false
	}
	return c.reports[i], true
}

// periodicMismatch is etcd's PeriodicCheck verdict: the first member (by
// ID) whose hash differs from the leader's at the same compacted
// revision; none if all agree.
func periodicMismatch(own hashReport, reports []hashReport) []uint64 {
	for _, r := range reports {
		if r.member != own.member && r.compactRev == own.compactRev && r.hash != own.hash {
			return []uint64{r.member}
		}
	}
	return nil
}

// compactionMismatch is etcd's CompactHashCheck verdict: the reports at
// the leader's compacted revision are grouped by hash; if they differ,
// the members outside the group of a quorum of membersCount are marked,
// or member 0 when no group has a quorum.
func compactionMismatch(own hashReport, reports []hashReport, membersCount int) []uint64 {
	groups := map[uint32][]uint64{}
	var hashes []uint32 // in order of first appearance, for a deterministic result
	for _, r := range reports {
		if r.compactRev != own.compactRev {
			continue
		}
		if _, ok := groups[r.hash]; !ok {
			hashes = append(hashes, r.hash)
		}
		groups[r.hash] = append(groups[r.hash], r.member)
	}
	if len(groups) <= 1 {
		return nil
	}
	quorum := membersCount/2 + 1
	majority := slices.IndexFunc(hashes, func(h uint32) bool { return len(groups[h]) >= quorum })
	if majority < 0 {
		return []uint64{0}
	}
	var marked []uint64
	for i, h := range hashes {
		if i != majority {
			marked = append(marked, groups[h]...)
		}
	}
	slices.Sort(marked)
	return marked
}

// raiseCorrupt proposes member id's CORRUPT alarm unless it is active.
func (n *Node) raiseCorrupt(id uint64) {
	if _, ok := n.alarms.find(id, pb.AlarmType_CORRUPT); ok {
		return
	}
	n.propose(n.ids.next(), &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_CORRUPT,
	}})
}

// InitialHashMismatch is etcd's initial corruption check, made before a
// restarted member serves: own is this member's HashKV at its latest
// revision, peers the answers of the other members to a HashKV at that
// revision (a member that did not answer is left out). A peer whose hash
// differs at the same compacted revision means this member's data is not
// the cluster's: the error is etcd's, and the member must not start.
func InitialHashMismatch(memberID uint64, own *pb.HashKVResponse, peers []*pb.HashKVResponse) error {
	mismatches := 0
	for _, p := range peers {
		if p.GetHash() != own.GetHash() && p.GetCompactRevision() == own.GetCompactRevision() {
			mismatches++
		}
	}
	if mismatches > 0 {
		return fmt.Errorf("%x found data inconsistency with peers", memberID)
	}
	return nil
}

// corruptPutEveryRevisions is how often the CorruptAppliedValue knob
// changes a put: the one that would make a multiple of it.
const corruptPutEveryRevisions = 16

// applyCorruptly applies req as the CorruptAppliedValue knob does: one put
// in corruptPutEveryRevisions is stored with another value, while its
// event (the watch feed) still carries the value proposed, as if the
// stored bytes had rotted. Only the keyspace's hash, and reads of that
// version, can tell.
func applyCorruptly(w *mvcc.Writer, req *pb.InternalRaftRequest) (proto.Message, error) {
	bad := corruptPut(req, w.Rev())
	if bad == req {
		return applyToStore(w, req)
	}
	resp, err := applyToStore(w, bad)
	if evs := w.Events(); err == nil && len(evs) > 0 {
		evs[len(evs)-1].Kv.Value = req.GetPut().GetValue()
	}
	return resp, err
}

// corruptPut is the CorruptAppliedValue knob's put: one put in
// corruptPutEveryRevisions, by the revision it makes (after rev), gets a
// value with a byte appended. The request is copied; the proposal's own
// is left alone.
func corruptPut(req *pb.InternalRaftRequest, rev int64) *pb.InternalRaftRequest {
	if req.GetPut() == nil || req.GetPut().GetIgnoreValue() || (rev+1)%corruptPutEveryRevisions != 0 {
		return req
	}
	put := &pb.PutRequest{Key: req.Put.GetKey(), Value: append(slices.Clone(req.Put.GetValue()), '!'),
		Lease: req.Put.GetLease(), PrevKv: req.Put.GetPrevKv(), IgnoreValue: req.Put.GetIgnoreValue(), IgnoreLease: req.Put.GetIgnoreLease()}
	return &pb.InternalRaftRequest{Header: req.GetHeader(), Put: put}
}
