package node

import (
	"unsafe"

	"github.com/cairn-db/cairn/node/raftlog"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// entryOverheadBytes is what an entry kept in memory costs beyond its
// Data: the Entry struct and the pointer to it.
const entryOverheadBytes = int(unsafe.Sizeof(raftpb.Entry{}) + unsafe.Sizeof(uintptr(0)))

// entryBytes is the memory an entry kept in raftLog holds, as its byte
// bound counts it.
func entryBytes(e *raftpb.Entry) int { return entryOverheadBytes + len(e.Data) }

// raftLog is the log as raft reads it: the log's segments, with the
// entries this member appended last also kept in memory. Raft reads every
// entry back once when it commits it (on a single member always: an entry
// commits only once it is durable, when raft has let go of its own copy),
// and a leader reads the entries a follower lacks to send them; decoding
// them from disk was about 5% of a put's cost in Process. Entries nobody
// will read again are released (Node.entriesNoLongerRead): kept, they were
// most of a member's live heap under writes.
type raftLog struct {
	*raftlog.Storage
	// recent are entries with consecutive indexes, as last appended.
	// Invariant: empty, or its last entry is the log's last entry.
	recent []*raftpb.Entry
	// recentBytes is the sum of entryBytes over recent.
	// Invariant: recentBytes <= recentBytesMax after appended returns.
	recentBytes int
	// recentBytesMax bounds recentBytes (Config.RaftEntryCacheBytes):
	// enough for the entries of several Readys under load, and little
	// memory however large they are. The oldest entries go first; an entry
	// larger than the bound is not kept.
	recentBytesMax int
}

// appended records entries just appended to the log (and committed to
// Pebble); entries at or after the first of them are replaced, as in the
// log.
func (l *raftLog) appended(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].GetIndex()
	if n := len(l.recent); n == 0 || first < l.recent[0].GetIndex() || first > l.recent[n-1].GetIndex()+1 {
		l.forget()
	} else {
		kept := l.recent[:first-l.recent[0].GetIndex()]
		for _, e := range l.recent[len(kept):] {
			l.recentBytes -= entryBytes(e)
		}
		clear(l.recent[len(kept):])
		l.recent = kept
	}
	for _, e := range ents {
		l.recent = append(l.recent, e)
		l.recentBytes += entryBytes(e)
	}
	oldest := 0
	for oldest < len(l.recent) && l.recentBytes > l.recentBytesMax {
		l.recentBytes -= entryBytes(l.recent[oldest])
		oldest++
	}
	l.dropOldest(oldest)
}

// release drops the entries kept in memory at or below index upTo, which
// raft will not read back: applied, and on every follower's disk.
func (l *raftLog) release(upTo uint64) {
	oldest := 0
	for oldest < len(l.recent) && l.recent[oldest].GetIndex() <= upTo {
		l.recentBytes -= entryBytes(l.recent[oldest])
		oldest++
	}
	l.dropOldest(oldest)
}

// dropOldest removes the first n entries kept (their bytes already taken
// off recentBytes). When at most twice as many stay, they move to the
// front, so that the array is reused (sliced forward after every Process,
// it was reallocated every few appends); when more stay, as above a
// lagging follower's match, the slice moves forward instead, so that a
// release never copies more than twice what it drops.
func (l *raftLog) dropOldest(n int) {
	if n == 0 {
		return
	}
	if len(l.recent)-n > 2*n {
		clear(l.recent[:n])
		l.recent = l.recent[n:]
		return
	}
	kept := copy(l.recent, l.recent[n:])
	clear(l.recent[kept:])
	l.recent = l.recent[:kept]
}

// RecentBytes is what the entries kept in memory hold, in entryBytes.
func (l *raftLog) RecentBytes() int { return l.recentBytes }

// forget drops the entries kept in memory (the log was replaced).
func (l *raftLog) forget() {
	clear(l.recent)
	l.recent, l.recentBytes = l.recent[:0], 0
}

// Entries implements raft.Storage with raftlog.Storage's semantics: the
// entries [lo, hi), at most maxSize bytes of them but always at least one.
// It reads Pebble only for entries no longer kept in memory.
func (l *raftLog) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	n := len(l.recent)
	last, _ := l.LastIndex()
	if n == 0 || lo <= l.TruncatedIndex() || lo < l.recent[0].GetIndex() || hi > last+1 ||
		l.recent[n-1].GetIndex() != last || lo >= hi {
		return l.Storage.Entries(lo, hi, maxSize)
	}
	window := l.recent[lo-l.recent[0].GetIndex() : hi-l.recent[0].GetIndex()]
	ents := make([]*raftpb.Entry, 0, len(window))
	var size uint64
	for _, e := range window {
		size += uint64(proto.Size(e))
		if len(ents) > 0 && size > maxSize {
			break
		}
		ents = append(ents, e)
	}
	return ents, nil
}
