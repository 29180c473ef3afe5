package asyncdispatch_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Callbacks posted by many goroutines all run on the loop, each
// goroutine's in the order it posted them (run with -race: the counter is
// loop state, touched without a lock).
func TestCallSoonThreadSafeManyGoroutines(t *testing.T) {
	d := newD(t)
	const goroutines, each = 8, 200
	last := make([]int, goroutines)
	total := 0
	keep := d.SleepAsync(time.Minute) // pending work while the posts arrive
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				if err := d.CallSoonThreadSafe(func() {
					if last[g] != i-1 {
						t.Errorf("goroutine %d: callback %d after %d", g, i, last[g])
					}
					last[g] = i
					total++
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pollUntilDone(t, d, 10*time.Second, func() bool { return total == goroutines*each })
	wg.Wait()
	keep.Cancel()
	if err := d.CallSoonThreadSafe(nil); !errors.Is(err, ad.ErrNilCallback) {
		t.Fatalf("nil: %v", err)
	}
	d.Close()
	if err := d.CallSoonThreadSafe(func() {}); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// Go runs a blocking function on a goroutine; the loop waits for it
// (pending work, no ErrNoWork) and the future completes on the loop.
func TestGo(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		release := make(chan struct{})
		f := ad.Go(d, func() (int, error) {
			<-release // a blocking call
			return 42, nil
		})
		if !d.HasPendingOperations() {
			t.Fatal("a running Go call is not pending work")
		}
		time.AfterFunc(20*time.Millisecond, func() { close(release) })
		v, err := ad.WaitFor(f)
		if err != nil || v != 42 {
			t.Fatalf("WaitFor(Go) = %v, %v", v, err)
		}
		if d.HasPendingOperations() {
			t.Fatal("still pending after the result arrived")
		}

		// Errors pass through; a panic becomes a *PanicError.
		boom := errors.New("boom")
		if _, err := ad.WaitFor(ad.Go(d, func() (string, error) { return "", boom })); !errors.Is(err, boom) {
			t.Fatalf("error: %v", err)
		}
		_, err = ad.WaitFor(ad.Go(d, func() (int, error) { panic("kaboom") }))
		var pe *ad.PanicError
		if !errors.As(err, &pe) || pe.Value != "kaboom" {
			t.Fatalf("panic: %v", err)
		}
		if _, err := ad.Go[int](d, nil).Read(); !errors.Is(err, ad.ErrNilCallback) {
			t.Fatalf("nil fn: %v", err)
		}

		// Inside an async procedure: await the blocking call.
		main := ad.Async(d, func(co *ad.Coro) (int, error) {
			sum := 0
			for i := 1; i <= 3; i++ {
				v, err := ad.Await(co, ad.Go(d, func() (int, error) { return i * 10, nil }))
				if err != nil {
					return 0, err
				}
				sum += v
			}
			return sum, nil
		})
		if v, err := ad.WaitFor(main); err != nil || v != 60 {
			t.Fatalf("Await(Go) in Async = %v, %v", v, err)
		}
	})
}

// Cancelling a Go future stops the loop waiting at once; the late result
// is dropped. Close fails outstanding calls with ErrClosed, and GoContext
// tells the function, so nothing is left running.
func TestGoCancelAndClose(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		finished := make(chan struct{})
		f := ad.Go(d, func() (int, error) {
			defer close(finished)
			<-release
			return 1, nil
		})
		if !f.Cancel() || !errors.Is(f.Err(), ad.ErrCancelled) {
			t.Fatalf("Cancel: %v", f.Err())
		}
		if d.HasPendingOperations() {
			t.Fatal("a cancelled Go call is still pending work")
		}
		close(release)
		<-finished
		if err := d.Drain(time.Second); err != nil { // the dropped result
			t.Fatal(err)
		}
		if !errors.Is(f.Err(), ad.ErrCancelled) {
			t.Fatalf("after the late result: %v", f.Err())
		}

		// GoContext: cancelling the future cancels the context.
		ctxErr := make(chan error, 1)
		g := ad.GoContext(d, context.Background(), func(ctx context.Context) (int, error) {
			<-ctx.Done()
			ctxErr <- ctx.Err()
			return 0, ctx.Err()
		})
		g.Cancel()
		if err := <-ctxErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("GoContext after Cancel: ctx says %v", err)
		}

		// Close: outstanding calls fail with ErrClosed and their contexts
		// end, so their goroutines exit.
		h := ad.GoContext(d, context.Background(), func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		})
		stuck := make(chan struct{})
		defer close(stuck)
		k := ad.Go(d, func() (int, error) { <-stuck; return 0, nil })
		d.Close()
		if !errors.Is(h.Err(), ad.ErrClosed) || !errors.Is(k.Err(), ad.ErrClosed) {
			t.Fatalf("at Close: %v, %v", h.Err(), k.Err())
		}
		if _, err := ad.Go(d, func() (int, error) { return 0, nil }).Read(); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("Go on a closed dispatcher: %v", err)
		}
	})
}

