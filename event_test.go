package asyncdispatch_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// pollUntilDone polls d until done() holds, failing t after limit.
func pollUntilDone(t testing.TB, d *ad.Dispatcher, limit time.Duration, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %v", limit)
		}
		if err := d.Poll(50 * time.Millisecond); err != nil && !errors.Is(err, ad.ErrNoWork) {
			t.Fatalf("Poll: %v", err)
		}
	}
}

func newEvent(t testing.TB) *ad.AsyncEvent {
	t.Helper()
	ev, err := ad.NewAsyncEvent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	return ev
}

// Triggers from other goroutines wake a blocked Poll, and all triggers that
// arrive before the loop looks coalesce into one callback call.
func TestEventTriggerFromGoroutines(t *testing.T) {
	d := newD(t)
	ev := newEvent(t)
	calls := 0
	if err := d.AddEvent(ev, func(fd ad.AsyncFD) bool {
		if fd < 0 {
			t.Errorf("callback got fd %d", fd)
		}
		calls++
		return false
	}); err != nil {
		t.Fatal(err)
	}
	if !d.HasPendingOperations() || d.ActiveDescriptors() != 1 {
		t.Fatalf("registered event: pending %v, active %d", d.HasPendingOperations(), d.ActiveDescriptors())
	}

	// Coalescing: ten triggers, all done before the loop looks.
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ev.Trigger(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := d.Poll(0); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("10 triggers before one poll: %d callback calls, want 1", calls)
	}
	if err := d.Poll(0); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("no trigger: %d calls, want still 1", calls)
	}

	// A trigger from another goroutine wakes a Poll that is blocked.
	start := time.Now()
	go func() {
		time.Sleep(20 * time.Millisecond) // let the loop block first (not needed for correctness)
		ev.Trigger()
	}()
	// A loop, not one Poll: a signal (Go's preemption, SIGCHLD) may end a
	// blocked epoll_wait early with EINTR, which is an empty wakeup.
	for calls < 2 && time.Since(start) < 10*time.Second {
		if err := d.Poll(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("after a remote trigger: %d calls, want 2", calls)
	}
	if e := time.Since(start); e > 5*time.Second {
		t.Fatalf("the trigger did not wake Poll (%v)", e)
	}
}

// Nim testmanyasyncevents: a hundred events, each triggered once, give a
// hundred callbacks and leave nothing pending.
func TestManyAsyncEvents(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		const n = 100
		evs := make([]*ad.AsyncEvent, n)
		fired := make([]int, n)
		total := 0
		for i := range evs {
			ev, err := ad.NewAsyncEvent()
			if err != nil {
				t.Fatal(err)
			}
			defer ev.Close()
			evs[i] = ev
			if err := d.AddEvent(ev, func(ad.AsyncFD) bool {
				fired[i]++
				total++
				return true
			}); err != nil {
				t.Fatal(err)
			}
		}
		if got := d.ActiveDescriptors(); got != n {
			t.Fatalf("ActiveDescriptors = %d, want %d", got, n)
		}
		for _, ev := range evs {
			if err := ev.Trigger(); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Drain(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if total != n {
			t.Fatalf("%d callbacks, want %d", total, n)
		}
		for i, c := range fired {
			if c != 1 {
				t.Fatalf("event %d fired %d times", i, c)
			}
		}
		if d.HasPendingOperations() || d.ActiveDescriptors() != 0 || d.RegisteredDescriptors() != 0 {
			t.Fatalf("after draining: pending %v, active %d, registered %d",
				d.HasPendingOperations(), d.ActiveDescriptors(), d.RegisteredDescriptors())
		}
	})
}

