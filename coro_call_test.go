package asyncdispatch_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

var errLeaf = errors.New("leaf failed")

func leafOK(co *ad.Coro) (int, error)   { return 1, nil }
func leafFail(co *ad.Coro) (int, error) { return 0, errLeaf }
func leafSleeps(co *ad.Coro) (int, error) {
	_, err := ad.Await(co, co.Dispatcher().SleepAsync(time.Millisecond))
	return 2, err
}
func middle(co *ad.Coro) (int, error) { return ad.Call(co, leafFail) }

// Call runs the body on the caller's coroutine: no Poll is needed for a
// body that never suspends, and 1,000,000 nested-by-sequence calls make no
// goroutine.
func TestCallSynchronous(t *testing.T) {
	d := newD(t)
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		s := 0
		for i := 0; i < 1_000_000; i++ {
			v, err := ad.Call(co, leafOK)
			if err != nil {
				return 0, err
			}
			s += v
		}
		return s, nil
	})
	if !f.Finished() {
		t.Fatal("a procedure whose calls never suspend did not finish synchronously")
	}
	if v, err := f.Read(); v != 1_000_000 || err != nil {
		t.Fatal(v, err)
	}
}

// A body that suspends suspends its caller, which resumes with the body's
// result.
func TestCallSuspends(t *testing.T) {
	d := newD(t)
	order := []string{}
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		order = append(order, "before")
		v, err := ad.Call(co, leafSleeps)
		order = append(order, "after")
		return v, err
	})
	if f.Finished() {
		t.Fatal("finished before the body's sleep")
	}
	order = append(order, "Async returned")
	v, err := ad.WaitFor(f)
	if v != 2 || err != nil {
		t.Fatal(v, err)
	}
	if got := strings.Join(order, ","); got != "before,Async returned,after" {
		t.Fatal(got)
	}
}

// An error crossing Calls carries every procedure in its trace, innermost
// first, and still matches the original error.
func TestCallTrace(t *testing.T) {
	d := newD(t)
	f := ad.Async(d, func(co *ad.Coro) (int, error) { return ad.Call(co, middle) })
	_, err := ad.WaitFor(f)
	if !errors.Is(err, errLeaf) {
		t.Fatalf("%v does not match errLeaf", err)
	}
	var ae *ad.AsyncError
	if !errors.As(err, &ae) {
		t.Fatalf("%T is not an *AsyncError", err)
	}
	if len(ae.Procs) != 3 || !strings.HasSuffix(ae.Procs[0], "leafFail") || !strings.HasSuffix(ae.Procs[1], "middle") {
		t.Fatalf("trace %q, want leafFail, middle, then the outer procedure", ae.Procs)
	}
	if err.Error() != errLeaf.Error() {
		t.Fatalf("Error() = %q, want the original text", err.Error())
	}
}

// Cancelling the caller cancels what the called body awaits; a panic in
// the body fails the caller's future.
func TestCallCancelAndPanic(t *testing.T) {
	d := newD(t)
	f := ad.Async(d, func(co *ad.Coro) (int, error) {
		return ad.Call(co, func(co *ad.Coro) (int, error) {
			_, err := ad.Await(co, d.SleepAsync(time.Hour))
			return 0, err
		})
	})
	f.Cancel()
	if _, err := ad.WaitFor(f); !errors.Is(err, ad.ErrCancelled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if d.HasPendingOperations() {
		t.Fatal("the body's timer is still pending after the cancellation")
	}
	g := ad.Async(d, func(co *ad.Coro) (int, error) {
		return ad.Call(co, func(co *ad.Coro) (int, error) { panic("boom") })
	})
	var pe *ad.PanicError
	if _, err := g.Read(); !errors.As(err, &pe) || pe.Value != "boom" {
		t.Fatalf("panic in a called body: %v", err)
	}
}
