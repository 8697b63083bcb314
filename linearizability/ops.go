package linearizability

import (
	"fmt"
	"strings"
)

// OpKind names the etcd KV call an operation makes.
type OpKind uint8

// The etcd KV calls the model understands. The zero value is invalid so a
// forgotten Kind is caught instead of read as a put.
const (
	OpPut OpKind = iota + 1
	OpGet
	OpRange
	OpDelete
	OpTxn
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpGet:
		return "get"
	case OpRange:
		return "range"
	case OpDelete:
		return "delete"
	case OpTxn:
		return "txn"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// RangeEndAll is etcd's range_end meaning "every key >= Key".
const RangeEndAll = "\x00"

// Request is the input of one operation: one etcd KV call, as the client sent
// it. Only the fields of its Kind are read.
type Request struct {
	Kind OpKind
	Key  string
	// End is etcd's range_end for OpRange and OpDelete: "" selects the
	// single key Key, RangeEndAll every key >= Key, anything else [Key, End).
	End string
	// Value is the value an OpPut writes.
	Value string
	// Limit caps the number of kvs an OpRange returns; 0 means no limit.
	// Keys come back in ascending order, etcd's default sort.
	Limit int64
	// Compares, Then and Else describe an OpTxn. Then runs if every
	// compare holds, Else otherwise. Their ops are OpPut, OpGet, OpRange
	// or OpDelete; as in etcd, a read later in a txn sees the txn's own
	// earlier writes, and a txn that writes the same key twice is invalid.
	Compares []Compare
	Then     []Request
	Else     []Request
	// Serializable marks a read etcd serves from the member's local state
	// without a ReadIndex barrier (RangeRequest.serializable; a read-only
	// txn whose ranges all are). It may be stale, so it must never be
	// recorded in a linearizable history: CheckSerializableRead checks it.
	// The model ignores it.
	Serializable bool
}

// KeyValue is one key as etcd's mvccpb.KeyValue reports it.
type KeyValue struct {
	Key            string
	Value          string
	CreateRevision int64
	ModRevision    int64
	Version        int64
}

// Response is the output of one operation: what the client observed. Fields
// that the request's Kind does not produce must stay zero.
type Response struct {
	// Unknown marks an operation whose outcome the client does not know
	// (timeout, lost connection, crashed server): it may or may not have
	// taken effect, at any time after its invocation. Every other field
	// but CommittedRevision is ignored.
	Unknown bool
	// CommittedRevision, for an unknown-outcome write only, is the revision
	// the committed history shows it created (NarrowUnknownWrites sets it;
	// 0: not known): the model lets it take effect there and nowhere else.
	CommittedRevision int64
	// HeaderRevision is the response header's revision: the revision a
	// write created, or the store's revision when a read or a write that
	// changed nothing was served.
	HeaderRevision int64
	// Found and KV are the result of an OpGet; KV is zero when !Found.
	Found bool
	KV    KeyValue
	// KVs, Count and More are the result of an OpRange. Count is the number
	// of keys in the range regardless of Limit; More is true when Limit cut
	// the result short.
	KVs   []KeyValue
	Count int64
	More  bool
	// Deleted is the result of an OpDelete: the number of keys removed.
	Deleted int64
	// Succeeded and Results are the result of an OpTxn: whether the
	// compares held, and one result per op of the branch taken, in order.
	// A result's HeaderRevision is not checked (etcd repeats the txn's).
	Succeeded bool
	Results   []Response
}

// CompareTarget is the field of a key a Compare looks at (etcd Compare.target).
type CompareTarget uint8

// Compare targets, as in etcd; LEASE is not modelled.
const (
	CompareVersion CompareTarget = iota + 1
	CompareCreateRevision
	CompareModRevision
	CompareValue
)

// CompareResult is the relation a Compare requires (etcd Compare.result).
type CompareResult uint8

// Compare relations, as in etcd: "the key's field <relation> the operand".
const (
	CompareEqual CompareResult = iota + 1
	CompareNotEqual
	CompareLess
	CompareGreater
)

// Compare is one txn guard. As in etcd, it holds only if it holds for every
// key in [Key, End) (or Key alone when End is ""); over no key at all it is
// evaluated against a zero KeyValue (version, create and mod revision 0)
// except a value compare, which then always fails.
type Compare struct {
	Key    string
	End    string
	Target CompareTarget
	Result CompareResult
	// The operand; only the one named by Target is read.
	Value          string
	Version        int64
	CreateRevision int64
	ModRevision    int64
}

// Put returns the request of etcd Put(key, value).
func Put(key, value string) Request { return Request{Kind: OpPut, Key: key, Value: value} }

// Get returns the request of a linearizable single-key etcd Range.
func Get(key string) Request { return Request{Kind: OpGet, Key: key} }

// Range returns the request of a linearizable etcd Range over [key, end).
func Range(key, end string, limit int64) Request {
	return Request{Kind: OpRange, Key: key, End: end, Limit: limit}
}

// Prefix returns the request of a linearizable etcd Range over every key
// starting with prefix.
func Prefix(prefix string, limit int64) Request { return Range(prefix, PrefixEnd(prefix), limit) }

// Serializable returns read r (a get, a range, or a txn without writes)
// marked serializable, with every read inside a txn marked too, as etcd's
// clientv3.WithSerializable does. It panics on a write: only reads can be
// served locally.
func Serializable(r Request) Request {
	if r.isWrite() {
		panic(fmt.Sprintf("linearizability: serializable write %s", describeRequest(r)))
	}
	r.Serializable = true
	r.Then, r.Else = serializableOps(r.Then), serializableOps(r.Else)
	return r
}

func serializableOps(ops []Request) []Request {
	if ops == nil {
		return nil
	}
	out := make([]Request, len(ops))
	for i, op := range ops {
		out[i] = Serializable(op)
	}
	return out
}

// Delete returns the request of etcd DeleteRange of the single key.
func Delete(key string) Request { return Request{Kind: OpDelete, Key: key} }

// DeleteRange returns the request of etcd DeleteRange over [key, end).
func DeleteRange(key, end string) Request { return Request{Kind: OpDelete, Key: key, End: end} }

// Txn returns the request of etcd Txn(If(compares...).Then(then...).Else(els...)).
func Txn(compares []Compare, then, els []Request) Request {
	return Request{Kind: OpTxn, Compares: compares, Then: then, Else: els}
}

// PrefixEnd is etcd's clientv3.GetPrefixRangeEnd: the smallest key greater
// than every key starting with prefix, or RangeEndAll when there is none.
func PrefixEnd(prefix string) string {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return RangeEndAll
}

// inRange reports whether key lies in the etcd range [start, end).
func inRange(key, start, end string) bool {
	switch end {
	case "":
		return key == start
	case RangeEndAll:
		return key >= start
	}
	return key >= start && key < end
}

// isWrite reports whether a request may create a revision.
func (r Request) isWrite() bool {
	switch r.Kind {
	case OpPut, OpDelete:
		return true
	case OpTxn:
		for _, op := range r.Then {
			if op.isWrite() {
				return true
			}
		}
		for _, op := range r.Else {
			if op.isWrite() {
				return true
			}
		}
	}
	return false
}

// describeRequest renders a request as a call, e.g. put("k1","v3"); a
// serializable read is prefixed "serializable ".
func describeRequest(r Request) string {
	if r.Serializable {
		r.Serializable = false
		if r.Kind == OpTxn {
			r.Then, r.Else = linearizableOps(r.Then), linearizableOps(r.Else)
		}
		return "serializable " + describeRequest(r)
	}
	switch r.Kind {
	case OpPut:
		return fmt.Sprintf("put(%q,%q)", r.Key, r.Value)
	case OpGet:
		return fmt.Sprintf("get(%q)", r.Key)
	case OpRange:
		return fmt.Sprintf("range(%q,%q,limit=%d)", r.Key, r.End, r.Limit)
	case OpDelete:
		if r.End == "" {
			return fmt.Sprintf("delete(%q)", r.Key)
		}
		return fmt.Sprintf("delete(%q,%q)", r.Key, r.End)
	case OpTxn:
		return fmt.Sprintf("txn(if %s then %s else %s)",
			describeCompares(r.Compares), describeRequests(r.Then), describeRequests(r.Else))
	}
	return r.Kind.String()
}

// linearizableOps returns ops without their serializable marks, so a
// serializable txn says so once.
func linearizableOps(ops []Request) []Request {
	out := make([]Request, len(ops))
	for i, op := range ops {
		op.Serializable = false
		out[i] = op
	}
	return out
}

func describeRequests(ops []Request) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = describeRequest(op)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func describeCompares(cs []Compare) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = describeCompare(c)
	}
	return "[" + strings.Join(parts, " && ") + "]"
}

