package asyncdispatch_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// otherLoop runs a new dispatcher on its own goroutine until stop (which
// closes it through its door if nobody has, and waits for the loop).
func otherLoop(t testing.TB) (d *ad.Dispatcher, stop func()) {
	t.Helper()
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	ad.NewExternalFuture[ad.Void](d, "keep") // RunForever waits for posts
	done := make(chan error, 1)
	go func() { done <- d.RunForever() }()
	return d, func() {
		closeThrough(d)
		if err := <-done; err != nil {
			t.Errorf("the other loop: %v", err)
		}
	}
}

func closeThrough(d *ad.Dispatcher) { d.CallSoonThreadSafe(func() { d.Close() }) }

func TestRunOnDeliversOnTheCallersLoop(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		other, stop := otherLoop(t)
		defer stop()
		got, err := ad.WaitFor(ad.Async(d, func(co *ad.Coro) (string, error) {
			v, err := ad.Await(co, ad.RunOn(d, other, func(co *ad.Coro) (int, error) {
				if co.Dispatcher() != other {
					return 0, errors.New("fn ran on the wrong loop")
				}
				if _, err := ad.Await(co, other.SleepAsync(time.Millisecond)); err != nil {
					return 0, err
				}
				return 42, nil
			}))
			if co.Dispatcher() != d {
				return "", errors.New("resumed on the wrong loop")
			}
			return fmt.Sprint(v), err
		}))
		if err != nil || got != "42" {
			t.Fatalf("got %q, %v; want 42", got, err)
		}
		boom := errors.New("boom")
		if _, err := ad.WaitFor(ad.RunOn(d, other, func(co *ad.Coro) (int, error) { return 0, boom })); !errors.Is(err, boom) {
			t.Fatalf("error: %v, want boom", err)
		}
		var pe *ad.PanicError
		if _, err := ad.WaitFor(ad.RunOn(d, other, func(co *ad.Coro) (int, error) { panic("in fn") })); !errors.As(err, &pe) {
			t.Fatalf("panic: %v, want a *PanicError", err)
		}
		if _, err := ad.WaitFor(ad.RunOn[int](d, other, nil)); !errors.Is(err, ad.ErrNilCallback) {
			t.Fatalf("nil fn: %v", err)
		}
		// other == d is Async.
		if v, err := ad.WaitFor(ad.RunOn(d, d, func(co *ad.Coro) (int, error) { return 7, nil })); v != 7 || err != nil {
			t.Fatalf("same loop: %v, %v", v, err)
		}
	})
}

func TestRunOnCancel(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		other, stop := otherLoop(t)
		defer stop()
		sawCancel := make(chan error, 1)
		started := make(chan struct{})
		f := ad.RunOn(d, other, func(co *ad.Coro) (int, error) {
			close(started)
			_, err := ad.Await(co, other.SleepAsync(time.Hour))
			sawCancel <- err
			return 0, err
		})
		<-started
		if !f.Cancel() {
			t.Fatal("Cancel did nothing")
		}
		if _, err := f.Read(); !errors.Is(err, ad.ErrCancelled) {
			t.Fatalf("future after Cancel: %v", err)
		}
		if err := <-sawCancel; !errors.Is(err, ad.ErrCancelled) {
			t.Fatalf("fn's Await after Cancel: %v", err)
		}
		// The late result is dropped; d has nothing pending.
		if err := d.Drain(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if d.HasPendingOperations() {
			t.Fatal("the cancelled call is still pending")
		}
	})
}

