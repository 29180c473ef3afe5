package asyncdispatch

import (
	"fmt"
	"iter"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
)

// An async procedure is a Go function
//
//	func(co *Coro) (T, error)
//
// Run it concurrently with Async, which returns its *Future[T] at once; or
// await it at once by simply calling it with the Coro you already have —
// that is exactly Nim's `await proc()` (it runs on the caller's coroutine
// until it finishes, suspending the caller whenever it suspends) and costs
// one function call.
//
// Coro is the coroutine an async procedure runs on. Await suspends it: the
// dispatcher's goroutine switches to the coroutine when it is resumed and
// back when it awaits an unfinished future or returns (iter.Pull's
// coroswitch, not a channel hand-off). Exactly one goroutine runs at a
// time, so the body may touch loop state without locks, like a callback.
//
// Coroutines are pooled per dispatcher: a finished procedure's coroutine
// waits for the next Async call instead of exiting. Close stops every
// coroutine, suspended or pooled, so none outlives its dispatcher.
type Coro struct {
	d     *Dispatcher
	next  func() (struct{}, bool)
	stop  func()
	yield func(struct{}) bool
	// job is the procedure to run next (set by Async before switching in).
	job job
	// gen counts suspensions; a future's callback resumes the coroutine
	// only if gen still matches (it may have been cancelled and have moved
	// on, or be running another procedure).
	gen uint32
	// mode: what the coroutine is doing.
	mode coroMode
	// waiting is the future a suspended coroutine waits for (for Cancel and
	// Close).
	waiting futureBase
	// cancelReq: the running procedure's future was cancelled while the
	// coroutine was not suspended; the next Await returns ErrCancelled.
	cancelReq bool
	// stopped: Close stopped the coroutine; Await returns ErrClosed, and a
	// second Await after that unwinds the body with a panic that run
	// recovers.
	stopped  bool
	stopSeen int
	// idx is the coroutine's place in d.coros.
	idx int
	// call is the procedure running now (for traces and Cancel).
	call procCall
	// op is the reusable operation of co.RecvInto, co.Send and
	// co.WaitReadable/WaitWritable (sock_coro.go).
	op *coroOp
	// budget counts the I/O operations that may still complete without a
	// suspension before the coroutine yields to the loop (see yieldIfSpent).
	budget int
}

// ioBudget is how many socket operations an async procedure may complete
// in a row without suspending before it yields to the loop. Try-first I/O
// and the no-switch Await of a finished future would otherwise let a
// connection whose socket always has data run forever and starve every
// other connection, timer and signal on the loop (Tokio's cooperative
// budget is 128 for the same reason). Only socket operations that complete
// at once are counted, where they happen (Dispatcher.charge); the yield
// comes at the next Await of a finished future, whatever wraps the
// operation. A million synchronous awaits of other futures still need no
// Poll (Nim #6100).
const ioBudget = 128

type coroMode uint8

const (
	coroIdle coroMode = iota
	coroRunning
	coroSuspended
)

type job interface {
	run(co *Coro)
}

type procCall interface {
	procName() string
}

// Dispatcher returns the dispatcher the coroutine runs on.
func (co *Coro) Dispatcher() *Dispatcher { return co.d }

// asyncCall is one running async procedure: its future and its body in one
// allocation.
type asyncCall[T any] struct {
	fut  Future[T]
	body func(*Coro) (T, error)
	co   *Coro
}

// Async starts the async procedure body on dispatcher d (nil means the
// global dispatcher) and returns its future. The body runs at once,
// synchronously, until it awaits an unfinished future (as Nim's async procs
// do); a body that never does returns an already finished future. A
// returned error fails the future; so does a panic, with a *PanicError
// holding the value and the stack. Nothing the body does is raised at the
// call site.
//
// Async must be called on d's goroutine. On a closed dispatcher the future
// fails with ErrClosed and body does not run.
func Async[T any](d *Dispatcher, body func(co *Coro) (T, error)) *Future[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	c := &asyncCall[T]{body: body}
	c.fut.init(d, c, 2)
	if body == nil {
		c.fut.Fail(ErrNilCallback)
		return &c.fut
	}
	if d.closed {
		c.fut.Fail(ErrClosed)
		return &c.fut
	}
	co := d.getCoro()
	co.job = c
	c.co = co
	co.call = c
	d.switchTo(co)
	return &c.fut
}

func (c *asyncCall[T]) procName() string { return funcName(c.body) }

// cancel delivers a cancellation to the running body: its current (or
// next) Await returns ErrCancelled. The future finishes with whatever the
// body then returns.
func (c *asyncCall[T]) cancel() bool {
	co := c.co
	if co == nil || co.call != procCall(c) {
		return false
	}
	co.cancelReq = true
	if co.mode == coroSuspended {
		w := co.waiting
		if w == nil || !w.Cancel() {
			// Nothing to cancel (a foreign future) or it cannot be
			// cancelled: stop waiting for it.
			gen := co.gen
			if w != nil {
				w.removeWaiter(co)
			}
			co.d.ready.push(fnRunner(func() { co.wake(gen) }))
		}
	}
	return true
}

