package asyncdispatch

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
)

// The owner check: an opt-in guard against the one misuse the package
// cannot survive, a dispatcher used by two goroutines at once.
//
// A dispatcher has no locks (doc.go, the threading rule): two goroutines
// driving one — eight goroutines each calling WaitFor(SleepAsync(…)) on
// the global dispatcher, say — corrupt the timer heap and the queues, and
// the symptom is an index out of range or a nil dereference far from the
// cause, noticed reliably only under -race. With the check on, every
// public method that changes the dispatcher panics at once, on the
// offending goroutine, naming both goroutines.
//
// How it works. While a goroutine runs the loop (inside Poll, Drain,
// RunForever, WaitFor or ScheduleCallbacks) its goroutine id is the
// guard's driver; entering the loop sets it, leaving clears it. The choke
// points the public methods go through compare the caller's goroutine
// with the driver: entering the loop, pushing to the ready queue (every
// completion with callbacks, every CallSoon and resumption), adding or
// removing a timer, registering, unregistering and adding a waiter to a
// descriptor, looking up a socket for an operation (sockFD), starting an
// async procedure (getCoro), a Go call (startGo) or a signal watch, and
// Close. Async procedures run on coroutine goroutines of their own
// (iter.Pull) while the driver is parked: a goroutine whose stack starts
// in a coroutine of the package counts as the loop's while the dispatcher
// is running one of its procedures, and one pulled through iter.Pull by
// anybody counts always (see loopCoroutine).
//
// What must stay true:
//   - off, the check costs one load and one predictable branch per choke
//     point (readyQueue.own is nil) and nothing else;
//   - the check never reads a field the loop writes without
//     synchronisation before it has decided the caller is the loop's
//     goroutine: the driver is atomic, so a wrong goroutine panics
//     without a data race of its own;
//   - it has no false positives for a correct program: nobody running the
//     loop means nothing to compare with, so setting a dispatcher up on
//     one goroutine and running it on another, or handing it over between
//     runs, is fine. The price is false negatives: two goroutines touching
//     a dispatcher that neither is running are not caught (-race is).
//
// On, a choke point reached by the loop's driver or by the procedure
// running on it costs two atomic loads and a comparison of curG values
// (loop_goroutine.go); any other goroutine pays for a goroutine id, which
// Go only gives away in a stack trace (2 to 5 µs). Measured on an echo
// round trip: about 1.8× the cost with the check off (27 µs against 15;
// an await that suspends and resumes, 240 ns against 12.7 µs when every
// check read a stack trace): a debugging aid, like -race, not something
// to leave on in production.

// ErrWrongGoroutine: a dispatcher was used from a goroutine other than the
// one running its loop. With the owner check off, WaitFor, Poll, Drain and
// RunForever return it when another goroutine is inside the loop; with the
// check on, every method that changes the dispatcher panics with an error
// matching it instead.
var ErrWrongGoroutine = errors.New("asyncdispatch: dispatcher used from a goroutine other than the one running its loop (a dispatcher belongs to the goroutine that drives it; to wait for a future from another goroutine use Future.Wait, to run code on the loop CallSoonThreadSafe)")

// ownerCheckEnv is the environment variable that turns the owner check on
// for every new dispatcher: ASYNCDISPATCH_CHECK=owner (a comma-separated
// list of checks; owner is the only one). It is read once, by the first
// NewDispatcher.
const ownerCheckEnv = "ASYNCDISPATCH_CHECK"

var ownerCheckDefault = sync.OnceValue(func() bool { return ownerCheckOn(os.Getenv(ownerCheckEnv)) })

// ownerCheckOn reports whether a value of ASYNCDISPATCH_CHECK asks for
// the owner check.
func ownerCheckOn(v string) bool {
	for _, w := range strings.Split(v, ",") {
		if strings.TrimSpace(w) == "owner" {
			return true
		}
	}
	return false
}

// SetOwnerCheck turns the owner check on or off for d (the default comes
// from ASYNCDISPATCH_CHECK=owner): on, any method that changes d called
// from a goroutine other than the one running d's loop panics with an
// error matching ErrWrongGoroutine that names both goroutines. Call it on
// the goroutine that owns d, while nothing else uses d.
func (d *Dispatcher) SetOwnerCheck(on bool) {
	switch {
	case on && d.ready.own == nil:
		d.ready.own = &ownerGuard{d: d}
	case !on:
		d.ready.own = nil
	}
}

// ownerGuard is the state of the owner check.
type ownerGuard struct {
	d *Dispatcher
	// driver is the id of the goroutine running the loop, 0 when none;
	// driverG is the same goroutine as curG sees it, for the fast
	// comparison (set after driver, cleared before it).
	driver  atomic.Int64
	driverG atomic.Uintptr
	// coros caches coroutineKind by goroutine id (ids are never reused,
	// so a verdict never goes stale).
	mu    sync.Mutex
	coros map[int64]uint8
}

// wrongGoroutine is the panic value of the owner check.
type wrongGoroutine struct{ used, driver int64 }