func TestRunOnOtherLoopCloses(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		// Closed while fn waits.
		other, stop := otherLoop(t)
		defer stop()
		started := make(chan struct{})
		f := ad.RunOn(d, other, func(co *ad.Coro) (int, error) {
			close(started)
			return ad.Await(co, ad.NewFuture[int](other, "never"))
		})
		<-started
		closeThrough(other)
		if _, err := ad.WaitFor(f); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("other closed while fn waits: %v, want ErrClosed", err)
		}
		// Closed already.
		<-other.Done()
		if _, err := ad.WaitFor(ad.RunOn(d, other, func(co *ad.Coro) (int, error) { return 1, nil })); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("other closed before: %v, want ErrClosed", err)
		}
		// Closed before the call started (the other loop is busy in a
		// callback that closes it while the call is posted): fn never
		// runs, the caller hears ErrClosed.
		other2, stop2 := otherLoop(t)
		defer stop2()
		busy := make(chan struct{})
		other2.CallSoonThreadSafe(func() { <-busy; other2.Close() })
		ran := false
		f = ad.RunOn(d, other2, func(co *ad.Coro) (int, error) { ran = true; return 1, nil })
		close(busy)
		if _, err := ad.WaitFor(f); !errors.Is(err, ad.ErrClosed) || ran {
			t.Fatalf("other closed before the call started: %v (ran %v)", err, ran)
		}
	})
}

func TestRunOnCallerLoopCloses(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		other, stop := otherLoop(t)
		defer stop()
		sawCancel := make(chan error, 1)
		started := make(chan struct{})
		f := ad.RunOn(d, other, func(co *ad.Coro) (int, error) {
			close(started)
			_, err := ad.Await(co, other.SleepAsync(time.Hour))
			sawCancel <- err
			return 0, err
		})
		<-started
		d.Close()
		if _, err := f.Read(); !errors.Is(err, ad.ErrClosed) {
			t.Fatalf("after the caller's Close: %v, want ErrClosed", err)
		}
		if err := <-sawCancel; !errors.Is(err, ad.ErrCancelled) {
			t.Fatalf("fn was not cancelled: %v", err)
		}
	})
}

// Two loops of a group call each other at once, many times (for -race:
// each side's state is touched only by its own loop).
func TestRunOnBetweenGroupLoops(t *testing.T) {
	g := newGroup(t, ad.GroupConfig{Loops: 2})
	const calls = 2000
	results := make(chan error, 2)
	for i := 0; i < 2; i++ {
		me, peer := g.Loop(i), g.Loop(1-i)
		counter := 0 // touched only by fn, on peer's loop
		me.CallSoonThreadSafe(func() {
			f := ad.Async(me, func(co *ad.Coro) (ad.Void, error) {
				for k := 1; k <= calls; k++ {
					v, err := ad.Await(co, ad.RunOn(me, peer, func(co *ad.Coro) (int, error) {
						counter++
						return counter, nil
					}))
					if err != nil || v != k {
						return ad.Void{}, fmt.Errorf("call %d: %v, %v", k, v, err)
					}
				}
				return ad.Void{}, nil
			})
			f.AddCallback(func() { _, err := f.Read(); results <- err })
		})
	}
	for i := 0; i < 2; i++ {
		select {
		case err := <-results:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the calls did not finish")
		}
	}
}

// BenchmarkRunOn: calls from loop 0 to loop 1, their results back to
// loop 0 and awaited there, with inflight calls outstanding at a time;
// ns/op is per call. With one in flight it is a round trip between two
// loops that sleep between calls (two wake-ups of a blocked epoll_wait:
// a plain CallSoonThreadSafe ping-pong costs about as much); with many,
// the posts of a round share one wake-up.
func BenchmarkRunOn(b *testing.B) {
	for _, inflight := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			g, err := ad.NewGroup(ad.GroupConfig{Loops: 2})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			me, peer := g.Loop(0), g.Loop(1)
			fn := func(co *ad.Coro) (int, error) { return 1, nil }
			done := make(chan error, inflight)
			b.ReportAllocs()
			b.ResetTimer()
			me.CallSoonThreadSafe(func() {
				for w := 0; w < inflight; w++ {
					n := b.N / inflight
					if w == 0 {
						n += b.N % inflight
					}
					f := ad.Async(me, func(co *ad.Coro) (ad.Void, error) {
						for i := 0; i < n; i++ {
							if _, err := ad.Await(co, ad.RunOn(me, peer, fn)); err != nil {
								return ad.Void{}, err
							}
						}
						return ad.Void{}, nil
					})
					f.AddCallback(func() { _, err := f.Read(); done <- err })
				}
			})
			for w := 0; w < inflight; w++ {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
