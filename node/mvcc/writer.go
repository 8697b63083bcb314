package mvcc

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Writer applies write requests into one Pebble indexed batch. It belongs
// to the apply goroutine. A request that fails with an rpctypes error leaves
// no trace in the batch; any other error is an I/O error after which the
// batch must be discarded and the node stopped.
type Writer struct {
	s *Store
	b *pebble.Batch
	// rev is the revision after the requests applied so far.
	// Invariant: rev >= s.Rev().
	rev int64
	// revRecorded is the revision the batch records as current: the
	// published one until Flush (or ImportRevision) writes rev. Requests
	// only count revisions, so a batch of N writes records its revision
	// once instead of N times. Invariant: revRecorded <= rev.
	revRecorded int64
	// compactRev is the compacted revision as of the requests applied so far.
	compactRev int64
	// compacted is set when a Compact was recorded in this batch.
	compacted bool
	events    []*mvccpb.Event
	published bool
	// src reads the batch for every request: one iterator, opened at the
	// first read and closed by Publish or Close. Nil until then.
	src *source
	// chunkSrc reads the batch's key index chunks for findChunk: an
	// iterator of their own, so that its levels stay on the tables that
	// hold chunks rather than move to the versions' and back for every
	// create. Nil until the first chunk seek; closed with src.
	chunkSrc *source
	// chunk is the key index chunk found last (keychunks.go).
	chunk lastChunk
	// liveChanges are the keys the batch created and deleted, in order,
	// for Publish to enter into the store's live key set.
	liveChanges []liveKeyChange
	// scratch holds the encoding of one write; the batch copies it.
	scratch []byte
	// ex is the state of the request being applied, reused by every
	// request (begin resets it): one allocation fewer per request.
	ex exec
}

// NewWriter starts applying requests into b, which must be an indexed batch
// of the store's DB. Only one Writer may be unpublished at a time.
func (s *Store) NewWriter(b *pebble.Batch) *Writer {
	if b == nil || !b.Indexed() {
		panic("mvcc: NewWriter needs an indexed batch")
	}
	if s.writerActive {
		panic("mvcc: NewWriter while another Writer has not published")
	}
	s.writerActive = true
	st := s.state.Load()
	return &Writer{s: s, b: b, rev: st.rev, revRecorded: st.rev, compactRev: st.compactRev}
}

func (w *Writer) begin() (*exec, error) {
	if w.published {
		panic("mvcc: Writer used after Publish or Close")
	}
	if w.src == nil {
		it, err := w.b.NewIter(&pebble.IterOptions{LowerBound: versionsStart, UpperBound: versionsEnd})
		if err != nil {
			return nil, fmt.Errorf("open batch iterator: %w", err)
		}
		w.src = newSource(it, true, w.s.chunkBits)
	}
	w.ex = exec{src: w.src, beginRev: w.rev, compactRev: w.compactRev, leaseExists: w.s.opts.LeaseExists, w: w}
	return &w.ex, nil
}

// finish ends a request: one that wrote anything takes one main revision,
// which Flush records in the batch.
func (w *Writer) finish(e *exec) error {
	if e.changes > 0 {
		w.rev++
	}
	return nil
}

// Flush writes into the batch what the Writer records once per batch
// rather than once per request: the current revision. Call it after the
// last request and before committing the batch; Publish panics if the
// batch does not record the revision it publishes.
func (w *Writer) Flush() error {
	if w.published {
		panic("mvcc: Writer used after Publish or Close")
	}
	return w.recordRev()
}

// recordRev writes the current revision into the batch, if it is not the
// one the batch records already.
func (w *Writer) recordRev() error {
	if w.rev == w.revRecorded {
		return nil
	}
	w.scratch = binary.BigEndian.AppendUint64(w.scratch[:0], uint64(w.rev))
	if err := w.b.Set(metaRevKey, w.scratch, nil); err != nil {
		return fmt.Errorf("write revision: %w", err)
	}
	w.revRecorded = w.rev
	return nil
}

// Put applies a PutRequest.
func (w *Writer) Put(req *pb.PutRequest) (*pb.PutResponse, error) {
	e, err := w.begin()
	if err != nil {
		return nil, err
	}
	// Nothing is written between the check and the put: the version the
	// check read is the one the put replaces.
	prev, err := e.checkPut(req, true)
	if err != nil {
		return nil, err
	}
	resp, err := e.putOver(req, prev)
	if err != nil {
		return nil, err
	}
	return resp, w.finish(e)
}

// DeleteRange applies a DeleteRangeRequest.
func (w *Writer) DeleteRange(req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	e, err := w.begin()
	if err != nil {
		return nil, err
	}
	resp, err := e.deleteRange(req)
	if err != nil {
		return nil, err
	}
	return resp, w.finish(e)
}

