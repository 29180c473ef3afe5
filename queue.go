package asyncdispatch

// readyQueue is the dispatcher's FIFO of callbacks to run (Nim's callSoon
// deque). It is a ring buffer that grows by doubling and never shrinks
// below its initial size, so steady-state traffic allocates nothing.
//
// An entry is either a future whose callback list is due (one entry runs
// all callbacks that were registered when it finished, which is the same
// order as queueing each of them) or a single function (fnRunner: a func
// value is pointer-shaped, so wrapping it in the interface allocates
// nothing). One interface word pair per entry keeps the ring small and the
// drain to one dynamic call per entry.
type readyQueue struct {
	buf        []entry
	head, size int
}

type entry = runner

// runner is a finished future with callbacks to run.
type runner interface {
	// runCallbacks runs the callbacks captured at completion. It pops each
	// callback before calling it, so after a panic the entry can be queued
	// again to run the rest (hasCallbacks reports whether any are left).
	runCallbacks()
	hasCallbacks() bool
}

// fnRunner is a single queued function (CallSoon and internal wake-ups).
type fnRunner func()

func (f fnRunner) runCallbacks()      { f() }
func (f fnRunner) hasCallbacks() bool { return false }

func (q *readyQueue) len() int { return q.size }

func (q *readyQueue) push(e entry) {
	if q.size == len(q.buf) {
		q.grow()
	}
	q.buf[(q.head+q.size)&(len(q.buf)-1)] = e
	q.size++
}

// pushFront puts e before every queued entry (used to resume a callback
// list interrupted by a panic, so order is kept).
func (q *readyQueue) pushFront(e entry) {
	if q.size == len(q.buf) {
		q.grow()
	}
	q.head = (q.head - 1) & (len(q.buf) - 1)
	q.buf[q.head] = e
	q.size++
}

func (q *readyQueue) pop() entry {
	e := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.size--
	return e
}

func (q *readyQueue) grow() {
	n := len(q.buf) * 2
	if n == 0 {
		n = 64
	}
	nb := make([]entry, n)
	for i := 0; i < q.size; i++ {
		nb[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
	}
	q.buf, q.head = nb, 0
}

func (q *readyQueue) clear() {
	q.buf, q.head, q.size = nil, 0, 0
}
