package asyncdispatch

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
)

// Void is the value type of a future that carries no value (Nim's
// Future[void]).
type Void struct{}

// state of a future. A future moves from pending to exactly one final state
// and never back.
type state uint8

const (
	pending state = iota
	completed
	failed
)

// Future holds a value of type T that becomes available later: a future is
// pending until it is completed with a value or failed with an error.
//
// A future belongs to one dispatcher. Complete, Fail, AddCallback, Cancel
// and the accessors must be called on that dispatcher's goroutine (the one
// running its Poll), like everything else on the loop; other goroutines use
// CompleteFrom / FailFrom, which hand the completion to the loop.
//
// Callbacks never run inside Complete or Fail: completion queues them, in
// the order they were added, on the dispatcher's ready queue, and the next
// Poll runs them (as Nim's callSoon does). A callback added to a
// finished future is queued at once.
type Future[T any] struct {
	d     *Dispatcher
	state state
	// seen is set once somebody looked at the outcome (Read, Err, Failed,
	// Await, AsyncCheck, a combinator); an unseen failure is reported
	// (see SetUnhandledErrorHandler).
	seen  bool
	value T
	err   error
	// cb0 is the first callback, inline: most futures have exactly one
	// (the coroutine awaiting them), which then costs no allocation.
	cb0 callback
	// src names the creating procedure and, if the package made the
	// future (an async procedure, a timer, a socket operation), knows how
	// to cancel the operation. A future that is only named (NewFuture,
	// the combinators) gets its name from the namedFuture it is part of.
	// The name lives there and not here so that the futures embedded in
	// timers, procedures and operations, whose src names them already,
	// carry no string: 80 bytes for Future[int], 72 for Future[Void].
	src source
	// dbg holds what the common future does not need — callbacks beyond
	// the first, the first completion's site, the unseen-failure note —
	// so the common future stays small.
	dbg *futureDebug
}

type futureDebug struct {
	// more are the callbacks after cb0, in order.
	more []callback
	// site is the pc of the first completion, for the double-completion
	// report (recorded while tracking is on).
	site uintptr
	note *failNote
}

// callback is a function or a suspended coroutine (resumed only if it is
// still waiting for this very future; a coroutine that stopped waiting
// early — cancelled, closed — removes itself with removeWaiter).
type callback struct {
	fn func()
	co *Coro
}

// source is the producer side of a future made by the package.
type source interface {
	procName() string
	// cancel stops the operation and releases what it holds (timer, fd
	// interest); it reports whether there was anything to stop. It must not
	// complete the future: the caller does.
	cancel() bool
}

// NewFuture creates a pending future on dispatcher d (nil means the global
// dispatcher). fromProc names the procedure that creates it, as Nim's
// newFuture(fromProc) does; it appears in double-completion reports,
// error traces and FuturesInProgress.
func NewFuture[T any](d *Dispatcher, fromProc string) *Future[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	f := newNamed[T](d, fromProc)
	if d.tracking {
		d.track(f, 2)
	}
	return f
}

// namedFuture is a future and its creator's name in one allocation (the
// same 96 bytes a Future[int] with a name field took).
type namedFuture[T any] struct {
	Future[T]
	name string
}

func (n *namedFuture[T]) procName() string { return n.name }
func (n *namedFuture[T]) cancel() bool     { return false }

// newNamed makes a pending future on d named name.
func newNamed[T any](d *Dispatcher, name string) *Future[T] {
	n := &namedFuture[T]{Future: Future[T]{d: d}, name: name}
	n.src = n
	return &n.Future
}

// init binds a future embedded in its producer (a timer, an async call, a
// socket operation) to d and to the producer, and records it for
// FuturesInProgress when tracking is on; skip is what the caller would
// pass to track (frames between the user's call and the caller).
func (f *Future[T]) init(d *Dispatcher, src source, skip int) {
	f.d, f.src = d, src
	if d.tracking {
		d.track(f, skip+1)
	}
}

// Dispatcher returns the dispatcher the future belongs to.
func (f *Future[T]) Dispatcher() *Dispatcher { return f.d }

