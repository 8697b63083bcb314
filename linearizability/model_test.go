package linearizability

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// history builds hand-written histories; times are virtual ticks.
type history []porcupine.Operation

func (h *history) add(client int, call, ret int64, req Request, resp Response) {
	*h = append(*h, porcupine.Operation{ClientId: client, Input: req, Call: call, Output: resp, Return: ret})
}

// unknown adds an operation whose outcome the client never learned.
func (h *history) unknown(client int, call int64, req Request) {
	h.add(client, call, call, req, Response{Unknown: true})
}

func putOK(revision int64) Response { return Response{HeaderRevision: revision} }

func getNotFound(revision int64) Response { return Response{HeaderRevision: revision} }

func getFound(revision int64, kv KeyValue) Response {
	return Response{HeaderRevision: revision, Found: true, KV: kv}
}

func kv(key, value string, create, mod, version int64) KeyValue {
	return KeyValue{Key: key, Value: value, CreateRevision: create, ModRevision: mod, Version: version}
}

func expectResult(t *testing.T, h history, want Result) {
	t.Helper()
	got, _ := Check(1, h, 0)
	if got != want {
		t.Fatalf("check = %v, want %v", got, want)
	}
}

func TestLegalConcurrentHistory(t *testing.T) {
	var h history
	h.add(0, 0, 10, Put("a", "1"), putOK(2))
	h.add(1, 1, 5, Get("a"), getNotFound(1))
	h.add(2, 8, 12, Get("a"), getFound(2, kv("a", "1", 2, 2, 1)))
	h.add(1, 6, 20, Put("b", "x"), putOK(3))
	h.add(0, 11, 25, Prefix("", 0), Response{HeaderRevision: 3, Count: 2,
		KVs: []KeyValue{kv("a", "1", 2, 2, 1), kv("b", "x", 3, 3, 1)}})
	h.add(2, 21, 30, Range("a", RangeEndAll, 1), Response{HeaderRevision: 3, Count: 2, More: true,
		KVs: []KeyValue{kv("a", "1", 2, 2, 1)}})
	h.add(1, 26, 40, Delete("a"), Response{HeaderRevision: 4, Deleted: 1})
	h.add(0, 27, 41, Put("b", "y"), putOK(5))
	h.add(2, 42, 43, Get("b"), getFound(5, kv("b", "y", 3, 5, 2)))
	expectResult(t, h, ResultOK)
}

func TestStaleReadAfterAcknowledgedWrite(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(1, 2, 3, Get("a"), getNotFound(1))
	expectResult(t, h, ResultIllegal)
}

func TestLostAcknowledgedWrite(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(0, 2, 3, Put("b", "1"), putOK(3))
	h.add(1, 4, 5, Get("a"), getNotFound(3))
	expectResult(t, h, ResultIllegal)
}

func TestTwoWritesWithSameRevision(t *testing.T) {
	var h history
	h.add(0, 0, 10, Put("a", "1"), putOK(2))
	h.add(1, 0, 10, Put("b", "1"), putOK(2))
	expectResult(t, h, ResultIllegal)
}

// A read of another key still must not lag a completed write: revisions are
// global, which is why the history is never partitioned by key.
func TestReadHeaderRevisionBehindCompletedWrite(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(1, 2, 3, Get("b"), getNotFound(1))
	expectResult(t, h, ResultIllegal)
}

func TestRevisionGap(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(0, 2, 3, Put("a", "2"), putOK(4))
	expectResult(t, h, ResultIllegal)
}

func TestRevisionGapFilledByUnknownWrite(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.unknown(1, 1, Put("b", "x"))
	h.add(0, 2, 3, Put("a", "2"), putOK(4))
	h.add(0, 4, 5, Get("b"), getFound(4, kv("b", "x", 3, 3, 1)))
	expectResult(t, h, ResultOK)
}

// The unknown write must fill the gap with its own value.
func TestRevisionGapFilledInconsistently(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.unknown(1, 1, Put("b", "x"))
	h.add(0, 2, 3, Put("a", "2"), putOK(4))
	h.add(0, 4, 5, Get("b"), getFound(4, kv("b", "other", 3, 3, 1)))
	expectResult(t, h, ResultIllegal)
}

// An unknown write invoked after the gap was observed cannot fill it.
func TestRevisionGapNotFillableByLaterUnknownWrite(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	h.add(0, 2, 3, Put("a", "2"), putOK(4))
	h.unknown(1, 4, Put("b", "x"))
	expectResult(t, h, ResultIllegal)
}

