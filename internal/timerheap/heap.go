// Package timerheap is the dispatcher's timer queue: a 4-ary min-heap of
// *Timer ordered by (When, creation sequence).
//
// What must stay true:
//   - timers with equal When fire in the order they were pushed (libuv's
//     timer.c orders by start_id the same way), so every Push takes the next
//     sequence number;
//   - t.index is t's position in the heap plus one while queued and 0
//     otherwise (so a zero Timer is not queued),
//     which makes Remove O(log n) and lets a cancelled timer leave the queue
//     at once instead of lingering until its deadline (Nim PR #25567);
//   - the heap never calls out to user code: firing is the caller's job, so
//     a callback that adds or removes timers cannot corrupt an iteration.
//
// A 4-ary heap halves the depth of a binary one; with a million timers that
// is ten levels instead of twenty and fewer cache misses per operation.
package timerheap

// Timer is one entry. When is on the caller's monotonic clock, in
// nanoseconds. Arg is the caller's payload, untouched by the heap.
type Timer struct {
	When  int64
	Arg   any
	seq   uint64
	index int
}

// Queued reports whether t is in a heap.
func (t *Timer) Queued() bool { return t.index > 0 }

// Heap is the queue. The zero value is empty and ready to use.
type Heap struct {
	ts  []*Timer
	seq uint64
}

// Len is the number of queued timers.
func (h *Heap) Len() int { return len(h.ts) }

// Peek returns the earliest timer, or nil.
func (h *Heap) Peek() *Timer {
	if len(h.ts) == 0 {
		return nil
	}
	return h.ts[0]
}

// Push queues t, which must not be queued already.
func (h *Heap) Push(t *Timer) {
	h.seq++
	t.seq = h.seq
	h.ts = append(h.ts, t)
	h.up(len(h.ts) - 1)
}

// Pop removes and returns the earliest timer, or nil.
func (h *Heap) Pop() *Timer {
	if len(h.ts) == 0 {
		return nil
	}
	t := h.ts[0]
	h.removeAt(0)
	return t
}

// Remove takes t out of the heap; it reports whether t was queued.
func (h *Heap) Remove(t *Timer) bool {
	i := t.index - 1
	if i < 0 || i >= len(h.ts) || h.ts[i] != t {
		return false
	}
	h.removeAt(i)
	return true
}

func (h *Heap) removeAt(i int) {
	last := len(h.ts) - 1
	t := h.ts[i]
	if i != last {
		h.ts[i] = h.ts[last]
		h.ts[i].index = i + 1
	}
	h.ts[last] = nil
	h.ts = h.ts[:last]
	t.index = 0
	if i != last {
		if !h.up(i) {
			h.down(i)
		}
	}
	// Give memory back after a burst (a million timers fired at once).
	if c := cap(h.ts); c > 1024 && len(h.ts) < c/8 {
		n := make([]*Timer, len(h.ts), c/4)
		copy(n, h.ts)
		h.ts = n
	}
}

func less(a, b *Timer) bool {
	if a.When != b.When {
		return a.When < b.When
	}
	return a.seq < b.seq
}

func (h *Heap) up(i int) bool {
	t := h.ts[i]
	moved := false
	for i > 0 {
		p := (i - 1) / 4
		if !less(t, h.ts[p]) {
			break
		}
		h.ts[i] = h.ts[p]
		h.ts[i].index = i + 1
		i = p
		moved = true
	}
	h.ts[i] = t
	t.index = i + 1
	return moved
}

func (h *Heap) down(i int) {
	n := len(h.ts)
	t := h.ts[i]
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
			if less(h.ts[j], h.ts[m]) {
				m = j
			}
		}
		if !less(h.ts[m], t) {
			break
		}
		h.ts[i] = h.ts[m]
		h.ts[i].index = i + 1
		i = m
	}
	h.ts[i] = t
	t.index = i + 1
}