// Finished reports whether the future is completed or failed.
func (f *Future[T]) Finished() bool { return f.state != pending }

// Failed reports whether the future failed (a cancelled future has failed
// with ErrCancelled).
func (f *Future[T]) Failed() bool {
	f.markSeen()
	return f.state == failed
}

// Cancelled reports whether the future failed with ErrCancelled.
func (f *Future[T]) Cancelled() bool {
	return f.state == failed && isCancel(f.err)
}

// Read returns the value of a completed future, the error of a failed one,
// and ErrInProgress for a pending one.
func (f *Future[T]) Read() (T, error) {
	switch f.state {
	case completed:
		return f.value, nil
	case failed:
		f.markSeen()
		var zero T
		return zero, f.err
	}
	var zero T
	return zero, ErrInProgress
}

// Err returns the error of a failed future and nil otherwise (Nim's
// readError, which raises instead of returning nil).
func (f *Future[T]) Err() error {
	if f.state == failed {
		f.markSeen()
		return f.err
	}
	return nil
}

// Proc is the name of the procedure that created the future.
func (f *Future[T]) Proc() string {
	if f.src != nil {
		if name := f.src.procName(); name != "" {
			return name
		}
	}
	return "unspecified"
}

// String describes the future for logs and debugging.
func (f *Future[T]) String() string {
	switch f.state {
	case completed:
		return fmt.Sprintf("Future[%T](%s, completed: %v)", f.value, f.Proc(), f.value)
	case failed:
		return fmt.Sprintf("Future[%T](%s, failed: %v)", f.value, f.Proc(), f.err)
	}
	return fmt.Sprintf("Future[%T](%s, pending)", f.value, f.Proc())
}

// Complete completes the future with v and queues its callbacks.
//
// Completing or failing a finished future panics every time (Nim checks
// only in debug builds and otherwise silently overwrites the value); the
// panic message starts with Nim's line "An attempt was made to complete a
// Future more than once." and names the future's creator and the second
// call site. It names the first call site too if tracking (SetTracking)
// was on when the first completion happened; otherwise it says that the
// first is unknown. Recording it always would cost every completion a
// stack walk and an allocation (about three times the cost of a future).
func (f *Future[T]) Complete(v T) {
	if f.state != pending {
		f.doubleCompletion(1)
	}
	f.value = v
	f.state = completed
	f.finish()
}

// Fail fails the future with err (nil becomes an error saying so) and
// queues its callbacks. See Complete about finishing twice.
func (f *Future[T]) Fail(err error) {
	if f.state != pending {
		f.doubleCompletion(1)
	}
	if err == nil {
		err = fmt.Errorf("asyncdispatch: Fail(nil) on future from %s", f.Proc())
	}
	f.err = err
	f.state = failed
	f.finish()
}

// tryComplete and tryFail finish the future unless it is finished already
// (a cancelled operation whose result arrives late).
func (f *Future[T]) tryComplete(v T) bool {
	if f.state != pending {
		return false
	}
	f.value = v
	f.state = completed
	f.finish()
	return true
}

func (f *Future[T]) tryFail(err error) bool {
	if f.state != pending {
		return false
	}
	f.err = err
	f.state = failed
	f.finish()
	return true
}

func (f *Future[T]) finish() {
	d := f.d
	if d.tracking {
		d.untrack(f)
		if f.dbg == nil {
			f.dbg = &futureDebug{}
		}
		if f.dbg.site == 0 {
			var pcs [1]uintptr
			runtime.Callers(3, pcs[:])
			f.dbg.site = pcs[0]
		}
	}
	if f.cb0.fn != nil || f.cb0.co != nil {
		d.ready.push(f)
	}
	if f.state == failed && !f.seen && !isCancel(f.err) && !d.closed {
		watchUnseen(f)
	}
}

