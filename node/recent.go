package node

import (
	"github.com/cairn-db/cairn/node/raftlog"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Bounds of the entries raftLog keeps in memory: enough for the entries
// of several Readys under load, and little memory however large they are.
const (
	recentEntriesMax    = 4096
	recentEntryBytesMax = 8 << 20
)

// raftLog is the log as raft reads it: the Pebble log, with the entries
// this member appended last also kept in memory. Raft reads every entry
// back once when it commits it (on a single member always: an entry commits
// only once it is durable, when raft has let go of its own copy), and
// decoding it from Pebble was about 5% of a put's cost in Process.
type raftLog struct {
	*raftlog.Storage
	// recent are entries with consecutive indexes, as last appended.
	// Invariant: empty, or its last entry is the log's last entry.
	recent []*raftpb.Entry
	// recentDataBytes is the sum of the Data of recent's entries.
	recentDataBytes int
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
		for _, e := range l.recent[first-l.recent[0].GetIndex():] {
			l.recentDataBytes -= len(e.Data)
		}
		l.recent = l.recent[:first-l.recent[0].GetIndex()]
	}
	for _, e := range ents {
		l.recent = append(l.recent, e)
		l.recentDataBytes += len(e.Data)
	}
	for len(l.recent) > 0 && (len(l.recent) > recentEntriesMax || l.recentDataBytes > recentEntryBytesMax) {
		l.recentDataBytes -= len(l.recent[0].Data)
		l.recent[0] = nil
		l.recent = l.recent[1:]
	}
}

// forget drops the entries kept in memory (the log was replaced).
func (l *raftLog) forget() {
	clear(l.recent)
	l.recent, l.recentDataBytes = l.recent[:0], 0
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
