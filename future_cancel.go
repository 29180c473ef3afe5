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
// finished future is left alone (false).
func (f *Future[T]) Cancel() bool {
	if f.state != pending {
		return false
	}
	if c, ok := f.src.(interface{ isAsync() }); ok && c != nil {
		return f.src.cancel()
	}
	if f.src != nil {
		f.src.cancel()
	}
	f.tryFail(ErrCancelled)
	return true
}

func (c *asyncCall[T]) isAsync() {}

func isCancel(err error) bool { return errors.Is(err, ErrCancelled) }

// Timeout returns a future that finishes like f if f finishes within
// timeout, and otherwise fails with ErrTimeout and cancels f (chronos's
// wait; WithTimeout, as in Nim, leaves f running). Cancelling the returned
// future cancels f too. f keeps its other callbacks.
func Timeout[T any](f *Future[T], timeout time.Duration) *Future[T] {
	if f == nil {
		r := NewFuture[T](nil, "Timeout")
		r.Fail(ErrNilFuture)
		return r
	}
	d := f.d
	r := newNamed[T](d, "Timeout")
	if f.state != pending {
		f.markSeen()
		if f.state == failed {
			r.Fail(f.err)
		} else {
			r.Complete(f.value)
		}
		return r
	}
	sl := d.SleepAsync(timeout)
	r.src = &linked{name: "Timeout", onCancel: func() bool {
		sl.Cancel()
		f.Cancel()
		return true
	}}
	f.AddCallback(func() {
		sl.Cancel()
		if r.state != pending {
			return
		}
		f.markSeen()
		if f.state == failed {
			r.tryFail(f.err)
		} else {
			r.tryComplete(f.value)
		}
	})
	sl.AddCallback(func() {
		if sl.state == completed && r.state == pending {
			r.tryFail(ErrTimeout)
			f.Cancel()
		}
	})
	return r
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
		if cf.state == failed && !errors.Is(cf.err, ErrCancelled) {
			f.Cancel()
		}
	})
	f.AddCallback(func() { cf.Cancel() })
	return func() bool { return cf.Cancel() }
}
