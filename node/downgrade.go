package node

import (
	"errors"
	"fmt"
	"regexp"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Downgrade in the core, answered as etcd 3.7.3 answers it in a cluster
// whose members all run one version: the only valid target is the previous
// minor version (3.6); VALIDATE checks it, ENABLE records a downgrade in
// progress (replicated: every member's Status shows it), CANCEL clears it.
// Each first waits behind a ReadIndex barrier, so its check sees every
// downgrade change acknowledged before, as etcd's linearizable read does.
// cairn runs one version, so an enabled downgrade changes nothing else: the
// cluster version stays ClusterVersion.

const (
	// clusterMinorVersion is the cluster version downgrade answers report.
	clusterMinorVersion = "3.7"
	// downgradeTargetVersion is the one target a downgrade may have.
	downgradeTargetVersion = "3.6.0"
)

// keyDowngrade holds the downgrade in progress, next to the applied index:
//
//	ad → membershippb.DowngradeInfoSetRequest
var keyDowngrade = []byte("ad")

// ErrUnknownDowngradeAction is etcd's answer to an action it does not know.
var ErrUnknownDowngradeAction = status.Error(codes.Unknown, "etcdserver: unknown method")

// semverPattern is a version as etcd parses it: major.minor.patch with an
// optional pre-release and build, or major.minor.
var semverPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?$`)

// downgradeTarget reduces a target version to major.minor.0, or fails
// with etcd's format error.
func downgradeTarget(v string) (string, error) {
	m := semverPattern.FindStringSubmatch(v)
	if m == nil {
		return "", rpctypes.ErrGRPCWrongDowngradeVersionFormat
	}
	return m[1] + "." + m[2] + ".0", nil
}

// downgradeCell publishes the downgrade in progress (nil: none) to Status
// readers. The loop writes it.
type downgradeCell struct {
	p atomic.Pointer[membershippb.DowngradeInfoSetRequest]
}

func (c *downgradeCell) info() *pb.DowngradeInfo {
	d := c.p.Load()
	if d == nil || !d.GetEnabled() {
		return &pb.DowngradeInfo{}
	}
	return &pb.DowngradeInfo{Enabled: true, TargetVersion: d.GetVer()}
}

func (c *downgradeCell) enabled() bool { return c.info().GetEnabled() }

func loadDowngrade(db *pebble.DB) (*membershippb.DowngradeInfoSetRequest, error) {
	v, closer, err := db.Get(keyDowngrade)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load downgrade: %w", err)
	}
	defer closer.Close()
	d := &membershippb.DowngradeInfoSetRequest{}
	return d, unmarshal(v, d)
}

// startDowngrade checks the target's format at once and the rest behind a
// barrier.
func (n *Node) startDowngrade(id uint64, req *pb.DowngradeRequest) {
	switch req.GetAction() {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		if _, err := downgradeTarget(req.GetVersion()); err != nil {
			n.completed = append(n.completed, Completion{ID: id, Err: err})
			return
		}
	case pb.DowngradeRequest_CANCEL:
	default:
		n.completed = append(n.completed, Completion{ID: id, Err: ErrUnknownDowngradeAction})
		return
	}
	n.startBarrier(id, Request{Downgrade: req})
}

// finishDowngrade serves a downgrade request whose barrier is behind it:
// VALIDATE answers here, ENABLE and CANCEL (of a downgrade in progress)
// are proposed and answer when they apply. A CANCEL with nothing to cancel
// succeeds, as in etcd.
func (n *Node) finishDowngrade(id uint64, req *pb.DowngradeRequest) {
	target, _ := downgradeTarget(req.GetVersion())
	var set *membershippb.DowngradeInfoSetRequest
	switch req.GetAction() {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		switch {
		case target != downgradeTargetVersion:
			n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCInvalidDowngradeTargetVersion})
			return
		case n.downgrade.enabled():
			n.completed = append(n.completed, Completion{ID: id, Err: rpctypes.ErrGRPCDowngradeInProcess})
			return
		case req.GetAction() == pb.DowngradeRequest_ENABLE:
			set = &membershippb.DowngradeInfoSetRequest{Enabled: true, Ver: target}
		}
	case pb.DowngradeRequest_CANCEL:
		if n.downgrade.enabled() {
			set = &membershippb.DowngradeInfoSetRequest{}
		}
	}
	if set == nil {
		n.completed = append(n.completed, Completion{ID: id, Response: n.downgradeResponse(n.store.Rev())})
		return
	}
	n.propose(id, &pb.InternalRaftRequest{DowngradeInfoSet: set})
}

func (n *Node) downgradeResponse(rev int64) *pb.DowngradeResponse {
	return &pb.DowngradeResponse{Header: n.header(rev), Version: clusterMinorVersion}
}

// applyDowngrade records the downgrade in progress, or its end.
func (n *Node) applyDowngrade(b *pebble.Batch, rev int64, set *membershippb.DowngradeInfoSetRequest) (*pb.DowngradeResponse, error) {
	v, err := proto.Marshal(set)
	if err != nil {
		panic(fmt.Sprintf("node: marshal downgrade: %v", err))
	}
	if err := b.Set(keyDowngrade, v, nil); err != nil {
		return nil, err
	}
	n.downgrade.p.Store(proto.Clone(set).(*membershippb.DowngradeInfoSetRequest))
	return n.downgradeResponse(rev), nil
}
