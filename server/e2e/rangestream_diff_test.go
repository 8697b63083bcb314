//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// streamOutcome is everything one RangeStream call carried: its chunks
// (headers' ids cleared) and how it ended.
type streamOutcome struct {
	chunks []proto.Message
	end    diffOutcome // the error, or a nil resp with empty code for a clean end
}

func (o streamOutcome) String() string {
	var b strings.Builder
	for i, c := range o.chunks {
		fmt.Fprintf(&b, "chunk %d: %s\n", i, prototext.Format(c))
	}
	if o.end.code != "" {
		fmt.Fprintf(&b, "end: %v", o.end)
	} else {
		b.WriteString("end: EOF")
	}
	return b.String()
}

func (o streamOutcome) equal(p streamOutcome) bool {
	if len(o.chunks) != len(p.chunks) || o.end.code != p.end.code || o.end.msg != p.end.msg {
		return false
	}
	for i := range o.chunks {
		if !proto.Equal(o.chunks[i], p.chunks[i]) {
			return false
		}
	}
	return true
}

// streamChunksMax bounds the chunks the test reads of one stream.
const streamChunksMax = 10000

func runRangeStream(t *testing.T, kv pb.KVClient, req *pb.RangeRequest) streamOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out streamOutcome
	stream, err := kv.RangeStream(ctx, req)
	for err == nil && len(out.chunks) < streamChunksMax {
		var resp *pb.RangeStreamResponse
		if resp, err = stream.Recv(); err == nil {
			out.chunks = append(out.chunks, normalizeHeaders(resp))
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		st := status.Convert(err)
		out.end = diffOutcome{code: st.Code().String(), msg: st.Message()}
	}
	return out
}

