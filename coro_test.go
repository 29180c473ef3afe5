package asyncdispatch_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The body runs synchronously until the first await of an unfinished
// future; a body without one returns a finished future.
func TestAsyncRunsSynchronously(t *testing.T) {
	d := newD(t)
	var log []string
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		log = append(log, "start")
		ad.Await(co, d.SleepAsync(0))
		log = append(log, "resumed")
		return 1, nil
	})
	log = append(log, "returned")
	if got := strings.Join(log, " "); got != "start returned" || f.Finished() {
		t.Fatalf("%q finished=%v", got, f.Finished())
	}
	ad.WaitFor(f)
	if got := strings.Join(log, " "); got != "start returned resumed" {
		t.Fatal(got)
	}
	g := ad.Async(d, func(co *ad.Coro) (int, error) { return 5, nil })
	if v, err := g.Read(); v != 5 || err != nil {
		t.Fatal("synchronous body did not finish at once")
	}
}

// Nim tasyncrecursion / #6100: a million synchronous awaits with no Poll
// and no stack growth; each awaited future is already finished.
func TestMillionSynchronousAwaits(t *testing.T) {
	d := newD(t)
	leaf := func(co *ad.Coro) (int, error) { return 1, nil }
	done := ad.NewFuture[int](d, "done")
	done.Complete(1)
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		sum := 0
		for i := 0; i < 1_000_000; i++ {
			v, _ := leaf(co)
			w, _ := ad.Await(co, done)
			sum += v + w
		}
		return sum, nil
	})
	if v, err := f.Read(); v != 2_000_000 || err != nil {
		t.Fatalf("%v %v", v, err)
	}
	// And a chain of a million async procedures awaiting each other
	// synchronously (each a separate future).
	var rec func(n int) func(co *ad.Coro) (int, error)
	rec = func(n int) func(co *ad.Coro) (int, error) {
		return func(co *ad.Coro) (int, error) {
			if n == 0 {
				return 0, nil
			}
			return ad.Await(co, ad.Async(d, rec(n-1)))
		}
	}
	_ = rec
	g := ad.Async(d, func(co *ad.Coro) (int, error) {
		n := 0
		for i := 0; i < 1_000_000; i++ {
			v, err := ad.Await(co, ad.Async(d, leaf))
			if err != nil {
				return 0, err
			}
			n += v
		}
		return n, nil
	})
	if v, err := g.Read(); v != 1_000_000 || err != nil {
		t.Fatalf("%v %v", v, err)
	}
	if d.HasPendingOperations() {
		t.Fatal("synchronous chain left work pending")
	}
}

// Errors propagate through awaits, keep their identity for
// errors.Is, and record the procedures they crossed.
func TestErrorPropagationAndTrace(t *testing.T) {
	d := newD(t)
	boom := errors.New("b failure")
	b := func(co *ad.Coro) (int, error) {
		ad.Await(co, d.SleepAsync(time.Millisecond))
		return 0, boom
	}
	a := func(co *ad.Coro) (int, error) {
		return ad.Await(co, ad.Async(d, b))
	}
	_, err := ad.WaitFor(ad.Async(d, a))
	if !errors.Is(err, boom) || err.Error() != "b failure" {
		t.Fatalf("err %v", err)
	}
	var ae *ad.AsyncError
	if !errors.As(err, &ae) || len(ae.Procs) != 2 {
		t.Fatalf("trace: %#v", err)
	}
	tr := fmt.Sprintf("%+v", err)
	if !strings.Contains(tr, "Async traceback") || !strings.Contains(tr, "TestErrorPropagationAndTrace") {
		t.Fatalf("trace text:\n%s", tr)
	}
}

// A panic in the body fails the future with the value and the stack; the
// loop goes on.
func TestPanicFailsFuture(t *testing.T) {
	d := newD(t)
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		ad.Await(co, d.SleepAsync(0))
		panic("kaboom")
	})
	_, err := ad.WaitFor(f)
	var pe *ad.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "coro_test.go") {
		t.Fatalf("%v", err)
	}
	early := ad.Async(d, func(co *ad.Coro) (int, error) { panic(errors.New("before any await")) })
	if !early.Failed() {
		t.Fatal("panic before the first await was raised at the call site")
	}
	// The loop still works.
	if _, err := ad.WaitFor(d.SleepAsync(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
}

// A panic in a plain callback is returned by Poll; the callbacks behind it
// run on the next Poll.
func TestCallbackPanicSurfacesFromPoll(t *testing.T) {
	d := newD(t)
	var ran []int
	d.CallSoon(func() { ran = append(ran, 1) })
	d.CallSoon(func() { panic("cb panic") })
	d.CallSoon(func() { ran = append(ran, 3) })
	err := d.Poll(0)
	var pe *ad.PanicError
	if !errors.As(err, &pe) || pe.Value != "cb panic" {
		t.Fatalf("Poll: %v", err)
	}
	if joinInts(ran) != "1" {
		t.Fatalf("ran %v", ran)
	}
	if err := d.Poll(0); err != nil || joinInts(ran) != "1 3" {
		t.Fatalf("second poll: %v %v", err, ran)
	}
}

// AsyncCheck surfaces a failure from the next Poll; WaitFor and
// RunForever return it.
func TestAsyncCheck(t *testing.T) {
	d := newD(t)
	boom := errors.New("checked")
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		ad.Await(co, d.SleepAsync(time.Millisecond))
		return 0, boom
	})
	ad.AsyncCheck(f)
	if err := d.RunForever(); !errors.Is(err, boom) {
		t.Fatalf("RunForever: %v", err)
	}
	// Already failed: raised by the next poll, not synchronously.
	g := ad.NewFuture[int](d, "g")
	g.Fail(boom)
	ad.AsyncCheck(g)
	if err := d.Poll(0); !errors.Is(err, boom) {
		t.Fatalf("Poll: %v", err)
	}
	// AsyncCheck keeps the user's callbacks (Nim's callback= drops them).
	h := ad.NewFuture[int](d, "h")
	kept := false
	h.AddCallback(func() { kept = true })
	ad.AsyncCheck(h)
	h.Complete(1)
	d.Poll(0)
	if !kept {
		t.Fatal("AsyncCheck dropped a callback")
	}
}

