package timerheap

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// model is the heap's specification: a slice kept sorted by (When, order
// of Push).
type model struct {
	ts  []*Timer
	seq map[*Timer]int
	in  map[*Timer]bool
	n   int
}

func (m *model) push(t *Timer) {
	m.n++
	m.seq[t] = m.n
	i, _ := slices.BinarySearchFunc(m.ts, t, func(a, b *Timer) int {
		if a.When != b.When {
			if a.When < b.When {
				return -1
			}
			return 1
		}
		return m.seq[a] - m.seq[b]
	})
	m.ts = slices.Insert(m.ts, i, t)
	m.in[t] = true
}

func (m *model) pop() *Timer {
	if len(m.ts) == 0 {
		return nil
	}
	t := m.ts[0]
	m.ts = m.ts[1:]
	delete(m.in, t)
	return t
}

func (m *model) remove(t *Timer) bool {
	i := slices.Index(m.ts, t)
	if i < 0 {
		return false
	}
	m.ts = slices.Delete(m.ts, i, i+1)
	delete(m.in, t)
	return true
}

// check compares h with m (Len and Peek); full also verifies the heap's
// own invariants — the 4-ary heap order and every index — and Queued of
// every timer ever made.
func check(t *testing.T, h *Heap, m *model, all []*Timer, full bool) {
	t.Helper()
	if h.Len() != len(m.ts) {
		t.Fatalf("Len %d, model %d", h.Len(), len(m.ts))
	}
	if p := h.Peek(); (p == nil) != (len(m.ts) == 0) || (p != nil && p != m.ts[0]) {
		t.Fatalf("Peek %p, model %p", p, m.ts)
	}
	if !full {
		return
	}
	dead := 0
	for i := range h.s {
		if !h.s[i].live() {
			dead++
		}
		if i > 0 && less(&h.s[i], &h.s[(i-1)/4]) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	for i := h.qh; i < len(h.q); i++ {
		if !h.q[i].live() {
			dead++
		}
		if i > h.qh && less(&h.q[i], &h.q[i-1]) {
			t.Fatalf("run order broken at %d", i)
		}
	}
	if dead != h.dead {
		t.Fatalf("%d tombstones, counted %d", dead, h.dead)
	}
	for _, x := range all {
		if x.Queued() != m.in[x] {
			t.Fatalf("Queued() %v for a timer the model says %v", x.Queued(), !x.Queued())
		}
	}
}

// run applies the operations encoded in ops to a heap and to the model.
// Each operation is two bytes: what to do, and an argument.
func run(t *testing.T, ops []byte) {
	h := &Heap{}
	m := &model{seq: map[*Timer]int{}, in: map[*Timer]bool{}}
	var all []*Timer
	for k := 0; len(ops) >= 2; k++ {
		op, arg := ops[0], ops[1]
		ops = ops[2:]
		switch op % 6 {
		case 0, 1: // push a new timer; few distinct deadlines, many ties
			x := &Timer{When: int64(arg % 16)}
			all = append(all, x)
			h.Push(x)
			m.push(x)
		case 2: // pop
			if got, want := h.Pop(), m.pop(); got != want {
				t.Fatalf("Pop %v, model %v", got, want)
			}
		case 3: // remove some timer, queued or not
			if len(all) == 0 {
				continue
			}
			x := all[int(arg)%len(all)]
			if got, want := h.Remove(x), m.remove(x); got != want {
				t.Fatalf("Remove %v, model %v", got, want)
			}
		case 4: // push again a timer that is not queued, at a new deadline
			if len(all) == 0 {
				continue
			}
			x := all[int(arg)%len(all)]
			if x.Queued() {
				continue
			}
			x.When = int64(arg % 16)
			h.Push(x)
			m.push(x)
		case 5: // push a burst, to grow the heap and later shrink it
			for i := 0; i < int(arg%8); i++ {
				x := &Timer{When: int64(i % 7)}
				all = append(all, x)
				h.Push(x)
				m.push(x)
			}
		}
		check(t, h, m, all, k%8 == 0 || len(ops) < 2)
	}
	// Draining gives the model's order.
	for len(m.ts) > 0 {
		if got, want := h.Pop(), m.pop(); got != want {
			t.Fatalf("drain: Pop %v, model %v", got, want)
		}
	}
	if h.Pop() != nil || h.Peek() != nil || h.Len() != 0 {
		t.Fatal("drained heap not empty")
	}
}

// FuzzHeap checks random operation sequences against the sorted-slice
// model: pushes (with many equal deadlines), pops, removals of queued and
// unqueued timers, re-pushes and bursts.
func FuzzHeap(f *testing.F) {
	f.Add([]byte{0, 3, 0, 3, 0, 1, 2, 0, 2, 0, 2, 0})
	f.Add([]byte{5, 7, 3, 5, 3, 17, 2, 0, 4, 17, 2, 0})
	f.Add([]byte{0, 0, 1, 0, 0, 0, 3, 1, 4, 1, 2, 0, 2, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 256 {
			ops = ops[:256]
		}
		run(t, ops)
	})
}

// Random sequences in every run, not only under -fuzz.
func TestHeapRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		ops := make([]byte, 2*r.IntN(200))
		for j := range ops {
			ops[j] = byte(r.Uint32())
		}
		run(t, ops)
	}
}

// Equal deadlines come out in push order (libuv's timer.c start_id).
func TestEqualDeadlinesFIFO(t *testing.T) {
	h := &Heap{}
	var ts []*Timer
	for i := 0; i < 1000; i++ {
		x := &Timer{When: 5}
		ts = append(ts, x)
		h.Push(x)
	}
	early := &Timer{When: 4}
	h.Push(early)
	if h.Pop() != early {
		t.Fatal("earlier deadline not first")
	}
	for i := 0; i < 1000; i++ {
		if x := h.Pop(); x != ts[i] {
			t.Fatalf("pop %d: got another timer", i)
		}
	}
}

// A burst of a million timers removed gives its memory back.
func TestShrinkAfterBurst(t *testing.T) {
	h := &Heap{}
	var ts []*Timer
	for i := 0; i < 1<<20; i++ {
		x := &Timer{When: int64(i)}
		ts = append(ts, x)
		h.Push(x)
	}
	for _, x := range ts[:len(ts)-10] {
		if !h.Remove(x) {
			t.Fatal("Remove of a queued timer said false")
		}
	}
	if c := cap(h.s) + cap(h.q); c > 2048 {
		t.Fatalf("cap %d after removing all but 10 of a million timers", c)
	}
	if h.Remove(ts[0]) || (&Timer{}).Queued() {
		t.Fatal("removed or zero timer reported queued")
	}
}
