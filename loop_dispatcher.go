package asyncdispatch

import (
	"sync"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/timerheap"
)

// Dispatcher is one event loop (Nim's PDispatcher): an OS poller, a timer
// queue, a FIFO of ready callbacks, a table of registered descriptors and a
// pool of coroutines for async procedures.
//
// The threading rule: a dispatcher belongs to the goroutine that drives it
// (calls Poll, Drain, RunForever or WaitFor). Every callback, timer, fd
// callback and async procedure body runs on that goroutine, one at a time,
// so none of them needs a lock. Every method must be called on that
// goroutine, except the doors meant for other goroutines: CallSoonThreadSafe,
// Future.CompleteFrom/FailFrom, AsyncEvent.Trigger and Future.Wait.
// Several dispatchers on several goroutines run independently. A breach is
// a data race that corrupts the dispatcher; SetOwnerCheck (or
// ASYNCDISPATCH_CHECK=owner) makes it panic at once instead.
type Dispatcher struct {
	// poller is the OS readiness backend (epoll on Linux).
	poller poller.Poller
	// events is Wait's output buffer, reused every round.
	events []poller.Event
	// timers holds SleepAsync deadlines and AddTimer timers.
	timers timerheap.Heap
	// ready is the callSoon queue; only the loop's drain runs it.
	ready readyQueue
	// fds is the registered-descriptor table, indexed by fd number.
	fds []*fdState
	// nfds counts registered descriptors; nactive those with a pending
	// callback in either direction (ActiveDescriptors).
	nfds, nactive int
	// fdgen numbers registrations, so a stale event for a closed and
	// reused fd number is recognised and dropped.
	fdgen uint32
	// extRefs counts outstanding work that will reach the loop from
	// outside (a Go call running, a context being watched, a
	// cross-dispatcher await): while it is positive the loop has something
	// pending and Poll blocks instead of returning ErrNoWork.
	extRefs int
	// remote is the cross-goroutine queue (CallSoonThreadSafe,
	// loop_remote.go): lock-free, on cache lines of its own.
	remote remoteQueue
	// stats are the loop's counters (group_stats.go): plain fields, written
	// by the loop only.
	stats loopStats
	// polling is true while Poll runs (a nested Poll is an error);
	// current is the coroutine running now, nil on the loop itself.
	polling bool
	current *Coro
	// yieldIO: a coroutine spent its I/O budget and yielded; the current
	// drain stops so the loop polls descriptors and timers (loop_run.go).
	yieldIO bool
	// coros is every live coroutine, idle the pooled ones.
	coros []*Coro
	idle  []*Coro
	// checkErr holds failures surfaced by AsyncCheck and panics from
	// callbacks, returned by the Poll that ran them.
	checkErr []error
	// closed: Close was called; closing: it was called from inside Poll
	// and the teardown waits for Poll to unwind. done is closed at the end
	// of the teardown (for goroutines waiting on futures).
	closed, closing bool
	done            chan struct{}
	closeErr        error
	// tracking enables FuturesInProgress; inProgress is its table.
	tracking   bool
	inProgress map[any]*FutureInfo
	// epoch is the zero of the loop's monotonic clock; clock, if set,
	// replaces it (tests drive timers with a fake clock, export_test.go).
	epoch time.Time
	clock func() int64
	// atClose holds what teardown must release that is not in the fd
	// table (outstanding Go calls, signal forwarders; loop_doors.go,
	// signal.go), under a key of its owner's choosing, so the owner can
	// find its entry again and delete it when it finishes first. teardown
	// calls dispatcherClosed on each once, after closing the descriptors
	// and before closing done.
	atClose map[any]closeHook
	// foreign: coroutines of other dispatchers awaiting futures of this
	// one (loop_foreign.go); guarded by foreignMu.
	foreignMu sync.Mutex
	foreign   map[*foreignWait]struct{}
	// sock is the socket layer's state (sock.go): the accept error
	// handler, listeners backing off after EMFILE (sock_accept.go), and the
	// resolver and Happy Eyeballs settings tests replace.
	sock sockState
}

// closeHook is an entry of Dispatcher.atClose.
type closeHook interface{ dispatcherClosed() }

// NewDispatcher creates a dispatcher with its own epoll instance.
func NewDispatcher() (*Dispatcher, error) {
	p, err := poller.New()
	if err != nil {
		return nil, err
	}
	d := &Dispatcher{
		poller: p,
		events: make([]poller.Event, 256),
		done:   make(chan struct{}),
		epoch:  time.Now(),
	}
	if ownerCheckDefault() {
		d.SetOwnerCheck(true)
	}
	return d, nil
}