func describeCompare(c Compare) string {
	relation := map[CompareResult]string{CompareEqual: "==", CompareNotEqual: "!=", CompareLess: "<", CompareGreater: ">"}[c.Result]
	key := fmt.Sprintf("%q", c.Key)
	if c.End != "" {
		key = fmt.Sprintf("[%q,%q)", c.Key, c.End)
	}
	switch c.Target {
	case CompareValue:
		return fmt.Sprintf("value(%s)%s%q", key, relation, c.Value)
	case CompareVersion:
		return fmt.Sprintf("version(%s)%s%d", key, relation, c.Version)
	case CompareCreateRevision:
		return fmt.Sprintf("create(%s)%s%d", key, relation, c.CreateRevision)
	case CompareModRevision:
		return fmt.Sprintf("mod(%s)%s%d", key, relation, c.ModRevision)
	}
	return fmt.Sprintf("compare(%s)?", key)
}

// describeResponse renders what a client observed for a request of kind.
func describeResponse(kind OpKind, r Response) string {
	if r.Unknown {
		return "? (outcome unknown)"
	}
	switch kind {
	case OpPut:
		return fmt.Sprintf("rev %d", r.HeaderRevision)
	case OpGet:
		if !r.Found {
			return fmt.Sprintf("not found, rev %d", r.HeaderRevision)
		}
		return fmt.Sprintf("%s, rev %d", describeKV(r.KV), r.HeaderRevision)
	case OpRange:
		return fmt.Sprintf("%s count=%d more=%t, rev %d", describeKVs(r.KVs), r.Count, r.More, r.HeaderRevision)
	case OpDelete:
		return fmt.Sprintf("deleted %d, rev %d", r.Deleted, r.HeaderRevision)
	case OpTxn:
		return fmt.Sprintf("succeeded=%t results=%s, rev %d", r.Succeeded, describeResults(r.Results), r.HeaderRevision)
	}
	return fmt.Sprintf("%+v", r)
}

func describeResults(results []Response) string {
	parts := make([]string, len(results))
	for i, res := range results {
		switch {
		case res.Found:
			parts[i] = describeKV(res.KV)
		case res.KVs != nil || res.Count != 0:
			parts[i] = describeKVs(res.KVs)
		case res.Deleted != 0:
			parts[i] = fmt.Sprintf("deleted %d", res.Deleted)
		default:
			parts[i] = "-"
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func describeKV(kv KeyValue) string {
	return fmt.Sprintf("%q=%q@mod %d (create %d, ver %d)", kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version)
}

func describeKVs(kvs []KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = describeKV(kv)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// DescribeOperation renders one operation for people, e.g.
// `put("k1","v3") → rev 7`.
func DescribeOperation(req Request, resp Response) string {
	return describeRequest(req) + " → " + describeResponse(req.Kind, resp)
}