// Nim t13889 / r05: one future awaited by many procedures; they resume in
// the order they started waiting.
func TestManyAwaitersResumeInOrder(t *testing.T) {
	d := newD(t)
	shared := ad.NewFuture[int](d, "shared")
	var order []int
	var futs []*ad.Future[int]
	for i := 0; i < 5; i++ {
		futs = append(futs, ad.Async(d, func(co *ad.Coro) (int, error) {
			v, err := ad.Await(co, shared)
			order = append(order, i)
			return v + i, err
		}))
	}
	d.CallSoon(func() { shared.Complete(10) })
	vals, err := ad.WaitFor(ad.All(futs...))
	if err != nil || joinInts(order) != "0 1 2 3 4" || joinInts(vals) != "10 11 12 13 14" {
		t.Fatalf("%v %v %v", err, order, vals)
	}
}

// Await outside an async procedure, and of nil.
func TestAwaitMisuse(t *testing.T) {
	d := newD(t)
	if _, err := ad.Await(nil, d.SleepAsync(0)); !errors.Is(err, ad.ErrNotAsync) {
		t.Fatal(err)
	}
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		var nilF *ad.Future[int]
		return ad.Await(co, nilF)
	})
	if !errors.Is(f.Err(), ad.ErrNilFuture) {
		t.Fatal(f.Err())
	}
	if g := ad.Async[int](d, nil); !errors.Is(g.Err(), ad.ErrNilCallback) {
		t.Fatal(g.Err())
	}
	d.Drain(time.Second)
}

// Close ends every suspended procedure without leaking a goroutine: their
// Awaits return ErrClosed, deferred calls run.
func TestCloseEndsSuspendedProcedures(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		deferred := 0
		var errs []error
		var futs []*ad.Future[int]
		for i := 0; i < 50; i++ {
			futs = append(futs, ad.Async(d, func(co *ad.Coro) (int, error) {
				defer func() { deferred++ }()
				_, err := ad.Await(co, d.SleepAsync(time.Hour))
				errs = append(errs, err)
				// A body that ignores the error and awaits again is
				// unwound.
				ad.Await(co, ad.NewFuture[int](d, "again"))
				return 1, nil
			}))
		}
		stuck := ad.NewFuture[int](d, "stuck")
		futs = append(futs, ad.Async(d, func(co *ad.Coro) (int, error) { return ad.Await(co, stuck) }))
		d.Poll(0)
		if runtime.NumGoroutine() < 50 {
			t.Fatal("expected suspended coroutines")
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if deferred != 50 || len(errs) != 50 {
			t.Fatalf("deferred=%d errs=%d", deferred, len(errs))
		}
		for _, err := range errs {
			if !errors.Is(err, ad.ErrClosed) {
				t.Fatal(err)
			}
		}
		for _, f := range futs {
			if !errors.Is(f.Err(), ad.ErrClosed) {
				t.Fatalf("future after Close: %v", f.Err())
			}
		}
		if err := d.Close(); !errors.Is(err, ad.ErrClosed) {
			t.Fatal("second Close:", err)
		}
		if d.GetIoHandler() != -1 {
			t.Fatal("epoll fd still reported")
		}
		if f := ad.Async(d, func(co *ad.Coro) (int, error) { return 1, nil }); !errors.Is(f.Err(), ad.ErrClosed) {
			t.Fatal("Async after Close ran")
		}
	})
}

// Close from inside an async procedure tears down after the Poll.
func TestCloseFromInside(t *testing.T) {
	checkLeaks(t, func() {
		d, _ := ad.NewDispatcher()
		other := ad.Async(d, func(co *ad.Coro) (int, error) {
			_, err := ad.Await(co, d.SleepAsync(time.Hour))
			return 0, err
		})
		ad.Async(d, func(co *ad.Coro) (int, error) {
			ad.Await(co, d.SleepAsync(time.Millisecond))
			d.Close()
			return 0, nil
		})
		if err := d.RunForever(); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(other.Err(), ad.ErrClosed) {
			t.Fatal(other.Err())
		}
	})
}

