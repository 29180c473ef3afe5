package asyncdispatch_test

import (
	"errors"
	"math"
	"sort"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// SleepAsync as in Nim: never synchronous, never early, deadline order, ties in creation
// order, all due timers complete in one poll.
func TestSleepAsyncSemantics(t *testing.T) {
	d := newD(t)
	z := d.SleepAsync(0)
	if z.Finished() {
		t.Fatal("SleepAsync(0) completed synchronously")
	}
	d.Poll(0)
	if !z.Finished() {
		t.Fatal("SleepAsync(0) not done after one poll")
	}
	var order []int
	durs := []time.Duration{30, 10, 20, 10, 0, 20}
	starts := make([]time.Time, len(durs))
	var futs []*ad.Future[ad.Void]
	for i, ms := range durs {
		starts[i] = time.Now()
		f := d.SleepAsync(ms * time.Millisecond)
		f.AddCallback(func() {
			if el := time.Since(starts[i]); el < durs[i]*time.Millisecond {
				t.Errorf("timer %d fired early: %v < %v", i, el, durs[i]*time.Millisecond)
			}
			order = append(order, i)
		})
		futs = append(futs, f)
	}
	ad.WaitFor(ad.All(futs...))
	if got := joinInts(order); got != "4 1 3 2 5 0" {
		t.Fatalf("order %s", got)
	}
	// p07: 100 timers expired at the start of a poll complete in it.
	var many []*ad.Future[ad.Void]
	for i := 0; i < 100; i++ {
		many = append(many, d.SleepAsync(0))
	}
	d.Poll(0)
	for _, f := range many {
		if !f.Finished() {
			t.Fatal("due timer left for a later poll")
		}
	}
}

// Equal deadlines fire in creation order even when the clock reading is
// identical (the heap's sequence number, not the time, breaks the tie).
func TestEqualDeadlinesFIFO(t *testing.T) {
	d := newD(t)
	var order []int
	for i := 0; i < 1000; i++ {
		d.SleepAsync(5 * time.Millisecond).AddCallback(func() { order = append(order, i) })
	}
	d.Drain(5 * time.Second)
	if !sort.IntsAreSorted(order) || len(order) != 1000 {
		t.Fatal("timers with equal durations fired out of creation order")
	}
}

// Precision: median overshoot small when idle, never early.
func TestSleepPrecision(t *testing.T) {
	d := newD(t)
	var over []time.Duration
	for i := 0; i < 20; i++ {
		start := time.Now()
		ad.WaitFor(d.SleepAsync(5 * time.Millisecond))
		el := time.Since(start)
		if el < 5*time.Millisecond {
			t.Fatalf("early: %v", el)
		}
		over = append(over, el-5*time.Millisecond)
	}
	sort.Slice(over, func(i, j int) bool { return over[i] < over[j] })
	// Generous (the machine is shared): what it catches is a loop that
	// sleeps in coarse steps (DefaultPollTimeout's 500 ms), not jitter.
	if med := over[len(over)/2]; med > 100*time.Millisecond {
		t.Fatalf("median overshoot %v", med)
	}
}

// Nim's AddTimer bool protocol: a repeating timer returning false 3× then
// true fires exactly 4 times; a oneshot fires once whatever it returns.
func TestAddTimerProtocol(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	n := 0
	if _, err := d.AddTimer(20*time.Millisecond, false, func(fd ad.AsyncFD) bool {
		if fd != ad.InvalidFD {
			t.Errorf("fd %d", fd)
		}
		n++
		return n == 4
	}); err != nil {
		t.Fatal(err)
	}
	one := 0
	d.AddTimer(10*time.Millisecond, true, func(ad.AsyncFD) bool { one++; return false })
	d.Drain(5 * time.Second)
	if n != 4 || one != 1 {
		t.Fatalf("repeating fired %d, oneshot %d", n, one)
	}
	if now := clk.Now(); now != 80*time.Millisecond {
		t.Fatalf("4 ticks of 20ms done at %v", now)
	}
	if d.HasPendingOperations() {
		t.Fatal("finished timers still pending")
	}
	// Stop.
	tm, _ := d.AddTimer(time.Hour, false, func(ad.AsyncFD) bool { return false })
	if !tm.Stop() || tm.Stop() || d.HasPendingOperations() {
		t.Fatal("Stop")
	}
	// Bad input.
	if _, err := d.AddTimer(-time.Second, true, func(ad.AsyncFD) bool { return true }); !errors.Is(err, ad.ErrNegative) {
		t.Fatal(err)
	}
	if _, err := d.AddTimer(0, false, func(ad.AsyncFD) bool { return true }); !errors.Is(err, ad.ErrNegative) {
		t.Fatal(err)
	}
	if _, err := d.AddTimer(time.Second, true, nil); !errors.Is(err, ad.ErrNilCallback) {
		t.Fatal(err)
	}
}

// One million concurrent SleepAsync timers.
func TestMillionTimers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	d := newD(t)
	const n = 1_000_000
	fired := 0
	cb := func() { fired++ }
	for i := 0; i < n; i++ {
		d.SleepAsync(time.Duration(i%1000) * time.Microsecond).AddCallback(cb)
	}
	if err := d.Drain(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if fired != n {
		t.Fatalf("fired %d of %d", fired, n)
	}
}

// Nim's withTimeout, with Nim PR #25567: WithTimeout's three outcomes; the losing timer leaves
// the queue at once; the inner future keeps its callbacks.
func TestWithTimeout(t *testing.T) {
	d := newD(t)
	fast := d.SleepAsync(5 * time.Millisecond)
	kept := false
	fast.AddCallback(func() { kept = true })
	ok, err := ad.WaitFor(ad.WithTimeout(fast, time.Hour))
	if !ok || err != nil || !kept {
		t.Fatalf("fast: %v %v kept=%v", ok, err, kept)
	}
	if d.HasPendingOperations() {
		t.Fatal("the losing timer lingers")
	}
	slow := d.SleepAsync(time.Hour)
	ok, err = ad.WaitFor(ad.WithTimeout(slow, 10*time.Millisecond))
	if ok || err != nil {
		t.Fatalf("slow: %v %v", ok, err)
	}
	if slow.Finished() {
		t.Fatal("WithTimeout cancelled the operation (Nim does not)")
	}
	slow.Cancel()
	boom := errors.New("boom")
	failing := ad.Async(d, func(co *ad.Coro) (int, error) {
		ad.Await(co, d.SleepAsync(time.Millisecond))
		return 0, boom
	})
	if _, err := ad.WaitFor(ad.WithTimeout(failing, time.Hour)); !errors.Is(err, boom) {
		t.Fatalf("failing: %v", err)
	}
	pending := ad.NewFuture[int](d, "pending")
	if ok, err := ad.WaitFor(ad.WithTimeout(pending, 0)); ok || err != nil {
		t.Fatal("WithTimeout(pending, 0)")
	}
	pending.Cancel()
}

// Nim's all: All in argument order, first failure wins, empty completes at once,
// duplicates allowed, concurrent.
func TestAll(t *testing.T) {
	d := newD(t)
	mk := func(ms int, v int) *ad.Future[int] {
		return ad.Async(d, func(co *ad.Coro) (int, error) {
			ad.Await(co, d.SleepAsync(time.Duration(ms)*time.Millisecond))
			return v, nil
		})
	}
	clk := ad.UseFakeClock(d)
	a, b := mk(30, 1), mk(10, 2)
	vals, err := ad.WaitFor(ad.All(a, b, a))
	if err != nil || joinInts(vals) != "1 2 1" {
		t.Fatal(vals, err)
	}
	if now := clk.Now(); now != 30*time.Millisecond {
		t.Fatalf("not concurrent: done at %v, want 30ms", now)
	}
	empty := ad.All[int]()
	if v, err := empty.Read(); err != nil || len(v) != 0 {
		t.Fatal("empty All")
	}
	e1, e2 := errors.New("first"), errors.New("second")
	fail := func(ms int, e error) *ad.Future[int] {
		return ad.Async(d, func(co *ad.Coro) (int, error) {
			ad.Await(co, d.SleepAsync(time.Duration(ms)*time.Millisecond))
			return 0, e
		})
	}
	if _, err := ad.WaitFor(ad.All(fail(20, e2), fail(5, e1), mk(1, 0))); !errors.Is(err, e1) {
		t.Fatalf("first failure: %v", err)
	}
	d.Drain(time.Second)
	// Inputs keep their callbacks.
	c := ad.NewFuture[int](d, "c")
	kept := false
	c.AddCallback(func() { kept = true })
	all := ad.All(c)
	c.Complete(3)
	ad.WaitFor(all)
	if !kept {
		t.Fatal("All dropped a callback")
	}
}

// Nim's and / or: And / Or.
func TestAndOr(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	slow, fast := d.SleepAsync(30*time.Millisecond), d.SleepAsync(5*time.Millisecond)
	kept := 0
	slow.AddCallback(func() { kept++ })
	fast.AddCallback(func() { kept++ })
	if _, err := ad.WaitFor(ad.Or(slow, fast)); err != nil || clk.Now() != 5*time.Millisecond {
		t.Fatalf("Or: %v, done at %v", err, clk.Now())
	}
	if !fast.Finished() || slow.Finished() {
		t.Fatal("Or did not finish with the first")
	}
	if _, err := ad.WaitFor(ad.And(slow, fast)); err != nil || !slow.Finished() || clk.Now() != 30*time.Millisecond {
		t.Fatalf("And: %v, done at %v", err, clk.Now())
	}
	d.Poll(0)
	if kept != 2 {
		t.Fatalf("And/Or dropped callbacks: %d", kept)
	}
	boom := errors.New("boom")
	bad := ad.NewFuture[int](d, "bad")
	never := ad.NewFuture[string](d, "never")
	and := ad.And(never, bad)
	or := ad.Or(never, bad)
	bad.Fail(boom)
	d.Poll(0)
	if !errors.Is(and.Err(), boom) || !errors.Is(or.Err(), boom) {
		t.Fatal(and.Err(), or.Err())
	}
	never.Cancel()
	d.Drain(time.Second)
}

// forever is Go's usual "no limit" for a duration.
const forever = time.Duration(math.MaxInt64)

// Defect: a timer 24.86 days or more away was handed to epoll_wait as a
// 32-bit millisecond count: 2³² ms + 20 ms became 20 ms, so Poll(-1) with
// such a timer as its only work returned after 20 ms having done nothing
// (and 30 days became negative: wait forever). Poll(-1) must return on
// the wake only.
func TestHugeTimerWaitDoesNotWrap(t *testing.T) {
	d := newD(t)
	f := d.SleepAsync((1<<32 + 20) * time.Millisecond)
	woke := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(300 * time.Millisecond)
		d.CallSoonThreadSafe(func() { woke = true })
	}()
	start := time.Now()
	err := d.Poll(-1)
	el := time.Since(start)
	<-done
	if err != nil || !woke || f.Finished() {
		t.Fatalf("Poll(-1) with a 2³² ms + 20 ms timer: %v after %v, woken=%v, timer finished=%v", err, el, woke, f.Finished())
	}
	f.Cancel()
}

