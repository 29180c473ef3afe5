package asyncdispatch_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// viewEcho echoes n messages over the views a (the client) and b (an echo
// server), both async procedures on d. deadlines says how the sides use
// deadlines: "none", "once" (set at the start, far away) or "each" (a
// new one before every operation, as net/http sets them).
func viewEcho(t testing.TB, d *ad.Dispatcher, a, b *ad.Conn, n int, msg []byte, deadlines string) {
	t.Helper()
	far := time.Now().Add(time.Hour)
	set := func(c *ad.Conn) {
		if deadlines == "each" {
			// A new deadline every time: the timers are re-armed.
			c.SetDeadline(time.Now().Add(time.Hour))
		}
	}
	srv := ad.Async(d, func(co *ad.Coro) (int, error) {
		if deadlines == "once" {
			b.SetDeadline(far)
		}
		buf := make([]byte, 4096)
		for {
			set(b)
			k, err := b.Read(buf)
			if err == io.EOF {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			set(b)
			if _, err := b.Write(buf[:k]); err != nil {
				return 0, err
			}
		}
	})
	cli := ad.Async(d, func(co *ad.Coro) (int, error) {
		if deadlines == "once" {
			a.SetDeadline(far)
		}
		buf := make([]byte, len(msg))
		for i := 0; i < n; i++ {
			set(a)
			if _, err := a.Write(msg); err != nil {
				return i, err
			}
			set(a)
			if _, err := io.ReadFull(a, buf); err != nil {
				return i, err
			}
			if !bytes.Equal(buf, msg) {
				return i, errors.New("echo mismatch")
			}
		}
		return n, a.CloseWrite()
	})
	if v, err := ad.WaitFor(cli); v != n || err != nil {
		t.Fatalf("client: %d %v", v, err)
	}
	if _, err := ad.WaitFor(srv); err != nil {
		t.Fatalf("server: %v", err)
	}
}

// viewSocketPair is socketPair's two ends as views.
func viewSocketPair(t testing.TB, d *ad.Dispatcher) (a, b *ad.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cs [2]*ad.Conn
	for i, fd := range fds {
		if err := d.Register(ad.AsyncFD(fd)); err != nil {
			t.Fatal(err)
		}
		if cs[i], err = d.Conn(ad.AsyncFD(fd)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			if d.Contains(ad.AsyncFD(fd)) {
				d.CloseSocket(ad.AsyncFD(fd))
			}
		}
	})
	return cs[0], cs[1]
}

// Read and Write of the view from an async procedure allocate nothing in
// steady state: without deadlines, with a deadline set once, and with one
// set before every operation (the timer is re-armed in place).
func TestConnEchoAllocatesNothing(t *testing.T) {
	if socketRace {
		t.Skip("allocation counts are meaningless under -race")
	}
	for _, dl := range []string{"none", "once", "each"} {
		t.Run(dl, func(t *testing.T) {
			d := newD(t)
			msg := bytes.Repeat([]byte("x"), 64)
			a, b := viewSocketPair(t, d)
			viewEcho(t, d, a, b, 100, msg, dl) // warm up
			a2, b2 := viewSocketPair(t, d)
			const n = 10000
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			viewEcho(t, d, a2, b2, n, msg, dl)
			runtime.ReadMemStats(&m1)
			// Two procedures and their futures per run: not per message.
			per := float64(m1.Mallocs-m0.Mallocs) / n
			t.Logf("%.4f allocations per echoed message (deadlines %s)", per, dl)
			if per > 0.01 {
				t.Fatalf("%.4f allocations per message, want 0", per)
			}
		})
	}
}

// BenchmarkConnEcho: one 64-byte message echoed through the views of a
// unix socket pair between two async procedures; BenchmarkEchoRoundTrip
// is the same with co.RecvInto and co.Send, so the difference is the cost
// of the view.
func BenchmarkConnEcho(b *testing.B) {
	for _, dl := range []string{"none", "each"} {
		b.Run("deadlines="+dl, func(b *testing.B) {
			d := newD(b)
			x, y := viewSocketPair(b, d)
			b.ReportAllocs()
			b.ResetTimer()
			viewEcho(b, d, x, y, b.N, bytes.Repeat([]byte("x"), 64), dl)
		})
	}
}
