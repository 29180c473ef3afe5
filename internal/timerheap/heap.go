// Package timerheap is the dispatcher's timer queue: a 4-ary min-heap of
// timers ordered by (When, push sequence).
//
// What must stay true:
//   - timers with equal When fire in the order they were pushed (libuv's
//     timer.c orders by start_id the same way), so every Push takes the next
//     sequence number;
//   - a slot carries its own copy of the ordering key (when, seq), so
//     sifting compares without touching the timers themselves: with a
//     million timers that is the difference between walking one array and
//     a cache miss per comparison (Go's runtime keeps timerWhen inline for
//     the same reason);
//   - Remove is lazy: it marks the timer unqueued and leaves its slot in
//     place as a tombstone, recognised because the timer's seq (that of
//     its latest Push) no longer matches the slot's. Tombstones reaching the top are dropped by Peek
//     and Pop, and when they outnumber live timers the heap is rebuilt
//     without them, so a cancelled timer costs O(1) to cancel, counts in
//     Len no more (Nim PR #25567: nothing lingers as pending) and holds
//     memory only until the next rebuild;
//   - timers pushed in deadline order — the common case: every request's
//     timeout has the same length, so each new one is the latest — go to a
//     sorted FIFO run beside the heap (q), O(1) to push and pop; only a
//     timer due before the run's tail goes into the heap. The earliest
//     timer is the smaller of the two heads, so the order is exactly the
//     heap's own;
//   - the heap never calls out to user code: firing is the caller's job, so
//     a callback that adds or removes timers cannot corrupt an iteration.
package timerheap

import "slices"

// Timer is one entry. When is on the caller's monotonic clock, in
// nanoseconds; it must not change while the timer is queued. Kind is the
// caller's tag, untouched by the heap: the caller embeds the Timer in its
// own struct and tells its kinds of timer apart by it. There is no payload
// pointer, so a timer costs the caller 24 bytes (a million timers: 16 MB
// less than with an interface payload, and two fewer words for the
// collector to scan in each).
type Timer struct {
	When   int64
	seq    uint64 // the sequence number of its latest Push
	queued bool
	Kind   uint8
}

// Queued reports whether t is in a heap.
func (t *Timer) Queued() bool { return t.queued }

type slot struct {
	when int64
	seq  uint64
	t    *Timer
}

// live: the slot is the timer's current one. Sequence numbers are unique
// per Push, so a timer removed and pushed again leaves its old slot dead.
func (s *slot) live() bool { return s.t.queued && s.t.seq == s.seq }

// Heap is the queue. The zero value is empty and ready to use.
type Heap struct {
	s    []slot // 4-ary heap
	q    []slot // sorted run: q[qh:] in (when, seq) order
	qh   int
	seq  uint64
	dead int // tombstones in s and q[qh:]
}

// Len is the number of queued timers.
func (h *Heap) Len() int { return len(h.s) + len(h.q) - h.qh - h.dead }

// Peek returns the earliest timer, or nil.
func (h *Heap) Peek() *Timer {
	if sl := h.head(); sl != nil {
		return sl.t
	}
	return nil
}

// head drops tombstones from both heads and returns the earliest slot.
func (h *Heap) head() *slot {
	h.skipDead()
	for h.qh < len(h.q) && !h.q[h.qh].live() {
		h.dead--
		h.popQ()
	}
	var best *slot
	if len(h.s) > 0 {
		best = &h.s[0]
	}
	if h.qh < len(h.q) && (best == nil || less(&h.q[h.qh], best)) {
		best = &h.q[h.qh]
	}
	return best
}

// Push queues t, which must not be queued already.
func (h *Heap) Push(t *Timer) {
	h.seq++
	t.seq = h.seq
	t.queued = true
	sl := slot{when: t.When, seq: h.seq, t: t}
	if h.qh == len(h.q) || !less(&sl, &h.q[len(h.q)-1]) {
		h.q = append(double(h.q), sl)
		return
	}
	h.s = append(double(h.s), sl)
	h.up(len(h.s) - 1)
}

