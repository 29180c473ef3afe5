package asyncdispatch

import (
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/asyncdispatch/asyncdispatch/internal/timerheap"
)

// Timers. SleepAsync and AddTimer share one heap (internal/timerheap)
// instead of Nim's split between a heap and timerfds: no descriptor per
// timer, a million of them cost a million small allocations and nothing
// else. What must stay true:
//   - a timer never fires before its deadline (the poller rounds its wait
//     up, and fireTimers compares against the clock, not the wait);
//   - equal deadlines fire in creation order (the heap's sequence);
//   - a timer leaves the heap when it fires, is stopped or its future is
//     cancelled, so nothing lingers and counts as pending (Nim #25567);
//   - every deadline is made by deadline or addSat, which saturate: a
//     duration too large for the clock (time.Duration(math.MaxInt64), Go's
//     "forever") gives a deadline that never comes, not one that wrapped
//     into the past and fires at once.

// sleeper is a SleepAsync future and its timer in one allocation.
type sleeper struct {
	tm  timerheap.Timer // first: see owner
	fut Future[Void]
}

// Timer kinds (timerheap.Timer.Kind).
const (
	kindSleeper uint8 = iota
	kindTimer
)

// sleeperOf and timerOf find the struct a heap timer is embedded in. The
// heap holds *timerheap.Timer and no payload (24 bytes a timer instead of
// 40); both owners keep tm as their first field, so the owner starts at
// the timer's address (the container-of pattern of Go's own runtime), and
// Kind says which owner it is. The race detector's pointer checks run
// over every test that fires a timer.
func sleeperOf(t *timerheap.Timer) *sleeper { return (*sleeper)(unsafe.Pointer(t)) }

// Compile-time checks that tm is the first field of both owners (a
// non-zero offset makes the index out of range).
var (
	_ = [1]struct{}{}[unsafe.Offsetof(sleeper{}.tm)]
	_ = [1]struct{}{}[unsafe.Offsetof(Timer{}.tm)]
)

func timerOf(t *timerheap.Timer) *Timer { return (*Timer)(unsafe.Pointer(t)) }

func (s *sleeper) procName() string { return "SleepAsync" }

func (s *sleeper) cancel() bool { return s.fut.d.removeTimer(&s.tm) }

// deadline is the loop-clock time dur from now (saturating, see addSat).
func (d *Dispatcher) deadline(dur time.Duration) int64 { return addSat(d.now(), dur) }

// addSat is t + dur, or math.MaxInt64 — a time that never comes — if the
// sum would overflow. dur is never negative here (callers clamp it), and t
// is a reading of the loop clock or a deadline, never negative either.
func addSat(t int64, dur time.Duration) int64 {
	if dur > 0 && t > math.MaxInt64-int64(dur) {
		return math.MaxInt64
	}
	return t + int64(dur)
}

// pushTimer and removeTimer are the only ways into and out of the heap
// outside fireTimers and teardown (both on the loop): the owner check
// (loop_owner.go) watches them.
func (d *Dispatcher) pushTimer(t *timerheap.Timer) {
	if g := d.ready.own; g != nil {
		g.check()
	}
	d.timers.Push(t)
}

func (d *Dispatcher) removeTimer(t *timerheap.Timer) bool {
	if g := d.ready.own; g != nil {
		g.check()
	}
	return d.timers.Remove(t)
}

// SleepAsync returns a future that completes after at least d has passed.
// It never completes synchronously: SleepAsync(0) completes in the next
// Poll. Futures with equal deadlines complete in creation order. Cancelling
// the future removes its timer. A negative duration is treated as 0; on a
// closed dispatcher the future fails with ErrClosed. A duration too large
// for the loop's clock (time.Duration(math.MaxInt64)) means never.
func (d *Dispatcher) SleepAsync(dur time.Duration) *Future[Void] {
	s := &sleeper{}
	s.fut.init(d, s, 2)
	if d.closed {
		s.fut.Fail(ErrClosed)
		return &s.fut
	}
	if dur < 0 {
		dur = 0
	}
	s.tm.When = d.deadline(dur)
	s.tm.Kind = kindSleeper
	d.pushTimer(&s.tm)
	return &s.fut
}

