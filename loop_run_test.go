package asyncdispatch_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Nim: nothing pending → the exact Nim text, errors.Is-able; Drain does
// not complain.
func TestNothingPending(t *testing.T) {
	d := newD(t)
	for _, run := range []func() error{
		func() error { return d.Poll(0) },
		func() error { return d.Poll(100 * time.Millisecond) },
		func() error { return d.Poll(-1) },
		d.RunForever,
	} {
		err := run()
		if !errors.Is(err, ad.ErrNoWork) || err.Error() != "No handles or timers registered in dispatcher." {
			t.Fatalf("got %v", err)
		}
	}
	if err := d.Drain(time.Second); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending on a new dispatcher")
	}
}

// Nim's order inside one poll (measured on Nim 1.6.10): fd callback (direct) → callSoon
// queued before the poll → callback of a timer that expired → callSoon
// queued by the fd callback.
func TestPhaseOrder(t *testing.T) {
	d := newD(t)
	ev := newPipe(t, d)
	var log []string
	sl := d.SleepAsync(0)
	sl.AddCallback(func() { log = append(log, "timer") })
	d.CallSoon(func() { log = append(log, "callSoon-before") })
	d.AddRead(ev.r, func(fd ad.AsyncFD) bool {
		log = append(log, "fd")
		d.CallSoon(func() { log = append(log, "callSoon-from-fd") })
		return true
	})
	ev.write(t)
	// SleepAsync(0)'s deadline is its creation time: it is due at the poll.
	// The first poll must not block (callbacks queued) but epoll_wait(0)
	// still reports the ready pipe.
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	want := "fd callSoon-before timer callSoon-from-fd"
	if got := strings.Join(log, " "); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

// Poll returns after one wakeup: with a 30 ms timer Poll(1s) returns when
// the timer fires; with a 300 ms timer Poll(50ms) returns after 50 ms and
// the timer is still pending; Poll(0) never waits. On the fake clock: the
// loop's waits, not the machine's speed, are measured.
func TestPollTimeouts(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	f := d.SleepAsync(30 * time.Millisecond)
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if now := clk.Now(); now != 30*time.Millisecond || !f.Finished() {
		t.Fatalf("Poll(1s) with a 30ms timer: returned at %v, finished=%v", now, f.Finished())
	}
	g := d.SleepAsync(300 * time.Millisecond)
	if err := d.Poll(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if now := clk.Now(); now != 80*time.Millisecond || g.Finished() {
		t.Fatalf("Poll(50ms) with a 300ms timer: returned at %v (want 80ms), finished=%v", now, g.Finished())
	}
	d.Poll(0)
	if now := clk.Now(); now != 80*time.Millisecond {
		t.Fatalf("Poll(0) waited until %v", now)
	}
	g.Cancel()
}

// Nim #14525 fixed: Poll(-1) honours timers.
func TestPollNegativeHonoursTimers(t *testing.T) {
	d := newD(t)
	f := d.SleepAsync(20 * time.Millisecond)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			d.CallSoonThreadSafe(func() {}) // unblock a hung test
		}
	}()
	err := d.Poll(-1)
	close(done)
	if err != nil || !f.Finished() {
		t.Fatalf("Poll(-1): %v finished=%v after %v", err, f.Finished(), time.Since(start))
	}
}

// Nim #4262 / tpolltimeouts: an already finished chain needs zero polls.
func TestFinishedChainNeedsNoPoll(t *testing.T) {
	d := newD(t)
	leaf := func(co *ad.Coro) (int, error) { return 1, nil }
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		x, _ := leaf(co)
		y, _ := ad.Await(co, ad.Async(d, leaf))
		return x + y, nil
	})
	if v, err := f.Read(); v != 2 || err != nil {
		t.Fatalf("%v %v", v, err)
	}
}

// Nim t7758: a 40 ms sleep finishes within a handful of Poll(10ms) calls
// (four, on the fake clock: each waits its 10 ms).
func TestSleepNeedsFewPolls(t *testing.T) {
	d := newD(t)
	ad.UseFakeClock(d)
	f := d.SleepAsync(40 * time.Millisecond)
	n := 0
	for !f.Finished() && n < 100 {
		d.Poll(10 * time.Millisecond)
		n++
	}
	if n != 4 {
		t.Fatalf("%d polls for a 40ms sleep", n)
	}
}