func TestEventProtocol(t *testing.T) {
	d := newD(t)
	ev := newEvent(t)
	calls := 0
	cb := func(ad.AsyncFD) bool { calls++; return true }

	if err := d.AddEvent(ev, nil); !errors.Is(err, ad.ErrNilCallback) {
		t.Fatalf("nil callback: %v", err)
	}
	if err := d.AddEvent(ev, cb); err != nil {
		t.Fatal(err)
	}
	err := d.AddEvent(ev, cb)
	if !errors.Is(err, ad.ErrEventRegistered) || !errors.Is(err, ad.ErrAlreadyRegistered) {
		t.Fatalf("adding twice: %v", err)
	}
	d2 := newD(t)
	if err := d2.AddEvent(ev, cb); !errors.Is(err, ad.ErrEventRegistered) {
		t.Fatalf("adding to a second dispatcher: %v", err)
	}

	// true unregisters; the event stays usable.
	ev.Trigger()
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || d.HasPendingOperations() || d.RegisteredDescriptors() != 0 {
		t.Fatalf("after true: calls %d, pending %v, registered %d", calls, d.HasPendingOperations(), d.RegisteredDescriptors())
	}
	// Unregistering now is an error, not a crash (Nim #5298).
	for _, err := range []error{d.UnregisterEvent(ev), ev.Unregister()} {
		if !errors.Is(err, ad.ErrEventNotRegistered) || !errors.Is(err, ad.ErrNotRegistered) {
			t.Fatalf("unregistering an unregistered event: %v", err)
		}
	}
	// Re-adding works, even on another dispatcher.
	if err := d2.AddEvent(ev, cb); err != nil {
		t.Fatal(err)
	}
	if err := d.UnregisterEvent(ev); !errors.Is(err, ad.ErrEventNotRegistered) {
		t.Fatalf("unregistering from the wrong dispatcher: %v", err)
	}
	if err := ev.Unregister(); err != nil {
		t.Fatal(err)
	}
	if err := ev.Unregister(); !errors.Is(err, ad.ErrEventNotRegistered) {
		t.Fatalf("second Unregister: %v", err)
	}
}

// Nim #5304: a trigger that is pending but not yet processed does not run
// the callback once the event is unregistered; the trigger is kept and
// delivered when the event is added again. A trigger made while the event
// is not registered is kept the same way.
func TestEventPendingTriggerAcrossUnregister(t *testing.T) {
	d := newD(t)
	ev := newEvent(t)
	var got []string
	add := func(name string) {
		if err := d.AddEvent(ev, func(ad.AsyncFD) bool { got = append(got, name); return true }); err != nil {
			t.Fatal(err)
		}
	}
	add("first")
	ev.Trigger()
	if err := ev.Unregister(); err != nil {
		t.Fatal(err)
	}
	if err := d.Poll(0); !errors.Is(err, ad.ErrNoWork) {
		t.Fatalf("Poll with the event unregistered: %v", err)
	}
	add("second")
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	ev.Trigger() // while unregistered
	add("third")
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "second" || got[1] != "third" {
		t.Fatalf("callbacks: %v, want [second third]", got)
	}
}

// Close unregisters (Nim PR #4694): nothing stays pending, and the event
// refuses further use with ErrEventClosed.
func TestEventCloseUnregisters(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ev, err := ad.NewAsyncEvent()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.AddEvent(ev, func(ad.AsyncFD) bool { return false }); err != nil {
			t.Fatal(err)
		}
		if err := ev.Close(); err != nil {
			t.Fatal(err)
		}
		if d.HasPendingOperations() || d.RegisteredDescriptors() != 0 {
			t.Fatal("a closed event is still registered")
		}
		if err := d.Poll(0); !errors.Is(err, ad.ErrNoWork) {
			t.Fatalf("Poll: %v", err)
		}
		for name, err := range map[string]error{
			"Trigger":  ev.Trigger(),
			"Close":    ev.Close(),
			"AddEvent": d.AddEvent(ev, func(ad.AsyncFD) bool { return true }),
		} {
			if !errors.Is(err, ad.ErrEventClosed) {
				t.Errorf("%s after Close: %v", name, err)
			}
		}
	})
}

// Nim #5331: unregistering and closing an event from its own callback is
// fine, whatever the callback returns; the descriptor counts stay right
// (regression for the fd table's count while a callback list is detached).
func TestEventCloseInOwnCallback(t *testing.T) {
	for _, ret := range []bool{false, true} {
		d := newD(t)
		ev, err := ad.NewAsyncEvent()
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		d.AddEvent(ev, func(ad.AsyncFD) bool {
			calls++
			if err := ev.Unregister(); err != nil {
				t.Error(err)
			}
			if err := ev.Close(); err != nil {
				t.Error(err)
			}
			return ret
		})
		ev.Trigger()
		if err := d.Poll(time.Second); err != nil {
			t.Fatal(err)
		}
		if calls != 1 || d.HasPendingOperations() || d.ActiveDescriptors() != 0 || d.RegisteredDescriptors() != 0 {
			t.Fatalf("returning %v: calls %d, pending %v, active %d, registered %d", ret, calls,
				d.HasPendingOperations(), d.ActiveDescriptors(), d.RegisteredDescriptors())
		}
	}
}

