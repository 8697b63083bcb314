package node

import (
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func downgradeReq(action pb.DowngradeRequest_DowngradeAction, version string) Request {
	return Request{Downgrade: &pb.DowngradeRequest{Action: action, Version: version}}
}

// TestDowngradeAsEtcd: the answers etcd 3.7.3 gives in a one-version
// cluster, and a downgrade in progress is replicated state every member's
// Status shows, across a restart.
func TestDowngradeAsEtcd(t *testing.T) {
	h := newHarness(t, []uint64{1, 2, 3}, nil)
	leader := h.leader()
	const (
		validate = pb.DowngradeRequest_VALIDATE
		enable   = pb.DowngradeRequest_ENABLE
		cancel   = pb.DowngradeRequest_CANCEL
	)
	for _, step := range []struct {
		req  Request
		want error
	}{
		{downgradeReq(validate, "3.6"), nil},
		{downgradeReq(validate, "3.6.0"), nil},
		{downgradeReq(validate, "3.7"), rpctypes.ErrGRPCInvalidDowngradeTargetVersion},
		{downgradeReq(validate, "3.5"), rpctypes.ErrGRPCInvalidDowngradeTargetVersion},
		{downgradeReq(validate, "x"), rpctypes.ErrGRPCWrongDowngradeVersionFormat},
		{downgradeReq(enable, "v3.6"), rpctypes.ErrGRPCWrongDowngradeVersionFormat},
		{downgradeReq(cancel, ""), nil}, // nothing to cancel: etcd answers success
		{downgradeReq(enable, "3.6.1"), nil},
		{downgradeReq(enable, "3.6"), rpctypes.ErrGRPCDowngradeInProcess},
		{downgradeReq(validate, "3.6"), rpctypes.ErrGRPCDowngradeInProcess},
	} {
		resp, err := h.serve(2, step.req)
		if !errors.Is(err, step.want) {
			t.Fatalf("%v: %v, want %v", step.req.Downgrade, err, step.want)
		}
		if err == nil && resp.(*pb.DowngradeResponse).GetVersion() != "3.7" {
			t.Fatalf("%v: %v, want cluster version 3.7", step.req.Downgrade, resp)
		}
	}
	h.restart(3)
	h.leader()
	for _, id := range h.ids {
		if info := h.node(id).StatusResponse().GetDowngradeInfo(); !info.GetEnabled() || info.GetTargetVersion() != "3.6.0" {
			t.Fatalf("node %d downgrade info %v", id, info)
		}
	}
	if _, err := h.serve(leader, downgradeReq(cancel, "")); err != nil {
		t.Fatal(err)
	}
	for _, id := range h.ids {
		if info := h.node(id).StatusResponse().GetDowngradeInfo(); info.GetEnabled() {
			t.Fatalf("node %d downgrade info %v after cancel", id, info)
		}
	}
	if _, err := h.serve(1, downgradeReq(pb.DowngradeRequest_DowngradeAction(9), "")); !errors.Is(err, ErrUnknownDowngradeAction) {
		t.Fatalf("unknown action: %v", err)
	}
}
