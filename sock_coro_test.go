package asyncdispatch_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// socketPair makes a connected, non-blocking unix stream pair registered
// with d.
func socketPair(t testing.TB, d *ad.Dispatcher) (a, b ad.AsyncFD) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := d.Register(ad.AsyncFD(fd)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			d.Unregister(ad.AsyncFD(fd))
			unix.Close(fd)
		}
	})
	return ad.AsyncFD(fds[0]), ad.AsyncFD(fds[1])
}

// echoPair runs an echo procedure on a and returns after n round trips of
// msg made by a client procedure on b.
func echoRounds(t testing.TB, d *ad.Dispatcher, a, b ad.AsyncFD, n int, msg []byte) {
	t.Helper()
	srv := ad.Async(d, func(co *ad.Coro) (int, error) {
		buf := make([]byte, 4096)
		for {
			k, err := co.RecvInto(a, buf, ad.SafeDisconn)
			if err != nil || k == 0 {
				return 0, err
			}
			if err := co.Send(a, buf[:k], ad.SafeDisconn); err != nil {
				return 0, err
			}
		}
	})
	cli := ad.Async(d, func(co *ad.Coro) (int, error) {
		buf := make([]byte, len(msg))
		for i := 0; i < n; i++ {
			if err := co.Send(b, msg, 0); err != nil {
				return i, err
			}
			got := 0
			for got < len(msg) {
				k, err := co.RecvInto(b, buf[got:], 0)
				if err != nil {
					return i, err
				}
				if k == 0 {
					return i, errors.New("early EOF")
				}
				got += k
			}
			if !bytes.Equal(buf, msg) {
				return i, errors.New("echo mismatch")
			}
		}
		unix.Shutdown(int(b), unix.SHUT_WR)
		return n, nil
	})
	if v, err := ad.WaitFor(cli); v != n || err != nil {
		t.Fatalf("client: %d %v", v, err)
	}
	if _, err := ad.WaitFor(srv); err != nil {
		t.Fatalf("server: %v", err)
	}
}

// The echo path written with co.RecvInto / co.Send allocates nothing per
// message in steady state.
func TestCoroIOEchoAllocatesNothing(t *testing.T) {
	if socketRace {
		t.Skip("allocation counts are meaningless under -race")
	}
	d := newD(t)
	msg := bytes.Repeat([]byte("x"), 64)
	a, b := socketPair(t, d)
	echoRounds(t, d, a, b, 100, msg) // warm up: coroutines, queues, tables
	a2, b2 := socketPair(t, d)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const n = 10000
	echoRounds(t, d, a2, b2, n, msg)
	runtime.ReadMemStats(&m1)
	per := float64(m1.Mallocs-m0.Mallocs) / n
	t.Logf("%.3f allocations per echoed message", per)
	if per > 0.05 {
		t.Fatalf("%.3f allocations per message, want 0", per)
	}
}

// co.RecvInto honours cancellation and the closing of the socket like
// Dispatcher.RecvInto.
func TestCoroIOCancelAndClose(t *testing.T) {
	d := newD(t)
	a, _ := socketPair(t, d)
	p := ad.Async(d, func(co *ad.Coro) (int, error) {
		return co.RecvInto(a, make([]byte, 8), 0)
	})
	d.CallSoon(func() { p.Cancel() })
	if _, err := ad.WaitFor(p); !errors.Is(err, ad.ErrCancelled) {
		t.Fatal(err)
	}
	if d.HasPendingOperations() {
		t.Fatal("cancelled receive left interest behind")
	}
	q := ad.Async(d, func(co *ad.Coro) (int, error) {
		return co.RecvInto(a, nil, 0)
	})
	if !errors.Is(q.Err(), ad.ErrNilBuffer) {
		t.Fatal(q.Err())
	}
	r := ad.Async(d, func(co *ad.Coro) (int, error) {
		return co.RecvInto(a, make([]byte, 8), 0)
	})
	d.AddTimer(time.Millisecond, true, func(ad.AsyncFD) bool { d.Unregister(a); return true })
	if _, err := ad.WaitFor(r); !errors.Is(err, ad.ErrNotRegistered) {
		t.Fatal(err)
	}
}