// Defect 4 at loop level, on the fake clock: a 30-day timer as the only
// work fires when the clock passes 30 days. One Poll(-1) is enough: the
// poller caps each wait (about 11.6 days) and the loop waits again for
// the rest instead of returning with nothing done.
func TestThirtyDayTimerFires(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	const month = 30 * 24 * time.Hour
	f := d.SleepAsync(month)
	tm := 0
	if _, err := d.AddTimer(month, true, func(ad.AsyncFD) bool { tm++; return true }); err != nil {
		t.Fatal(err)
	}
	if err := d.Poll(-1); err != nil {
		t.Fatal(err)
	}
	if !f.Finished() || tm != 1 {
		t.Fatalf("after one Poll(-1) at %v: sleep finished=%v, timer fired %d times", clk.Now(), f.Finished(), tm)
	}
	if now := clk.Now(); now < month || now > month+time.Millisecond {
		t.Fatalf("fired at %v, want %v", now, month)
	}
	if clk.Waits != 3 {
		t.Fatalf("%d waits for 30 days, want 3 capped ones", clk.Waits)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending after the timers fired")
	}
}

// Defect: deadlines were now + d without an overflow check, so
// time.Duration(math.MaxInt64) — Go's "forever" — wrapped into the past:
// SleepAsync completed at once, a oneshot AddTimer fired, Timeout failed
// with ErrTimeout and WithTimeout reported false. Forever must mean never.
func TestForeverDurationNeverFires(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	clk.Advance(time.Hour) // a loop clock that has run a while
	sl := d.SleepAsync(forever)
	fired := 0
	tm, err := d.AddTimer(forever, true, func(ad.AsyncFD) bool { fired++; return true })
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.AddTimer(forever, false, func(ad.AsyncFD) bool { fired++; return false })
	if err != nil {
		t.Fatal(err)
	}
	inner := ad.NewFuture[int](d, "inner")
	to := ad.Timeout(inner, forever)
	other := ad.NewFuture[int](d, "other")
	wt := ad.WithTimeout(other, forever)
	for i := 0; i < 3; i++ {
		if err := d.Poll(0); err != nil {
			t.Fatal(err)
		}
	}
	if sl.Finished() || fired != 0 || to.Finished() || wt.Finished() {
		t.Fatalf("forever came: sleep %v, timers fired %d, Timeout %v, WithTimeout %v", sl, fired, to, wt)
	}
	// A bounded Poll with only "forever" work waits its time and returns.
	if err := d.Poll(time.Second); err != nil || clk.Now() != time.Hour+time.Second {
		t.Fatalf("Poll(1s): %v, clock %v", err, clk.Now())
	}
	inner.Complete(7)
	other.Complete(8)
	if v, err := ad.WaitFor(to); v != 7 || err != nil {
		t.Fatalf("Timeout(f, forever) = %v, %v", v, err)
	}
	if ok, err := ad.WaitFor(wt); !ok || err != nil {
		t.Fatalf("WithTimeout(f, forever) = %v, %v", ok, err)
	}
	if !tm.Stop() || !rep.Stop() || !sl.Cancel() || d.HasPendingOperations() {
		t.Fatal("the forever timers were not all still pending")
	}
}

