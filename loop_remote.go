package asyncdispatch

import (
	"runtime"
	"sync/atomic"
	"time"
)

// The remote queue: callbacks other goroutines post to a loop
// (CallSoonThreadSafe, CompleteFrom, the wakes of cross-dispatcher
// awaits, RunOn's calls and results, a group's hand-offs), taken by the
// loop once per round.
//
// It is an intrusive multi-producer single-consumer stack with no lock:
// a post pushes its node with one compare-and-swap on head; the loop
// takes every node posted so far with one swap and reverses the batch,
// so callbacks run in the order their posts took effect (FIFO per
// producer, and across producers in the order of their CAS). Nodes are
// never popped one by one, so a node address reused by the allocator
// cannot fool a CAS (no ABA).
//
// What must stay true:
//   - a post either takes effect before the queue is closed (its node is
//     in the batch of a take or of close) or fails with ErrClosed and
//     never runs: close swaps in a sentinel that every later CAS sees;
//   - a node that took effect is handed to the loop exactly once: run on
//     the loop by a take, or — if the dispatcher is torn down first —
//     given to its drop function (if it has one) by close, never both
//     and never after the teardown. A poster that must learn the fate of
//     its callback (a connection handed to another loop, RunOn's call)
//     gives a drop function; CallSoonThreadSafe's callbacks are simply
//     discarded, as the ready queue's are;
//   - the loop reads head (one load, no write) to see whether anything
//     is queued, so a loop nobody posts to writes nothing shared; head
//     sits on a cache line of its own, so the posts of other goroutines
//     do not evict the loop's own fields;
//   - every write a poster made before its CAS is visible to the loop
//     after the swap that took the node (the atomics order them), which
//     is what the doors rely on instead of a lock;
//   - a post wakes the loop only when it found the queue empty: a post
//     onto a non-empty queue follows one that has woken, or will wake,
//     the loop, and the loop takes the whole batch after that wake.
//     Wakes coalesce further in the poller (one eventfd write per
//     Wait round);
//   - no wake reaches a closed poller: a post that found the queue empty
//     counts itself in wakers before its CAS and leaves after its wake,
//     and the teardown, having closed the queue, waits for wakers to drop
//     to zero before the poller is closed. Otherwise a post that had
//     pushed just before the close would write to the eventfd after it
//     was closed — EBADF, or eight bytes into whatever file has reused
//     the number since. Posts onto a non-empty queue do not wake and do
//     not count, so the count costs only the posts that make a system
//     call anyway.

// remoteNode is one post.
type remoteNode struct {
	next *remoteNode
	run  func()
	// drop, if set, runs on the loop's goroutine during the teardown if
	// run never will.
	drop func()
}

// remoteClosed is the head of a closed queue.
var remoteClosed = &remoteNode{}

// cacheLine is a generous cache line size (128 bytes covers the adjacent
// line prefetcher of x86 and the 128-byte lines of some arm64 parts).
const cacheLine = 128

type remoteQueue struct {
	_    [cacheLine]byte
	head atomic.Pointer[remoteNode]
	// wakers counts the posts between their push onto an empty queue and
	// the end of their wake (on head's line: those posts write it anyway).
	wakers atomic.Int32
	_      [cacheLine - 12]byte
}

// push adds n; it reports false if the queue is closed (n is not added),
// and wasEmpty whether n is the only node: the poster must then wake the
// loop and call woke after.
func (q *remoteQueue) push(n *remoteNode) (ok, wasEmpty bool) {
	for {
		old := q.head.Load()
		if old == remoteClosed {
			return false, false
		}
		n.next = old
		if old == nil {
			q.wakers.Add(1) // before the CAS, so a close after it waits
		}
		if q.head.CompareAndSwap(old, n) {
			return true, old == nil
		}
		if old == nil {
			q.wakers.Add(-1)
		}
	}
}

// woke ends the wake of a post that found the queue empty.
func (q *remoteQueue) woke() { q.wakers.Add(-1) }

// waitWakers returns once no post is between its push and the end of its
// wake (teardown, after close: no new one can start).
func (q *remoteQueue) waitWakers() {
	for i := 0; q.wakers.Load() != 0; i++ {
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(10 * time.Microsecond)
		}
	}
}

