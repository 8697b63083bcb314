package hist

import (
	"math"
	"math/bits"
	"time"
)

// subBucketBits sets the precision: each power of two is split into
// 2^subBucketBits buckets, so a bucket is at most 1/128 (0.8 %) wide relative
// to its lower bound.
const subBucketBits = 7

const (
	subBucketCount = 1 << subBucketBits
	// bucketCount covers every non-negative int64: values below 2*subBucketCount
	// are exact, then one row of subBucketCount buckets per further power of two.
	bucketCount = (64 - subBucketBits) * subBucketCount
)

// Histogram counts durations (nanoseconds) in log-linear buckets.
// The zero value is ready to use.
type Histogram struct {
	counts [bucketCount]uint64
	count  uint64
	sum    float64 // nanoseconds; float so long runs cannot overflow
	min    int64
	max    int64
}

// bucketOf maps v >= 0 to its bucket index.
func bucketOf(v uint64) int {
	if v < 2*subBucketCount {
		return int(v)
	}
	shift := bits.Len64(v) - (subBucketBits + 1)
	// v>>shift is in [subBucketCount, 2*subBucketCount).
	return (shift+1)*subBucketCount + int(v>>uint(shift)) - subBucketCount
}

// upperBound is the largest value that maps to bucket i.
func upperBound(i int) uint64 {
	if i < 2*subBucketCount {
		return uint64(i)
	}
	shift := i/subBucketCount - 1
	mantissa := uint64(i%subBucketCount + subBucketCount)
	return (mantissa+1)<<uint(shift) - 1
}

// Record adds one sample; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.counts[bucketOf(uint64(v))]++
	h.count++
	h.sum += float64(v)
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
	h.sum += o.sum
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.count }

// Max is the largest sample, exactly (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest sample, exactly (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the exact mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count))
}

// Quantile returns the q-quantile (0 < q <= 1) as the upper bound of the
// bucket holding the sample of rank ceil(q*count), clamped to [Min, Max].
// It returns 0 for an empty histogram and panics on q outside (0, 1].
func (h *Histogram) Quantile(q float64) time.Duration {
	if !(q > 0 && q <= 1) {
		panic("hist: quantile outside (0, 1]")
	}
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := int64(upperBound(i))
			v = min(max(v, h.min), h.max)
			return time.Duration(v)
		}
	}
	panic("hist: counts do not add up to count")
}

// Summary is the figures a report prints.
type Summary struct {
	Count uint64
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// Summarize returns the standard percentiles.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count: h.count,
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   h.Max(),
	}
}
