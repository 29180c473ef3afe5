// Package hist is a latency histogram for the load generators of
// cmd/asyncdispatch: fixed memory, constant-time Add, quantiles within 1 %.
//
// Values are nanoseconds, kept log-linearly: exact below 128 ns, then 64
// sub-buckets per power of two (relative error below 1/64 ≈ 1.6 % at the
// bucket edge, half of that at the reported midpoint), as common
// load generators do. Add never allocates, so a histogram can
// sit on the hot path of a benchmark.
package hist

import (
	"fmt"
	"io"
	"math/bits"
	"strings"
	"time"
)

// subBits sets the precision: 1<<subBits sub-buckets per power of two.
const subBits = 6

// nBuckets covers every int64.
const nBuckets = (64 - subBits) << subBits

// Hist is a histogram of durations. The zero value is empty and ready.
type Hist struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      uint64
	min, max uint64
}

func bucketOf(v uint64) int {
	if v < 1<<(subBits+1) {
		return int(v)
	}
	// v>>e has subBits+1 bits: 1<<subBits plus the sub-bucket, so the
	// buckets of exponent e start at (e+1)<<subBits, right after those
	// of e-1 (or the exact ones).
	e := bits.Len64(v) - (subBits + 1)
	return e<<subBits + int(v>>e)
}

// lowOf is the smallest value of bucket i; bucket i holds [lowOf(i),
// lowOf(i+1)).
func lowOf(i int) uint64 {
	if i < 1<<(subBits+1) {
		return uint64(i)
	}
	e := i>>subBits - 1
	m := uint64(i&(1<<subBits-1)) + 1<<subBits
	return m << uint(e)
}

// Add records one duration (negative counts as 0).
func (h *Hist) Add(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds every value of o to h.
func (h *Hist) Merge(o *Hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset empties the histogram.
func (h *Hist) Reset() { *h = Hist{} }

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest value recorded (0 if none).
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest value recorded (0 if none).
func (h *Hist) Min() time.Duration { return time.Duration(h.min) }

// Mean is the average value (0 if none).
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Quantile returns the value below which a fraction q of the values lie
// (the midpoint of its bucket, clamped to the recorded minimum and
// maximum); 0 for an empty histogram.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q*float64(h.n) + 0.5)
	want = max(want, 1)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= want {
			lo, hi := lowOf(i), lowOf(i+1)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Fprint writes the quantiles and a bar chart with one row per power of
// two that holds values (a coarse view of the distribution's shape).
func (h *Hist) Fprint(w io.Writer) {
	if h.n == 0 {
		fmt.Fprintln(w, "  (no values)")
		return
	}
	fmt.Fprintf(w, "  min %v  mean %v  p50 %v  p90 %v  p99 %v  p99.9 %v  p99.99 %v  max %v\n",
		Round(h.Min()), Round(h.Mean()), Round(h.Quantile(0.5)), Round(h.Quantile(0.9)),
		Round(h.Quantile(0.99)), Round(h.Quantile(0.999)), Round(h.Quantile(0.9999)), Round(h.Max()))
	// Sum the fine buckets into octaves [2^k, 2^(k+1)).
	var oct [64]uint64
	for i, c := range h.counts {
		if c > 0 {
			oct[bits.Len64(lowOf(i))] += c
		}
	}
	first, last := -1, 0
	var top uint64
	for k, c := range oct {
		if c > 0 {
			if first < 0 {
				first = k
			}
			last = k
			top = max(top, c)
		}
	}
	const width = 40
	var cum uint64
	for k := first; k <= last; k++ {
		cum += oct[k]
		lo := time.Duration(0)
		if k > 0 {
			lo = time.Duration(uint64(1) << uint(k-1))
		}
		hi := time.Duration(uint64(1) << uint(k))
		bar := int((oct[k]*width + top - 1) / top)
		fmt.Fprintf(w, "  %9v – %-9v %10d %6.2f%% %s\n", Round(lo), Round(hi), oct[k],
			100*float64(cum)/float64(h.n), strings.Repeat("#", bar))
	}
}

// Round shortens a duration for display: three significant digits.
func Round(d time.Duration) time.Duration {
	for unit := 100 * time.Millisecond; unit >= time.Microsecond; unit /= 10 {
		if d >= unit {
			return d.Round(unit / 100)
		}
	}
	return d
}
