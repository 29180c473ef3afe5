package asyncdispatch

import (
	"math/rand/v2"
	"testing"
)

// The ready queue against a slice model: pushes, pops and put-backs in
// random order, across many swaps of its two arrays (including the drop
// of an array grown by a burst), keep FIFO order; swept arrays hold no
// entries.
func TestReadyQueueModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q readyQueue
	var model []int // ids of the queued entries, in order
	var got []int   // ids reported by the entries run
	id := 0
	push := func() {
		v := id
		id++
		q.push(fnRunner(func() { got = append(got, v) }))
		model = append(model, v)
	}
	for step := 0; step < 200_000; step++ {
		switch k := r.IntN(100); {
		case k < 50 || len(model) == 0:
			n := 1
			if r.IntN(1000) == 0 {
				n = 10_000 // a burst
			}
			for i := 0; i < n; i++ {
				push()
			}
		case k < 95:
			e := q.pop()
			got = got[:0]
			e.runCallbacks()
			if len(got) != 1 || got[0] != model[0] {
				t.Fatalf("step %d: popped %v, want %d", step, got, model[0])
			}
			// Sometimes put it back in front (a panicking entry).
			if r.IntN(20) == 0 {
				q.pushFront(e)
			} else {
				model = model[1:]
			}
		default:
			if q.len() != len(model) {
				t.Fatalf("step %d: len %d, model %d", step, q.len(), len(model))
			}
		}
	}
	for len(model) > 0 {
		e := q.pop()
		got = got[:0]
		e.runCallbacks()
		if got[0] != model[0] {
			t.Fatalf("final drain: %d, want %d", got[0], model[0])
		}
		model = model[1:]
	}
	if q.len() != 0 {
		t.Fatalf("len %d after draining", q.len())
	}
	q.push(fnRunner(func() {}))
	q.pop()
	for i, e := range q.next[:cap(q.next)] {
		if e != nil {
			t.Fatalf("swept array still holds entry %d", i)
		}
	}
}
