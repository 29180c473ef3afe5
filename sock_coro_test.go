package asyncdispatch_test

import (
	"bytes"
	"errors"
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