func (c *asyncCall[T]) run(co *Coro) {
	defer func() {
		co.call = nil
		c.co = nil
		if p := recover(); p != nil {
			if p == errUnwind {
				c.fut.tryFail(ErrClosed)
				return
			}
			c.fut.tryFail(&PanicError{Value: p, Stack: debug.Stack(), Proc: c.procName()})
		}
	}()
	v, err := c.body(co)
	if err != nil {
		c.fut.tryFail(traced(err, c))
		return
	}
	c.fut.tryComplete(v)
}

// errNotRunning: Await with a Coro that is not the running coroutine.
var errNotRunning = fmt.Errorf("%w (the Coro given is not the running one: kept beyond its procedure, or another procedure's)", ErrNotAsync)

// errUnwind is panicked into a body that keeps awaiting after Close.
var errUnwind = &struct{ string }{"asyncdispatch: dispatcher closed"}

// getCoro takes a pooled coroutine or makes one.
func (d *Dispatcher) getCoro() *Coro {
	d.checkOwner()
	if n := len(d.idle); n > 0 {
		co := d.idle[n-1]
		d.idle = d.idle[:n-1]
		return co
	}
	co := &Coro{d: d, budget: ioBudget}
	co.next, co.stop = iter.Pull(co.loop)
	co.idx = len(d.coros)
	d.coros = append(d.coros, co)
	return co
}

// loop is the coroutine's body: run jobs until stopped.
func (co *Coro) loop(yield func(struct{}) bool) {
	co.yield = yield
	for {
		co.d.sock.resumed()
		j := co.job
		co.job = nil
		if j != nil {
			j.run(co)
		}
		co.mode = coroIdle
		co.cancelReq = false
		co.waiting = nil
		if co.stopped || !yield(struct{}{}) {
			return
		}
	}
}

// switchTo runs co until it suspends or finishes its procedure.
func (d *Dispatcher) switchTo(co *Coro) {
	prev := d.current
	d.current = co
	co.mode = coroRunning
	prevG := d.sock.runG.Load()
	co.next()
	d.sock.runG.Store(prevG)
	d.current = prev
	if co.mode == coroIdle {
		d.release(co)
	}
	if prev == nil && !d.polling {
		// Close called by a procedure started outside the loop: tear
		// down now that it has switched back.
		d.finishClose()
	}
}

// release returns a finished coroutine to the pool, or ends it if the pool
// is full or the dispatcher is closing.
func (d *Dispatcher) release(co *Coro) {
	if d.closed || co.stopped || len(d.idle) >= maxIdleCoros {
		d.dropCoro(co)
		return
	}
	d.idle = append(d.idle, co)
}

// maxIdleCoros bounds the pool: enough to absorb bursts of short
// procedures, small enough that an idle dispatcher holds little memory.
const maxIdleCoros = 256

func (d *Dispatcher) dropCoro(co *Coro) {
	co.stopped = true
	co.stop()
	last := len(d.coros) - 1
	if co.idx <= last && d.coros[co.idx] == co {
		d.coros[co.idx] = d.coros[last]
		d.coros[co.idx].idx = co.idx
		d.coros[last] = nil
		d.coros = d.coros[:last]
	}
}

// resumeFrom resumes co if it is still suspended waiting for f.
func (co *Coro) resumeFrom(f futureBase) {
	if co.mode != coroSuspended || co.waiting != f {
		return
	}
	co.d.switchTo(co)
}

// wake resumes co if it is still suspended in the wait numbered gen.
func (co *Coro) wake(gen uint32) {
	if co.mode != coroSuspended || co.gen != gen {
		return
	}
	co.d.switchTo(co)
}

// Await suspends the async procedure running on co until f finishes and
// returns f's value or error. Awaiting a finished future returns at once,
// without a switch or a trip through the loop, so long chains of
// synchronous completions cost function calls only (Nim's tasyncrecursion,
// #6100).
//
// Await returns ErrCancelled (wrapped with the procedure trace) if the
// procedure's own future is cancelled while it waits — the awaited future is
// cancelled with it — and ErrClosed when the dispatcher is closed. Await
// with a nil co returns ErrNotAsync; with a nil f, ErrNilFuture. Awaiting
// an unfinished future with a Coro that is not the running one (kept
// beyond its procedure, or another procedure's) returns an error matching
// ErrNotAsync.
func Await[T any](co *Coro, f *Future[T]) (T, error) {
	var zero T
	if f == nil {
		return zero, ErrNilFuture
	}
	if co == nil {
		return zero, ErrNotAsync
	}
	if f.d != co.d {
		return awaitForeign(co, f)
	}
	if f.state == pending {
		if err := co.park(f, co.gen); err != nil {
			return zero, err
		}
	} else if co.budget <= 0 {
		co.yieldSpent()
	}
	f.markSeen()
	if f.state == failed {
		return zero, f.err
	}
	if f.state == pending {
		return zero, ErrCancelled
	}
	return f.value, nil
}

