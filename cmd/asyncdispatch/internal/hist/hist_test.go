package hist

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every value falls in a bucket whose bounds contain it, and buckets are
// contiguous and increasing.
func TestBuckets(t *testing.T) {
	for i := 0; i < nBuckets-1; i++ {
		if lowOf(i) >= lowOf(i+1) {
			t.Fatalf("bucket %d: low %d not below next low %d", i, lowOf(i), lowOf(i+1))
		}
		if b := bucketOf(lowOf(i)); b != i {
			t.Fatalf("bucketOf(lowOf(%d)) = %d", i, b)
		}
		if b := bucketOf(lowOf(i+1) - 1); b != i {
			t.Fatalf("bucketOf(lowOf(%d)-1) = %d", i+1, b)
		}
	}
	if b := bucketOf(1<<63 - 1); b != nBuckets-1 {
		t.Fatalf("largest value in bucket %d, want %d", b, nBuckets-1)
	}
}

// Quantiles agree with the exact ones of a sorted sample within the
// bucket precision.
func TestQuantiles(t *testing.T) {
	var h Hist
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		h.Add(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 0.02 || diff < -0.02 {
			t.Errorf("q%.3f = %v, exact %v (%.1f%% off)", q, got, exact, 100*diff)
		}
	}
	if h.Count() != uint64(len(vals)) || h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
		t.Fatalf("count/min/max = %d/%v/%v", h.Count(), h.Min(), h.Max())
	}
	var m Hist
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 2*h.Count() || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Fatalf("merge: count %d, p50 %v", m.Count(), m.Quantile(0.5))
	}
	var b strings.Builder
	h.Fprint(&b)
	if !strings.Contains(b.String(), "p99.9") || !strings.Contains(b.String(), "#") {
		t.Fatalf("Fprint:\n%s", b.String())
	}
}

func TestAddAllocs(t *testing.T) {
	var h Hist
	if n := testing.AllocsPerRun(100, func() { h.Add(time.Millisecond) }); n != 0 {
		t.Fatalf("Add allocates %.0f times", n)
	}
}
