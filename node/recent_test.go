package node

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cairn-db/cairn/node/raftlog"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestRaftLogEntriesMatchStorage appends, overwrites, truncates and
// releases a log at random and checks that every Entries call served from
// memory returns what the log's segments return, and that the entries kept
// in memory stay within their byte bound (a large one, and one of a few
// entries).
func TestRaftLogEntriesMatchStorage(t *testing.T) {
	for _, bytesMax := range []int{8 << 20, 20000} {
		t.Run(fmt.Sprint(bytesMax), func(t *testing.T) { testRaftLogEntriesMatchStorage(t, bytesMax) })
	}
}

func testRaftLogEntriesMatchStorage(t *testing.T, bytesMax int) {
	fs := vfs.NewMem()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := raftlog.Open(fs, "wal", db, raftlog.Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := &raftLog{Storage: s, recentBytesMax: bytesMax}
	rng := rand.New(rand.NewPCG(1, 2))
	commit := func(fn func() error) {
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(rng.IntN(2) == 0); err != nil {
			t.Fatal(err)
		}
	}
	term := uint64(1)
	for step := range 2000 {
		last, _ := s.LastIndex()
		first, _ := s.FirstIndex()
		switch op := rng.IntN(10); {
		case op < 6: // append, sometimes over the tail
			from := last + 1
			if op == 0 && last >= first {
				from = first + rng.Uint64N(last-first+1)
				term++
			}
			ents := make([]*raftpb.Entry, 1+rng.IntN(40))
			for i := range ents {
				ents[i] = &raftpb.Entry{Index: proto.Uint64(from + uint64(i)), Term: proto.Uint64(term),
					Type: raftpb.EntryType_EntryNormal.Enum(), Data: make([]byte, rng.IntN(3000))}
			}
			commit(func() error { return s.Append(ents) })
			l.appended(ents)
			sum := 0
			for _, e := range l.recent {
				sum += entryBytes(e)
			}
			if sum != l.RecentBytes() || sum > bytesMax {
				t.Fatalf("step %d: entries in memory hold %d bytes, accounted %d, bound %d", step, sum, l.RecentBytes(), bytesMax)
			}
		case op < 7 && last > first+10: // truncate
			to := first + rng.Uint64N(last-first-5)
			commit(func() error { return s.Truncate(to) })
		case op < 8 && last >= first: // release, as after an apply
			l.release(first + rng.Uint64N(last-first+1))
		default: // read
			if last < first {
				continue
			}
			lo := first + rng.Uint64N(last-first+1)
			hi := lo + 1 + rng.Uint64N(last-lo+1)
			maxSize := rng.Uint64N(20000)
			got, gotErr := l.Entries(lo, hi, maxSize)
			want, wantErr := s.Entries(lo, hi, maxSize)
			if (gotErr == nil) != (wantErr == nil) || len(got) != len(want) {
				t.Fatalf("step %d: Entries(%d, %d, %d): %d entries (%v), storage %d (%v)", step, lo, hi, maxSize, len(got), gotErr, len(want), wantErr)
			}
			for i := range got {
				if !proto.Equal(got[i], want[i]) {
					t.Fatalf("step %d: Entries(%d, %d, %d)[%d] = %v, storage %v", step, lo, hi, maxSize, i, got[i], want[i])
				}
			}
		}
	}
}