// now is the loop's monotonic clock in nanoseconds (never negative).
func (d *Dispatcher) now() int64 {
	if d.clock != nil {
		return d.clock()
	}
	return int64(time.Since(d.epoch))
}

// GetIoHandler returns the epoll descriptor, for integrating other
// libraries (Nim returns its selector). It is -1 after Close.
func (d *Dispatcher) GetIoHandler() int {
	if d.closed && !d.closing {
		return -1
	}
	return d.poller.Fd()
}

// CallSoon queues cb to run on the loop in a later callback round (the next
// Poll), after everything queued before it. It never runs cb
// synchronously, and a queued callback counts as a pending operation. A
// nil cb is ignored; after Close, cb is dropped.
func (d *Dispatcher) CallSoon(cb func()) {
	if cb == nil || d.closed {
		return
	}
	d.ready.push(fnRunner(cb))
}

func isClosedChan(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// HasPendingOperations reports whether the dispatcher has work that can
// still make progress: a timer, a queued callback, a descriptor with a
// pending operation or callback, or outstanding cross-goroutine work. An fd
// that is merely registered does not count (as in Nim).
func (d *Dispatcher) HasPendingOperations() bool {
	if d.closed {
		return false
	}
	return d.timers.Len() > 0 || d.ready.len() > 0 || d.nactive > 0 ||
		d.extRefs > 0 || d.remote.pending()
}

// ScheduleCallbacks runs the callbacks queued so far (and those they
// queue) without waiting for I/O or timers, and reports whether it ran any
// (Nim's Genode-only scheduleCallbacks). It returns false when called from
// inside the loop or after Close.
func (d *Dispatcher) ScheduleCallbacks() bool {
	g := d.claimLoop()
	defer releaseLoop(g)
	if d.polling || d.current != nil || d.closed {
		return false
	}
	d.takeRemote()
	if d.ready.len() == 0 {
		return false
	}
	d.polling = true
	d.drainReady()
	d.polling = false
	d.finishClose()
	return true
}

// Close stops the dispatcher and frees everything it holds: every
// suspended async procedure is resumed with ErrClosed from its Await and
// unwinds (its deferred calls run), pooled coroutines exit, pending fd
// operations and timers fail with ErrClosed, descriptors the package
// created (sockets, events) are closed, descriptors registered with
// Register are only unregistered, and the epoll fd is closed. No goroutine
// of the dispatcher survives Close.
//
// Close may be called from a callback or async procedure; the teardown
// then happens when the current Poll returns, and RunForever returns nil.
// A second Close returns ErrClosed.
func (d *Dispatcher) Close() error {
	d.checkOwner()
	if d.closed {
		return ErrClosed
	}
	d.closed = true
	if d.polling || d.current != nil {
		d.closing = true
		return nil
	}
	return d.teardown()
}

// finishClose runs a teardown deferred by Close inside Poll.
func (d *Dispatcher) finishClose() {
	if d.closing && !d.polling && d.current == nil {
		d.closing = false
		d.closeErr = d.teardown()
	}
}

func (d *Dispatcher) teardown() error {
	d.polling = true // nothing below may start a nested loop
	if g := d.ready.own; g != nil {
		// Procedures unwind below on their coroutines with none current
		// (dropCoro): the owner check cannot tell them from another
		// dispatcher's, so it rests until the teardown is over.
		drv := g.driver.Swap(0)
		defer g.driver.Store(drv)
	}
	// Coroutines first: their unwinding may close sockets and cancel
	// timers, which must still work.
	for len(d.coros) > 0 {
		co := d.coros[len(d.coros)-1]
		d.dropCoro(co)
	}
	d.idle = nil
	d.closeFDs()
	d.sock.backoff = nil // listeners backing off after EMFILE are closed
	for len(d.atClose) > 0 {
		hooks := d.atClose
		d.atClose = nil
		for _, h := range hooks {
			h.dispatcherClosed()
		}
	}
	for {
		t := d.timers.Pop()
		if t == nil {
			break
		}
		if t.Kind == kindSleeper {
			sleeperOf(t).fut.tryFail(ErrClosed)
		}
	}
	// Nothing outstanding can reach a closed loop any more (Go calls,
	// lookups, external futures, signal registrations were let go above).
	d.extRefs = 0
	// The remote queue closes before done: a post that sees done closed
	// fails (loop_remote.go).
	d.closeRemote()
	d.ready.clear()
	d.foreignMu.Lock()
	close(d.done)
	d.foreignMu.Unlock()
	d.closeForeign()
	d.polling = false
	if d == global.Load() {
		global.CompareAndSwap(d, nil)
	}
	return d.poller.Close()
}

// Done returns a channel that is closed when the dispatcher has been closed
// and torn down.
func (d *Dispatcher) Done() <-chan struct{} { return d.done }
