package hist

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// exactQuantile is the dumb reference: sort and pick rank ceil(q*n).
func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestBucketBoundsRoundTrip(t *testing.T) {
	values := []uint64{0, 1, 127, 128, 255, 256, 257, 1000, 1 << 20, 1<<20 + 12345, 1<<40 - 1, math.MaxInt64}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= bucketCount {
			t.Fatalf("bucketOf(%d) = %d outside [0,%d)", v, i, bucketCount)
		}
		ub := upperBound(i)
		if ub < v {
			t.Errorf("upperBound(bucketOf(%d)) = %d < value", v, ub)
		}
		if i > 0 && upperBound(i-1) >= v {
			t.Errorf("value %d also fits bucket %d (ub %d)", v, i-1, upperBound(i-1))
		}
		if v > 0 && float64(ub-v)/float64(v) > 1.0/subBucketCount {
			t.Errorf("bucket of %d too wide: upper bound %d", v, ub)
		}
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	for i := 1; i < bucketCount; i++ {
		if upperBound(i-1)+1 != lowerBoundForTest(i) {
			t.Fatalf("gap between bucket %d (ub %d) and %d (lb %d)", i-1, upperBound(i-1), i, lowerBoundForTest(i))
		}
		if bucketOf(upperBound(i)) != i {
			t.Fatalf("bucketOf(upperBound(%d)) = %d", i, bucketOf(upperBound(i)))
		}
	}
}

func lowerBoundForTest(i int) uint64 {
	if i == 0 {
		return 0
	}
	return upperBound(i-1) + 1
}

func TestQuantilesAgainstSortedReference(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		n := 1 + r.IntN(20000)
		var h Histogram
		vals := make([]int64, n)
		for i := range vals {
			// Log-uniform between 1 µs and 10 s, like real latencies.
			v := int64(math.Exp(r.Float64()*math.Log(1e7)) * 1e3)
			vals[i] = v
			h.Record(time.Duration(v))
		}
		sort.Slice(vals, func(a, b int) bool { return vals[a] < vals[b] })
		for _, q := range []float64{0.0001, 0.5, 0.9, 0.99, 0.999, 1} {
			want := exactQuantile(vals, q)
			got := int64(h.Quantile(q))
			if got < want || float64(got-want) > float64(want)/subBucketCount+1 {
				t.Fatalf("seed %d n %d q %v: got %d, exact %d (must be >= and within 1/%d)", seed, n, q, got, want, subBucketCount)
			}
		}
		if int64(h.Max()) != vals[n-1] || int64(h.Min()) != vals[0] {
			t.Fatalf("min/max %v/%v, want %d/%d", h.Min(), h.Max(), vals[0], vals[n-1])
		}
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var a, b, all Histogram
	for i := 0; i < 5000; i++ {
		d := time.Duration(r.Int64N(int64(time.Second)))
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m.Summarize() != all.Summarize() || m.Min() != all.Min() {
		t.Fatalf("merged %+v, want %+v", m.Summarize(), all.Summarize())
	}
}

func TestEmptyAndEdgeCases(t *testing.T) {
	var h Histogram
	if s := h.Summarize(); s != (Summary{}) {
		t.Fatalf("empty summary %+v", s)
	}
	h.Record(-5)
	h.Record(3 * time.Millisecond)
	if h.Min() != 0 || h.Max() != 3*time.Millisecond || h.Quantile(1) != 3*time.Millisecond {
		t.Fatalf("min %v max %v p100 %v", h.Min(), h.Max(), h.Quantile(1))
	}
	if h.Mean() != 1500*time.Microsecond {
		t.Fatalf("mean %v", h.Mean())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Quantile(0) did not panic")
		}
	}()
	h.Quantile(0)
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	for i := 0; i < b.N; i++ {
		h.Record(time.Duration(i) * 997)
	}
}
