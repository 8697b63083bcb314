package mvcc

import (
	"fmt"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestReadersSeeWholeRevisions runs readers while a writer commits txns
// that each rewrite all keys to one value. Every read must see all keys at
// the same value, and that value must match the revision of the response.
func TestReadersSeeWholeRevisions(t *testing.T) {
	h := newHarness(t)
	const keys, writes, readers = 8, 200, 4
	txn := func(i int) *pb.TxnRequest {
		r := &pb.TxnRequest{}
		for k := range keys {
			r.Success = append(r.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: []byte(fmt.Sprintf("k%d", k)), Value: []byte(fmt.Sprint(i))}}})
		}
		return r
	}
	h.write(func(w *Writer) { w.Txn(txn(0)) }) // revision 2 holds value 0
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	stop := make(chan struct{})
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- readUntil(h.s, stop, keys)
		}()
	}
	for i := 1; i <= writes; i++ {
		h.write(func(w *Writer) {
			if _, err := w.Txn(txn(i)); err != nil {
				t.Error(err)
			}
		})
	}
	stopReaders(t, stop, &wg, errs)
}

// readUntil reads at least once, then until stop is closed.
func readUntil(s *Store, stop chan struct{}, keys int) error {
	for {
		if err := readOnce(s, keys); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		default:
		}
	}
}

func readOnce(s *Store, keys int) error {
	resp, err := s.Range(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l")})
	if err != nil {
		return err
	}
	want := fmt.Sprint(resp.Header.Revision - 2)
	if len(resp.Kvs) != keys {
		return fmt.Errorf("rev %d: %d keys", resp.Header.Revision, len(resp.Kvs))
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) != want {
			return fmt.Errorf("rev %d: %s=%s, want %s (half-applied revision)", resp.Header.Revision, kv.Key, kv.Value, want)
		}
	}
	return nil
}

// stopReaders stops the readers of a concurrency test, waits for them, and
// fails with the first error one reported.
func stopReaders(t *testing.T, stop chan struct{}, wg *sync.WaitGroup, errs chan error) {
	t.Helper()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
