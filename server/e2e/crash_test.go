//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	crashWriters     = 50
	crashLoad        = 2 * time.Second
	crashKillAfter   = 1200 * time.Millisecond
	crashKeys        = 200
	crashPutTimeout  = time.Second
	crashMinAckedOps = 100 // fewer acknowledgements than this means the load never ran
)

// crashWrite is one put: attempted, and acknowledged when revision > 0.
type crashWrite struct {
	key, value string
	revision   int64
}

// TestCrashDurability SIGKILLs a member under concurrent write load, restarts
// it on the same data dir, and checks that every acknowledged put survived:
// the key holds the value of its highest acknowledged revision or a later
// attempted one, the exact acknowledged version is readable at its revision,
// and the store's revision is at least the highest acknowledged one.
func TestCrashDurability(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		m := StartMember(t, kind)
		c := m.Client()

		var mu sync.Mutex
		attempted := map[string]map[string]bool{} // key -> values ever sent
		var acked []crashWrite

		stop := time.Now().Add(crashLoad)
		var wg sync.WaitGroup
		for w := range crashWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(uint64(w), 7))
				for seq := 0; time.Now().Before(stop); seq++ {
					key := fmt.Sprintf("crash/%03d", rnd.IntN(crashKeys))
					value := fmt.Sprintf("w%02d-%06d", w, seq)
					mu.Lock()
					if attempted[key] == nil {
						attempted[key] = map[string]bool{}
					}
					attempted[key][value] = true
					mu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), crashPutTimeout)
					resp, err := c.Put(ctx, key, value)
					cancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					mu.Lock()
					acked = append(acked, crashWrite{key, value, resp.Header.Revision})
					mu.Unlock()
				}
			}()
		}
		time.Sleep(crashKillAfter)
		mu.Lock()
		ackedBeforeKill := len(acked)
		mu.Unlock()
		m.Kill()
		wg.Wait()
		c.Close()
		t.Logf("%s: %d puts acknowledged before SIGKILL, %d in total", kind, ackedBeforeKill, len(acked))
		if len(acked) < crashMinAckedOps {
			t.Fatalf("only %d puts acknowledged: the load did not run", len(acked))
		}

		// Highest acknowledged write per key, and overall.
		last := map[string]crashWrite{}
		var maxRev int64
		for _, w := range acked {
			if w.revision > last[w.key].revision {
				last[w.key] = w
			}
			maxRev = max(maxRev, w.revision)
		}

		m.Start()
		c2 := m.Client()
		ctx := ctxTimeout(t, 60*time.Second)
		all, err := c2.Get(ctx, "crash/", clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("read after restart: %v", err)
		}
		if all.Header.Revision < maxRev {
			t.Errorf("store revision %d after restart < highest acknowledged revision %d", all.Header.Revision, maxRev)
		}
		current := map[string]int{}
		for i, kv := range all.Kvs {
			current[string(kv.Key)] = i
		}
		lost := 0
		for key, w := range last {
			i, ok := current[key]
			if !ok {
				lost++
				t.Errorf("key %s: acknowledged put %q at revision %d is gone", key, w.value, w.revision)
				continue
			}
			kv := all.Kvs[i]
			switch {
			case kv.ModRevision < w.revision:
				lost++
				t.Errorf("key %s: mod_revision %d (%q) < acknowledged revision %d (%q)", key, kv.ModRevision, kv.Value, w.revision, w.value)
			case kv.ModRevision == w.revision && string(kv.Value) != w.value:
				t.Errorf("key %s at revision %d: value %q, acknowledged %q", key, w.revision, kv.Value, w.value)
			case kv.ModRevision > w.revision && !attempted[key][string(kv.Value)]:
				t.Errorf("key %s: value %q at revision %d was never written", key, kv.Value, kv.ModRevision)
			}
			if lost > 10 {
				t.Fatalf("more than 10 acknowledged writes lost; stopping")
			}
		}
		// Every acknowledged put, not only the last per key, is in the history.
		for _, w := range acked {
			g, err := c2.Get(ctx, w.key, clientv3.WithRev(w.revision))
			if err != nil {
				t.Fatalf("get %s at acknowledged revision %d: %v", w.key, w.revision, err)
			}
			if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != w.value || g.Kvs[0].ModRevision != w.revision {
				t.Fatalf("get %s at acknowledged revision %d: got %v, want value %q mod_revision %d", w.key, w.revision, g.Kvs, w.value, w.revision)
			}
		}
	})
}