// pending reports whether posts are waiting to be taken (the loop only
// reads head for this).
func (q *remoteQueue) pending() bool {
	h := q.head.Load()
	return h != nil && h != remoteClosed
}

// take removes every node posted so far and returns them oldest first.
// Only the loop calls it, and never after close.
func (q *remoteQueue) take() *remoteNode {
	if !q.pending() {
		return nil
	}
	return reverse(q.head.Swap(nil))
}

// close closes the queue and returns what was posted and not taken,
// oldest first. Only the loop calls it, once, in the teardown.
func (q *remoteQueue) close() *remoteNode {
	h := q.head.Swap(remoteClosed)
	if h == remoteClosed {
		return nil
	}
	return reverse(h)
}

func reverse(n *remoteNode) *remoteNode {
	var prev *remoteNode
	for n != nil {
		next := n.next
		n.next = prev
		prev, n = n, next
	}
	return prev
}

// CallSoonThreadSafe is CallSoon for other goroutines: it queues cb on the
// loop and wakes the loop if it is blocked in Poll. It takes no lock: a
// post is one compare-and-swap (and, when the loop may be asleep, one
// write to its eventfd). Callbacks posted by one goroutine run in the
// order they were posted. It returns ErrClosed if the dispatcher is
// closed (cb will not run) and ErrNilCallback for nil. A callback posted
// before the dispatcher's teardown that has not run by then is discarded,
// as CallSoon's are.
func (d *Dispatcher) CallSoonThreadSafe(cb func()) error {
	if cb == nil {
		return ErrNilCallback
	}
	return d.callSoonThreadSafe(cb)
}

func (d *Dispatcher) callSoonThreadSafe(cb func()) error {
	return d.postNode(&remoteNode{run: cb})
}

// postOr is callSoonThreadSafe with a drop function: exactly one of run
// (on the loop) and drop (on the loop's goroutine, during its teardown)
// runs if it returns nil; neither runs if it returns ErrClosed.
func (d *Dispatcher) postOr(run, drop func()) error {
	return d.postNode(&remoteNode{run: run, drop: drop})
}

func (d *Dispatcher) postNode(n *remoteNode) error {
	if d.done == nil {
		return ErrClosed // a Dispatcher not made by NewDispatcher
	}
	ok, wasEmpty := d.remote.push(n)
	if !ok {
		return ErrClosed
	}
	if !wasEmpty {
		return nil
	}
	if remotePushed != nil {
		remotePushed()
	}
	err := d.poller.Wake()
	d.remote.woke()
	return err
}

// remotePushed, if set, runs between a post's push onto an empty queue and
// its wake (a test seam: the race with the teardown lives there).
var remotePushed func()

// takeRemote moves cross-goroutine callbacks to the ready queue. A node
// with a drop function goes there itself, so that the teardown can still
// find it if it has not run by then (dropTaken).
func (d *Dispatcher) takeRemote() {
	for n := d.remote.take(); n != nil; {
		next := n.next
		if n.drop == nil {
			d.ready.push(fnRunner(n.run))
		} else {
			n.next = nil
			d.ready.push(n)
		}
		n = next
	}
}

// runCallbacks runs a taken node with a drop function; clearing drop
// first marks it as run for dropTaken.
func (n *remoteNode) runCallbacks() {
	n.drop = nil
	n.run()
}

func (n *remoteNode) hasCallbacks() bool { return false }

// closeRemote is the teardown's part (before the ready queue is
// cleared): it closes the remote queue, then gives every node that will
// never run — posted and never taken, or taken and still queued — to its
// drop function.
func (d *Dispatcher) closeRemote() {
	batch := d.remote.close()
	d.remote.waitWakers() // before the poller closes (teardown, later)
	for n := batch; n != nil; n = n.next {
		if n.drop != nil {
			n.drop()
		}
	}
	q := &d.ready
	for _, list := range [2][]entry{q.run[q.pos:], q.next} {
		for _, e := range list {
			if n, ok := e.(*remoteNode); ok && n.drop != nil {
				drop := n.drop
				n.drop = nil
				drop()
			}
		}
	}
}