// Coroutines are pooled: many short procedures in a row reuse a handful of
// goroutines.
func TestCoroutinePool(t *testing.T) {
	d := newD(t)
	g0 := runtime.NumGoroutine()
	for i := 0; i < 1000; i++ {
		ad.WaitFor(ad.Async(d, func(co *ad.Coro) (int, error) {
			ad.Await(co, d.SleepAsync(0))
			return 0, nil
		}))
	}
	if g := runtime.NumGoroutine() - g0; g > 2 {
		t.Fatalf("%d goroutines for 1000 sequential procedures", g)
	}
}

// An async procedure may await a future of another dispatcher running on
// another goroutine: it is resumed on its own loop.
func TestAwaitAcrossDispatchers(t *testing.T) {
	checkLeaks(t, func() {
		d1, _ := ad.NewDispatcher()
		d2, _ := ad.NewDispatcher()
		defer d1.Close()
		ready := make(chan *ad.Future[ad.Void])
		stop := make(chan struct{})
		go func() {
			defer d2.Close()
			f := d2.SleepAsync(10 * time.Millisecond)
			ready <- f
			ad.WaitFor(f)
			<-stop
		}()
		f := <-ready
		g := ad.Async(d1, func(co *ad.Coro) (int, error) {
			_, err := ad.Await(co, f)
			return 1, err
		})
		v, err := ad.WaitFor(g)
		close(stop)
		if v != 1 || err != nil {
			t.Fatal(v, err)
		}
	})
}

// Close called synchronously by a procedure started outside the loop takes
// effect as soon as Async returns.
func TestCloseFromSynchronousBody(t *testing.T) {
	checkLeaks(t, func() {
		d, _ := ad.NewDispatcher()
		waiting := ad.Async(d, func(co *ad.Coro) (int, error) {
			_, err := ad.Await(co, d.SleepAsync(time.Hour))
			return 0, err
		})
		ad.Async(d, func(co *ad.Coro) (int, error) { return 0, d.Close() })
		if !errors.Is(waiting.Err(), ad.ErrClosed) {
			t.Fatalf("suspended procedure after Close: %v", waiting.Err())
		}
		if err := d.Poll(0); !errors.Is(err, ad.ErrClosed) {
			t.Fatal(err)
		}
	})
}

// A procedure awaiting another dispatcher's future is woken with ErrClosed
// when that dispatcher is closed before the future finishes, instead of
// staying suspended until its own dispatcher closes.
func TestAwaitAcrossDispatchersOtherClosed(t *testing.T) {
	checkLeaks(t, func() {
		d1, _ := ad.NewDispatcher()
		d2, _ := ad.NewDispatcher()
		defer d1.Close()
		ready := make(chan *ad.Future[int])
		closeNow := make(chan struct{})
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			f := ad.NewFuture[int](d2, "never")
			d2.SleepAsync(time.Hour) // keeps d2's loop busy
			ready <- f
			for {
				select {
				case <-closeNow:
					d2.Close()
					return
				default:
				}
				if err := d2.Poll(5 * time.Millisecond); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		f := <-ready
		g := ad.Async(d1, func(co *ad.Coro) (int, error) {
			return ad.Await(co, f)
		})
		if g.Finished() {
			t.Fatalf("finished before the other dispatcher closed: %v", g)
		}
		close(closeNow)
		start := time.Now()
		_, err := ad.WaitFor(g)
		if !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("took too long")
		}
		<-closed
		// A future of a closed dispatcher: refused at once.
		h := ad.Async(d1, func(co *ad.Coro) (int, error) { return ad.Await(co, f) })
		if _, err := ad.WaitFor(h); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
	})
}

// Two dispatchers, each with a procedure awaiting the other's future, are
// closed at the same time: both procedures end, nothing deadlocks.
func TestAwaitAcrossDispatchersBothClosing(t *testing.T) {
	checkLeaks(t, func() {
		for round := 0; round < 50; round++ {
			ds := [2]*ad.Dispatcher{}
			fs := [2]*ad.Future[int]{}
			for i := range ds {
				ds[i], _ = ad.NewDispatcher()
				fs[i] = ad.NewFuture[int](ds[i], "never")
			}
			var wg sync.WaitGroup
			errs := [2]error{}
			for i := range ds {
				d, other := ds[i], fs[1-i]
				g := ad.Async(d, func(co *ad.Coro) (int, error) { return ad.Await(co, other) })
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Run a little, then close from the loop's goroutine.
					d.Poll(time.Millisecond)
					d.Close()
					_, errs[i] = g.Read()
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("deadlock: dispatchers awaiting each other did not close")
			}
			for i, err := range errs {
				if !errors.Is(err, ad.ErrClosed) {
					t.Fatalf("round %d, procedure %d: %v", round, i, err)
				}
			}
		}
	})
}
