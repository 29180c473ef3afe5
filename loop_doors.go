package asyncdispatch

import (
	"context"
	"runtime/debug"
)

// The doors between goroutines and a loop (the threading rule itself is in
// doc.go). What must stay true here:
//   - every door into the loop goes through CallSoonThreadSafe, whose queue
//     (loop_remote.go) orders the other goroutine's writes before the loop's reads;
//   - work that will reach the loop from outside holds d.extRefs while it
//     is outstanding, so RunForever and WaitFor do not stop with ErrNoWork
//     before it arrives;
//   - Wait never drives the loop: it only waits for it.

// goCall is one Go or GoContext call: its future and its bookkeeping.
type goCall[T any] struct {
	fut  Future[T]
	d    *Dispatcher
	name string
	// stopCtx cancels GoContext's context (nil for Go).
	stopCtx context.CancelFunc
	// released: the call's extRef and atClose entry are given back (its
	// result arrived, or the future was cancelled, or the dispatcher
	// closed); a result arriving later is dropped.
	released bool
}

// Go runs fn on a new goroutine and returns a future that completes with
// fn's value, or fails with its error, on the loop. A panic in fn fails
// the future with a *PanicError (fn's goroutine does not crash the
// program). Go must be called on d's goroutine (nil d means the global
// dispatcher).
//
// While fn runs, the loop counts it as pending work. Cancelling the future
// fails it at once with ErrCancelled and stops counting, but cannot stop
// fn: its result is dropped when it arrives. Close of the dispatcher fails
// the future with ErrClosed; fn keeps running until it returns (use
// GoContext to have it told).
func Go[T any](d *Dispatcher, fn func() (T, error)) *Future[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	if fn == nil {
		f := newNamed[T](d, "Go")
		f.Fail(ErrNilCallback)
		return f
	}
	return startGo(d, funcName(fn), nil, fn)
}

// GoContext is Go for a function that takes a context: ctx is derived from
// parent and is cancelled when the future is cancelled, when the
// dispatcher closes, and once the result has arrived. A function that
// honours its context therefore leaves no goroutine behind after Close.
func GoContext[T any](d *Dispatcher, parent context.Context, fn func(ctx context.Context) (T, error)) *Future[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	if fn == nil {
		f := newNamed[T](d, "GoContext")
		f.Fail(ErrNilCallback)
		return f
	}
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := context.WithCancel(parent)
	return startGo(d, funcName(fn), stop, func() (T, error) { return fn(ctx) })
}

func startGo[T any](d *Dispatcher, name string, stop context.CancelFunc, fn func() (T, error)) *Future[T] {
	d.checkOwner()
	c := &goCall[T]{d: d, name: name, stopCtx: stop}
	c.fut.init(d, c, 3)
	if d.closed {
		c.released = true
		if stop != nil {
			stop()
		}
		c.fut.Fail(ErrClosed)
		return &c.fut
	}
	d.extRefs++
	if d.atClose == nil {
		d.atClose = make(map[any]closeHook)
	}
	d.atClose[c] = c
	go c.run(fn)
	return &c.fut
}

// run is the call's goroutine: it runs fn and posts the result to the
// loop. It touches no loop state; v and err reach the loop through the
// door's queue.
func (c *goCall[T]) run(fn func() (T, error)) {
	var (
		v   T
		err error
	)
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = &PanicError{Value: p, Stack: debug.Stack(), Proc: c.name}
			}
		}()
		v, err = fn()
	}()
	// ErrClosed: the close hook has failed the future already.
	c.d.callSoonThreadSafe(func() {
		if !c.release() {
			return
		}
		if err != nil {
			c.fut.tryFail(err)
		} else {
			c.fut.tryComplete(v)
		}
	})
}

// release gives back what the call holds, once; it reports whether the
// call was still outstanding.
func (c *goCall[T]) release() bool {
	if c.released {
		return false
	}
	c.released = true
	c.d.extRefs--
	delete(c.d.atClose, c)
	if c.stopCtx != nil {
		c.stopCtx()
	}
	return true
}

func (c *goCall[T]) procName() string { return c.name }

// cancel is the future's source: stop waiting (the caller fails the
// future with ErrCancelled).
func (c *goCall[T]) cancel() bool { return c.release() }

func (c *goCall[T]) dispatcherClosed() {
	c.released = true
	if c.stopCtx != nil {
		c.stopCtx()
	}
	c.fut.tryFail(ErrClosed)
}

// NewExternalFuture creates a pending future on d (nil means the global
// dispatcher) that another goroutine will finish with CompleteFrom or
// FailFrom. Unlike a NewFuture future it counts as pending work until it
// finishes, so WaitFor, Drain and RunForever keep waiting for it instead
// of stopping with ErrNoWork before the other goroutine has posted;
// cancelling it releases the loop too. Call it on d's goroutine.
func NewExternalFuture[T any](d *Dispatcher, fromProc string) *Future[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	f := newNamed[T](d, fromProc)
	if d.tracking {
		d.track(f, 2)
	}
	if d.closed {
		f.Fail(ErrClosed)
		return f
	}
	d.extRefs++
	f.addCallback(callback{fn: func() { d.extRefs-- }})
	return f
}

// CompleteFrom completes f with v from any goroutine: the completion is
// posted to f's loop (CallSoonThreadSafe) and happens there, in a later
// callback round. It returns ErrClosed if the dispatcher is closed (f is
// then left alone). Plain Complete from another goroutine is a data race
// (the race detector reports it); CompleteFrom is the safe door.
//
// Completing a future that is already finished is the same bug as calling
// Complete twice, and panics on the loop in the same way — except that a
// future that was cancelled meanwhile silently drops the late value, as
// the package's own operations do.
func (f *Future[T]) CompleteFrom(v T) error {
	if f == nil {
		return ErrNilFuture
	}
	return f.d.callSoonThreadSafe(func() {
		if f.Cancelled() {
			return
		}
		f.Complete(v)
	})
}

// FailFrom fails f with err from any goroutine (see CompleteFrom).
func (f *Future[T]) FailFrom(err error) error {
	if f == nil {
		return ErrNilFuture
	}
	return f.d.callSoonThreadSafe(func() {
		if f.Cancelled() {
			return
		}
		f.Fail(err)
	})
}

// Wait blocks the calling goroutine until f finishes and returns its value
// or error, like WaitFor — but from an ordinary goroutine, and without
// driving the loop: another goroutine must be running f's dispatcher. It
// returns ctx's error if ctx ends first, and ErrClosed if the dispatcher is
// closed first (or already). Calling Wait on the loop's own goroutine
// deadlocks until ctx ends: use WaitFor or Await there.
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	var zero T
	if f == nil {
		return zero, ErrNilFuture
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // buffered: a waiter that gave up leaks nothing
	err := f.d.callSoonThreadSafe(func() {
		f.AddCallback(func() {
			f.markSeen()
			if f.state == failed {
				ch <- result{err: f.err}
			} else {
				ch <- result{v: f.value}
			}
		})
	})
	if err != nil {
		return zero, err
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-f.d.Done():
		select {
		case r := <-ch: // delivered just before the close
			return r.v, r.err
		default:
		}
		return zero, ErrClosed
	}
}
