package mvcc

import (
	"bytes"
	"cmp"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// txnPath is the branch every txn of a request takes: compares are all
// evaluated against the state before the request, nested ones included.
type txnPath struct {
	succeeded bool
	// nested holds the paths of the RequestTxn ops of the taken branch, in
	// order.
	nested []*txnPath
}

func takenOps(r *pb.TxnRequest, succeeded bool) []*pb.RequestOp {
	if succeeded {
		return r.GetSuccess()
	}
	return r.GetFailure()
}

// compareToPath evaluates the compares of r and of its nested txns on the
// taken branches. w is the Writer of a write txn, whose view of the newest
// versions (Writer.latestMeta) is the one at rev; nil for a read-only one.
func compareToPath(src *source, rev int64, r *pb.TxnRequest, w *Writer) (*txnPath, error) {
	ok, err := applyCompares(src, rev, r.GetCompare(), w)
	if err != nil {
		return nil, err
	}
	path := &txnPath{succeeded: ok}
	for _, op := range takenOps(r, ok) {
		nested := op.GetRequestTxn()
		if nested == nil {
			continue
		}
		sub, err := compareToPath(src, rev, nested, w)
		if err != nil {
			return nil, err
		}
		path.nested = append(path.nested, sub)
	}
	return path, nil
}

func applyCompares(src *source, rev int64, cmps []*pb.Compare, w *Writer) (bool, error) {
	for _, c := range cmps {
		ok, err := applyCompare(src, rev, c, w)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// applyCompare holds when every key in the compare's range satisfies it. An
// empty range compares a zero key-value, except that a VALUE compare fails:
// a missing value cannot be told from an empty one. A compare of one key's
// revisions, version or lease (Kubernetes' compare-and-swap on
// mod_revision) is answered from w's view of the key's newest version when
// it has one, without reading the version, and its value, from Pebble.
func applyCompare(src *source, rev int64, c *pb.Compare, w *Writer) (bool, error) {
	if len(c.GetRangeEnd()) == 0 && c.GetTarget() != pb.Compare_VALUE {
		if m, cached := w.latestMeta(c.GetKey()); cached {
			kv := &mvccpb.KeyValue{}
			if m.exists {
				kv = &mvccpb.KeyValue{CreateRevision: m.createRevision, ModRevision: m.modRevision, Version: m.version, Lease: m.lease}
			}
			return compareKV(c, kv), nil
		}
	}
	found, ok := false, true
	err := scanRange(src, c.GetKey(), c.GetRangeEnd(), rev, func(e *entry) bool {
		found = true
		ok = compareKV(c, e.kv())
		return ok
	})
	if err != nil {
		return false, err
	}
	if !found {
		return c.GetTarget() != pb.Compare_VALUE && compareKV(c, &mvccpb.KeyValue{}), nil
	}
	return ok, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.GetTarget() {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.GetResult() {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// exec runs the operations of one request against src. Its reads see the
// request's own earlier writes. w is nil for read-only requests.
type exec struct {
	src         *source
	beginRev    int64 // the revision before the request
	compactRev  int64 // noCompaction if none
	changes     int64 // writes so far; the next write's sub-revision
	leaseExists func(id int64) bool
	w           *Writer
}

// rev returns the revision the request's reads see now.
func (e *exec) rev() int64 {
	if e.changes > 0 {
		return e.beginRev + 1
	}
	return e.beginRev
}

// checkTxnOps checks, before anything is written, what could make an op of
// the taken branches fail: range revisions and put preconditions. Like etcd
// it checks against the state before the request.
func (e *exec) checkTxnOps(r *pb.TxnRequest, path *txnPath) error {
	nested := path.nested
	for _, op := range takenOps(r, path.succeeded) {
		var err error
		switch {
		case op.GetRequestRange() != nil:
			err = checkRangeRev(op.GetRequestRange().GetRevision(), e.beginRev, e.compactRev)
		case op.GetRequestPut() != nil:
			_, err = e.checkPut(op.GetRequestPut(), false)
		case op.GetRequestTxn() != nil:
			err = e.checkTxnOps(op.GetRequestTxn(), nested[0])
			nested = nested[1:]
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkRangeRev is etcd's revision check of ranges inside a txn. It differs
// from a plain range's: a negative revision below the compacted one fails.
func checkRangeRev(rev, current, compactRev int64) error {
	switch {
	case rev == 0:
		return nil
	case rev > current:
		return rpctypes.ErrGRPCFutureRev
	case rev < compactRev:
		return rpctypes.ErrGRPCCompacted
	}
	return nil
}

// checkPut checks a put's lease and, for ignore_value/ignore_lease, that the
// key exists. It returns the key's current version, its value decoded if
// withValue and the put needs it (needsPrevValue).
func (e *exec) checkPut(p *pb.PutRequest, withValue bool) (prevVersion, error) {
	if p.GetLease() != 0 && (e.leaseExists == nil || !e.leaseExists(p.GetLease())) {
		return prevVersion{}, rpctypes.ErrGRPCLeaseNotFound
	}
	prev, err := e.readPrev(p.GetKey(), withValue && needsPrevValue(p))
	if err != nil {
		return prevVersion{}, err
	}
	if (p.GetIgnoreValue() || p.GetIgnoreLease()) && !prev.exists {
		return prevVersion{}, rpctypes.ErrGRPCKeyNotFound
	}
	return prev, nil
}

// prevVersion is the version a put or a delete replaces, as read for it.
type prevVersion struct {
	versionMeta
	// kv is the whole previous key-value, decoded only when the request
	// needs its value (prev_kv, ignore_value); nil otherwise, and when the
	// key does not exist. Most puts need only the metadata: decoding the
	// whole version would allocate and copy its value for nothing.
	kv *mvccpb.KeyValue
}

// needsPrevValue reports whether a put needs the value of the version it
// replaces: to answer prev_kv, or to keep it (ignore_value).
func needsPrevValue(p *pb.PutRequest) bool { return p.GetPrevKv() || p.GetIgnoreValue() }

// readPrev reads the version of key that a write at the request's revision
// replaces: its metadata, and the whole key-value when withValue.
func (e *exec) readPrev(key []byte, withValue bool) (prevVersion, error) {
	if !withValue {
		if meta, ok := e.w.latestMeta(key); ok {
			return prevVersion{versionMeta: meta}, nil
		}
		// A key the live key set lacks does not exist (livekeys.go). Keys
		// this Writer's batch wrote are not entered there until Publish,
		// but latestMeta found those.
		if !e.w.mayExist(key) {
			e.w.noteRead(key, versionMeta{})
			return prevVersion{}, nil
		}
		// A write is at the newest revision, where the key index entry
		// says whether the key exists. A key that does not (the put
		// creates it) has nothing to read, and finding that out through
		// the entry's bloom filters is cheaper than a seek among the
		// versions: creates are most of the puts the cache misses.
		st, found, err := readKeyState(e.src, key)
		if err != nil {
			return prevVersion{}, err
		}
		if !found || st.deleted != 0 {
			e.w.noteRead(key, versionMeta{})
			return prevVersion{}, nil
		}
		meta, err := getLatestMeta(e.src, key, e.rev())
		if err == nil {
			e.w.noteRead(key, meta)
		}
		return prevVersion{versionMeta: meta}, err
	}
	kv, err := getLatest(e.src, key, e.rev())
	return prevVersion{versionMeta: metaOf(kv), kv: kv}, err
}

// runTxn executes the taken branches of a checked txn and sets the
// header's revision: the revision after the whole request.
func (e *exec) runTxn(r *pb.TxnRequest, path *txnPath) (*pb.TxnResponse, error) {
	resp, err := e.runBranch(r, path)
	if err != nil {
		return nil, err
	}
	resp.Header.Revision = e.rev()
	return resp, nil
}

// runBranch executes the taken branch of one txn, nested or not. Like
// etcd, it leaves the header empty (non-nil, revision 0): only the
// outermost txn's header gets a revision, while the range, put and delete
// responses at any depth carry their own.
func (e *exec) runBranch(r *pb.TxnRequest, path *txnPath) (*pb.TxnResponse, error) {
	ops := takenOps(r, path.succeeded)
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: path.succeeded,
		Responses: make([]*pb.ResponseOp, len(ops))}
	nested := path.nested
	for i, op := range ops {
		out, err := e.runOp(op, &nested)
		if err != nil {
			return nil, err
		}
		resp.Responses[i] = out
	}
	return resp, nil
}

// runOp executes one op of a txn; nested is the queue of nested txn paths.
func (e *exec) runOp(op *pb.RequestOp, nested *[]*txnPath) (*pb.ResponseOp, error) {
	switch {
	case op.GetRequestRange() != nil:
		resp, err := rangeAt(e.src, e.rev(), e.compactRev, op.GetRequestRange())
		if err != nil {
			return nil, fmt.Errorf("txn range: %w", err)
		}
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: resp}}, nil
	case op.GetRequestPut() != nil:
		resp, err := e.put(op.GetRequestPut())
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: resp}}, err
	case op.GetRequestDeleteRange() != nil:
		resp, err := e.deleteRange(op.GetRequestDeleteRange())
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: resp}}, err
	case op.GetRequestTxn() != nil:
		path := (*nested)[0]
		*nested = (*nested)[1:]
		resp, err := e.runBranch(op.GetRequestTxn(), path)
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: resp}}, err
	}
	return &pb.ResponseOp{}, nil
}