// BenchmarkEchoRoundTrip: one 64-byte message echoed over a unix socket
// pair between two async procedures on one dispatcher, per op.
func BenchmarkEchoRoundTrip(b *testing.B) {
	d := newD(b)
	x, y := socketPair(b, d)
	b.ReportAllocs()
	b.ResetTimer()
	echoRounds(b, d, x, y, b.N, bytes.Repeat([]byte("x"), 64))
}

// WaitReadable waits for data without reading it; WaitWritable for room.
func TestCoroWaitReadable(t *testing.T) {
	d := newD(t)
	a, b := socketPair(t, d)
	var order []string
	p := ad.Async(d, func(co *ad.Coro) (string, error) {
		if err := co.WaitWritable(a); err != nil {
			return "", err
		}
		order = append(order, "writable")
		if err := co.WaitReadable(a); err != nil {
			return "", err
		}
		order = append(order, "readable")
		buf := make([]byte, 16)
		n, err := co.RecvInto(a, buf, 0)
		return string(buf[:n]), err
	})
	d.Poll(0)
	if len(order) != 1 || p.Finished() {
		t.Fatalf("order %v finished %v", order, p.Finished())
	}
	ad.Async(d, func(co *ad.Coro) (int, error) { return 0, co.Send(b, []byte("hi"), 0) })
	if v, err := ad.WaitFor(p); v != "hi" || err != nil {
		t.Fatal(v, err)
	}
	q := ad.Async(d, func(co *ad.Coro) (int, error) { return 0, co.WaitReadable(a) })
	d.CallSoon(func() { q.Cancel() })
	if _, err := ad.WaitFor(q); !errors.Is(err, ad.ErrCancelled) {
		t.Fatal(err)
	}
	if d.HasPendingOperations() {
		t.Fatal("cancelled wait left interest behind")
	}
	r := ad.Async(d, func(co *ad.Coro) (int, error) { return 0, co.WaitReadable(ad.AsyncFD(1 << 20)) })
	if !errors.Is(r.Err(), ad.ErrNotRegistered) {
		t.Fatal(r.Err())
	}
}

// A procedure whose socket always has data does not starve the loop: after
// its I/O budget it yields, so a due timer fires while it is still reading.
// The budget is charged where the I/O happens, so a procedure that awaits
// its receives through a wrapper (Timeout) yields as well.
func TestBusyConnectionYields(t *testing.T) {
	for _, c := range []struct {
		name string
		recv func(co *ad.Coro, d *ad.Dispatcher, fd ad.AsyncFD, buf []byte) (int, error)
	}{
		{"co.RecvInto", func(co *ad.Coro, d *ad.Dispatcher, fd ad.AsyncFD, buf []byte) (int, error) {
			return co.RecvInto(fd, buf, 0)
		}},
		{"through Timeout", func(co *ad.Coro, d *ad.Dispatcher, fd ad.AsyncFD, buf []byte) (int, error) {
			return ad.Await(co, ad.Timeout(d.RecvInto(fd, buf, 0), time.Hour))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newD(t)
			a, b := socketPair(t, d)
			const total = 100 << 10
			data := bytes.Repeat([]byte("y"), total)
			for sent := 0; sent < total; {
				n, err := unix.Write(int(b), data[sent:])
				if err != nil {
					t.Fatal(err)
				}
				sent += n
			}
			read := 0
			reader := ad.Async(d, func(co *ad.Coro) (int, error) {
				buf := make([]byte, 64)
				for read < total {
					n, err := c.recv(co, d, a, buf)
					if err != nil {
						return read, err
					}
					read += n
				}
				return read, nil
			})
			firedAt := -1
			d.SleepAsync(0).AddCallback(func() { firedAt = read })
			if n, err := ad.WaitFor(reader); n != total || err != nil {
				t.Fatal(n, err)
			}
			d.Drain(time.Second)
			if firedAt < 0 || firedAt >= total {
				t.Fatalf("the timer fired after %d of %d bytes: the reader starved the loop", firedAt, total)
			}
			t.Logf("timer fired after %d of %d bytes", firedAt, total)
		})
	}
}

