package asyncdispatch

import "time"

// Combinators. Unlike Nim's `and`, `or`, `withTimeout` and `asyncCheck`,
// which replace the callbacks of the futures given to them (Nim's
// `callback=` setter), these only add callbacks: whatever the
// caller registered on the inputs still runs.

// All returns a future that completes with the values of futs in argument
// order once all have completed, or fails with the first failure (later
// results are ignored). The same future may appear several times. With no
// futures it completes at once (on the global dispatcher).
func All[T any](futs ...*Future[T]) *Future[[]T] {
	var d *Dispatcher
	for _, f := range futs {
		if f != nil {
			d = f.d
			break
		}
	}
	if d == nil {
		d = GetGlobalDispatcher()
	}
	r := newNamed[[]T](d, "All")
	for _, f := range futs {
		if f == nil {
			r.Fail(ErrNilFuture)
			return r
		}
	}
	st := &allState[T]{r: r, futs: futs, vals: make([]T, len(futs)), left: len(futs)}
	if st.left == 0 {
		r.Complete(st.vals)
		return r
	}
	for i, f := range futs {
		// One small closure per input (its index and the shared state):
		// All over a million timers keeps a million of these alive.
		f.addCallback(callback{fn: func() { st.step(i) }})
	}
	r.src = &linked{name: "All", onCancel: func() bool {
		completedAll := true
		for _, f := range futs {
			f.Cancel()
			completedAll = completedAll && f.state == completed
		}
		if completedAll {
			// Every input had completed (in this round, before their
			// callbacks ran): deliver, as asyncio's gather does, rather
			// than drop what they hold.
			for i, f := range futs {
				f.markSeen()
				st.vals[i] = f.value
			}
			r.tryComplete(st.vals)
		}
		return true
	}}
	return r
}

// allState is what All's callbacks share.
type allState[T any] struct {
	r    *Future[[]T]
	futs []*Future[T]
	vals []T
	left int
}

// step records futs[i]'s outcome: the first failure fails r, the last
// value completes it.
func (st *allState[T]) step(i int) {
	r, f := st.r, st.futs[i]
	if r.state != pending {
		return
	}
	f.markSeen()
	if f.state == failed {
		r.tryFail(f.err)
		return
	}
	st.vals[i] = f.value
	st.left--
	if st.left == 0 {
		r.tryComplete(st.vals)
	}
}

// And returns a future that completes when both a and b have completed,
// and fails as soon as either fails (Nim's `and`). Values are not kept.
func And[A, B any](a *Future[A], b *Future[B]) *Future[Void] {
	if a == nil || b == nil {
		r := NewFuture[Void](nil, "And")
		r.Fail(ErrNilFuture)
		return r
	}
	r := newNamed[Void](a.d, "And")
	left := 2
	a.addCallback(callback{fn: func() {
		if a.errOrNil() != nil {
			r.tryFail(a.err)
		} else if left--; left == 0 {
			r.tryComplete(Void{})
		}
	}})
	b.addCallback(callback{fn: func() {
		if b.errOrNil() != nil {
			r.tryFail(b.err)
		} else if left--; left == 0 {
			r.tryComplete(Void{})
		}
	}})
	return r
}

// Or returns a future that finishes as soon as a or b finishes, with its
// outcome: it completes if the first to finish completed and fails with
// its error if it failed; the later one is ignored (Nim's `or`).
func Or[A, B any](a *Future[A], b *Future[B]) *Future[Void] {
	if a == nil || b == nil {
		r := NewFuture[Void](nil, "Or")
		r.Fail(ErrNilFuture)
		return r
	}
	r := newNamed[Void](a.d, "Or")
	a.addCallback(callback{fn: func() {
		if err := a.errOrNil(); err != nil {
			r.tryFail(err)
		} else {
			r.tryComplete(Void{})
		}
	}})
	b.addCallback(callback{fn: func() {
		if err := b.errOrNil(); err != nil {
			r.tryFail(err)
		} else {
			r.tryComplete(Void{})
		}
	}})
	return r
}

// WithTimeout returns a future that completes with true if f completes
// within timeout, false if the timeout passes first, and fails with f's
// error if f fails first (Nim's withTimeout). f is not cancelled on
// timeout (use Timeout for that) and keeps its callbacks; when f wins, the
// timer is removed at once (Nim PR #25567) instead of lingering as pending
// work, and so it is when the returned future is cancelled. f finishing in
// the loop round in which the timeout expires counts as within timeout.
func WithTimeout[T any](f *Future[T], timeout time.Duration) *Future[bool] {
	if f == nil {
		r := NewFuture[bool](nil, "WithTimeout")
		r.Fail(ErrNilFuture)
		return r
	}
	d := f.d
	r := newNamed[bool](d, "WithTimeout")
	sl := d.SleepAsync(timeout)
	r.src = &linked{name: "WithTimeout", onCancel: sl.Cancel}
	f.addCallback(callback{fn: func() {
		sl.Cancel()
		if r.state != pending {
			return
		}
		if err := f.errOrNil(); err != nil {
			r.tryFail(err)
		} else {
			r.tryComplete(true)
		}
	}})
	sl.addCallback(callback{fn: func() {
		// f finished in the round the timer fired in (timers fire
		// before I/O): f won, and its callback, queued behind this
		// one, reports it.
		if sl.state == completed && f.state == pending {
			r.tryComplete(false)
		}
	}})
	return r
}

// AsyncCheck watches f: if f fails, its error is returned by the Poll that
// runs f's callbacks (and so by WaitFor, Drain or RunForever), as Nim's
// asyncCheck raises it out of poll. It neither waits for f nor reads its
// value, and it keeps f's other callbacks. A nil f is ignored.
func AsyncCheck[T any](f *Future[T]) {
	if f == nil {
		return
	}
	f.markSeen()
	f.addCallback(callback{fn: func() {
		if f.state == failed && !isCancel(f.err) {
			f.d.checkErr = append(f.d.checkErr, f.err)
		}
	}})
}