// put writes a new version of the key at the request's revision.
func (e *exec) put(p *pb.PutRequest) (*pb.PutResponse, error) {
	prev, err := e.readPrev(p.GetKey(), needsPrevValue(p))
	if err != nil {
		return nil, err
	}
	return e.putOver(p, prev)
}

// putOver is put with prev, the key's version at e.rev(), already read
// (with its value if needsPrevValue).
func (e *exec) putOver(p *pb.PutRequest, prev prevVersion) (*pb.PutResponse, error) {
	kv := newVersion(p, prev, e.beginRev+1)
	if err := e.writer().writePut(kv, prev.versionMeta, e.changes); err != nil {
		return nil, err
	}
	e.changes++
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: e.beginRev + 1}}
	if p.GetPrevKv() {
		resp.PrevKv = prev.kv
	}
	return resp, nil
}

// newVersion builds the key-value a put writes at rev over prev.
func newVersion(p *pb.PutRequest, prev prevVersion, rev int64) *mvccpb.KeyValue {
	if (p.GetIgnoreValue() || p.GetIgnoreLease()) && !prev.exists {
		panic(fmt.Sprintf("mvcc: put of missing key %q with ignore_value/ignore_lease passed its checks", p.GetKey()))
	}
	kv := &mvccpb.KeyValue{Key: p.GetKey(), Value: p.GetValue(), Lease: p.GetLease(),
		CreateRevision: rev, ModRevision: rev, Version: 1}
	if prev.exists {
		kv.CreateRevision, kv.Version = prev.createRevision, prev.version+1
	}
	if p.GetIgnoreValue() {
		if prev.kv == nil {
			panic(fmt.Sprintf("mvcc: ignore_value put of %q without the previous value read", p.GetKey()))
		}
		kv.Value = prev.kv.Value
	}
	if p.GetIgnoreLease() {
		kv.Lease = prev.lease
	}
	return kv
}