// A Coro kept beyond its procedure is refused by co.RecvInto, co.Send and
// co.WaitReadable before anything starts: the peer's data stays in the
// socket for the procedure that does read it.
func TestCoroIOStaleCoro(t *testing.T) {
	d := newD(t)
	a, b := socketPair(t, d)
	var kept *ad.Coro
	ad.WaitFor(ad.Async(d, func(co *ad.Coro) (int, error) { kept = co; return 0, nil }))
	if _, err := unix.Write(int(b), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	var errs []error
	d.CallSoon(func() {
		_, err := kept.RecvInto(a, buf, 0)
		errs = append(errs, err, kept.Send(a, []byte("x"), 0), kept.WaitReadable(a))
	})
	d.Poll(0)
	for i, err := range errs {
		if !errors.Is(err, ad.ErrNotAsync) {
			t.Fatalf("call %d with a stale Coro: %v, want ErrNotAsync", i, err)
		}
	}
	if d.HasPendingOperations() {
		t.Fatal("a refused call left an operation pending")
	}
	got := ad.Async(d, func(co *ad.Coro) (string, error) {
		n, err := co.RecvInto(a, buf, 0)
		return string(buf[:n]), err
	})
	if s, err := ad.WaitFor(got); s != "hello" || err != nil {
		t.Fatalf("the data after the refused calls: %q %v", s, err)
	}
}

// A coroutine's operation cancelled while its wait list is being run (by
// an AddRead/AddWrite callback ahead of it that returns false) and then
// reused on another socket never does I/O through the entry it left
// behind: A's next readiness must neither receive from A nor send to A on
// behalf of the operation on C, nor report C ready.
func TestCancelledCoroOpNeverDoesIO(t *testing.T) {
	// pollUntil polls d until cond holds.
	pollUntil := func(t *testing.T, d *ad.Dispatcher, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			if err := d.Poll(100 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
	}
	// canceller returns a callback that cancels *p on its first call
	// (staying on the list) and is done on its second.
	canceller := func(p **ad.Future[string], calls *int) ad.Callback {
		return func(ad.AsyncFD) bool {
			*calls++
			if *calls == 1 {
				(*p).Cancel()
				return false
			}
			return true
		}
	}
	mustWrite := func(t *testing.T, fd ad.AsyncFD, s string) {
		t.Helper()
		if n, err := unix.Write(int(fd), []byte(s)); n != len(s) || err != nil {
			t.Fatal(n, err)
		}
	}
	// quiet reports whether fd has nothing to read.
	quiet := func(t *testing.T, fd ad.AsyncFD) string {
		t.Helper()
		buf := make([]byte, 256)
		n, err := unix.Read(int(fd), buf)
		if err == unix.EAGAIN {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}

	t.Run("receive", func(t *testing.T) {
		d := newD(t)
		a, aPeer := connPair(t, d)
		c, cPeer := connPair(t, d)
		var p *ad.Future[string]
		calls := 0
		if err := d.AddRead(a, canceller(&p, &calls)); err != nil {
			t.Fatal(err)
		}
		onC := false
		p = ad.Async(d, func(co *ad.Coro) (string, error) {
			buf := make([]byte, 64)
			if _, err := co.RecvInto(a, buf, 0); !errors.Is(err, ad.ErrCancelled) {
				return "", fmt.Errorf("receive on A: %v, want ErrCancelled", err)
			}
			onC = true
			n, err := co.RecvInto(c, buf, 0)
			return string(buf[:n]), err
		})
		mustWrite(t, aPeer, "sent to A")
		pollUntil(t, d, "the cancellation", func() bool { return onC })
		pollUntil(t, d, "A's callback to finish", func() bool { return calls >= 2 })
		d.Poll(0)
		if p.Finished() {
			v, err := p.Read()
			t.Fatalf("receive on C finished before C's peer sent anything: %q, %v", v, err)
		}
		mustWrite(t, cPeer, "sent to C")
		if v := wait(t, p); v != "sent to C" {
			t.Fatalf("receive on C got %q", v)
		}
		if v := string(wait(t, d.Recv(a, 64, 0))); v != "sent to A" {
			t.Fatalf("A's data after the cancelled receive: %q", v)
		}
	})

	t.Run("send", func(t *testing.T) {
		d := newD(t)
		a, aPeer := connPair(t, d)
		c, cPeer := connPair(t, d)
		// Fill C so that the send on C has to wait.
		if err := unix.SetsockoptInt(int(c), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte("f"), 4096)
		filled := 0
		for {
			n, err := unix.Write(int(c), chunk)
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			filled += n
		}
		var p *ad.Future[string]
		calls := 0
		if err := d.AddWrite(a, canceller(&p, &calls)); err != nil {
			t.Fatal(err)
		}
		onC := false
		p = ad.Async(d, func(co *ad.Coro) (string, error) {
			if err := co.Send(a, []byte("meant for A"), 0); !errors.Is(err, ad.ErrCancelled) {
				return "", fmt.Errorf("send on A: %v, want ErrCancelled", err)
			}
			onC = true
			return "sent", co.Send(c, []byte("meant for C"), 0)
		})
		pollUntil(t, d, "the cancellation", func() bool { return onC })
		pollUntil(t, d, "A's callback to finish", func() bool { return calls >= 2 })
		d.Poll(0)
		if got := quiet(t, aPeer); got != "" {
			t.Fatalf("A's peer received %q, sent on C's behalf", got)
		}
		if p.Finished() {
			t.Fatalf("send on C finished while C was full: %v", p.Err())
		}
		// Drain C's peer: the message meant for C arrives there, whole.
		var got []byte
		buf := make([]byte, 64<<10)
		for !bytes.HasSuffix(got, []byte("meant for C")) {
			d.Poll(0)
			n, err := unix.Read(int(cPeer), buf)
			if err == unix.EAGAIN {
				continue
			}
			if err != nil || n == 0 {
				t.Fatalf("C's peer: %d %v after %d bytes", n, err, len(got))
			}
			got = append(got, buf[:n]...)
		}
		if len(got) != filled+len("meant for C") {
			t.Fatalf("C's peer got %d bytes, want %d", len(got), filled+len("meant for C"))
		}
		wait(t, p)
	})

	t.Run("wait readable", func(t *testing.T) {
		d := newD(t)
		a, aPeer := connPair(t, d)
		c, cPeer := connPair(t, d)
		var p *ad.Future[string]
		calls := 0
		if err := d.AddRead(a, canceller(&p, &calls)); err != nil {
			t.Fatal(err)
		}
		onC := false
		p = ad.Async(d, func(co *ad.Coro) (string, error) {
			if err := co.WaitReadable(a); !errors.Is(err, ad.ErrCancelled) {
				return "", fmt.Errorf("wait on A: %v, want ErrCancelled", err)
			}
			onC = true
			return "C readable", co.WaitReadable(c)
		})
		mustWrite(t, aPeer, "sent to A")
		pollUntil(t, d, "the cancellation", func() bool { return onC })
		pollUntil(t, d, "A's callback to finish", func() bool { return calls >= 2 })
		d.Poll(0)
		if p.Finished() {
			t.Fatalf("WaitReadable(C) returned while C had nothing to read: %v", p.Err())
		}
		mustWrite(t, cPeer, "sent to C")
		wait(t, p)
	})
}

// Failed co.RecvInto and co.Send calls, each error read by the procedure,
// leave nothing behind: the coroutine's reused operation does not collect
// a record per failure (a pooled coroutine lives as long as its
// dispatcher), so memory stays flat however many fail.
func TestFailedCoroIOKeepsMemoryFlat(t *testing.T) {
	d := newD(t)
	a, b := socketPair(t, d)
	unix.Shutdown(int(b), unix.SHUT_RDWR) // a's sends now fail with EPIPE
	unregistered := ad.AsyncFD(1 << 16)
	failMany := func(n int) {
		t.Helper()
		p := ad.Async(d, func(co *ad.Coro) (int, error) {
			buf := make([]byte, 16)
			for i := 0; i < n; i++ {
				if _, err := co.RecvInto(unregistered, buf, 0); !errors.Is(err, ad.ErrNotRegistered) {
					return i, fmt.Errorf("receive %d: %v, want ErrNotRegistered", i, err)
				}
				if err := co.Send(a, buf, 0); !errors.Is(err, unix.EPIPE) {
					return i, fmt.Errorf("send %d: %v, want EPIPE", i, err)
				}
			}
			return n, nil
		})
		if _, err := ad.WaitFor(p); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	failMany(1000) // warm up: the coroutine, its operation, the pool
	before := heap()
	const n = 200_000
	failMany(n)
	after := heap()
	growth := int64(after) - int64(before)
	t.Logf("heap %d -> %d bytes after %d failed receives and %d failed sends (%.1f bytes per failure)",
		before, after, n, n, float64(growth)/(2*n))
	// Generous: a record per failure costs well over 100 bytes (40 MB
	// here); 4 MiB is noise.
	if growth > 4<<20 {
		t.Fatalf("heap grew by %d bytes after %d failed operations", growth, 2*n)
	}
}
