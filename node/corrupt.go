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
//  1. The leader, every CorruptCheckTicks, proposes a periodic check entry
//     naming its latest revision; every CompactHashCheckTicks, a
//     compaction check entry naming the newest compacted revision whose
//     hash it kept and the whole cluster has not been checked at yet.
//  2. Every member that applies the check answers with its hash of that
//     revision: for a compaction check the hash it kept of that
//     compaction, if it has it; otherwise it asks its driver, through
//     Output.HashRequests, to hash its keyspace at the revision. The hash
//     is a full scan, so the driver computes it off the loop (the
//     simulator at once) and hands it to ReportHash. The answer is
//     proposed as a report entry.
//  3. Every member records the reports as they apply. The member that
//     leads at the first tick after the last member's report applied (or
//     after the check timed out) decides as etcd's leader does and
//     proposes the CORRUPT alarms. For a periodic check it first hashes
//     the revision a second time (etcd's leader hashes twice), and
//     decides when that hash is in.
//
// As etcd's members keep the hashes of their last compactions
// (compactionHashesMax), every member with the compaction check on hashes
// each compaction it applies, once, and keeps the hash. A compaction
// check that could not compare every member (one did not answer, or had
// compacted further) falls back to the next older kept hash, as etcd's
// does, until the whole cluster was compared at one revision, which is
// then not checked again.
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
	// member's hash with its own and marks one member, as etcd's
	// PeriodicCheck does (periodicMismatch): itself when its own two
	// hashes differ, else the first member (by ID) that is ahead of it or
	// differs, even when the leader is the odd one.
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
	// revision, hash, and the member's current revision when it hashed.
	hashReportEntryBytes = hashReportEntryBytesV1 + 8
	// hashReportEntryBytesV1 is a report without the current revision,
	// as members before it wrote them; still applied, with the current
	// revision unknown (0).
	hashReportEntryBytesV1 = 2 + 8 + 8 + 8 + 8 + 4
)

const (
	// hashChecksMax bounds the checks a member tracks at once; an older
	// one is dropped for a newer one (its decision is then skipped).
	hashChecksMax = 8
	// hashRequestsMax bounds the hashes waiting for the driver: one per
	// tracked check, its recheck, and a compaction's.
	hashRequestsMax = 2*hashChecksMax + 1
	// compactionHashesMax is how many compactions' hashes a member keeps
	// for the compaction check: etcd's hashStorageMaxSize.
	compactionHashesMax = 10
	// hashCheckKeepTimeouts is how many request timeouts a check is kept
	// after it applied: a periodic check waits for the reports, then for
	// the leader's second hash.
	hashCheckKeepTimeouts = 2
)

// HashPurpose says what a HashRequest's hash is for.
type HashPurpose uint8

const (
	// HashForReport answers a check: ReportHash proposes it as this
	// member's report.
	HashForReport HashPurpose = iota
	// HashForRecheck is the leader's second hash of a periodic check's
	// revision, taken after the reports it decides from.
	HashForRecheck
	// HashForCompaction is the hash of a compaction this member applied,
	// kept for the compaction hash check. CheckIndex is 0.
	HashForCompaction
)

// HashRequest asks the driver to hash this member's keyspace at Revision
// (Node.HashKV, safe off the loop) and to hand the answer to ReportHash.
type HashRequest struct {
	// CheckIndex is the raft index of the check entry: the check's ID.
	CheckIndex uint64
	Revision   int64
	Purpose    HashPurpose
}

// hashReport is one member's answer to a check.
type hashReport struct {
	member     uint64
	compactRev int64
	hash       uint32
	// currentRev is the member's revision when it hashed (0: unknown).
	currentRev int64
}

// keptHash is the hash of one compaction this member applied.
type keptHash struct {
	revision   int64
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
	// recheckAsked says this member, leading, asked for its second hash
	// of a periodic check's revision; no report is recorded after it, so
	// every report decided on was in before that hash. recheck is that
	// hash, once the driver answered.
	recheckAsked bool
	recheck      *hashReport
	decided      bool
}