// deleteRange writes a tombstone for every key of the range.
func (e *exec) deleteRange(d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	deleted, err := e.deleteKeys(d.GetKey(), d.GetRangeEnd(), d.GetPrevKv())
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{Revision: e.rev()}, Deleted: int64(len(deleted))}
	if d.GetPrevKv() {
		resp.PrevKvs = make([]*mvccpb.KeyValue, len(deleted))
		for i, del := range deleted {
			resp.PrevKvs[i] = del.kv
		}
	}
	return resp, nil
}

// deletedKey is a key a delete removes, with the version it replaces.
type deletedKey struct {
	key []byte
	prevVersion
}

// deleteKeys writes a tombstone for every key of the etcd range [key,
// rangeEnd) and returns them, in key order, with their values decoded if
// withValues.
func (e *exec) deleteKeys(key, rangeEnd []byte, withValues bool) ([]deletedKey, error) {
	var deleted []deletedKey
	err := scanRange(e.src, key, rangeEnd, e.rev(), func(en *entry) bool {
		userKey := decodeUserKey(en.versionKey)
		del := deletedKey{key: userKey, prevVersion: prevVersion{versionMeta: decodeMeta(userKey, en.value)}}
		if withValues {
			del.kv = decodeValue(userKey, en.value)
		}
		deleted = append(deleted, del)
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, del := range deleted {
		if err := e.writer().writeTombstone(del.key, del.prevVersion, revision{e.beginRev + 1, e.changes}); err != nil {
			return nil, err
		}
		e.changes++
	}
	return deleted, nil
}

func (e *exec) writer() *Writer {
	if e.w == nil {
		panic("mvcc: write op in a read-only request (IsReadOnlyTxn must be checked first)")
	}
	return e.w
}
