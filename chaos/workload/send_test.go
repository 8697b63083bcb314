package workload

import (
	"testing"

	lin "github.com/cairn-db/cairn/linearizability"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestCompareConversion(t *testing.T) {
	for _, tc := range []struct {
		in     lin.Compare
		target pb.Compare_CompareTarget
		result pb.Compare_CompareResult
	}{
		{lin.Compare{Key: "k", Target: lin.CompareModRevision, Result: lin.CompareEqual, ModRevision: 7}, pb.Compare_MOD, pb.Compare_EQUAL},
		{lin.Compare{Key: "k", Target: lin.CompareCreateRevision, Result: lin.CompareLess, CreateRevision: 3}, pb.Compare_CREATE, pb.Compare_LESS},
		{lin.Compare{Key: "k", Target: lin.CompareVersion, Result: lin.CompareGreater, Version: 2}, pb.Compare_VERSION, pb.Compare_GREATER},
		{lin.Compare{Key: "k", End: "l", Target: lin.CompareValue, Result: lin.CompareNotEqual, Value: "v"}, pb.Compare_VALUE, pb.Compare_NOT_EQUAL},
	} {
		converted, err := toCmp(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		cmp := converted.GetCompare()
		if cmp.Target != tc.target || cmp.Result != tc.result || string(cmp.Key) != "k" || string(cmp.RangeEnd) != tc.in.End {
			t.Errorf("%+v converted to %+v", tc.in, cmp)
		}
	}
	if _, err := toCmp(lin.Compare{Key: "k"}); err == nil {
		t.Error("compare without target or result converted")
	}
}

func TestOpConversion(t *testing.T) {
	for _, req := range []lin.Request{lin.Put("k", "v"), lin.Get("k"), lin.Prefix("p/", 3), lin.Delete("k"), lin.DeleteRange("a", "b")} {
		op, err := toOp(req)
		if err != nil {
			t.Fatal(err)
		}
		if string(op.KeyBytes()) != req.Key || string(op.RangeBytes()) != req.End {
			t.Errorf("%+v converted to key %q end %q", req, op.KeyBytes(), op.RangeBytes())
		}
		if req.Kind == lin.OpPut && (!op.IsPut() || string(op.ValueBytes()) != "v") {
			t.Errorf("put converted to %+v", op)
		}
		if req.Kind == lin.OpDelete && !op.IsDelete() {
			t.Errorf("delete converted to %+v", op)
		}
	}
	if _, err := toOp(lin.Txn(nil, nil, nil)); err == nil {
		t.Error("txn converted to a single op")
	}
}
