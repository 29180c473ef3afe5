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
//     place as a tombstone, recognised because the timer's gen no longer
//     matches the slot's. Tombstones reaching the top are dropped by Peek
//     and Pop, and when they outnumber live timers the heap is rebuilt
//     without them, so a cancelled timer costs O(1) to cancel, counts in
//     Len no more (Nim PR #25567: nothing lingers as pending) and holds
//     memory only until the next rebuild;
//   - the heap never calls out to user code: firing is the caller's job, so
//     a callback that adds or removes timers cannot corrupt an iteration.
package timerheap

// Timer is one entry. When is on the caller's monotonic clock, in
// nanoseconds; it must not change while the timer is queued. Arg is the
// caller's payload, untouched by the heap.
type Timer struct {
	When   int64
	Arg    any
	gen    uint32
	queued bool
}

// Queued reports whether t is in a heap.
func (t *Timer) Queued() bool { return t.queued }

type slot struct {
	when int64
	seq  uint64
	t    *Timer
	gen  uint32
}

func (s *slot) live() bool { return s.t.queued && s.t.gen == s.gen }

// Heap is the queue. The zero value is empty and ready to use.
type Heap struct {
	s    []slot
	seq  uint64
	dead int // tombstones in s
}

// Len is the number of queued timers.
func (h *Heap) Len() int { return len(h.s) - h.dead }

// Peek returns the earliest timer, or nil.
func (h *Heap) Peek() *Timer {
	h.skipDead()
	if len(h.s) == 0 {
		return nil
	}
	return h.s[0].t
}

// Push queues t, which must not be queued already.
func (h *Heap) Push(t *Timer) {
	h.seq++
	t.gen++
	t.queued = true
	h.s = append(h.s, slot{when: t.When, seq: h.seq, t: t, gen: t.gen})
	h.up(len(h.s) - 1)
}

// Pop removes and returns the earliest timer, or nil.
func (h *Heap) Pop() *Timer {
	h.skipDead()
	if len(h.s) == 0 {
		return nil
	}
	t := h.s[0].t
	t.queued = false
	h.removeTop()
	return t
}

// Remove takes t out of the heap; it reports whether t was queued.
func (h *Heap) Remove(t *Timer) bool {
	if !t.queued {
		return false
	}
	t.queued = false
	h.dead++
	if h.dead > 64 && h.dead > len(h.s)/2 {
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
	h.dead = 0
	if c := cap(h.s); c > 1024 && len(h.s) < c/8 {
		n := make([]slot, len(h.s), max(len(h.s)*2, 64))
		copy(n, h.s)
		h.s = n
	}
	for i := (len(h.s) - 2) / 4; i >= 0; i-- {
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