// CompleteFrom and FailFrom finish futures from other goroutines through
// the loop; NewExternalFuture keeps the loop waiting for them.
func TestCompleteFrom(t *testing.T) {
	d := newD(t)
	const n = 20
	futs := make([]*ad.Future[int], n)
	for i := range futs {
		futs[i] = ad.NewExternalFuture[int](d, "worker")
	}
	boom := errors.New("boom")
	for i, f := range futs {
		go func() {
			if i == 0 {
				f.FailFrom(boom)
				return
			}
			if err := f.CompleteFrom(i); err != nil {
				t.Error(err)
			}
		}()
	}
	if _, err := ad.WaitFor(futs[0]); !errors.Is(err, boom) {
		t.Fatalf("FailFrom: %v", err)
	}
	vals, err := ad.WaitFor(ad.All(futs[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if v != i+1 {
			t.Fatalf("value %d = %d", i+1, v)
		}
	}
	if d.HasPendingOperations() {
		t.Fatal("external futures still pending work once finished")
	}

	// A future cancelled meanwhile drops the late value without a panic.
	f := ad.NewExternalFuture[int](d, "late")
	f.Cancel()
	done := make(chan error, 1)
	go func() { done <- f.CompleteFrom(1) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := d.Drain(time.Second); err != nil {
		t.Fatal(err)
	}
	if !f.Cancelled() {
		t.Fatal("the late value replaced the cancellation")
	}

	d.Close()
	if err := ad.NewFuture[int](d, "").CompleteFrom(1); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("CompleteFrom after Close: %v", err)
	}
	if err := ad.NewFuture[int](d, "").FailFrom(boom); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("FailFrom after Close: %v", err)
	}
	if _, err := ad.NewExternalFuture[int](d, "").Read(); !errors.Is(err, ad.ErrClosed) {
		t.Fatalf("NewExternalFuture after Close: %v", err)
	}
}

// Ordinary goroutines wait for futures of a loop that another goroutine
// runs: values, errors, their context's end, and the dispatcher's Close.
func TestFutureWait(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		// Made before the loop starts, handed over by the go statement.
		sleep := d.SleepAsync(20 * time.Millisecond)
		value := ad.Async(d, func(co *ad.Coro) (string, error) {
			if _, err := ad.Await(co, sleep); err != nil {
				return "", err
			}
			return "done", nil
		})
		failing := ad.Async(d, func(co *ad.Coro) (int, error) {
			if _, err := ad.Await(co, sleep); err != nil {
				return 0, err
			}
			return 0, boom
		})
		never := ad.NewFuture[int](d, "never")
		keep := d.SleepAsync(time.Minute) // keeps RunForever going until Close

		loopDone := make(chan error, 1)
		go func() { loopDone <- d.RunForever() }()

		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				if v, err := value.Wait(context.Background()); err != nil || v != "done" {
					t.Errorf("Wait = %q, %v", v, err)
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := failing.Wait(context.Background()); !errors.Is(err, boom) {
					t.Errorf("Wait on a failing future: %v", err)
				}
			}()
		}
		wg.Wait()
		// Already finished: still answered through the loop.
		if v, err := value.Wait(context.Background()); err != nil || v != "done" {
			t.Fatalf("Wait on a finished future = %q, %v", v, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := never.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with a deadline: %v", err)
		}

		closed := make(chan error, 1)
		go func() {
			_, err := never.Wait(context.Background())
			closed <- err
		}()
		// Close on the loop's goroutine, as the threading rule wants.
		time.Sleep(10 * time.Millisecond) // let the waiter register (either order is correct)
		if err := d.CallSoonThreadSafe(func() { keep.Cancel(); d.Close() }); err != nil {
			t.Fatal(err)
		}
		if err := <-loopDone; err != nil {
			t.Fatalf("RunForever: %v", err)
		}
		if err := <-closed; !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("Wait across Close: %v", err)
		}
		if _, err := value.Wait(context.Background()); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	})
}

// Wake-ups from CallSoonThreadSafe are never lost: goroutines that each
// post, wait for their callback to run, and post again keep a loop that
// blocks in Poll moving. (The poller used to clear its woken flag before
// draining the eventfd; a Wake in between was eaten by the drain, and
// every later Wake skipped its write, so the loop slept through them.)
func TestCallSoonThreadSafePingPong(t *testing.T) {
	d := newD(t)
	const goroutines, rounds = 16, 1000
	keep := d.SleepAsync(time.Minute)
	total := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pong := make(chan struct{}, 1)
			for i := 0; i < rounds; i++ {
				if d.CallSoonThreadSafe(func() { total++; pong <- struct{}{} }) != nil {
					return
				}
				select {
				case <-pong:
				case <-stop:
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)
	start := time.Now()
	for total < goroutines*rounds {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%d of %d round trips in 20s: wake-ups are being lost", total, goroutines*rounds)
		}
		if err := d.Poll(200 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	keep.Cancel()
}
