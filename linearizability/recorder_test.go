package linearizability

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many goroutines record against one store guarded by a mutex, which is
// linearizable, so the recorded history must check; run with -race.
func TestRecorderConcurrentClients(t *testing.T) {
	var ticks atomic.Int64
	rec := NewRecorder(1, func() int64 { return ticks.Add(1) })
	var storeMu sync.Mutex
	store := newReferenceStore(1)
	const clients, perClient = 8, 200
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				req := Put("k"+string(rune('a'+i%5)), "v")
				if i%3 == 0 {
					req = Get("k" + string(rune('a'+i%5)))
				}
				id := rec.Invoke(c, req)
				storeMu.Lock()
				resp := store.do(req)
				storeMu.Unlock()
				switch {
				case i%50 == 7:
					rec.Unknown(id)
				case req.Kind == OpGet && i%7 == 0:
					rec.Fail(id) // a read: failing it leaves the history valid
					failed.Add(1)
				default:
					rec.Return(id, resp)
				}
			}
		}()
	}
	wg.Wait()
	if got, want := len(rec.Operations()), clients*perClient-int(failed.Load()); got != want || failed.Load() == 0 {
		t.Fatalf("recorded %d operations, want %d (%d failed ones dropped)", got, want, failed.Load())
	}
	if got, _ := rec.Check(time.Minute); got != ResultOK {
		t.Fatalf("check = %v, want ok", got)
	}
}

func TestRecorderPendingCountsAsUnknown(t *testing.T) {
	var now int64
	rec := NewRecorder(1, func() int64 { now++; return now })
	rec.Invoke(0, Put("a", "1")) // never finished
	id := rec.Invoke(1, Get("a"))
	rec.Return(id, getFound(2, kv("a", "1", 2, 2, 1)))
	if got, _ := rec.Check(0); got != ResultOK {
		t.Fatalf("check = %v, want ok", got)
	}
}

func TestRecorderFinishTwicePanics(t *testing.T) {
	rec := NewRecorder(1, func() int64 { return 0 })
	id := rec.Invoke(0, Put("a", "1"))
	rec.Return(id, putOK(2))
	defer func() {
		if recover() == nil {
			t.Fatal("second finish did not panic")
		}
	}()
	rec.Unknown(id)
}

func TestWriteReport(t *testing.T) {
	var now int64
	rec := NewRecorder(1, func() int64 { now++; return now })
	id := rec.Invoke(0, Put("k1", "v3"))
	rec.Return(id, putOK(2))
	id = rec.Invoke(1, Get("k1"))
	rec.Return(id, getNotFound(1)) // stale read: illegal
	if got, _ := rec.Check(0); got != ResultIllegal {
		t.Fatalf("check = %v, want illegal", got)
	}
	dir := filepath.Join(t.TempDir(), "report")
	if err := rec.WriteReport(dir); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, ReportHistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	want := "[1, 2] client 0 op 0: put(\"k1\",\"v3\") → rev 2\n[3, 4] client 1 op 1: get(\"k1\") → not found, rev 1\n"
	if string(text) != want {
		t.Fatalf("history.txt =\n%s\nwant\n%s", text, want)
	}
	html, err := os.ReadFile(filepath.Join(dir, ReportVisualizationFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), `put(\"k1\",\"v3\") → rev 2`) {
		t.Fatalf("visualization lacks the described put")
	}
}