// Timer is a callback timer made by AddTimer.
type Timer struct {
	tm      timerheap.Timer // first: see timerOf
	d       *Dispatcher
	period  time.Duration
	oneshot bool
	cb      Callback
	stopped bool
	// firing: cb is running (the timer is out of the heap meanwhile).
	firing bool
}

// AddTimer calls cb after timeout and, unless oneshot, every timeout after
// that, until cb returns true (Nim's protocol: true = done, remove me;
// false = keep). A oneshot timer fires once whatever cb returns. cb runs
// directly from Poll, not via the callback queue, and receives InvalidFD:
// these timers use no descriptor (Nim's use timerfds). A running timer
// counts in HasPendingOperations but not in ActiveDescriptors. The returned
// Timer can be stopped early.
//
// A repeating timer's period must be positive; a timeout below zero is an
// error (ErrNegative). A timeout too large for the loop's clock
// (time.Duration(math.MaxInt64)) means never. A callback that panics stops
// its timer, and the Poll that ran it returns the panic as a *PanicError.
func (d *Dispatcher) AddTimer(timeout time.Duration, oneshot bool, cb Callback) (*Timer, error) {
	if cb == nil {
		return nil, ErrNilCallback
	}
	if timeout < 0 || (!oneshot && timeout == 0) {
		return nil, fmt.Errorf("%w: AddTimer timeout %v (a repeating timer needs a positive period)", ErrNegative, timeout)
	}
	if d.closed {
		return nil, ErrClosed
	}
	t := &Timer{d: d, period: timeout, oneshot: oneshot, cb: cb}
	t.tm.When = d.deadline(timeout)
	t.tm.Kind = kindTimer
	d.pushTimer(&t.tm)
	return t, nil
}

// Stop stops the timer; it reports whether the timer was running, that is
// whether it would have fired (again). Called by a repeating timer's own
// callback it returns true and the timer does not fire again (whatever the
// callback returns); called by a oneshot timer's own callback it returns
// false, like any Stop after the timer fired.
func (t *Timer) Stop() bool {
	if t.stopped {
		return false
	}
	t.stopped = true
	if t.firing {
		// Out of the heap while its callback runs: fireTimer would
		// have put a repeating timer back.
		return !t.oneshot
	}
	return t.d.removeTimer(&t.tm)
}

// fireTimers runs every timer due now. Timers are taken out of the heap
// before they run, so callbacks may add and stop timers freely. A timer
// added while firing with a deadline already due waits for the next round
// (snapshot of the due count, as Nim's processTimers).
func (d *Dispatcher) fireTimers() (fired int) {
	if d.timers.Len() == 0 {
		return 0
	}
	now := d.now()
	for n := d.timers.Len(); n > 0; n-- {
		t := d.timers.Peek()
		if t == nil || t.When > now {
			return
		}
		d.timers.Pop()
		fired++
		switch t.Kind {
		case kindSleeper:
			sleeperOf(t).fut.tryComplete(Void{})
		case kindTimer:
			d.fireTimer(timerOf(t), now)
		}
	}
	return fired
}

func (d *Dispatcher) fireTimer(t *Timer, now int64) {
	done := true
	t.firing = true
	func() {
		defer func() {
			t.firing = false
			if p := recover(); p != nil {
				d.checkErr = append(d.checkErr, d.recovered(p))
			}
		}()
		done = t.cb(InvalidFD)
	}()
	if done || t.oneshot || t.stopped {
		t.stopped = true
		return
	}
	// Next deadline on the original grid; after a long stall skip ahead
	// instead of firing a burst.
	t.tm.When = addSat(t.tm.When, t.period)
	if t.tm.When <= now {
		t.tm.When = addSat(now, t.period)
	}
	d.timers.Push(&t.tm)
}
