package asyncdispatch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
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

// kernelReady waits (poll(2), not a sleep) until fd is ready for events
// at the kernel, so the next Poll of the dispatcher sees it.
func kernelReady(t *testing.T, fd ad.AsyncFD, events int16) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		n, err := unix.Poll(pfd, int(waitLimit/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != 1 {
			t.Fatalf("poll(%d): %d %v", fd, n, err)
		}
		return
	}
}

// timeoutRacing arranges the round Timeout used to lose a result in: f
// is pending, its timeout (0) is due at the next Poll, and arrive makes
// f's result arrive at the kernel before that Poll, so the round fires
// the timer first and then completes f. It returns Timeout's outcome.
func timeoutRacing[T any](t *testing.T, f *ad.Future[T], arrive func()) (T, error) {
	t.Helper()
	if f.Finished() {
		t.Fatalf("%s finished at once (%v): the race needs it pending", f.Proc(), f)
	}
	r := ad.Timeout(f, 0)
	arrive()
	return ad.WaitFor(r)
}

// Timeout never drops a result that completed in the round its timer
// fired in (asyncio's wait_for had the same race): a receive's bytes, a
// send that went out, an accepted or dialled connection, the value of an
// async procedure whose awaited operation finished in that round. The
// round fires due timers before it handles I/O, so the timer's callback
// used to fail Timeout's future with ErrTimeout and its Cancel came too
// late; the value was thrown away after it had consumed its resource.
func TestTimeoutNeverDropsSameRoundResult(t *testing.T) {
	t.Run("Recv", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		v, err := timeoutRacing(t, d.Recv(a, 64, 0), func() { rawWrite(t, peer, "data"); kernelReady(t, a, unix.POLLIN) })
		if string(v) != "data" || err != nil {
			t.Fatalf("%q, %v: the bytes were taken from the stream and dropped", v, err)
		}
	})
	t.Run("RecvString", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		v, err := timeoutRacing(t, d.RecvString(a, 64, 0), func() { rawWrite(t, peer, "data"); kernelReady(t, a, unix.POLLIN) })
		if v != "data" || err != nil {
			t.Fatalf("%q, %v", v, err)
		}
	})
	t.Run("RecvInto", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		v, err := timeoutRacing(t, d.RecvInto(a, make([]byte, 64), 0), func() { rawWrite(t, peer, "data"); kernelReady(t, a, unix.POLLIN) })
		if v != 4 || err != nil {
			t.Fatalf("%d, %v", v, err)
		}
	})
	t.Run("RecvFromInto", func(t *testing.T) {
		d := newD(t)
		a, port := listen(t, d, "udp4", "127.0.0.1:0")
		b, _ := listen(t, d, "udp4", "127.0.0.1:0")
		v, err := timeoutRacing(t, d.RecvFromInto(a, make([]byte, 64), 0), func() {
			if err := unix.Sendto(int(b), []byte("data"), 0, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			kernelReady(t, a, unix.POLLIN)
		})
		if v.N != 4 || err != nil {
			t.Fatalf("%+v, %v", v, err)
		}
	})
	t.Run("Send", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		if err := unix.SetsockoptInt(int(a), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := unix.Write(int(a), make([]byte, 4096)); err == unix.EAGAIN {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		_, err := timeoutRacing(t, d.Send(a, []byte("tail"), 0), func() {
			buf := make([]byte, 64<<10)
			for {
				if _, err := unix.Read(int(peer), buf); err == unix.EAGAIN {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
			kernelReady(t, a, unix.POLLOUT)
		})
		if err != nil {
			t.Fatalf("the send went out, and Timeout said: %v", err)
		}
	})
	t.Run("SendTo", func(t *testing.T) {
		d := newD(t)
		a, _ := listen(t, d, "udp4", "127.0.0.1:0")
		b, port := listen(t, d, "udp4", "127.0.0.1:0")
		// The first sendto says EAGAIN, so the send waits for
		// writability; the real one is made by the next Poll.
		faults.Install(t).Add(&faults.Rule{Op: faults.Send, FDs: []int{int(a)}, Err: unix.EAGAIN, Limit: 1})
		_, err := timeoutRacing(t, d.SendTo(a, []byte("data"), mustAddrPort("127.0.0.1", port), 0), func() {})
		if err != nil {
			t.Fatalf("the datagram went out, and Timeout said: %v", err)
		}
		kernelReady(t, b, unix.POLLIN)
		expectRaw(t, b, "data")
	})
	t.Run("Accept", func(t *testing.T) {
		d := newD(t)
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		n := d.RegisteredDescriptors()
		fd, err := timeoutRacing(t, d.Accept(ln, 0, false), func() {
			c := rawConnect(t, port)
			t.Cleanup(func() { unix.Close(c) })
			kernelReady(t, ln, unix.POLLIN)
		})
		if err != nil || d.RegisteredDescriptors() != n+1 {
			t.Fatalf("%v, %v: the accepted connection stays registered, owned by nobody (%d descriptors)", fd, err, d.RegisteredDescriptors())
		}
		d.CloseSocket(fd)
	})
	t.Run("AcceptAddr", func(t *testing.T) {
		d := newD(t)
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		v, err := timeoutRacing(t, d.AcceptAddr(ln, 0, false), func() {
			c := rawConnect(t, port)
			t.Cleanup(func() { unix.Close(c) })
			kernelReady(t, ln, unix.POLLIN)
		})
		if err != nil || v.Address != "127.0.0.1" {
			t.Fatalf("%+v, %v", v, err)
		}
		d.CloseSocket(v.Client)
	})
	t.Run("Connect", func(t *testing.T) {
		d := newD(t)
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		s := mustSocket(t, d, unix.AF_INET)
		// The connect says EINPROGRESS although it was made, so the
		// connect waits for writability.
		faults.Install(t).Add(&faults.Rule{Op: faults.Connect, FDs: []int{int(s)}, Err: unix.EINPROGRESS, Real: true, Limit: 1})
		_, err := timeoutRacing(t, d.Connect(s, "127.0.0.1", port, unix.AF_INET), func() { kernelReady(t, s, unix.POLLOUT) })
		if err != nil {
			t.Fatalf("connected, and Timeout said: %v", err)
		}
		d.CloseSocket(ln)
	})
	t.Run("Dial", func(t *testing.T) {
		d := newD(t)
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		n := d.RegisteredDescriptors()
		in := faults.Install(t)
		in.Add(&faults.Rule{Op: faults.Connect, Err: unix.EINPROGRESS, Real: true, Limit: 1})
		fd, err := timeoutRacing(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP), func() { kernelReady(t, ln, unix.POLLIN) })
		if err != nil || d.RegisteredDescriptors() != n+1 {
			t.Fatalf("%v, %v: the dialled connection stays registered, owned by nobody (%d descriptors)", fd, err, d.RegisteredDescriptors())
		}
		d.CloseSocket(fd)
	})
	t.Run("WaitReadable", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		p := ad.Async(d, func(co *ad.Coro) (string, error) { return "readable", co.WaitReadable(a) })
		v, err := timeoutRacing(t, p, func() { rawWrite(t, peer, "data"); kernelReady(t, a, unix.POLLIN) })
		if v != "readable" || err != nil {
			t.Fatalf("%q, %v", v, err)
		}
	})
	t.Run("co.RecvInto", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		p := ad.Async(d, func(co *ad.Coro) (string, error) {
			buf := make([]byte, 64)
			n, err := co.RecvInto(a, buf, 0)
			return string(buf[:n]), err
		})
		v, err := timeoutRacing(t, p, func() { rawWrite(t, peer, "data"); kernelReady(t, a, unix.POLLIN) })
		if v != "data" || err != nil {
			t.Fatalf("%q, %v: the procedure's bytes were dropped", v, err)
		}
	})
	t.Run("FutureStream.Read", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		fs := ad.NewFutureStream[string](d, "stream")
		// The value is written by an fd callback: in the I/O step of the
		// round, after the timers.
		d.AddRead(a, func(ad.AsyncFD) bool { fs.Write("value"); return true })
		v, err := timeoutRacing(t, fs.Read(), func() { rawWrite(t, peer, "x"); kernelReady(t, a, unix.POLLIN) })
		if v.Value != "value" || err != nil {
			t.Fatalf("%+v, %v: the value was taken from the stream and dropped", v, err)
		}
	})
	t.Run("pending at the timeout", func(t *testing.T) {
		// Nothing arrives: the timeout wins, the operation is cancelled,
		// and nothing is left pending.
		d := newD(t)
		a, _ := connPair(t, d)
		f := d.Recv(a, 64, 0)
		if _, err := ad.WaitFor(ad.Timeout(f, time.Millisecond)); !errors.Is(err, ad.ErrTimeout) || !f.Cancelled() {
			t.Fatalf("%v, inner %v", err, f)
		}
		if d.HasPendingOperations() {
			t.Fatal("pending after the timeout")
		}
	})
}

