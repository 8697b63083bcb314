package keys

import (
	"bytes"
	"testing"
)

func TestKeyHasExactSizeAndIsUnique(t *testing.T) {
	s := Space{Prefix: "bench/", Size: 16, Count: 5000}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var prev []byte
	for i := 0; i < s.Count; i++ {
		k := s.Key(nil, i)
		if len(k) != s.Size {
			t.Fatalf("key %q has %d bytes, want %d", k, len(k), s.Size)
		}
		if !bytes.HasPrefix(k, []byte(s.Prefix)) {
			t.Fatalf("key %q lacks prefix", k)
		}
		if seen[string(k)] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[string(k)] = true
		// Keys sort in index order, so a prefix scan with a limit reads the lowest indices.
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("keys out of order: %q then %q", prev, k)
		}
		prev = k
	}
	if got := string(s.Key([]byte("x"), 42)); got != "xbench/0000000042" {
		t.Fatalf("Key appends: got %q", got)
	}
}

func TestValidateRejectsTooSmallKeys(t *testing.T) {
	for _, s := range []Space{{Prefix: "p/", Size: 4, Count: 1000}, {Size: 8, Count: 0}} {
		if s.Validate() == nil {
			t.Errorf("%+v: Validate accepted it", s)
		}
	}
	if err := (Space{Size: 3, Count: 1000}).Validate(); err != nil {
		t.Errorf("3 digits for 1000 keys: %v", err)
	}
}

func TestSequentialWorkersCoverSpaceOnce(t *testing.T) {
	s := Space{Size: 8, Count: 103}
	const workers = 4
	count := make([]int, s.Count)
	gens := make([]*Generator, workers)
	for w := range gens {
		gens[w] = NewGenerator(s, Sequential, w, workers, 1)
	}
	// 103 keys over 4 workers: the first 103 draws, round-robin, hit each key once.
	for i := 0; i < s.Count; i++ {
		count[gens[i%workers].Next()]++
	}
	for i, c := range count {
		if c != 1 {
			t.Fatalf("key %d drawn %d times", i, c)
		}
	}
}

func TestRandomIsDeterministicAndInRange(t *testing.T) {
	s := Space{Size: 8, Count: 10}
	a := NewGenerator(s, Random, 1, 2, 99)
	b := NewGenerator(s, Random, 1, 2, 99)
	hits := make([]int, s.Count)
	for i := 0; i < 10000; i++ {
		x, y := a.Next(), b.Next()
		if x != y {
			t.Fatalf("draw %d: %d != %d with the same seed", i, x, y)
		}
		hits[x]++
	}
	for i, h := range hits {
		if h < 800 || h > 1200 {
			t.Fatalf("key %d drawn %d of 10000 times: not uniform", i, h)
		}
	}
}

func TestParseOrderAndValue(t *testing.T) {
	for in, want := range map[string]Order{"seq": Sequential, "sequential": Sequential, "random": Random, "rand": Random} {
		if got, err := ParseOrder(in); err != nil || got != want {
			t.Errorf("ParseOrder(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseOrder("zigzag"); err == nil {
		t.Error("ParseOrder accepted zigzag")
	}
	if len(Value(300)) != 300 {
		t.Error("Value size")
	}
}