// double makes room for one more slot by doubling a full array. append
// alone grows large slices by about 1.25x, so a queue filled to a million
// timers would copy (and leave to the collector) five times its final
// size instead of twice.
func double(s []slot) []slot {
	if len(s) < cap(s) {
		return s
	}
	return slices.Grow(s, max(cap(s), 64))
}

// Pop removes and returns the earliest timer, or nil.
func (h *Heap) Pop() *Timer {
	sl := h.head()
	if sl == nil {
		return nil
	}
	t := sl.t
	t.queued = false
	if h.qh < len(h.q) && sl == &h.q[h.qh] {
		h.popQ()
	} else {
		h.removeTop()
	}
	return t
}

// popQ drops the run's head, reusing the array once the run is empty and
// sliding it down when its dead front is larger than what is left.
func (h *Heap) popQ() {
	h.q[h.qh] = slot{}
	h.qh++
	switch n := len(h.q) - h.qh; {
	case n == 0:
		h.q, h.qh = h.q[:0], 0
		if cap(h.q) > 1024 {
			h.q = nil
		}
	case h.qh > 1024 && h.qh > n:
		copy(h.q, h.q[h.qh:])
		clear(h.q[n:])
		h.q, h.qh = h.q[:n], 0
	}
}

// Remove takes t out of the heap; it reports whether t was queued.
func (h *Heap) Remove(t *Timer) bool {
	if !t.queued {
		return false
	}
	t.queued = false
	h.dead++
	if h.dead > 64 && h.dead > (len(h.s)+len(h.q)-h.qh)/2 {
		h.rebuild()
	}
	return true
}

func (h *Heap) skipDead() {
	for len(h.s) > 0 && !h.s[0].live() {
		h.dead--
		h.removeTop()
	}
}

func (h *Heap) removeTop() {
	last := len(h.s) - 1
	h.s[0] = h.s[last]
	h.s[last] = slot{}
	h.s = h.s[:last]
	if last > 0 {
		h.down(0)
	}
	// Give memory back after a burst (a million timers fired at once).
	if c := cap(h.s); c > 1024 && len(h.s) < c/8 {
		n := make([]slot, len(h.s), c/4)
		copy(n, h.s)
		h.s = n
	}
}

// rebuild drops every tombstone and restores the heap order in O(n).
func (h *Heap) rebuild() {
	live := h.s[:0]
	for _, s := range h.s {
		if s.live() {
			live = append(live, s)
		}
	}
	clear(h.s[len(live):])
	h.s = live
	run := h.q[:0]
	for _, s := range h.q[h.qh:] {
		if s.live() {
			run = append(run, s)
		}
	}
	clear(h.q[len(run):])
	h.q, h.qh = run, 0
	h.dead = 0
	if c := cap(h.s); c > 1024 && len(h.s) < c/8 {
		n := make([]slot, len(h.s), max(len(h.s)*2, 64))
		copy(n, h.s)
		h.s = n
	}
	if c := cap(h.q); c > 1024 && len(h.q) < c/8 {
		n := make([]slot, len(h.q), max(len(h.q)*2, 64))
		copy(n, h.q)
		h.q = n
	}
	for i := (len(h.s) - 2) / 4; len(h.s) > 1 && i >= 0; i-- {
		h.down(i)
	}
}

func less(a, b *slot) bool {
	if a.when != b.when {
		return a.when < b.when
	}
	return a.seq < b.seq
}

func (h *Heap) up(i int) {
	x := h.s[i]
	for i > 0 {
		p := (i - 1) / 4
		if !less(&x, &h.s[p]) {
			break
		}
		h.s[i] = h.s[p]
		i = p
	}
	h.s[i] = x
}

func (h *Heap) down(i int) {
	n := len(h.s)
	x := h.s[i]
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		end := c + 4
		if end > n {
			end = n
		}
		for j := c + 1; j < end; j++ {
			if less(&h.s[j], &h.s[m]) {
				m = j
			}
		}
		if !less(&h.s[m], &x) {
			break
		}
		h.s[i] = h.s[m]
		i = m
	}
	h.s[i] = x
}
