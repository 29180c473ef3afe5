package asyncdispatch

import "sync/atomic"

// A coroutine awaiting another dispatcher's future (awaitForeign) is
// watched from that dispatcher, so that it is woken exactly once: when the
// future finishes (its callback, on the future's loop), or when the
// future's dispatcher is torn down first (teardown), whichever comes first.
// What must stay true:
//   - the waiter's record lives in the future dispatcher's foreign set,
//     guarded by that dispatcher's foreignMu, from the moment
//     the callback is posted until an outcome is decided: teardown drops
//     queued callbacks, so a registration posted but never run is still
//     found and woken;
//   - the outcome is decided by one compare-and-swap, and only the winner
//     posts the wake, so a future finishing during teardown cannot deliver
//     a stale value after ErrClosed (or the reverse);
//   - no lock of one dispatcher is held while taking another's (two
//     dispatchers closing at once, each awaited by the other, must not
//     deadlock): teardown collects its waiters under its lock and wakes
//     them after releasing it.

type foreignWait struct {
	d       *Dispatcher // the waiter's dispatcher
	co      *Coro
	gen     uint32
	outcome atomic.Int32
}

const (
	foreignPending int32 = iota
	foreignFinished
	foreignClosed
	foreignGone // the waiter stopped waiting (cancelled, or its loop closed)
)

// awaitFrom registers w with d (the future's dispatcher) and posts add to
// d's loop; it fails with ErrClosed if d is closed already.
func (d *Dispatcher) awaitFrom(w *foreignWait, add func()) error {
	d.foreignMu.Lock()
	if d.done == nil || isClosedChan(d.done) {
		d.foreignMu.Unlock()
		return ErrClosed
	}
	if d.foreign == nil {
		d.foreign = make(map[*foreignWait]struct{})
	}
	d.foreign[w] = struct{}{}
	d.foreignMu.Unlock()
	if err := d.callSoonThreadSafe(add); err != nil {
		d.foreignDone(w, foreignGone)
		return err
	}
	return nil
}

// foreignDone decides w's outcome (first caller wins), forgets w, and
// wakes the waiter unless it is the one that gave up.
func (d *Dispatcher) foreignDone(w *foreignWait, outcome int32) {
	if !w.outcome.CompareAndSwap(foreignPending, outcome) {
		return
	}
	d.foreignMu.Lock()
	delete(d.foreign, w)
	d.foreignMu.Unlock()
	if outcome != foreignGone {
		w.wake()
	}
}

// wake hands the resumption to the waiter's own loop (an error means that
// loop is closed, and its teardown has unwound the waiter already).
func (w *foreignWait) wake() {
	co, gen := w.co, w.gen
	_ = w.d.callSoonThreadSafe(func() { co.wake(gen) })
}

// closeForeign wakes, with ErrClosed, every coroutine of another
// dispatcher still awaiting one of d's futures (teardown).
func (d *Dispatcher) closeForeign() {
	d.foreignMu.Lock()
	ws := make([]*foreignWait, 0, len(d.foreign))
	for w := range d.foreign {
		ws = append(ws, w)
	}
	d.foreign = nil
	d.foreignMu.Unlock()
	for _, w := range ws {
		if w.outcome.CompareAndSwap(foreignPending, foreignClosed) {
			w.wake()
		}
	}
}