// Txn applies a TxnRequest: compares and checks against the state before
// it, then the taken branches, all at one revision.
func (w *Writer) Txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	e, err := w.begin()
	if err != nil {
		return nil, err
	}
	path, err := compareToPath(e.src, e.beginRev, req, w)
	if err != nil {
		return nil, err
	}
	if err := e.checkTxnOps(req, path); err != nil {
		return nil, err
	}
	resp, err := e.runTxn(req, path)
	if err != nil {
		return nil, err
	}
	return resp, w.finish(e)
}

// Compact records a compaction at req.Revision. Reads below it fail once
// the writer publishes; CompactStep then removes the obsolete versions.
func (w *Writer) Compact(req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if w.published {
		panic("mvcc: Writer used after Publish or Close")
	}
	rev := req.GetRevision()
	if rev <= w.compactRev {
		return nil, rpctypes.ErrGRPCCompacted
	}
	if rev > w.rev {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	if err := w.b.Set(metaCompactKey, encodeInt64(rev), nil); err != nil {
		return nil, fmt.Errorf("record compaction: %w", err)
	}
	// An empty cursor means "from the first key"; a newer compaction
	// restarts the removal, which covers the older one's.
	if err := w.b.Set(metaCursorKey, nil, nil); err != nil {
		return nil, fmt.Errorf("record compaction: %w", err)
	}
	w.compactRev, w.compacted = rev, true
	w.s.compaction.recorded = true
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: w.rev}}, nil
}

// Events returns every event written so far by this writer, in revision
// order. Put events carry the new key-value, delete events the key and the
// deleting revision. Put events carry no PrevKv; delete events carry the
// version they replaced only when the request decoded it anyway (prev_kv).
// A watcher that wants PrevKv reads the version below the event's revision
// (Store.VersionBefore); a put with version 1 replaced none.
func (w *Writer) Events() []*mvccpb.Event { return w.events }

// Publish makes the writer's revisions visible to readers. Call it after
// Flush and the batch's commit, and before the batch is closed; the Writer
// cannot be used afterwards.
func (w *Writer) Publish() {
	if w.published {
		panic("mvcc: Publish called twice or after Close")
	}
	if w.rev != w.revRecorded {
		panic(fmt.Sprintf("mvcc: Publish of revision %d from a batch that records %d (Flush was not called)", w.rev, w.revRecorded))
	}
	w.closeSource()
	w.published = true
	w.s.writerActive = false
	// Before the revision is published: a reader that sees it must not
	// find a version it replaced in the read cache.
	w.s.reads.enterWrites(&w.s.written, w.events, w.s.opts.ReadCacheKeepsDeleted)
	w.s.state.Store(&publishedState{rev: w.rev, compactRev: w.compactRev})
	w.s.written.enterInto(w.s.latest)
	w.s.applyLiveKeyChanges(w.liveChanges)
	if w.compacted {
		w.s.compaction.recorded = false
		w.s.compaction.pending = true
		w.s.compaction.target = w.compactRev
		w.s.compaction.cursor = versionsStart
	}
}

// Close discards a Writer that will not publish, because a request or
// the batch's commit failed: it releases the Writer's iterator, which
// otherwise stays open (Pebble's DB.Close reports it as leaked), and lets
// the store take a new Writer. The batch must be discarded too. After
// Publish, Close does nothing, so callers may defer it.
func (w *Writer) Close() {
	if w.published {
		return
	}
	w.closeSource()
	w.published = true
	w.s.writerActive = false
	w.s.compaction.recorded = false
	if w.s.opts.plantLatestKeepsAbandoned {
		w.s.written.enterInto(w.s.latest)
	}
	w.s.written.reset()
}

// closeSource closes the Writer's iterator. It only reads, so an error
// closing it says nothing about the batch: it is dropped.
func (w *Writer) closeSource() {
	if w.src != nil {
		_ = w.src.close()
		w.src = nil
	}
	if w.chunkSrc != nil {
		_ = w.chunkSrc.close()
		w.chunkSrc = nil
	}
}

// writePut writes kv, a new version of a key, over prev. Its event carries
// no PrevKv: the watch hub reads it for the watchers that ask for it,
// rather than every event holding a copy of the value it replaced.
func (w *Writer) writePut(kv *mvccpb.KeyValue, prev versionMeta, sub int64) error {
	// The version is encoded straight into the batch: through a scratch
	// buffer, a large value would be copied once more (and the buffer grown
	// to its size for every Writer).
	w.scratch = appendRevision(appendPrefix(w.scratch[:0], kv.Key), revision{kv.ModRevision, sub})
	valueBytes := putBytes(kv)
	op := w.b.SetDeferred(len(w.scratch), valueBytes)
	copy(op.Key, w.scratch)
	if n := len(appendPut(op.Value[:0:valueBytes], kv)); n != valueBytes {
		panic(fmt.Sprintf("mvcc: put of %q encoded in %d bytes, putBytes says %d", kv.Key, n, valueBytes))
	}
	if err := op.Finish(); err != nil {
		return fmt.Errorf("put %q: %w", kv.Key, err)
	}
	if err := w.updateAttachment(kv.Key, prev.lease, kv.Lease); err != nil {
		return err
	}
	if !prev.exists {
		if err := w.indexCreated(kv.Key, kv.CreateRevision); err != nil {
			return err
		}
	}
	w.noteWritten(kv.Key, metaOf(kv))
	w.events = append(w.events, &mvccpb.Event{Type: mvccpb.Event_PUT, Kv: kv})
	return nil
}