func (f *Future[T]) doubleCompletion(skip int) {
	var b strings.Builder
	b.WriteString("An attempt was made to complete a Future more than once.\n")
	fmt.Fprintf(&b, "  Future: Future[%T]\n  Created in proc: %s\n", f.value, f.Proc())
	if f.state == completed {
		fmt.Fprintf(&b, "  Contents: %v\n", f.value)
	} else {
		fmt.Fprintf(&b, "  Error: %v\n", f.err)
	}
	if f.dbg != nil && f.dbg.site != 0 {
		fr, _ := runtime.CallersFrames([]uintptr{f.dbg.site}).Next()
		fmt.Fprintf(&b, "  First completion at: %s:%d %s\n", fr.File, fr.Line, fr.Function)
	} else {
		b.WriteString("  First completion at: unknown (enable tracking with SetTracking(true) to record it)\n")
	}
	var pcs [1]uintptr
	runtime.Callers(skip+2, pcs[:])
	fr, _ := runtime.CallersFrames(pcs[:]).Next()
	fmt.Fprintf(&b, "  Second completion at: %s:%d %s", fr.File, fr.Line, fr.Function)
	panic(&FutureError{Msg: b.String()})
}

// FutureError is the panic value of a double completion (Nim's
// FutureError, a Defect: a broken invariant, not an error to handle).
type FutureError struct{ Msg string }

func (e *FutureError) Error() string { return e.Msg }

// AddCallback arranges for cb to run on the loop once the future has
// finished. Callbacks run in the order they were added; cb never runs
// inside AddCallback, even if the future is finished already (it is queued).
// A nil cb is ignored.
func (f *Future[T]) AddCallback(cb func()) {
	if cb == nil {
		return
	}
	f.addCallback(callback{fn: cb})
}

func (f *Future[T]) addCallback(c callback) {
	if f.state != pending {
		f.d.ready.push(fnRunner(func() { c.call(f) }))
		return
	}
	if f.cb0.fn == nil && f.cb0.co == nil {
		f.cb0 = c
		return
	}
	if f.dbg == nil {
		f.dbg = &futureDebug{}
	}
	f.dbg.more = append(f.dbg.more, c)
}

// removeWaiter drops a coroutine's resumption (when it stops waiting
// because it was cancelled or the dispatcher closed).
func (f *Future[T]) removeWaiter(co *Coro) {
	if f.cb0.co == co {
		f.cb0 = callback{}
		if f.dbg != nil && len(f.dbg.more) > 0 {
			f.cb0 = f.dbg.more[0]
			f.dbg.more = f.dbg.more[1:]
		}
		return
	}
	if f.dbg != nil {
		if i := slices.IndexFunc(f.dbg.more, func(c callback) bool { return c.co == co }); i >= 0 {
			f.dbg.more = slices.Delete(f.dbg.more, i, i+1)
		}
	}
}

func (c callback) call(f futureBase) {
	if c.co != nil {
		c.co.resumeFrom(f)
		return
	}
	c.fn()
}

func (f *Future[T]) hasCallbacks() bool {
	return f.cb0.fn != nil || f.cb0.co != nil || (f.dbg != nil && len(f.dbg.more) > 0)
}

func (f *Future[T]) runCallbacks() {
	if c := f.cb0; c.fn != nil || c.co != nil {
		f.cb0 = callback{}
		c.call(f)
	}
	if f.dbg != nil {
		for len(f.dbg.more) > 0 {
			c := f.dbg.more[0]
			f.dbg.more = f.dbg.more[1:]
			c.call(f)
		}
		f.dbg.more = nil
	}
}

// futureBase is the type-erased view of any *Future[T].
type futureBase interface {
	Finished() bool
	Proc() string
	Cancel() bool
	errOrNil() error
	addCallback(callback)
	removeWaiter(co *Coro)
	dispatcher() *Dispatcher
}

func (f *Future[T]) errOrNil() error {
	f.markSeen()
	return f.err
}

func (f *Future[T]) dispatcher() *Dispatcher { return f.d }

func (f *Future[T]) markSeen() {
	f.seen = true
	if f.dbg != nil && f.dbg.note != nil {
		f.dbg.note.seen.Store(true)
		f.dbg.note = nil
	}
}
