package mvcc

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// History returns the changes to the keys in the etcd range [key,
// rangeEnd) made at revisions fromRev..toRev, as watch events: in revision
// order (then sub-revision), puts with the new key-value, deletes with
// Kv{Key, ModRevision}, and PrevKv set to the version each event replaced
// (nil for a create, or when that version is gone, see below). An empty
// rangeEnd means the single key, "\x00" every key >= key.
//
// At most maxEvents events are returned, but never part of a revision: a
// single revision with more events comes whole. upTo is the last revision
// covered: every event of the range at fromRev..upTo is in events, so the
// next call starts at upTo+1. toRev above the published revision reads up
// to the published revision.
//
// fromRev below the compacted revision fails with rpctypes.ErrGRPCCompacted,
// as a watch from there fails in etcd. From exactly the compacted revision
// the history is that revision's events, puts and deletes (compaction keeps
// a tombstone at its own revision), but no PrevKv for them, as in etcd
// 3.7.3.
//
// There is no revision index: History scans every version of every key in
// the range (one seek per key, then the key's versions down to fromRev), so
// its cost grows with the range, not with the events returned. Fine for
// catching a watcher up; a revision index would make it proportional.
//
// Safe for concurrent use: it reads one consistent snapshot, like Range.
func (s *Store) History(key, rangeEnd []byte, fromRev, toRev int64, maxEvents int) (events []*mvccpb.Event, upTo int64, err error) {
	if maxEvents <= 0 {
		panic(fmt.Sprintf("mvcc: History with maxEvents %d", maxEvents))
	}
	v := s.openView()
	defer v.close()
	if fromRev < v.compactRev {
		return nil, 0, rpctypes.ErrGRPCCompacted
	}
	upTo = min(toRev, v.rev)
	if fromRev > upTo {
		return nil, upTo, nil
	}
	c := &historyCollector{from: fromRev, to: upTo, compactRev: v.compactRev, maxEvents: maxEvents}
	lower, upper, ok := historyBounds(key, rangeEnd)
	if !ok {
		return nil, upTo, nil
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, 0, fmt.Errorf("history %q: %w", key, err)
	}
	defer closeIter(it, &err)
	if err := c.scan(it, lower); err != nil {
		return nil, 0, err
	}
	events, upTo = c.finish()
	return events, upTo, nil
}

// VersionBefore returns the version of key that a change at rev replaced,
// as a watcher with prev_kv gets it: the newest version below rev, nil if
// there is none. The watch hub reads it here for such watchers because
// events do not carry it (Writer.Events). A put event with version 1
// replaced nothing; any other event replaced a live version, except a
// delete that follows a put of the same key in one txn, whose PrevKv is,
// as in etcd, the version before the txn.
//
// Like etcd, which reads PrevKv with a range at rev-1 when it sends the
// event and leaves it out when that range fails as compacted, it returns
// nil when rev-1 is below the compacted revision, whether or not
// compaction has removed the version yet.
//
// Safe for concurrent use.
func (s *Store) VersionBefore(key []byte, rev int64) (_ *mvccpb.KeyValue, err error) {
	src, st, err := s.openSource()
	if err != nil {
		return nil, err
	}
	defer closeSource(src, &err)
	if rev-1 < st.compactRev {
		return nil, nil
	}
	return getLatest(src, key, rev-1)
}

// historyBounds returns the Pebble span holding every version of the keys
// in the etcd range; ok is false for an empty range.
func historyBounds(key, rangeEnd []byte) (lower, upper []byte, ok bool) {
	lower = keyPrefix(key)
	switch {
	case len(rangeEnd) == 0:
		return lower, nextKeyBound(lower), true
	case isGteRange(rangeEnd):
		return lower, versionsEnd, true
	case bytes.Compare(rangeEnd, key) <= 0:
		return nil, nil, false
	}
	return lower, keyPrefix(rangeEnd), true
}