// The fd table's active count survives callbacks that add to, or
// unregister, their own descriptor (it used to double-count the first and
// never uncount the second).
func TestActiveCountWhenCallbackChangesItsFD(t *testing.T) {
	d := newD(t)
	p := newPipe(t, d)
	p.write(t)
	d.AddRead(p.r, func(fd ad.AsyncFD) bool {
		d.AddRead(fd, func(ad.AsyncFD) bool { return true })
		return true
	})
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := d.ActiveDescriptors(); got != 1 {
		t.Fatalf("after re-adding in a callback: ActiveDescriptors = %d, want 1", got)
	}
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := d.ActiveDescriptors(); got != 0 || d.HasPendingOperations() {
		t.Fatalf("after the re-added callback ran: ActiveDescriptors = %d, want 0", got)
	}
	d.AddRead(p.r, func(fd ad.AsyncFD) bool {
		d.Unregister(fd)
		return true
	})
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if d.ActiveDescriptors() != 0 || d.HasPendingOperations() {
		t.Fatalf("after unregistering in a callback: active %d, pending %v", d.ActiveDescriptors(), d.HasPendingOperations())
	}
	p.drain()
}

// Close of the dispatcher closes the events registered with it; triggers
// racing with it from other goroutines are safe (run with -race).
func TestEventClosedWithDispatcher(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		ev, err := ad.NewAsyncEvent()
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		d.AddEvent(ev, func(ad.AsyncFD) bool { calls++; return false })
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := ev.Trigger(); err != nil {
						if !errors.Is(err, ad.ErrEventClosed) {
							t.Error(err)
						}
						return
					}
				}
			}()
		}
		pollUntilDone(t, d, 5*time.Second, func() bool { return calls >= 3 })
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if err := ev.Trigger(); !errors.Is(err, ad.ErrEventClosed) {
			t.Fatalf("Trigger after the dispatcher closed: %v", err)
		}
		if err := ev.Close(); !errors.Is(err, ad.ErrEventClosed) {
			t.Fatalf("Close after the dispatcher closed it: %v", err)
		}
	})
}

// The callback receives the eventfd, which is a real eventfd.
func TestEventCallbackFD(t *testing.T) {
	d := newD(t)
	ev := newEvent(t)
	var got ad.AsyncFD = -1
	d.AddEvent(ev, func(fd ad.AsyncFD) bool { got = fd; return true })
	ev.Trigger()
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if got < 0 || unix.Fstat(int(got), &st) != nil {
		t.Fatalf("callback fd %d is not open", got)
	}
}

// The package-level AddEvent uses the global dispatcher.
func TestGlobalAddEvent(t *testing.T) {
	ev := newEvent(t)
	fired := false
	if err := ad.AddEvent(ev, func(ad.AsyncFD) bool { fired = true; return true }); err != nil {
		t.Fatal(err)
	}
	go ev.Trigger()
	for !fired {
		if err := ad.Poll(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ev.Trigger()
	if err := ad.AddEvent(ev, func(ad.AsyncFD) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if err := ad.UnregisterEvent(ev); err != nil {
		t.Fatal(err)
	}
	if err := ad.UnregisterEvent(ev); !errors.Is(err, ad.ErrEventNotRegistered) {
		t.Fatal(err)
	}
}

// An event callback that panics: the panic is Poll's error, and the event
// stays registered and working.
func TestEventCallbackPanicKeepsEvent(t *testing.T) {
	d := newD(t)
	ev, err := ad.NewAsyncEvent()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	calls := 0
	if err := d.AddEvent(ev, func(ad.AsyncFD) bool {
		calls++
		if calls == 1 {
			panic("event boom")
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	ev.Trigger()
	var pe *ad.PanicError
	if err := d.Poll(time.Second); !errors.As(err, &pe) || pe.Value != "event boom" {
		t.Fatalf("Poll: %v", err)
	}
	ev.Trigger()
	if err := d.Poll(time.Second); err != nil || calls != 2 {
		t.Fatalf("second trigger: %v, %d calls", err, calls)
	}
	if d.HasPendingOperations() {
		t.Fatal("event still pending after its callback returned true")
	}
}
