package asyncdispatch

import (
	"context"
	"errors"
	"time"
)

// Cancellation (Nim has none: issue #4123). A pending future can be
// cancelled; what that means depends on who would complete it:
//   - a future made by NewFuture fails with ErrCancelled at once;
//   - a SleepAsync future fails with ErrCancelled and its timer leaves the
//     heap;
//   - a socket operation's future fails with ErrCancelled and the
//     operation leaves its descriptor's wait list (no interest lingers);
//   - an Async future delivers the cancellation to its procedure: the
//     Await it is suspended in (or its next Await) returns ErrCancelled and
//     the future it awaited is cancelled too (asyncio's Task.cancel); the
//     procedure's future then finishes with whatever the procedure returns
//     — usually that error, which matches ErrCancelled.

// Cancel cancels a pending future and reports whether it did anything. A
// finished future is left alone (false). A future whose producer finishes
// it itself once cancelled (an async procedure, a Timeout of one) is
// cancelled by request: Cancel reports that the request was delivered,
// and the future finishes later. A combinator whose inputs had all
// finished already finishes with their outcome instead (false): a result
// that was there is delivered, not dropped.
func (f *Future[T]) Cancel() bool {
	if f.state != pending {
		return false
	}
	if c, ok := f.src.(selfFinishing); ok && c != nil {
		return f.src.cancel()
	}
	if f.src != nil {
		f.src.cancel()
	}
	return f.tryFail(ErrCancelled)
}

// selfFinishing is a source whose cancel only requests the cancellation:
// the future finishes when the producer is done, possibly with a value.
type selfFinishing interface {
	source
	finishesItself()
}

func (c *asyncCall[T]) finishesItself() {}

func isCancel(err error) bool { return errors.Is(err, ErrCancelled) }

// Timeout returns a future that finishes like f if f finishes within
// timeout, and otherwise cancels f and fails with ErrTimeout (chronos's
// wait; WithTimeout, as in Nim, leaves f running). Cancelling the returned
// future cancels f too. f keeps its other callbacks.
//
// A result is never dropped for being late by a hair: if f finished in the
// loop round in which the timeout expired (a round fires its timers before
// it handles I/O, so a receive can complete just after its timer fired),
// or finishes with a value although it was cancelled, the returned future
// finishes with f's result, as asyncio's wait_for does. It fails with
// ErrTimeout only when f ended with the cancellation. So when f is an
// async procedure, the returned future finishes when the procedure has
// handled the cancellation (at once for every operation of the package).
// The same holds for a Cancel of the returned future: it fails with
// ErrCancelled unless f had finished.
func Timeout[T any](f *Future[T], timeout time.Duration) *Future[T] {
	if f == nil {
		r := NewFuture[T](nil, "Timeout")
		r.Fail(ErrNilFuture)
		return r
	}
	d := f.d
	if f.state != pending {
		r := newNamed[T](d, "Timeout")
		f.markSeen()
		if f.state == failed {
			r.Fail(f.err)
		} else {
			r.Complete(f.value)
		}
		return r
	}
	t := &timeoutOp[T]{f: f}
	t.fut.init(d, t, 2)
	t.sl = d.SleepAsync(timeout)
	f.addCallback(callback{fn: t.settle})
	t.sl.addCallback(callback{fn: t.expire})
	return &t.fut
}

// timeoutOp is Timeout's future and what it watches, in one allocation.
type timeoutOp[T any] struct {
	fut Future[T]
	f   *Future[T]
	sl  *Future[Void]
	// timedOut: the timer expired while f was pending, and cancelled f.
	timedOut bool
}

func (t *timeoutOp[T]) procName() string { return "Timeout" }
func (t *timeoutOp[T]) finishesItself()  {}

// cancel cancels f and finishes the future like f if f is finished now.
// It reports false if that delivered a value f had already.
func (t *timeoutOp[T]) cancel() bool {
	t.sl.Cancel()
	t.f.Cancel()
	t.settle()
	return t.fut.state != completed
}

// expire runs when the timer has fired (or was cancelled).
func (t *timeoutOp[T]) expire() {
	if t.sl.state != completed || t.fut.state != pending {
		return
	}
	if t.f.state == pending {
		t.timedOut = true
		t.f.Cancel()
	}
	// f finished in this round (its own callback has not run yet), or
	// was just cancelled: finish like it.
	t.settle()
}

// settle finishes the future like f, once f has finished: with f's value
// or error, but with ErrTimeout for a cancellation the timeout made.
func (t *timeoutOp[T]) settle() {
	f := t.f
	if f.state == pending || t.fut.state != pending {
		return
	}
	t.sl.Cancel()
	f.markSeen()
	switch {
	case f.state == completed:
		t.fut.tryComplete(f.value)
	case t.timedOut && isCancel(f.err):
		t.fut.tryFail(ErrTimeout)
	default:
		t.fut.tryFail(f.err)
	}
}

// linked is the source of a combinator's future: cancelling it runs
// onCancel.
type linked struct {
	name     string
	onCancel func() bool
}

func (l *linked) procName() string { return l.name }
func (l *linked) cancel() bool {
	if l.onCancel == nil {
		return false
	}
	fn := l.onCancel
	l.onCancel = nil
	return fn()
}

// FromContext returns a future on d that fails with ctx's error (matching
// context.Canceled or context.DeadlineExceeded) when ctx ends. While ctx
// is live the future counts as pending work, so a loop waiting for it does
// not stop with ErrNoWork. Cancelling the future stops watching ctx. A nil
// ctx is context.Background() (as for GoContext): it never ends.
func FromContext(d *Dispatcher, ctx context.Context) *Future[Void] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	if ctx == nil {
		ctx = context.Background()
	}
	f := newNamed[Void](d, "FromContext")
	if err := ctx.Err(); err != nil {
		f.Fail(err)
		return f
	}
	if d.closed {
		f.Fail(ErrClosed)
		return f
	}
	d.extRefs++
	released := false
	release := func() {
		if !released {
			released = true
			d.extRefs--
		}
	}
	stop := context.AfterFunc(ctx, func() {
		d.callSoonThreadSafe(func() {
			release()
			f.tryFail(ctx.Err())
		})
	})
	f.src = &linked{name: "FromContext", onCancel: func() bool {
		if stop() {
			release()
		}
		return true
	}}
	return f
}

// CancelWith cancels f when ctx ends (an operation bound to a context).
// The returned stop function unbinds them; it reports whether it stopped
// the binding before ctx ended. Once f finishes, the binding is released by
// itself. A nil ctx never ends: nothing is bound.
func CancelWith[T any](ctx context.Context, f *Future[T]) (stop func() bool) {
	if f == nil || f.state != pending || ctx == nil {
		return func() bool { return false }
	}
	if ctx.Err() != nil {
		f.Cancel()
		return func() bool { return false }
	}
	d := f.d
	cf := FromContext(d, ctx)
	cf.AddCallback(func() {
		// A receive (say) that completed in the round ctx ended in
		// is not cancelled any more: Cancel leaves a finished future
		// alone, so its result is delivered.
		if err := cf.errOrNil(); err != nil && !isCancel(err) {
			f.Cancel()
		}
	})
	f.AddCallback(func() { cf.Cancel() })
	return func() bool { return cf.Cancel() }
}
