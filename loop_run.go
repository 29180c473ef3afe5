package asyncdispatch

import (
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
)

// One loop iteration (runOnce), after asyncio's _run_once and Nim's runOnce:
//
//  1. refuse to run nested, closed, or with nothing pending (ErrNoWork);
//  2. fire the timers that are due;
//  3. wait for I/O: not at all if callbacks are queued or timers fired in
//     step 2, else until the
//     earliest timer or the caller's timeout, whichever is first — a
//     negative timeout still honours timers (Nim #14525 fixed);
//  4. run the callbacks of the descriptors that became ready, directly
//     (fd callbacks are not queued, as in Nim);
//  5. fire the timers that became due while waiting;
//  6. move callbacks posted by other goroutines onto the ready queue;
//  7. drain the ready queue until it is empty, including callbacks queued
//     while draining (as Nim's runOnce does). This is the only place
//     future callbacks and coroutine resumptions run. One exception keeps
//     a busy connection from starving the rest: an async procedure that
//     completed its I/O budget of socket operations without ever
//     suspending yields (Coro.spend), and the drain then stops so the next
//     Poll looks at descriptors and timers before going on.
//
// A panic in a callback or an AsyncCheck failure stops the drain; the
// callbacks behind it stay queued for the next Poll, and Poll returns the
// error (Nim raises it out of poll).

// DefaultPollTimeout is Nim's default poll timeout.
const DefaultPollTimeout = 500 * time.Millisecond

// Poll runs one iteration of the loop: it waits at most timeout for
// something to happen (0 never blocks, a negative timeout waits as long as
// needed, timers included), processes that one wakeup and every callback it
// makes ready, and returns. With nothing pending it returns ErrNoWork at
// once. It returns the first panic of a callback (as a *PanicError) or the
// first AsyncCheck failure it met. Called from a callback or an async
// procedure it returns ErrNestedLoop; called while another goroutine runs
// the loop, ErrWrongGoroutine.
func (d *Dispatcher) Poll(timeout time.Duration) error {
	g := d.claimLoop()
	if err := d.enter(); err != nil {
		releaseLoop(g)
		return err
	}
	// A panic that escapes runOnce (a double completion: a broken
	// invariant, re-panicked on purpose) must still leave the dispatcher
	// usable and closable.
	defer func() { d.polling = false; releaseLoop(g) }()
	if !d.HasPendingOperations() {
		if len(d.checkErr) > 0 {
			// Two callbacks panicked in the last round: the second is
			// returned now, not lost to ErrNoWork.
			err := d.checkErr[0]
			d.checkErr = d.checkErr[1:]
			return err
		}
		d.polling = false
		d.finishClose()
		if d.closed {
			return ErrClosed
		}
		return ErrNoWork
	}
	err := d.runOnce(timeout)
	d.polling = false
	d.finishClose()
	return err
}

func (d *Dispatcher) enter() error {
	if d.closed && !d.closing {
		return ErrClosed
	}
	if d.polling || d.current != nil {
		return loopBusy()
	}
	d.polling = true
	return nil
}

func (d *Dispatcher) runOnce(timeout time.Duration) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = d.recovered(p)
		}
		if err == nil && len(d.checkErr) > 0 {
			err = d.checkErr[0]
			d.checkErr = d.checkErr[1:]
		}
	}()
	fired := d.fireTimers()
	d.takeRemote()
	wait := timeout
	// Timers that fired count as this round's wakeup: do not block after
	// them even if they queued nothing.
	if d.ready.len() > 0 || fired > 0 {
		wait = 0
	} else if t := d.timers.Peek(); t != nil {
		until := time.Duration(t.When - d.now())
		if until < 0 {
			until = 0
		}
		if wait < 0 || until < wait {
			wait = until
		}
	}
	d.beforeWait()
	n, werr := d.wait(wait)
	d.afterWait()
	if werr != nil {
		return werr
	}
	for i := 0; i < n; i++ {
		d.dispatchEvent(d.events[i])
		if len(d.checkErr) > 0 {
			// Keep the rest of this round's events: they are level-
			// triggered and come back on the next Wait.
			return nil
		}
	}
	d.fireTimers()
	d.takeRemote()
	d.drainReady()
	return nil
}

// wait waits for I/O for at most wait (negative: no limit). One poller
// wait is capped at poller.MaxWait (about 11.6 days) and then reports
// nothing; wait then waits again for what is left, so a wait for a timer
// weeks away — or a "forever" one — still ends only on an event, a wake
// or its deadline.
func (d *Dispatcher) wait(wait time.Duration) (int, error) {
	if wait <= poller.MaxWait {
		return d.poller.Wait(d.events, wait)
	}
	end := d.deadline(wait)
	for {
		n, err := d.poller.Wait(d.events, wait)
		if n > 0 || err != nil || d.remote.pending() {
			return n, err
		}
		if wait = time.Duration(end - d.now()); wait <= 0 {
			return 0, nil
		}
	}
}