// Cancelling Timeout's future in the round its operation completed in
// (the Cancel runs in the callback step, after the I/O) delivers the
// result instead of dropping it; the same for All, whose inputs all
// completed.
func TestCancelAfterSameRoundResultDelivers(t *testing.T) {
	t.Run("Timeout", func(t *testing.T) {
		d := newD(t)
		a, peer := connPair(t, d)
		r := ad.Timeout(d.Recv(a, 64, 0), time.Hour)
		d.SleepAsync(0).AddCallback(func() {
			if r.Cancel() {
				t.Error("Cancel reported a cancellation, and the result was delivered")
			}
		})
		rawWrite(t, peer, "data")
		kernelReady(t, a, unix.POLLIN)
		if v, err := ad.WaitFor(r); string(v) != "data" || err != nil {
			t.Fatalf("%q, %v: the bytes were dropped", v, err)
		}
		if d.HasPendingOperations() {
			t.Fatal("the timer lingers")
		}
	})
	t.Run("All", func(t *testing.T) {
		d := newD(t)
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		r := ad.All(d.Accept(ln, 0, false))
		d.SleepAsync(0).AddCallback(func() {
			if r.Cancel() {
				t.Error("Cancel reported a cancellation, and the result was delivered")
			}
		})
		c := rawConnect(t, port)
		defer unix.Close(c)
		kernelReady(t, ln, unix.POLLIN)
		v, err := ad.WaitFor(r)
		if err != nil || len(v) != 1 {
			t.Fatalf("%v, %v: the accepted connection was dropped", v, err)
		}
		d.CloseSocket(v[0])
	})
	t.Run("All with one pending", func(t *testing.T) {
		d := newD(t)
		a, _ := connPair(t, d)
		done := ad.NewFuture[int](d, "done")
		done.Complete(1)
		pending := d.RecvInto(a, make([]byte, 8), 0)
		r := ad.All(done, pending)
		if !r.Cancel() || !errors.Is(r.Err(), ad.ErrCancelled) || !pending.Cancelled() {
			t.Fatalf("%v, pending %v", r, pending)
		}
	})
}

