package asyncdispatch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Cancellation: a plain future, a sleep (its timer leaves the heap), an
// async procedure (its Await returns ErrCancelled; the awaited future is
// cancelled with it).
func TestCancel(t *testing.T) {
	d := newD(t)
	f := ad.NewFuture[int](d, "plain")
	if !f.Cancel() || !f.Cancelled() || !errors.Is(f.Err(), ad.ErrCancelled) || !errors.Is(f.Err(), context.Canceled) {
		t.Fatal("plain cancel", f.Err())
	}
	if f.Cancel() {
		t.Fatal("cancelled twice")
	}
	s := d.SleepAsync(time.Hour)
	s.Cancel()
	if d.HasPendingOperations() {
		// the callbacks are queued? none registered, so nothing pending
		t.Fatal("cancelled sleep still pending")
	}
	var inner *ad.Future[ad.Void]
	cleaned := false
	p := ad.Async(d, func(co *ad.Coro) (int, error) {
		defer func() { cleaned = true }()
		inner = d.SleepAsync(time.Hour)
		_, err := ad.Await(co, inner)
		return 0, err
	})
	d.CallSoon(func() { p.Cancel() })
	_, err := ad.WaitFor(p)
	if !errors.Is(err, ad.ErrCancelled) || !cleaned || !inner.Cancelled() {
		t.Fatalf("proc cancel: %v cleaned=%v inner=%v", err, cleaned, inner)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending after cancelling the procedure")
	}
	// A procedure may catch the cancellation and return a value.
	q := ad.Async(d, func(co *ad.Coro) (string, error) {
		if _, err := ad.Await(co, d.SleepAsync(time.Hour)); errors.Is(err, ad.ErrCancelled) {
			return "cleaned up", nil
		}
		return "", errors.New("not cancelled")
	})
	q.Cancel()
	if v, err := ad.WaitFor(q); v != "cleaned up" || err != nil {
		t.Fatal(v, err)
	}
	// Cancelling a procedure that awaits a shared future it cannot cancel
	// (already finished futures are not cancellable) still resumes it.
	done := ad.Async(d, func(co *ad.Coro) (int, error) { return 1, nil })
	if done.Cancel() {
		t.Fatal("cancelled a finished future")
	}
}

// Timeout cancels the loser: the inner operation is cancelled and the
// result fails with ErrTimeout (matching context.DeadlineExceeded).
func TestTimeoutCancelsLoser(t *testing.T) {
	d := newD(t)
	inner := d.SleepAsync(time.Hour)
	_, err := ad.WaitFor(ad.Timeout(inner, 10*time.Millisecond))
	if !errors.Is(err, ad.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !inner.Cancelled() {
		t.Fatalf("%v inner=%v", err, inner)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending after Timeout")
	}
	fast := ad.Async(d, func(co *ad.Coro) (int, error) {
		ad.Await(co, d.SleepAsync(time.Millisecond))
		return 9, nil
	})
	if v, err := ad.WaitFor(ad.Timeout(fast, time.Hour)); v != 9 || err != nil {
		t.Fatal(v, err)
	}
	if d.HasPendingOperations() {
		t.Fatal("timer lingers after the operation won")
	}
}

// The context bridge, both ways.
func TestContextBridge(t *testing.T) {
	d := newD(t)
	ctx, cancel := context.WithCancel(context.Background())
	f := ad.FromContext(d, ctx)
	go cancel()
	if _, err := ad.WaitFor(f); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	op := d.SleepAsync(time.Hour)
	ad.CancelWith(ctx2, op)
	if _, err := ad.WaitFor(op); !errors.Is(err, ad.ErrCancelled) {
		t.Fatal(err)
	}
	if d.HasPendingOperations() {
		t.Fatal("pending after context cancellation")
	}
	// Cancelling the FromContext future stops watching.
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	g := ad.FromContext(d, ctx3)
	g.Cancel()
	if d.HasPendingOperations() {
		t.Fatal("still watching a context after Cancel")
	}
	// An operation that finishes first releases its binding.
	ctx4, cancel4 := context.WithCancel(context.Background())
	defer cancel4()
	quick := d.SleepAsync(time.Millisecond)
	ad.CancelWith(ctx4, quick)
	if _, err := ad.WaitFor(quick); err != nil {
		t.Fatal(err)
	}
	d.Drain(time.Second)
	if d.HasPendingOperations() {
		t.Fatal("binding kept the loop busy")
	}
}

// Tracking: pending futures with creators and ages; switchable at run time.
func TestFuturesInProgress(t *testing.T) {
	d := newD(t)
	if len(d.FuturesInProgress()) != 0 {
		t.Fatal("tracking off but futures listed")
	}
	d.SetTracking(true)
	stuck := ad.NewFuture[int](d, "stuckProc")
	p := ad.Async(d, func(co *ad.Coro) (int, error) { return ad.Await(co, stuck) })
	done := ad.NewFuture[int](d, "doneProc")
	done.Complete(1)
	infos := d.FuturesInProgress()
	if len(infos) != 2 || infos[0].Proc != "stuckProc" || infos[0].Age < 0 || infos[0].Stack == "" {
		t.Fatalf("%+v", infos)
	}
	stuck.Complete(1)
	ad.WaitFor(p)
	if n := len(d.FuturesInProgress()); n != 0 {
		t.Fatalf("%d still listed", n)
	}
	d.SetTracking(false)
}

// Regression: a Cancel that arrives in the same round as the completion of
// the future the procedure awaits (the future wins, so it cannot be
// cancelled) must not be lost: the procedure gets the result, and its next
// Await returns ErrCancelled. Found by the HTTP server's idle-timeout test
// under load: an expired connection whose data arrived in the same poll
// was never dropped.
func TestCancelRacingCompletionNotLost(t *testing.T) {
	d := newD(t)
	first := ad.NewFuture[int](d, "first")
	var got []string
	p := ad.Async(d, func(co *ad.Coro) (int, error) {
		v, err := ad.Await(co, first)
		got = append(got, itoa(v))
		if err != nil {
			got = append(got, "first:"+err.Error())
		}
		// Without the fix this sleep was never cancelled: bound it so the
		// test fails instead of hanging.
		_, err = ad.Await(co, ad.Timeout(d.SleepAsync(time.Hour), 5*time.Second))
		return v, err
	})
	// Complete the awaited future, then cancel the procedure before its
	// resumption has run.
	first.Complete(7)
	p.Cancel()
	_, err := ad.WaitFor(p)
	if !errors.Is(err, ad.ErrCancelled) || len(got) != 1 || got[0] != "7" {
		t.Fatalf("err %v, procedure saw %v", err, got)
	}
	if d.HasPendingOperations() {
		t.Fatal("the cancelled procedure's sleep is still pending")
	}
}