// Defect 5 for a repeating timer: its next deadline was When + period
// unchecked, so a period that fits once but not twice wrapped into the
// past and the timer fired again at once, every poll.
func TestRepeatingTimerNextDeadlineSaturates(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	period := time.Duration(math.MaxInt64/2 + 1)
	fired := 0
	tm, err := d.AddTimer(period, false, func(ad.AsyncFD) bool { fired++; return false })
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(period)
	for i := 0; i < 3; i++ {
		if err := d.Poll(0); err != nil {
			t.Fatal(err)
		}
	}
	if fired != 1 {
		t.Fatalf("a timer with period %v fired %d times at %v", period, fired, clk.Now())
	}
	if !tm.Stop() {
		t.Fatal("Stop: the timer was not pending any more")
	}
}

// Defect: Timer.Stop called inside the timer's own callback stopped a
// repeating timer but returned false. It was running (it would have fired
// again), so it returns true; for a oneshot timer, which would not fire
// again, false.
func TestTimerStopInOwnCallback(t *testing.T) {
	d := newD(t)
	ad.UseFakeClock(d)
	var rep, one *ad.Timer
	var repStop, repAgain, oneStop []bool
	var err error
	rep, err = d.AddTimer(time.Millisecond, false, func(ad.AsyncFD) bool {
		repStop = append(repStop, rep.Stop())
		repAgain = append(repAgain, rep.Stop())
		return false // Stop wins over "keep me"
	})
	if err != nil {
		t.Fatal(err)
	}
	one, err = d.AddTimer(time.Millisecond, true, func(ad.AsyncFD) bool {
		oneStop = append(oneStop, one.Stop())
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(time.Minute); err != nil {
		t.Fatal(err)
	}
	if len(repStop) != 1 || !repStop[0] || repAgain[0] {
		t.Fatalf("repeating timer: Stop in its callback = %v, again = %v (fired %d times)", repStop, repAgain, len(repStop))
	}
	if len(oneStop) != 1 || oneStop[0] {
		t.Fatalf("oneshot timer: Stop in its callback = %v", oneStop)
	}
	if rep.Stop() || one.Stop() || d.HasPendingOperations() {
		t.Fatal("timers still running")
	}
}