// drainReady runs queued callbacks until the queue is empty or one fails.
func (d *Dispatcher) drainReady() {
	d.yieldIO = false
	for d.ready.len() > 0 && len(d.checkErr) == 0 && !d.yieldIO {
		d.drainSome()
	}
}

// drainSome runs queued entries until the queue is empty or one panics;
// the panic becomes a Poll error and the unrun rest of an interrupted
// callback list goes back in front. One deferred recover covers the whole
// run instead of one per entry: callSoon's cost is mostly this loop.
func (d *Dispatcher) drainSome() {
	var cur entry
	defer func() {
		if p := recover(); p != nil {
			d.checkErr = append(d.checkErr, d.recovered(p))
			if cur != nil && cur.hasCallbacks() {
				d.ready.pushFront(cur)
			}
		}
	}()
	for d.ready.len() > 0 && len(d.checkErr) == 0 && !d.yieldIO {
		cur = d.ready.pop()
		if fn, ok := cur.(fnRunner); ok {
			fn() // the common CallSoon entry: one indirect call, not two
			continue
		}
		cur.runCallbacks()
	}
}

// recovered turns a callback panic into an error. A double completion
// stays a panic: it is a broken invariant in the program, not an I/O error.
func (d *Dispatcher) recovered(p any) error {
	if fe, ok := p.(*FutureError); ok {
		panic(fe)
	}
	if err, ok := p.(error); ok && errors.Is(err, ErrNestedLoop) {
		return err
	}
	return &PanicError{Value: p, Stack: debug.Stack(), Proc: "callback"}
}

// Drain runs the loop until nothing is pending or timeout, measured from the
// call, has passed (Nim #24506 fixed: the remaining time is timeout minus
// the time since Drain started). As Nim's drain it runs at least one
// round when something is pending, so Drain(0) runs what is ready without
// waiting. With nothing pending it returns nil at once. It returns early
// with the error of a failing Poll.
func (d *Dispatcher) Drain(timeout time.Duration) error {
	if timeout < 0 {
		return fmt.Errorf("%w: Drain timeout %v", ErrNegative, timeout)
	}
	g := d.claimLoop()
	defer releaseLoop(g)
	if err := d.enter(); err != nil {
		return err
	}
	d.polling = false
	start := d.now()
	for d.HasPendingOperations() {
		left := max(timeout-time.Duration(d.now()-start), 0)
		if err := d.Poll(left); err != nil {
			return err
		}
		if d.closed || time.Duration(d.now()-start) >= timeout {
			break
		}
	}
	return nil
}

// RunForever runs the loop until Close (it then returns nil) or until
// nothing is pending (it then returns ErrNoWork, as Nim's runForever raises
// it). It returns early with the error of a failing Poll.
func (d *Dispatcher) RunForever() error {
	g := d.claimLoop()
	defer releaseLoop(g)
	if err := d.enter(); err != nil {
		return err
	}
	d.polling = false
	for {
		if d.closed {
			return d.closeErr
		}
		if err := d.Poll(-1); err != nil {
			if d.closed && errors.Is(err, ErrClosed) {
				return d.closeErr
			}
			return err
		}
	}
}

// WaitFor runs f's dispatcher until f finishes and returns f's value or
// error (Nim's waitFor). Called from inside an async procedure or callback
// it returns ErrNestedLoop at once instead of nesting the loop (Nim
// #11911). Called on a goroutine while another one runs the loop it
// returns ErrWrongGoroutine: only the loop's goroutine may drive it; a
// goroutine that wants to block until f finishes calls f.Wait. If the loop
// runs out of work before f finishes, it returns ErrNoWork; if a Poll
// fails (an AsyncCheck failure, a callback panic), that error.
//
// WaitFor on the global dispatcher is no exception: there is one global
// dispatcher per process (Nim has one per thread), so goroutines that
// each call WaitFor(SleepAsync(…)) on it at once race on its timers and
// queues. Give each goroutine its own dispatcher.
func WaitFor[T any](f *Future[T]) (T, error) {
	var zero T
	if f == nil {
		return zero, ErrNilFuture
	}
	d := f.d
	g := d.claimLoop()
	defer releaseLoop(g)
	if d.polling || d.current != nil {
		return zero, loopBusy()
	}
	for f.state == pending {
		if err := d.Poll(-1); err != nil {
			if f.state != pending {
				break
			}
			return zero, err
		}
	}
	f.markSeen()
	return f.Read()
}