// charge counts a socket operation that completed at once (try first) on
// the budget of the coroutine running it, if any. It is charged where the
// I/O happens, not where it is awaited, so an operation awaited through a
// wrapper (Timeout, All, a FutureStream) counts just the same.
func (d *Dispatcher) charge() {
	if co := d.current; co != nil {
		co.budget--
	}
}

// yieldSpent is called by an Await that would not switch once the budget
// is spent: the coroutine yields to the loop, queued behind everything
// that is ready, and resumes in the same Poll's drain or the next one. The
// awaited result is not affected; a cancellation or Close that arrives
// meanwhile is kept for the next Await.
func (co *Coro) yieldSpent() {
	co.budget = ioBudget
	if co.stopped || co.d.current != co {
		return
	}
	gen := co.gen
	co.d.ready.push(fnRunner(func() { co.wake(gen) }))
	// Let the loop see I/O too, not only the ready queue: a drain that
	// never ends would starve descriptors and timers just the same.
	co.d.yieldIO = true
	if err := co.park(nil, gen); err == ErrCancelled {
		co.cancelReq = true
	}
}

// awaitForeign awaits a future of another dispatcher, which runs on
// another goroutine: f may only be touched there, so the callback is added
// through f's loop's door, and the resumption comes back through ours. If
// f's dispatcher is closed before f finishes, the waiter is woken with
// ErrClosed (foreignWait) instead of staying suspended until its own
// dispatcher closes.
func awaitForeign[T any](co *Coro, f *Future[T]) (T, error) {
	var zero T
	d := co.d
	if d.current != co && !co.stopped {
		return zero, errNotRunning
	}
	w := &foreignWait{d: d, co: co, gen: co.gen}
	err := f.d.awaitFrom(w, func() { f.addCallback(callback{fn: func() { f.d.foreignDone(w, foreignFinished) }}) })
	if err != nil {
		// f's dispatcher closed meanwhile; its teardown may have posted a
		// wake for this wait already, which must not resume the next one.
		co.gen++
		return zero, err
	}
	d.extRefs++
	err = co.park(nil, w.gen)
	d.extRefs--
	if err != nil {
		// Cancelled, or our own dispatcher closed: stop watching f's.
		f.d.foreignDone(w, foreignGone)
		return zero, err
	}
	if w.outcome.Load() == foreignClosed {
		return zero, fmt.Errorf("%w (the awaited future's dispatcher was closed before it finished)", ErrClosed)
	}
	// f finished before the wake was posted: reading it here is ordered
	// after its completion by the doors (their queues' atomics).
	if f.state == failed {
		f.markSeen()
		return zero, f.err
	}
	return f.value, nil
}

// park switches back to the loop until the coroutine is woken for the
// wait numbered gen, and is the one place that checks whether it may
// suspend at all: a stopped coroutine gets ErrClosed (and a second
// attempt unwinds it), one that is not running errNotRunning. f, if not
// nil, is the future waited for (Await): park adds the coroutine's
// resumption to it — or, if a cancellation is pending, cancels f and
// returns ErrCancelled without suspending — and Cancel and Close look at
// it while the coroutine is suspended.
func (co *Coro) park(f futureBase, gen uint32) error {
	if co.stopped {
		co.stopSeen++
		if co.stopSeen > 1 {
			panic(errUnwind)
		}
		return ErrClosed
	}
	if co.d.current != co {
		return errNotRunning
	}
	if f != nil {
		if co.cancelReq {
			co.cancelReq = false
			f.Cancel()
			return ErrCancelled
		}
		f.addCallback(callback{co: co})
	}
	co.waiting = f
	co.mode = coroSuspended
	ok := co.yield(struct{}{})
	if ok {
		co.d.sock.resumed()
	}
	co.waiting = nil
	co.gen++
	co.mode = coroRunning
	co.budget = ioBudget
	if !ok || co.stopped {
		co.stopped = true
		co.stopSeen++
		if f != nil {
			f.removeWaiter(co)
		}
		return ErrClosed
	}
	if co.cancelReq {
		switch {
		case f == nil || !f.Finished():
			co.cancelReq = false
			return ErrCancelled
		case isCancel(f.errOrNil()):
			// Delivered through f, which was cancelled with us.
			co.cancelReq = false
		default:
			// f finished on its own in the same round as the Cancel:
			// its result is returned now, and the cancellation stays
			// requested for the next Await (dropping it here left a
			// cancelled procedure running for good).
		}
	}
	return nil
}

// PanicError is the error of a future whose async procedure panicked.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the goroutine stack at the panic
	Proc  string // the async procedure
}

func (e *PanicError) Error() string {
	return "asyncdispatch: panic in async procedure " + e.Proc + ": " + stringOf(e.Value)
}

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

func stringOf(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// funcName names a function value, for traces.
func funcName(fn any) string {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return "unspecified"
	}
	f := runtime.FuncForPC(v.Pointer())
	if f == nil {
		return "unspecified"
	}
	name := f.Name()
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return name
}