// noteWritten records m as the newest version of key that this Writer's
// batch holds: reads of key see it in the batch, and Publish enters it
// into the store's cache of newest versions and removes it from the read
// cache.
func (w *Writer) noteWritten(key []byte, m versionMeta) {
	if w.s.latest == nil && w.s.reads == nil {
		return
	}
	w.s.written.note(key, m)
}

// latestMeta returns the metadata of key's newest version as this Writer
// sees it, without reading Pebble when its batch wrote the key or the
// store's cache holds it; ok is false otherwise (and for a nil Writer, a
// read-only request's).
func (w *Writer) latestMeta(key []byte) (m versionMeta, ok bool) {
	if w == nil || w.s.latest == nil {
		return versionMeta{}, false
	}
	if m, ok = w.s.written.get(key); ok {
		return m, true
	}
	return w.s.latest.get(key)
}

// mayExist reports whether key may exist as published: false only when
// the store's live key set lacks it. It says nothing of what this Writer
// wrote (latestMeta does).
func (w *Writer) mayExist(key []byte) bool {
	return w == nil || w.s.live == nil || w.s.live.mayHold(key)
}

// noteRead enters m, the newest version of key read from Pebble, into the
// store's cache. The caller found no write of key in this Writer's batch
// (latestMeta), so m is the published state's, whether or not the Writer
// publishes.
func (w *Writer) noteRead(key []byte, m versionMeta) {
	if w != nil {
		w.s.latest.put(key, m)
	}
}

// writeTombstone deletes key, whose live version is prev, at rev. Its event
// carries prev's key-value as PrevKv when the delete decoded it anyway (a
// DeleteRange with prev_kv), and none otherwise: the watch hub reads it
// for the watchers that ask for it.
func (w *Writer) writeTombstone(key []byte, prev prevVersion, rev revision) error {
	if !prev.exists {
		panic(fmt.Sprintf("mvcc: delete of %q, which does not exist", key))
	}
	w.scratch = appendRevision(appendPrefix(w.scratch[:0], key), rev)
	w.scratch = append(w.scratch, kindTombstone)
	n := len(w.scratch) - 1
	if err := w.b.Set(w.scratch[:n], w.scratch[n:], nil); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	if err := w.updateAttachment(key, prev.lease, 0); err != nil {
		return err
	}
	if err := w.indexDeleted(key, prev.createRevision, rev.main); err != nil {
		return err
	}
	w.noteWritten(key, versionMeta{})
	kv := &mvccpb.KeyValue{Key: key, ModRevision: rev.main}
	w.events = append(w.events, &mvccpb.Event{Type: mvccpb.Event_DELETE, Kv: kv, PrevKv: prev.kv})
	return nil
}

// Range serves a RangeRequest at the published revision. Safe for
// concurrent use.
func (s *Store) Range(req *pb.RangeRequest) (_ *pb.RangeResponse, err error) {
	if resp, ok, err := s.rangeCached(req); ok || err != nil {
		return resp, err
	}
	src, st, err := s.openSource()
	if err != nil {
		return nil, err
	}
	defer closeSource(src, &err)
	return rangeAt(src, st.rev, st.compactRev, req)
}

// rangeCached serves a single-key range from the read cache, without a
// Pebble iterator; ok is false if the cache does not hold the key's
// version at the range's revision.
func (s *Store) rangeCached(r *pb.RangeRequest) (_ *pb.RangeResponse, ok bool, err error) {
	if s.reads == nil || len(r.GetRangeEnd()) != 0 {
		return nil, false, nil
	}
	st := s.state.Load()
	rev, err := rangeRevision(r, st.rev, st.compactRev)
	if err != nil {
		return nil, false, err
	}
	kv, ok := s.reads.get(r.GetKey(), rev)
	if !ok {
		return nil, false, nil
	}
	kvs, count := collectKey(kv, r)
	return finishRange(kvs, count, st.rev, r), true, nil
}

// ReadTxn serves a read-only TxnRequest (IsReadOnlyTxn) at the published
// revision. Safe for concurrent use.
func (s *Store) ReadTxn(req *pb.TxnRequest) (_ *pb.TxnResponse, err error) {
	if !IsReadOnlyTxn(req) {
		panic("mvcc: ReadTxn with a txn that is not read-only")
	}
	src, st, err := s.openSource()
	if err != nil {
		return nil, err
	}
	defer closeSource(src, &err)
	e := &exec{src: src, beginRev: st.rev, compactRev: st.compactRev}
	path, err := compareToPath(e.src, e.beginRev, req, nil)
	if err != nil {
		return nil, err
	}
	if err := e.checkTxnOps(req, path); err != nil {
		return nil, err
	}
	return e.runTxn(req, path)
}
