package asyncdispatch

// readyQueue is the dispatcher's FIFO of callbacks to run (Nim's callSoon
// deque). It is two arrays used in turn: push appends to next; the drain
// takes next over as run and walks it by index, while whatever the
// callbacks push goes to the other array. When run is used up it is
// cleared in one sweep and becomes next's array. Nothing is cleared or
// re-indexed per entry, and steady traffic allocates nothing: the two
// arrays keep their capacity (a burst's worth is given back, see take).
//
// What must stay true: the queue is run[pos:] followed by next, in that
// order; run[:pos] holds entries that have run (kept until the sweep, so a
// panicking entry can be put back in front, at pos-1).
//
// An entry is either a future whose callback list is due (one entry runs
// all callbacks that were registered when it finished, which is the same
// order as queueing each of them) or a single function (fnRunner: a func
// value is pointer-shaped, so wrapping it in the interface allocates
// nothing). One interface word pair per entry keeps the arrays small and
// the drain to one dynamic call per entry.
type readyQueue struct {
	run  []entry
	pos  int
	next []entry
	// own is the owner check (loop_owner.go), nil when it is off. It
	// lives here, beside next, because push is the busiest choke point:
	// off, the check costs push one load and one predictable branch.
	own *ownerGuard
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

func (q *readyQueue) len() int { return len(q.run) - q.pos + len(q.next) }

func (q *readyQueue) push(e entry) {
	if q.own != nil {
		q.own.check()
	}
	q.next = append(q.next, e)
}

// pushFront puts e before every queued entry (used to resume a callback
// list interrupted by a panic, so order is kept).
func (q *readyQueue) pushFront(e entry) {
	if q.pos > 0 {
		q.pos--
		q.run[q.pos] = e
		return
	}
	q.run = append([]entry{e}, q.run...)
}

// pop returns the first entry; the queue must not be empty.
func (q *readyQueue) pop() entry {
	if q.pos == len(q.run) {
		q.take()
	}
	e := q.run[q.pos]
	q.pos++
	return e
}

// take makes next the array being run, sweeping the used-up one clean (so
// it holds no callback for the collector) and handing it to push. An
// array grown far beyond what one round needed is dropped instead, so a
// burst of a million callbacks does not pin its memory for good.
func (q *readyQueue) take() {
	old := q.run
	clear(old)
	if cap(old) > 4096 && len(old) < cap(old)/8 {
		old = nil
	}
	q.run, q.pos, q.next = q.next, 0, old[:0]
}

func (q *readyQueue) clear() {
	q.run, q.pos, q.next = nil, 0, nil
}
