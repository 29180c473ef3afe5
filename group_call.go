package asyncdispatch

import "fmt"

// Cross-loop calls: RunOn runs a function on another loop and delivers
// its result on the caller's loop, with no lock on either side — a call
// is two posts (there and back) through the loops' lock-free doors.
//
// What must stay true:
//   - the call's state is split by owner: the future and released belong
//     to the caller's loop (d), inner and cancelled to the other loop;
//     the two halves meet only through posts, whose queue orders what one
//     side wrote before the other reads it;
//   - the caller's future finishes exactly once, on d: with the result,
//     with ErrCancelled (Cancel, at once), or with ErrClosed when either
//     loop closes first. While the call is outstanding it holds one of
//     d's external references, so d's RunForever and WaitFor wait for it;
//   - the other loop answers in every case: its procedure's callback
//     posts the result; if the other loop is torn down first, its close
//     hook (procedure started) or the post's drop function (not started)
//     posts ErrClosed instead — a future callback queued at teardown never
//     runs, so the hook is what covers a procedure unwound by the close.

// RunOn runs fn as an async procedure on the loop other and returns a
// future on d (nil means the global dispatcher, as for other) that
// finishes on d's loop with fn's value or error. Call it on d's goroutine;
// fn runs on other's, and must touch only what belongs to that loop.
// Await the future from d's procedures like any other:
//
//	v, err := Await(co, RunOn(co.Dispatcher(), other, fn))
//
// Cancelling the future fails it at once with ErrCancelled and delivers
// the cancellation to fn's procedure (its pending Await returns
// ErrCancelled). If other is closed before fn finishes, the future fails
// with an error matching ErrClosed; if d closes first, the future fails
// with ErrClosed and fn is cancelled. With other == d it is Async.
func RunOn[T any](d, other *Dispatcher, fn func(co *Coro) (T, error)) *Future[T] {
	if d == nil {
		d = GetGlobalDispatcher()
	}
	if other == nil {
		other = GetGlobalDispatcher()
	}
	if other == d {
		return Async(d, fn)
	}
	d.checkOwner()
	c := &crossCall[T]{d: d, other: other, body: fn}
	c.rem.c = c
	c.fut.init(d, c, 2)
	switch {
	case fn == nil:
		c.released = true
		c.fut.Fail(ErrNilCallback)
		return &c.fut
	case d.closed:
		c.released = true
		c.fut.Fail(ErrClosed)
		return &c.fut
	}
	d.extRefs++
	if d.atClose == nil {
		d.atClose = make(map[any]closeHook)
	}
	d.atClose[c] = c
	if err := other.postOr(c.start, c.dropped); err != nil {
		c.release()
		c.fut.tryFail(errOtherClosed)
	}
	return &c.fut
}

// errOtherClosed: RunOn's other loop closed before fn finished.
var errOtherClosed = fmt.Errorf("%w (RunOn: the other loop was closed before the call finished)", ErrClosed)

// crossCall is one RunOn.
type crossCall[T any] struct {
	fut      Future[T]
	d, other *Dispatcher
	body     func(co *Coro) (T, error)
	// released (d's loop): the result arrived, the future was cancelled,
	// or d closed; a late result is dropped.
	released bool
	// On other's loop: fn's procedure, and whether a cancellation came.
	inner     *Future[T]
	cancelled bool
	rem       crossRemote[T]
}

// crossRemote is the call's close hook on the other loop.
type crossRemote[T any] struct{ c *crossCall[T] }

func (r *crossRemote[T]) dispatcherClosed() { r.c.otherClosed() }

func (c *crossCall[T]) procName() string { return "RunOn " + funcName(c.body) }

// start runs on other: start fn's procedure and watch it.
func (c *crossCall[T]) start() {
	o := c.other
	if c.cancelled {
		return
	}
	if o.atClose == nil {
		o.atClose = make(map[any]closeHook)
	}
	o.atClose[&c.rem] = &c.rem
	c.inner = Async(o, c.body)
	c.inner.addCallback(callback{fn: c.finished})
}

// finished runs on other when fn's procedure has finished.
func (c *crossCall[T]) finished() {
	if _, ok := c.other.atClose[&c.rem]; !ok {
		return
	}
	delete(c.other.atClose, &c.rem)
	c.replyInner()
}

func (c *crossCall[T]) replyInner() {
	f := c.inner
	f.markSeen()
	v, err := f.value, f.err
	_ = c.d.callSoonThreadSafe(func() { c.deliver(v, err) }) // ErrClosed: d's teardown has failed the future
}

// otherClosed runs in other's teardown, after fn's procedure was unwound
// (or had finished with its callback still queued).
func (c *crossCall[T]) otherClosed() {
	if c.inner != nil && c.inner.state != pending {
		c.replyInner()
		return
	}
	c.dropped()
}

// dropped: other was torn down before start ran (or before fn finished).
func (c *crossCall[T]) dropped() {
	var zero T
	_ = c.d.callSoonThreadSafe(func() { c.deliver(zero, errOtherClosed) })
}

// deliver runs on d.
func (c *crossCall[T]) deliver(v T, err error) {
	if !c.release() {
		return
	}
	if err != nil {
		c.fut.tryFail(err)
	} else {
		c.fut.tryComplete(v)
	}
}

// release gives back d's reference, once; it reports whether the call
// was still outstanding.
func (c *crossCall[T]) release() bool {
	if c.released {
		return false
	}
	c.released = true
	c.d.extRefs--
	delete(c.d.atClose, c)
	return true
}

// cancel is the future's source (Future.Cancel fails it with ErrCancelled
// after): stop waiting, and tell fn.
func (c *crossCall[T]) cancel() bool {
	if !c.release() {
		return false
	}
	_ = c.other.callSoonThreadSafe(c.cancelInner)
	return true
}

// cancelInner runs on other.
func (c *crossCall[T]) cancelInner() {
	c.cancelled = true
	if c.inner != nil {
		c.inner.Cancel()
	}
}

// dispatcherClosed is d's close hook: d's teardown fails the future.
func (c *crossCall[T]) dispatcherClosed() {
	c.released = true
	c.fut.tryFail(ErrClosed)
	_ = c.other.callSoonThreadSafe(c.cancelInner)
}