func TestTxnSuccessWhenCompareCannotHold(t *testing.T) {
	var h history
	h.add(0, 0, 1, Put("a", "1"), putOK(2))
	txn := Txn([]Compare{{Key: "a", Target: CompareValue, Result: CompareEqual, Value: "2"}},
		[]Request{Put("a", "3")}, nil)
	h.add(1, 2, 3, txn, Response{HeaderRevision: 3, Succeeded: true, Results: []Response{{}}})
	expectResult(t, h, ResultIllegal)
}

func TestTxnCompareOnMissingKey(t *testing.T) {
	modZero := Txn([]Compare{{Key: "a", Target: CompareModRevision, Result: CompareEqual, ModRevision: 0}},
		[]Request{Put("a", "1"), Get("a")}, []Request{Get("a")})
	valueEmpty := Txn([]Compare{{Key: "b", Target: CompareValue, Result: CompareEqual, Value: ""}},
		[]Request{Put("b", "1")}, []Request{Get("b")})
	t.Run("legal", func(t *testing.T) {
		var h history
		// A read in a txn sees the txn's own earlier write.
		h.add(0, 0, 1, modZero, Response{HeaderRevision: 2, Succeeded: true,
			Results: []Response{{}, {Found: true, KV: kv("a", "1", 2, 2, 1)}}})
		h.add(0, 2, 3, valueEmpty, Response{HeaderRevision: 2, Succeeded: false, Results: []Response{{}}})
		expectResult(t, h, ResultOK)
	})
	t.Run("value compare on missing key succeeded", func(t *testing.T) {
		var h history
		h.add(0, 0, 1, valueEmpty, Response{HeaderRevision: 2, Succeeded: true, Results: []Response{{}}})
		expectResult(t, h, ResultIllegal)
	})
}

func TestDeleteOfNothingCreatesNoRevision(t *testing.T) {
	t.Run("legal", func(t *testing.T) {
		var h history
		h.add(0, 0, 1, Delete("a"), Response{HeaderRevision: 1})
		h.add(0, 2, 3, Put("a", "1"), putOK(2))
		expectResult(t, h, ResultOK)
	})
	t.Run("claims a revision", func(t *testing.T) {
		var h history
		h.add(0, 0, 1, Delete("a"), Response{HeaderRevision: 2})
		expectResult(t, h, ResultIllegal)
	})
}

func TestUnknownWriteThatTookEffect(t *testing.T) {
	var h history
	h.unknown(0, 0, Put("a", "1"))
	h.add(1, 5, 6, Get("a"), getNotFound(1))
	h.add(1, 7, 8, Get("a"), getFound(2, kv("a", "1", 2, 2, 1)))
	h.add(1, 9, 10, Put("c", "1"), putOK(3))
	expectResult(t, h, ResultOK)
}

func TestUnknownWriteThatDidNotTakeEffect(t *testing.T) {
	var h history
	h.unknown(0, 0, Put("a", "1"))
	h.unknown(0, 1, Txn(nil, []Request{Delete("a"), Put("z", "z")}, nil))
	h.add(1, 5, 6, Put("b", "1"), putOK(2))
	h.add(1, 7, 8, Get("a"), getNotFound(2))
	expectResult(t, h, ResultOK)
}

// Once observed, an unknown write's effect cannot be undone.
func TestUnknownWriteObservedThenLost(t *testing.T) {
	var h history
	h.unknown(0, 0, Put("a", "1"))
	h.add(1, 5, 6, Get("a"), getFound(2, kv("a", "1", 2, 2, 1)))
	h.add(1, 7, 8, Get("a"), getNotFound(2))
	expectResult(t, h, ResultIllegal)
}

func TestUnknownReadsAreDropped(t *testing.T) {
	var h history
	h.unknown(0, 0, Get("a"))
	h.add(1, 1, 2, Put("a", "1"), putOK(2))
	prepared := Prepare(1, h)
	if len(prepared) != 1 {
		t.Fatalf("prepared %d operations, want the put only", len(prepared))
	}
	expectResult(t, h, ResultOK)
}

// TestSerializableMarksReads: Serializable marks a read and every read in a
// txn, describes it once, and refuses a write.
func TestSerializableMarksReads(t *testing.T) {
	txn := Serializable(Txn(nil, []Request{Get("a")}, []Request{Prefix("k", 0)}))
	if !txn.Serializable || !txn.Then[0].Serializable || !txn.Else[0].Serializable {
		t.Fatalf("not every read marked: %+v", txn)
	}
	if got := describeRequest(txn); got != `serializable txn(if [] then [get("a")] else [range("k","l",limit=0)])` {
		t.Fatalf("described as %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Serializable(Put) did not panic")
		}
	}()
	Serializable(Put("a", "1"))
}
