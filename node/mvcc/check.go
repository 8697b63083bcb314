package mvcc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// DefaultMaxTxnOps is etcd's default bound on the operations of one txn.
const DefaultMaxTxnOps = 128

// Limits bounds requests.
type Limits struct {
	// MaxTxnOps bounds the compares and the ops of each branch of a txn;
	// 0 means DefaultMaxTxnOps.
	MaxTxnOps int
}

// CheckRange validates a RangeRequest as etcd's gRPC layer does.
func CheckRange(r *pb.RangeRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.GetSortOrder())]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.GetSortTarget())]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

// CheckPut validates a PutRequest as etcd's gRPC layer does.
func CheckPut(r *pb.PutRequest) error {
	switch {
	case len(r.GetKey()) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.GetIgnoreValue() && len(r.GetValue()) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.GetIgnoreLease() && r.GetLease() != 0:
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

// CheckDeleteRange validates a DeleteRangeRequest as etcd's gRPC layer does.
func CheckDeleteRange(r *pb.DeleteRangeRequest) error {
	if len(r.GetKey()) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// CheckTxn validates a TxnRequest as etcd's gRPC layer does: sizes, each op,
// then that no key is written twice (see checkIntervals).
func CheckTxn(r *pb.TxnRequest, limits Limits) error {
	maxOps := limits.MaxTxnOps
	if maxOps == 0 {
		maxOps = DefaultMaxTxnOps
	}
	if err := checkTxnRequest(r, maxOps); err != nil {
		return err
	}
	if _, _, err := checkIntervals(r.GetSuccess()); err != nil {
		return err
	}
	_, _, err := checkIntervals(r.GetFailure())
	return err
}

// checkTxnRequest bounds the txn by maxOps; nested txns get what the outer
// one leaves.
func checkTxnRequest(r *pb.TxnRequest, maxOps int) error {
	ops := max(len(r.GetCompare()), len(r.GetSuccess()), len(r.GetFailure()))
	if ops > maxOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.GetCompare() {
		if len(c.GetKey()) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, branch := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range branch {
			if err := checkRequestOp(op, maxOps-ops); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRequestOp(op *pb.RequestOp, maxOps int) error {
	switch {
	case op.GetRequestRange() != nil:
		return CheckRange(op.GetRequestRange())
	case op.GetRequestPut() != nil:
		return CheckPut(op.GetRequestPut())
	case op.GetRequestDeleteRange() != nil:
		return CheckDeleteRange(op.GetRequestDeleteRange())
	case op.GetRequestTxn() != nil:
		return checkTxnRequest(op.GetRequestTxn(), maxOps)
	}
	return rpctypes.ErrGRPCKeyNotFound // etcd's answer to an empty op
}

// IsReadOnlyTxn reports whether every op of both branches is a range. Like
// etcd, a nested txn counts as a write even if it only reads.
func IsReadOnlyTxn(r *pb.TxnRequest) bool {
	for _, branch := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range branch {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

// interval is a deleted range: [begin, end), or the single key begin when
// end is empty.
//
// etcd takes an end of "\x00" literally here, so a "from key" delete
// conflicts with no put, and a txn that deletes from "a" and then puts "b"
// with ignore_value passes its checks and crashes etcd's apply (the put
// finds no previous value). cairn keeps etcd's answer for plain puts but
// treats "from key" as [begin, +inf) for puts with ignore_value or
// ignore_lease, rejecting those txns with ErrGRPCDuplicateKey.
type interval struct{ begin, end string }

func (iv interval) contains(k string, ignoreFlags bool) bool {
	switch {
	case iv.end == "":
		return k == iv.begin
	case iv.end == "\x00" && ignoreFlags:
		return k >= iv.begin
	}
	return iv.begin <= k && k < iv.end
}

type intervals []interval

func (ivs intervals) contain(k string, ignoreFlags bool) bool {
	for _, iv := range ivs {
		if iv.contains(k, ignoreFlags) {
			return true
		}
	}
	return false
}

// keySet is a set of put keys that remembers insertion order, so that
// walking it is deterministic, and which puts had ignore flags.
type keySet struct {
	has    map[string]bool
	ignore map[string]bool
	keys   []string
}

func newKeySet() *keySet { return &keySet{has: map[string]bool{}, ignore: map[string]bool{}} }

func (s *keySet) add(k string, ignoreFlags bool) {
	if !s.has[k] {
		s.has[k] = true
		s.keys = append(s.keys, k)
	}
	s.ignore[k] = s.ignore[k] || ignoreFlags
}

// checkIntervals finds puts and deletes of one branch (nested txns
// included) that touch the same key, with etcd's rules: the deletes of the
// branch itself are collected first; each nested txn's puts must not meet
// earlier puts or the deletes collected so far (the two branches of one
// nested txn may put the same key); then its deletes join; finally the
// branch's own puts are checked against all of them.
func checkIntervals(ops []*pb.RequestOp) (*keySet, intervals, error) {
	var dels intervals
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			dels = append(dels, interval{string(d.GetKey()), string(d.GetRangeEnd())})
		}
	}
	puts := newKeySet()
	for _, op := range ops {
		nested := op.GetRequestTxn()
		if nested == nil {
			continue
		}
		var err error
		if dels, err = mergeNested(nested, puts, dels); err != nil {
			return nil, nil, err
		}
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k, ignoreFlags := string(p.GetKey()), p.GetIgnoreValue() || p.GetIgnoreLease()
		if puts.has[k] || dels.contain(k, ignoreFlags) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts.add(k, ignoreFlags)
	}
	return puts, dels, nil
}

// mergeNested checks a nested txn's writes against puts and dels, adds its
// puts to puts and returns dels with its deletes added.
func mergeNested(r *pb.TxnRequest, puts *keySet, dels intervals) (intervals, error) {
	putsThen, delsThen, err := checkIntervals(r.GetSuccess())
	if err != nil {
		return nil, err
	}
	putsElse, delsElse, err := checkIntervals(r.GetFailure())
	if err != nil {
		return nil, err
	}
	for _, k := range putsThen.keys {
		if puts.has[k] || dels.contain(k, putsThen.ignore[k]) {
			return nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts.add(k, putsThen.ignore[k])
	}
	for _, k := range putsElse.keys {
		if (puts.has[k] && !putsThen.has[k]) || dels.contain(k, putsElse.ignore[k]) {
			return nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts.add(k, putsElse.ignore[k])
	}
	return append(append(dels, delsThen...), delsElse...), nil
}
