package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The lease attachment index: which keys are attached to which lease, as of
// the current revision. It is the keyspace's side of leases: a put with a
// lease attaches its key, a put with another lease (or none) or a delete
// detaches it from the old one, and RevokeLease deletes every attached key.
// It lives on disk, not in memory, so data sets larger than RAM work.
//
//	"kl" leaseID(8 bytes BE, sign bit flipped) userKey  -> empty value
//
// Invariant: "kl" id key exists exactly when key's newest version at the
// current revision is a put with Lease == id != 0.
const prefixLease = 'l'

// leasesEnd is an exclusive upper bound of the attachment index.
var leasesEnd = []byte{prefixAll, prefixLease + 1}

func appendLeasePrefix(dst []byte, id int64) []byte {
	dst = append(dst, prefixAll, prefixLease)
	return binary.BigEndian.AppendUint64(dst, uint64(id)^(1<<63))
}

func attachmentKey(id int64, userKey []byte) []byte {
	return append(appendLeasePrefix(make([]byte, 0, 10+len(userKey)), id), userKey...)
}

// leaseBounds returns the span of a lease's attachments.
func leaseBounds(id int64) (lower, upper []byte) {
	lower = appendLeasePrefix(nil, id)
	upper = appendLeasePrefix(nil, id)
	for i := len(upper) - 1; i >= 2; i-- { // the next ID's prefix
		upper[i]++
		if upper[i] != 0 {
			return lower, upper
		}
	}
	return lower, leasesEnd
}

// updateAttachment moves key from lease from to lease to (0: none).
func (w *Writer) updateAttachment(key []byte, from, to int64) error {
	if from == to {
		return nil
	}
	if from != 0 {
		if err := w.b.Delete(attachmentKey(from, key), nil); err != nil {
			return fmt.Errorf("detach %q from lease %x: %w", key, from, err)
		}
	}
	if to != 0 {
		if err := w.b.Set(attachmentKey(to, key), nil, nil); err != nil {
			return fmt.Errorf("attach %q to lease %x: %w", key, to, err)
		}
	}
	return nil
}

// Rev is the revision after the requests applied so far.
func (w *Writer) Rev() int64 { return w.rev }

// RevokeLease deletes every key attached to lease id, in key order, all at
// one new revision (none if no key is attached), and returns the number
// deleted. The caller removes the lease itself.
func (w *Writer) RevokeLease(id int64) (int64, error) {
	e, err := w.begin()
	if err != nil {
		return 0, err
	}
	keys, err := leaseKeys(w.b, id)
	if err != nil {
		return 0, err
	}
	for _, key := range keys {
		deleted, err := e.deleteKeys(key, nil, false)
		if err != nil {
			return 0, err
		}
		if len(deleted) != 1 || deleted[0].lease != id {
			return 0, fmt.Errorf("mvcc: key %q attached to lease %x is not live with it (%d versions deleted): corrupt lease index", key, id, len(deleted))
		}
	}
	return int64(len(keys)), w.finish(e)
}

type iterable interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// leaseKeys returns the keys attached to lease id, in key order.
func leaseKeys(r iterable, id int64) (_ [][]byte, err error) {
	lower, upper := leaseBounds(id)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("lease %x keys: %w", id, err)
	}
	defer closeIter(it, &err)
	var keys [][]byte
	for valid := it.First(); valid; valid = it.Next() {
		keys = append(keys, bytes.Clone(it.Key()[len(lower):]))
	}
	return keys, it.Error()
}

// LeaseKeys returns the keys attached to lease id at the published
// revision, in key order. Safe for concurrent use.
func (s *Store) LeaseKeys(id int64) ([][]byte, error) {
	v := s.openView()
	defer v.close()
	return leaseKeys(v.snap, id)
}

// LeaseKeys returns the keys attached to lease id as of the requests
// applied so far, in key order.
func (w *Writer) LeaseKeys(id int64) ([][]byte, error) { return leaseKeys(w.b, id) }
