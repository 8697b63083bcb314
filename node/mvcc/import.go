package mvcc

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Importing: cairnutl migrate loads another etcd store's keyspace into a new
// store, keeping its revisions. Normal writes compute create_revision,
// mod_revision and version themselves and take one new revision each; an
// import writes the versions it is given, as they are, at the revisions it
// is given. Two sources use it:
//
//   - an etcd database (a snapshot or a member's bbolt file) holds every
//     change since its last compaction, in revision order: each is imported
//     at its own revision (main, sub), so the store gets the same history;
//   - a live copy through the client API holds only the newest version of
//     every key at one revision R: each is imported at R, while its version
//     key keeps its own mod_revision, and the store is then compacted at R,
//     so no read can ask for the history it does not have.
//
// The key index and its chunks record an imported key as created at the
// import's revision (the chunk's rev) with the key's own create_revision
// (the index entry). No read is served below the compacted revision, and
// an imported version below it is always a key's newest version at or below
// it, so every read sees what the source store would answer.

// ErrImportInconsistent marks imported changes that no etcd history can
// have produced: a version that does not follow the key's previous one, a
// revision that goes back.
var ErrImportInconsistent = errors.New("mvcc: imported change inconsistent with the history before it")

// Import writes one change taken from another etcd store at revision
// (main, sub): a PUT writes ev.Kv as it is (its create_revision, version
// and lease; its version key uses its own mod_revision, main or below); a
// DELETE writes a tombstone of ev.Kv.Key at (main, sub) over the key's live
// version. main must not be below any revision imported before. The
// store's revision becomes main.
//
// A DELETE of a key that does not exist is skipped (skipped is true): in an
// etcd database it is the tombstone a compaction keeps at its own revision
// after removing the versions it deleted, which this store cannot hold
// without them.
func (w *Writer) Import(main, sub int64, ev *mvccpb.Event) (skipped bool, err error) {
	if main < w.rev {
		return false, fmt.Errorf("revision %d after %d: %w", main, w.rev, ErrImportInconsistent)
	}
	kv := ev.GetKv()
	if len(kv.GetKey()) == 0 {
		return false, fmt.Errorf("revision %d: change without a key: %w", main, ErrImportInconsistent)
	}
	e, err := w.begin()
	if err != nil {
		return false, err
	}
	prev, err := getLatest(e.src, kv.Key, main)
	if err != nil {
		return false, err
	}
	switch ev.GetType() {
	case mvccpb.Event_PUT:
		err = w.importPut(kv, prev, main, sub)
	case mvccpb.Event_DELETE:
		if prev == nil {
			skipped = true
			break
		}
		err = w.writeTombstone(kv.Key, prevVersion{versionMeta: metaOf(prev), kv: prev}, revision{main, sub})
	default:
		err = fmt.Errorf("revision %d: event type %v: %w", main, ev.GetType(), ErrImportInconsistent)
	}
	if err != nil {
		return false, err
	}
	return skipped, w.ImportRevision(main)
}

// ImportRevision moves the store's revision up to rev, without a change:
// the source store's revision when its newest changes were compacted away,
// or the revision a live copy was read at.
func (w *Writer) ImportRevision(rev int64) error {
	if rev < w.rev {
		return fmt.Errorf("revision %d after %d: %w", rev, w.rev, ErrImportInconsistent)
	}
	if rev == w.rev {
		return nil
	}
	w.rev = rev
	return nil
}

// importPut writes kv over prev (nil if the key does not exist at main).
func (w *Writer) importPut(kv, prev *mvccpb.KeyValue, main, sub int64) error {
	if err := checkImportedPut(kv, prev, main); err != nil {
		return err
	}
	w.scratch = appendRevision(appendPrefix(w.scratch[:0], kv.Key), revision{kv.ModRevision, sub})
	n := len(w.scratch)
	w.scratch = appendPut(w.scratch, kv)
	if err := w.b.Set(w.scratch[:n], w.scratch[n:], nil); err != nil {
		return fmt.Errorf("import %q: %w", kv.Key, err)
	}
	if err := w.updateAttachment(kv.Key, prev.GetLease(), kv.Lease); err != nil {
		return err
	}
	w.noteWritten(kv.Key, metaOf(kv))
	if prev != nil {
		return nil
	}
	if err := w.keyCreated(appendIndexKey(nil, kv.Key), main); err != nil {
		return err
	}
	return w.setKeyState(kv.Key, keyState{created: kv.CreateRevision})
}

// checkImportedPut checks that kv can follow prev in an etcd history.
func checkImportedPut(kv, prev *mvccpb.KeyValue, main int64) error {
	bad := func(why string) error {
		return fmt.Errorf("put %q at revision %d (create %d, mod %d, version %d): %s: %w",
			kv.Key, main, kv.CreateRevision, kv.ModRevision, kv.Version, why, ErrImportInconsistent)
	}
	switch {
	case kv.ModRevision < 2 || kv.ModRevision > main:
		return bad("mod_revision outside [2, revision]")
	case kv.CreateRevision < 2 || kv.CreateRevision > kv.ModRevision:
		return bad("create_revision outside [2, mod_revision]")
	case kv.Version < 1:
		return bad("version below 1")
	case kv.Version == 1 && kv.CreateRevision != kv.ModRevision:
		return bad("version 1 not made at its create_revision")
	case prev == nil:
		return nil
	case kv.CreateRevision != prev.CreateRevision || kv.Version != prev.Version+1 || kv.ModRevision <= prev.ModRevision:
		return bad(fmt.Sprintf("does not follow the key's version (create %d, mod %d, version %d)",
			prev.CreateRevision, prev.ModRevision, prev.Version))
	}
	return nil
}