// Nim #24506 fixed: Drain's timeout is measured from its start, not
// subtracted cumulatively: a task waking every 50 ms keeps Drain(500ms)
// busy for 500 ms, ten ticks, not ≈200 ms.
func TestDrainTimeout(t *testing.T) {
	d := newD(t)
	clk := ad.UseFakeClock(d)
	ticks := 0
	tm, _ := d.AddTimer(50*time.Millisecond, false, func(ad.AsyncFD) bool { ticks++; return false })
	if err := d.Drain(500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if now := clk.Now(); now != 500*time.Millisecond || ticks != 10 {
		t.Fatalf("Drain(500ms) returned at %v after %d ticks", now, ticks)
	}
	tm.Stop()
	// Drain returns as soon as nothing is pending.
	d.SleepAsync(10 * time.Millisecond)
	if err := d.Drain(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if now := clk.Now(); now != 510*time.Millisecond {
		t.Fatalf("Drain with one 10ms timer returned at %v, want 510ms", now)
	}
}

// As Nim's runForever: RunForever returns ErrNoWork once everything is done, nil on Close.
func TestRunForever(t *testing.T) {
	d := newD(t)
	n := 0
	d.AddTimer(5*time.Millisecond, false, func(ad.AsyncFD) bool { n++; return n == 3 })
	if err := d.RunForever(); !errors.Is(err, ad.ErrNoWork) || n != 3 {
		t.Fatalf("%v after %d ticks", err, n)
	}
	d2 := newD(t)
	d2.AddTimer(5*time.Millisecond, false, func(ad.AsyncFD) bool { d2.Close(); return false })
	if err := d2.RunForever(); err != nil {
		t.Fatalf("RunForever after Close: %v", err)
	}
	if err := d2.Poll(0); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
}

// §7 + Nim #11911: WaitFor returns the value or error; inside an async
// procedure or a callback it refuses instead of nesting the loop.
func TestWaitFor(t *testing.T) {
	d := newD(t)
	f := ad.Async(d, func(co *ad.Coro) (string, error) {
		ad.Await(co, d.SleepAsync(5*time.Millisecond))
		return "page content", nil
	})
	if v, err := ad.WaitFor(f); v != "page content" || err != nil {
		t.Fatalf("%q %v", v, err)
	}
	boom := errors.New("boom")
	g := ad.Async(d, func(co *ad.Coro) (int, error) {
		ad.Await(co, d.SleepAsync(time.Millisecond))
		return 0, boom
	})
	if _, err := ad.WaitFor(g); !errors.Is(err, boom) {
		t.Fatalf("WaitFor failed future: %v", err)
	}
	inner := ad.Async(d, func(co *ad.Coro) (int, error) {
		_, err := ad.WaitFor(d.SleepAsync(time.Millisecond))
		return 0, err
	})
	if _, err := ad.WaitFor(inner); !errors.Is(err, ad.ErrNestedLoop) {
		t.Fatalf("WaitFor inside async: %v", err)
	}
	var cbErr error
	d.CallSoon(func() { cbErr = d.Poll(0) })
	d.Poll(0)
	if !errors.Is(cbErr, ad.ErrNestedLoop) {
		t.Fatalf("Poll inside a callback: %v", cbErr)
	}
	// A future nothing will complete: ErrNoWork instead of a hang.
	never := ad.NewFuture[int](d, "never")
	if _, err := ad.WaitFor(never); !errors.Is(err, ad.ErrNoWork) {
		t.Fatalf("WaitFor(never): %v", err)
	}
}

// As in Nim, HasPendingOperations counts timers, queued callbacks and fds with
// callbacks; not idle registered fds.
func TestHasPendingOperations(t *testing.T) {
	d := newD(t)
	p := newPipe(t, d)
	if d.HasPendingOperations() {
		t.Fatal("idle registered fd counts as pending")
	}
	d.CallSoon(func() {})
	if !d.HasPendingOperations() {
		t.Fatal("queued callback not pending")
	}
	d.Poll(0)
	f := d.SleepAsync(time.Hour)
	if !d.HasPendingOperations() {
		t.Fatal("timer not pending")
	}
	f.Cancel()
	d.Poll(0)
	if d.HasPendingOperations() {
		t.Fatal("cancelled timer still pending")
	}
	d.AddRead(p.r, func(ad.AsyncFD) bool { return true })
	if !d.HasPendingOperations() || d.ActiveDescriptors() != 1 {
		t.Fatal("fd with a callback not pending")
	}
	p.write(t)
	d.Poll(time.Second)
	if d.HasPendingOperations() || d.ActiveDescriptors() != 0 {
		t.Fatal("fd pending after its callback returned true")
	}
}

// Four dispatchers on four goroutines at once, each with its own timers,
// procedures and cross-goroutine posts.
func TestFourDispatchers(t *testing.T) {
	checkLeaks(t, func() {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				d, err := ad.NewDispatcher()
				if err != nil {
					errs <- err
					return
				}
				defer d.Close()
				var futs []*ad.Future[int]
				for j := 0; j < 100; j++ {
					futs = append(futs, ad.Async(d, func(co *ad.Coro) (int, error) {
						for k := 0; k < 5; k++ {
							if _, err := ad.Await(co, d.SleepAsync(time.Millisecond)); err != nil {
								return 0, err
							}
						}
						return j, nil
					}))
				}
				vals, err := ad.WaitFor(ad.All(futs...))
				if err != nil {
					errs <- err
					return
				}
				for j, v := range vals {
					if v != j {
						errs <- errors.New("wrong value order")
						return
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// CallSoonThreadSafe wakes a loop blocked in Poll(-1).
func TestCallSoonThreadSafeWakes(t *testing.T) {
	d := newD(t)
	f := ad.NewFuture[int](d, "remote")
	hold := d.SleepAsync(time.Hour) // keep the loop alive and blocked
	go func() {
		d.CallSoonThreadSafe(func() { f.Complete(7) })
	}()
	start := time.Now()
	for !f.Finished() {
		if err := d.Poll(-1); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("wake took %v", el)
	}
	hold.Cancel()
}

// ScheduleCallbacks runs queued callbacks without waiting.
func TestScheduleCallbacks(t *testing.T) {
	d := newD(t)
	ran := false
	if d.ScheduleCallbacks() {
		t.Fatal("ran something on an empty queue")
	}
	d.CallSoon(func() { ran = true })
	clk := ad.UseFakeClock(d)
	hold := d.SleepAsync(time.Hour)
	if !d.ScheduleCallbacks() || !ran {
		t.Fatal("queued callback did not run")
	}
	if clk.Now() != 0 || hold.Finished() {
		t.Fatalf("ScheduleCallbacks waited (the clock says %v)", clk.Now())
	}
	hold.Cancel()
}