// TestRangeStreamDifferential loads the same data into a fresh etcd and a
// fresh subject and compares, chunk by chunk, what RangeStream answers to
// requests of every kind: limits below, at and above the chunk sizes,
// keys_only, count_only, past and compacted revisions, sort targets, the
// refused orders and filters, and values large enough that the chunk size
// stops doubling.
func TestRangeStreamDifferential(t *testing.T) {
	subject := subjectKind(t)
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subject)
	kvs := []pb.KVClient{ref.KV(), sub.KV()}
	ctx := ctxTimeout(t, 2*time.Minute)
	write := func(req any) {
		for _, kv := range kvs {
			var err error
			switch r := req.(type) {
			case *pb.PutRequest:
				_, err = kv.Put(ctx, r)
			case *pb.DeleteRangeRequest:
				_, err = kv.DeleteRange(ctx, r)
			case *pb.CompactionRequest:
				_, err = kv.Compact(ctx, r)
			}
			if err != nil {
				t.Fatalf("%T %v: %v", req, req, err)
			}
		}
	}
	for i := range 700 {
		write(&pb.PutRequest{Key: fmt.Appendf(nil, "s/%04d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	for i := 0; i < 700; i += 7 {
		write(&pb.PutRequest{Key: fmt.Appendf(nil, "s/%04d", i), Value: []byte("again")})
	}
	write(&pb.CompactionRequest{Revision: 300})
	for i := 3; i < 700; i += 50 {
		write(&pb.DeleteRangeRequest{Key: fmt.Appendf(nil, "s/%04d", i)})
	}
	big := bytes.Repeat([]byte("x"), 40<<10)
	for i := range 120 {
		write(&pb.PutRequest{Key: fmt.Appendf(nil, "b/%03d", i), Value: big})
	}

	s, sEnd := []byte("s/"), []byte("s0")
	b, bEnd := []byte("b/"), []byte("b0")
	requests := []*pb.RangeRequest{
		{Key: s, RangeEnd: sEnd},
		{Key: s, RangeEnd: sEnd, Limit: 5},
		{Key: s, RangeEnd: sEnd, Limit: 10},
		{Key: s, RangeEnd: sEnd, Limit: 11},
		{Key: s, RangeEnd: sEnd, Limit: 30},
		{Key: s, RangeEnd: sEnd, Limit: 250},
		{Key: s, RangeEnd: sEnd, Limit: 686},
		{Key: s, RangeEnd: sEnd, Limit: 5000},
		{Key: s, RangeEnd: sEnd, Limit: -1},
		{Key: s, RangeEnd: sEnd, KeysOnly: true},
		{Key: s, RangeEnd: sEnd, CountOnly: true},
		{Key: s, RangeEnd: sEnd, CountOnly: true, Limit: 3},
		{Key: s, RangeEnd: sEnd, Serializable: true, Limit: 100},
		{Key: s, RangeEnd: sEnd, Revision: 400},
		{Key: s, RangeEnd: sEnd, Revision: 400, Limit: 77},
		{Key: s, RangeEnd: sEnd, Revision: 299},
		{Key: s, RangeEnd: sEnd, Revision: 1 << 40},
		{Key: s, RangeEnd: sEnd, SortOrder: pb.RangeRequest_DESCEND},
		{Key: s, RangeEnd: sEnd, SortOrder: pb.RangeRequest_ASCEND},
		{Key: s, RangeEnd: sEnd, SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_MOD},
		{Key: s, RangeEnd: sEnd, SortTarget: pb.RangeRequest_MOD, Limit: 45},
		{Key: s, RangeEnd: sEnd, SortTarget: pb.RangeRequest_VALUE},
		{Key: s, RangeEnd: sEnd, MinModRevision: 5},
		{Key: s, RangeEnd: sEnd, MaxCreateRevision: 5},
		{Key: s, RangeEnd: sEnd, SortOrder: 9},
		{Key: []byte("s/0007")},
		{Key: []byte("s/0003")},
		{Key: []byte("s/0690"), RangeEnd: []byte{0}},
		{Key: []byte("zz"), RangeEnd: []byte{0}},
		{Key: []byte("s/0100"), RangeEnd: []byte("s/0050")},
		{Key: []byte{0}, RangeEnd: []byte{0}, KeysOnly: true},
		{Key: b, RangeEnd: bEnd},
		{Key: b, RangeEnd: bEnd, Limit: 95},
		{Key: b, RangeEnd: bEnd, KeysOnly: true},
		{},
	}
	chunks, failed := 0, 0
	for i, req := range requests {
		want := runRangeStream(t, kvs[0], req)
		got := runRangeStream(t, kvs[1], req)
		if !want.equal(got) {
			t.Errorf("request %d %v:\ndiff (-etcd +%s):\n%s", i, prototext.Format(req), subject, lineDiff(want.String(), got.String()))
		}
		if i == 0 && (len(want.chunks) < 5 || want.end.code != "") {
			t.Fatalf("etcd answered the whole range in %d chunks (%v): the comparison would prove little", len(want.chunks), want.end)
		}
		chunks += len(want.chunks)
		if want.end.code != "" {
			failed++
		}
	}
	t.Logf("%d requests: etcd sent %d chunks in all, %d streams ended with an error", len(requests), chunks, failed)
}

// TestEtcdctlGetStream compares `etcdctl get --stream`, which reads
// through RangeStream, against etcd's answers.
func TestEtcdctlGetStream(t *testing.T) {
	ctlBin := requireBin(t, "ETCDCTL_BIN")
	subject := subjectKind(t)
	ref := StartMember(t, KindEtcd)
	sub := StartMember(t, subject)
	for _, m := range []*Member{ref, sub} {
		for i := range 60 {
			if r := runCtl(t, ctlBin, m, "", "put", fmt.Sprintf("key%02d", i), fmt.Sprintf("value%d", i)); r.exitCode != 0 {
				t.Fatalf("%s: put: %v", m.Kind, r)
			}
		}
	}
	for _, args := range [][]string{
		{"get", "--stream", "--prefix", "key"},
		{"get", "--stream", "--prefix", "key", "--limit", "15"},
		{"get", "--stream", "--prefix", "key", "--keys-only"},
		{"get", "--stream", "--prefix", "key", "--count-only", "-w", "json"},
		{"get", "--stream", "--prefix", "key", "-w", "json", "--limit", "25"},
		{"get", "--stream", "--from-key", "key50", "--rev", "40"},
		{"get", "--stream", "--prefix", "key", "--order", "DESCEND"},
	} {
		want := normalizeCtl(runCtl(t, ctlBin, ref, "", args...))
		got := normalizeCtl(runCtl(t, ctlBin, sub, "", args...))
		if want != got {
			t.Errorf("etcdctl %s:\netcd: %v\n%s: %v", strings.Join(args, " "), want, subject, got)
		}
	}
}