// corruptionChecks is the member's part in the checks. Only the loop
// touches it.
type corruptionChecks struct {
	// periodicAtTick and compactionAtTick are when this member, leading,
	// last considered proposing each kind of check.
	periodicAtTick, compactionAtTick uint64
	// compactRevSeen is the compacted revision this member last saw on a
	// tick (once compactRevLooked): a higher one is a compaction to hash.
	compactRevSeen   int64
	compactRevLooked bool
	// kept are the hashes of this member's last compactions, oldest
	// first. Invariant: len(kept) <= compactionHashesMax, revisions
	// ascending.
	kept []keptHash
	// latestCompactionChecked is the newest compacted revision at which
	// this member, leading, compared the whole cluster (etcd's
	// latestRevisionChecked): older kept hashes are not checked again.
	latestCompactionChecked int64
	// checks are the checks applied and not yet expired, oldest first.
	// Invariant: len(checks) <= hashChecksMax.
	checks []*hashCheck
	// wanted are the hashes the driver is to compute, handed out by the
	// next Process. Invariant: len(wanted) <= hashRequestsMax.
	wanted []HashRequest
	// dueReports are reports of kept hashes, proposed at the next tick
	// (not while entries apply). Invariant: len(dueReports) <= hashChecksMax.
	dueReports [][]byte
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
	b = binary.BigEndian.AppendUint32(b, r.hash)
	return binary.BigEndian.AppendUint64(b, uint64(r.currentRev))
}

// isHashEntry says whether an entry's data is a check or a report.
func isHashEntry(data []byte) bool { return len(data) > 0 && data[0] == hashEntryMarker }

// corruptionCheckTick runs once a tick: it hashes a new compaction,
// proposes the reports of kept hashes, settles the checks applied and,
// on the leader, proposes the checks that are due.
func (n *Node) corruptionCheckTick() {
	n.noteCompaction()
	c := &n.corruption
	for _, data := range c.dueReports {
		n.proposeHashEntry(data)
	}
	clear(c.dueReports)
	c.dueReports = c.dueReports[:0]
	n.settleHashChecks()
	if !n.isLeader() {
		return
	}
	if every := uint64(n.cfg.CorruptCheckTicks); every > 0 && n.ticks-c.periodicAtTick >= every {
		c.periodicAtTick = n.ticks
		n.proposeHashEntry(encodeHashCheck(hashCheckPeriodic, n.store.Rev()))
	}
	if every := uint64(n.cfg.CompactHashCheckTicks); every > 0 && n.ticks-c.compactionAtTick >= every {
		c.compactionAtTick = n.ticks
		if !c.compactionCheckPending() {
			n.proposeCompactionCheck(0)
		}
	}
}

// noteCompaction asks, when the compaction check is on and a compaction
// applied since the last tick, for the hash at the compacted revision, to
// keep. The first look only notes the compacted revision: as etcd's, the
// hashes kept are of the compactions this process applied.
func (n *Node) noteCompaction() {
	c := &n.corruption
	rev := n.store.CompactRev()
	if !c.compactRevLooked {
		c.compactRevSeen, c.compactRevLooked = rev, true
		return
	}
	if rev <= c.compactRevSeen {
		return
	}
	c.compactRevSeen = rev
	if n.cfg.CompactHashCheckTicks > 0 {
		c.want(HashRequest{Revision: rev, Purpose: HashForCompaction})
	}
}

// proposeCompactionCheck proposes a compaction check at the newest kept
// hash that is newer than the last revision the cluster was checked at
// and, when below is not 0, older than below.
func (n *Node) proposeCompactionCheck(below int64) {
	c := &n.corruption
	for i := len(c.kept) - 1; i >= 0; i-- {
		rev := c.kept[i].revision
		if rev <= c.latestCompactionChecked {
			return
		}
		if below == 0 || rev < below {
			n.proposeHashEntry(encodeHashCheck(hashCheckCompaction, rev))
			return
		}
	}
}

// compactionCheckPending says a compaction check is applied and not
// decided yet: the next one waits for it.
func (c *corruptionChecks) compactionCheckPending() bool {
	return slices.ContainsFunc(c.checks, func(ch *hashCheck) bool { return ch.kind == hashCheckCompaction && !ch.decided })
}

// proposeHashEntry proposes a check or a report. Nobody waits for it: if
// it never applies, the check goes without it.
func (n *Node) proposeHashEntry(data []byte) {
	n.submit(parkedProposal{id: n.ids.next(), data: data, sinceTick: n.ticks})
}