// historyCollector gathers events while a scan visits keys in key order.
// Memory is bounded: when it holds more than twice maxEvents events it
// keeps the oldest whole revisions worth maxEvents and lowers to, so the
// rest of the scan skips newer versions.
type historyCollector struct {
	from, to   int64 // the revision window; to only shrinks
	compactRev int64
	maxEvents  int
	events     []historyEvent
}

type historyEvent struct {
	rev revision
	ev  *mvccpb.Event
}

// scan visits each key of the span: one seek to its newest version at or
// below to, then its versions down to from, plus the one before (PrevKv).
func (c *historyCollector) scan(it *pebble.Iterator, lower []byte) error {
	for valid := it.SeekGE(lower); valid; {
		_, prefix, _ := decodeVersionKey(it.Key())
		if err := c.visitKey(it, prefix); err != nil {
			return err
		}
		c.shrink()
		valid = it.SeekGE(nextKeyBound(prefix))
	}
	return it.Error()
}

// visitKey collects the events of one user key, newest first; the iterator
// may be left anywhere. An event's PrevKv is the key's newest version below
// the event's revision, as etcd reads it for a watcher (at mod_revision-1):
// for a delete that follows a put of the same key in one txn, the version
// before the txn, not that put.
func (c *historyCollector) visitKey(it *pebble.Iterator, prefix []byte) error {
	waiting := len(c.events) // this key's events still without their PrevKv
	for valid := it.SeekGE(seekAtOrBelow(prefix, c.to)); valid && hasVersionPrefix(it.Key(), prefix); valid = it.Next() {
		userKey, _, rev := decodeVersionKey(it.Key())
		value, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("history at %q: %w", userKey, err)
		}
		kv := decodeValue(userKey, value)
		for ; waiting < len(c.events) && c.events[waiting].rev.main > rev.main; waiting++ {
			// The version before an event at the compacted revision may
			// be removed by now or not: leave PrevKv out, as etcd does.
			if c.events[waiting].rev.main > c.compactRev {
				c.events[waiting].ev.PrevKv = kv
			}
		}
		if rev.main < c.from {
			return nil
		}
		c.events = append(c.events, historyEvent{rev: rev, ev: versionEvent(userKey, rev, kv)})
	}
	return it.Error()
}

// versionEvent is the watch event that wrote a version; kv is nil for a
// tombstone.
func versionEvent(userKey []byte, rev revision, kv *mvccpb.KeyValue) *mvccpb.Event {
	if kv == nil {
		return &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: &mvccpb.KeyValue{Key: userKey, ModRevision: rev.main}}
	}
	return &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv}
}

// shrink keeps memory bounded once more than twice maxEvents are held.
func (c *historyCollector) shrink() {
	if len(c.events) <= 2*c.maxEvents {
		return
	}
	c.sort()
	c.cut()
}

func (c *historyCollector) sort() {
	slices.SortFunc(c.events, func(a, b historyEvent) int {
		if r := cmp.Compare(a.rev.main, b.rev.main); r != 0 {
			return r
		}
		return cmp.Compare(a.rev.sub, b.rev.sub)
	})
}

// cut keeps, of sorted events, the oldest whole revisions that fit in
// maxEvents (at least the first revision, however large) and lowers to to
// the last one kept.
func (c *historyCollector) cut() {
	if len(c.events) <= c.maxEvents {
		return
	}
	n := c.maxEvents
	if crossing := c.events[n].rev.main; c.events[n-1].rev.main == crossing {
		// Revision crossing the bound: drop it, unless it is the first.
		for n > 0 && c.events[n-1].rev.main == crossing {
			n--
		}
		if n == 0 {
			for n = c.maxEvents; n < len(c.events) && c.events[n].rev.main == crossing; n++ {
			}
		}
	}
	if n == len(c.events) {
		return
	}
	clear(c.events[n:])
	c.events = c.events[:n]
	c.to = c.events[n-1].rev.main
}

func (c *historyCollector) finish() ([]*mvccpb.Event, int64) {
	c.sort()
	c.cut()
	out := make([]*mvccpb.Event, len(c.events))
	for i, e := range c.events {
		out[i] = e.ev
	}
	return out, c.to
}