func (e *wrongGoroutine) Error() string {
	return fmt.Sprintf("asyncdispatch: dispatcher used from goroutine %d while goroutine %d runs its loop; "+
		"use CallSoonThreadSafe to run code on the loop, Future.Wait to wait for a future from another goroutine", e.used, e.driver)
}

func (e *wrongGoroutine) Is(target error) bool { return target == ErrWrongGoroutine }

// check panics unless the calling goroutine may use the dispatcher now.
// The loop's driver and the procedure running on it (sockState.runG) pass
// on a comparison of curG values; only other goroutines pay for a stack
// trace.
func (g *ownerGuard) check() {
	drvG := g.driverG.Load()
	if drvG == 0 {
		return
	}
	if me := curG(); me == drvG || me == g.d.sock.runG.Load() {
		return
	}
	g.checkSlow()
}

// checkSlow is check for a goroutine that is neither the driver nor the
// running procedure: a coroutine of the loop's (a pooled procedure being
// torn down, an iter.Pull coroutine a callback pulls) passes, any other
// panics.
func (g *ownerGuard) checkSlow() {
	drv := g.driver.Load()
	if drv == 0 {
		return
	}
	me := goid()
	if me == drv || g.loopCoroutine(me) {
		return
	}
	panic(&wrongGoroutine{used: me, driver: drv})
}

// loopCoroutine reports whether goroutine me is a coroutine running on
// the loop's behalf while the driver is parked. One of the package's own
// coroutines counts while d is running a procedure (d.current set: only
// the coroutine switched to by the driver reads it here, and the switch
// orders the read after the driver's write; a coroutine of another
// dispatcher reading it races, which -race reports, and it is that very
// misuse) — teardown, where procedures unwind with no current one, lifts
// the check. Any other iter.Pull coroutine counts too: a callback may
// pull from an iterator that uses the dispatcher, and which goroutine
// pulls it cannot be told.
func (g *ownerGuard) loopCoroutine(me int64) bool {
	g.mu.Lock()
	kind, ok := g.coros[me]
	g.mu.Unlock()
	if !ok {
		kind = coroutineKind()
		g.mu.Lock()
		if g.coros == nil || len(g.coros) >= 4096 {
			g.coros = make(map[int64]uint8) // bounded: forget, learn again
		}
		g.coros[me] = kind
		g.mu.Unlock()
	}
	switch kind {
	case ownCoroutine:
		return g.d.current != nil
	case pullCoroutine:
		return true
	}
	return false
}

// claim makes the calling goroutine the loop's driver for the duration of
// a loop entry point and reports whether it did (the caller then calls
// release); it returns false when the caller is the driver already (a
// Poll inside Drain) or the loop's running coroutine (a nested call, which
// the entry point refuses with ErrNestedLoop). It panics on any other
// goroutine while the loop runs.
func (g *ownerGuard) claim() bool {
	me := goid()
	for {
		drv := g.driver.Load()
		switch {
		case drv == me:
			return false
		case drv != 0:
			if g.loopCoroutine(me) {
				return false
			}
			panic(&wrongGoroutine{used: me, driver: drv})
		case g.driver.CompareAndSwap(0, me):
			g.driverG.Store(curG())
			return true
		}
	}
}

func (g *ownerGuard) release() {
	g.driverG.Store(0)
	g.driver.Store(0)
}

// claimLoop is claim for the loop's entry points: it returns the guard to
// release, nil if there is nothing to release (the check is off, or an
// outer entry point holds the loop).
func (d *Dispatcher) claimLoop() *ownerGuard {
	if g := d.ready.own; g != nil && g.claim() {
		return g
	}
	return nil
}

// releaseLoop undoes claimLoop; g may be nil.
func releaseLoop(g *ownerGuard) {
	if g != nil {
		g.release()
	}
}

// checkOwner is the owner check for methods that pass no other choke
// point.
func (d *Dispatcher) checkOwner() {
	if g := d.ready.own; g != nil {
		g.check()
	}
}

// pkgPrefix qualifies the package's function names in stack frames;
// coroLoopFunc is the body of the package's coroutines.
var (
	pkgPrefix    = reflect.TypeFor[Coro]().PkgPath() + "."
	coroLoopFunc = pkgPrefix + "(*Coro).loop"
)

// Kinds of goroutine (coroutineKind).
const (
	notCoroutine  uint8 = iota
	ownCoroutine        // a coroutine of the package (its stack starts in Coro.loop)
	pullCoroutine       // another iter.Pull coroutine
)

// coroutineKind says what the calling goroutine is.
func coroutineKind() uint8 {
	switch {
	case stackHas(coroLoopFunc):
		return ownCoroutine
	case stackHas("iter.Pull[...].func1", "iter.Pull2[...].func1"):
		return pullCoroutine
	}
	return notCoroutine
}

// loopBusy is the error of a loop entry point called while the loop is
// running (d.polling or d.current set): a nested call, or one from another
// goroutine.
func loopBusy() error {
	if onLoop() {
		return ErrNestedLoop
	}
	return ErrWrongGoroutine
}