// settleHashChecks moves, on the leader, each check on once every member
// has reported or the check timed out, as etcd's leader goes on without
// the peers that did not answer: a periodic check asks for the leader's
// second hash, and is decided when it is in; a compaction check is
// decided. Checks are dropped hashCheckKeepTimeouts request timeouts
// after they applied. Decisions are taken here, on a tick, not while
// entries apply: their alarm proposals then never interleave with a
// Ready being handled.
func (n *Node) settleHashChecks() {
	c := &n.corruption
	timeout := uint64(n.cfg.RequestTimeoutTicks)
	membersCount := len(n.raftMembers())
	leader := n.isLeader()
	kept := c.checks[:0]
	for _, check := range c.checks {
		age := n.ticks - check.appliedAtTick
		ready := age >= timeout || len(check.reports) >= membersCount
		if leader && !check.decided && ready {
			switch {
			case check.kind == hashCheckCompaction, check.recheck != nil:
				n.decideHashCheck(check)
			case !check.recheckAsked:
				check.recheckAsked = true
				c.want(HashRequest{CheckIndex: check.index, Revision: check.revision, Purpose: HashForRecheck})
			}
		}
		if age < hashCheckKeepTimeouts*timeout {
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
	case (len(data) == hashReportEntryBytes || len(data) == hashReportEntryBytesV1) && data[1] == hashEntryReport:
		checkIndex := binary.BigEndian.Uint64(data[2:])
		r := hashReport{
			member:     binary.BigEndian.Uint64(data[10:]),
			compactRev: int64(binary.BigEndian.Uint64(data[26:])),
			hash:       binary.BigEndian.Uint32(data[34:]),
		}
		if len(data) == hashReportEntryBytes {
			r.currentRev = int64(binary.BigEndian.Uint64(data[38:]))
		}
		n.applyHashReport(checkIndex, int64(binary.BigEndian.Uint64(data[18:])), r)
		return nil
	}
	return fmt.Errorf("hash entry %d of %d bytes: %w", index, len(data), errCorrupt)
}

// applyHashCheck tracks a check and prepares this member's answer: the
// kept hash of a compaction check's revision, or a hash to compute.
func (n *Node) applyHashCheck(check *hashCheck) {
	c := &n.corruption
	if len(c.checks) == hashChecksMax {
		c.checks = slices.Delete(c.checks, 0, 1)
	}
	c.checks = append(c.checks, check)
	if check.kind == hashCheckCompaction {
		if h, ok := c.keptAt(check.revision); ok {
			if len(c.dueReports) == hashChecksMax {
				c.dueReports = slices.Delete(c.dueReports, 0, 1)
			}
			r := hashReport{member: n.cfg.ID, compactRev: h.compactRev, hash: h.hash, currentRev: n.store.Rev()}
			c.dueReports = append(c.dueReports, encodeHashReport(check.index, r, check.revision))
			return
		}
	}
	c.want(HashRequest{CheckIndex: check.index, Revision: check.revision, Purpose: HashForReport})
}

// want queues a hash for the driver, dropping the oldest at the bound.
func (c *corruptionChecks) want(r HashRequest) {
	if len(c.wanted) == hashRequestsMax {
		c.wanted = slices.Delete(c.wanted, 0, 1)
	}
	c.wanted = append(c.wanted, r)
}

// keptAt is the kept hash of the compaction at rev.
func (c *corruptionChecks) keptAt(rev int64) (keptHash, bool) {
	i, found := slices.BinarySearchFunc(c.kept, rev, func(h keptHash, rev int64) int { return cmp.Compare(h.revision, rev) })
	if !found {
		return keptHash{}, false
	}
	return c.kept[i], true
}

// keep records a compaction's hash, dropping the oldest at the bound.
func (c *corruptionChecks) keep(h keptHash) {
	i, found := slices.BinarySearchFunc(c.kept, h.revision, func(k keptHash, rev int64) int { return cmp.Compare(k.revision, rev) })
	if found {
		return
	}
	c.kept = slices.Insert(c.kept, i, h)
	if len(c.kept) > compactionHashesMax {
		c.kept = slices.Delete(c.kept, 0, len(c.kept)-compactionHashesMax)
	}
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
	if check.recheckAsked || !slices.Contains(n.raftMembers(), r.member) {
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

// ReportHash hands this member's hash for a HashRequest to the checks: a
// report is proposed, a recheck recorded for the decision, a
// compaction's hash kept. A failed hash (the revision was compacted
// meanwhile) gives nothing, as a peer that does not answer etcd's
// leader; a failed recheck leaves its check undecided, as etcd's leader
// stops a check whose second hash fails.
func (n *Node) ReportHash(req HashRequest, resp *pb.HashKVResponse, err error) {
	if err != nil || resp == nil {
		n.cfg.Logger.Warningf("%x cannot hash revision %d for check %d: %v", n.cfg.ID, req.Revision, req.CheckIndex, err)
		return
	}
	r := hashReport{member: n.cfg.ID, compactRev: resp.GetCompactRevision(), hash: resp.GetHash(), currentRev: resp.GetHeader().GetRevision()}
	switch req.Purpose {
	case HashForCompaction:
		n.corruption.keep(keptHash{revision: req.Revision, compactRev: r.compactRev, hash: r.hash})
	case HashForRecheck:
		i := slices.IndexFunc(n.corruption.checks, func(c *hashCheck) bool { return c.index == req.CheckIndex })
		if i >= 0 && n.corruption.checks[i].recheck == nil {
			n.corruption.checks[i].recheck = &r
		}
	default:
		n.proposeHashEntry(encodeHashReport(req.CheckIndex, r, req.Revision))
	}
}

// decideHashCheck decides a check from its reports, as etcd's leader
// does, and proposes the CORRUPT alarms it finds. The leader's own report
// is the reference; without it there is no decision. A compaction check
// without a mismatch either records that the whole cluster was compared
// at its revision or, when some member could not be compared, falls back
// to the next older kept hash.
func (n *Node) decideHashCheck(check *hashCheck) {
	check.decided = true
	own, ok := check.findReport(n.cfg.ID)
	if !ok {
		return
	}
	n.corruption.decided++
	var marked []uint64
	var why string
	switch check.kind {
	case hashCheckPeriodic:
		marked, why = periodicMismatch(own, *check.recheck, check.reports)
	case hashCheckCompaction:
		members := len(n.raftMembers())
		marked, why = compactionMismatch(own, check.reports, members), "its hash is outside the majority's"
		if len(marked) == 0 {
			if compactionComparedAll(own, check.reports, members) {
				n.corruption.latestCompactionChecked = max(n.corruption.latestCompactionChecked, check.revision)
			} else {
				n.proposeCompactionCheck(check.revision)
			}
		}
	}
	for _, id := range marked {
		n.cfg.Logger.Warningf("%s of revision %d (leader %x, hash %08x, compacted revision %d): member %x: %s; raising CORRUPT",
			check.kind, check.revision, n.cfg.ID, own.hash, own.compactRev, id, why)
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

// periodicMismatch is etcd's PeriodicCheck verdict, one member at most:
// the leader itself when its second hash of the revision (recheck)
// differs from its first at the same compacted revision; else the first
// member (by ID) that hashed at a revision above the leader's at its
// second hash, or had compacted above the leader, or differs from the
// leader's hash at the same compacted revision. why says which.
func periodicMismatch(own, recheck hashReport, reports []hashReport) (marked []uint64, why string) {
	if recheck.compactRev == own.compactRev && recheck.hash != own.hash {
		return []uint64{own.member}, fmt.Sprintf("the leader's own second hash %08x differs from its first", recheck.hash)
	}
	for _, r := range reports {
		switch {
		case r.member == own.member:
		case r.currentRev > recheck.currentRev:
			return []uint64{r.member}, fmt.Sprintf("its revision %d is above the leader's %d", r.currentRev, recheck.currentRev)
		case r.compactRev > recheck.compactRev:
			return []uint64{r.member}, fmt.Sprintf("its compacted revision %d is above the leader's %d", r.compactRev, recheck.compactRev)
		case r.compactRev == own.compactRev && r.hash != own.hash:
			return []uint64{r.member}, fmt.Sprintf("its hash %08x differs", r.hash)
		}
	}
	return nil, ""
}

// compactionComparedAll says every one of membersCount members reported
// at the leader's compacted revision: etcd's "checked hash on whole
// cluster".
func compactionComparedAll(own hashReport, reports []hashReport, membersCount int) bool {
	compared := 0
	for _, r := range reports {
		if r.compactRev == own.compactRev {
			compared++
		}
	}
	return compared >= membersCount
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