// A procedure cancelled in the round its awaited socket operation
// completed in gets the result (the operation cannot be cancelled any
// more), and the cancellation at its next Await.
func TestCoroCancelAfterSameRoundResultDelivers(t *testing.T) {
	d := newD(t)
	a, peer := connPair(t, d)
	var got string
	p := ad.Async(d, func(co *ad.Coro) (string, error) {
		buf := make([]byte, 64)
		n, err := co.RecvInto(a, buf, 0)
		if err != nil {
			return "", err
		}
		got = string(buf[:n])
		_, err = ad.Await(co, d.SleepAsync(time.Hour))
		return got, err
	})
	d.SleepAsync(0).AddCallback(func() { p.Cancel() })
	rawWrite(t, peer, "data")
	kernelReady(t, a, unix.POLLIN)
	if _, err := ad.WaitFor(p); !errors.Is(err, ad.ErrCancelled) || got != "data" {
		t.Fatalf("%v, received %q", err, got)
	}
}

// CancelWith never drops a result: whichever of the context's end and the
// data comes first, the receive either completes with the data or is
// cancelled with the data still in the socket.
func TestCancelWithNeverDropsResult(t *testing.T) {
	d := newD(t)
	a, peer := connPair(t, d)
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		f := d.Recv(a, 64, 0)
		ad.CancelWith(ctx, f)
		cancel()
		rawWrite(t, peer, "data")
		v, err := ad.WaitFor(f)
		switch {
		case err == nil && string(v) == "data":
		case errors.Is(err, ad.ErrCancelled):
			if got := wait(t, d.Recv(a, 64, 0)); string(got) != "data" {
				t.Fatalf("round %d: cancelled, and then the socket held %q", i, got)
			}
		default:
			t.Fatalf("round %d: %q, %v", i, v, err)
		}
	}
}

// Close right after an accept completed, before anybody took the
// connection: the connection is the dispatcher's, and Close closes it.
func TestCloseAfterSameRoundAcceptReleases(t *testing.T) {
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		f := d.Accept(ln, 0, false)
		d.SleepAsync(0).AddCallback(func() { d.Close() })
		c := rawConnect(t, port)
		defer unix.Close(c)
		kernelReady(t, ln, unix.POLLIN)
		d.Poll(time.Second)
		fd, err := f.Read()
		if err != nil {
			t.Fatalf("the accept did not complete in the round: %v", err)
		}
		if isOpen(fd) {
			t.Fatalf("Close left the accepted connection %d open", fd)
		}
	})
}
