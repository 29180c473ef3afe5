package asyncdispatch_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Deadlines of the net.Conn view, as net's: expiry, revival, a deadline in
// the past, a change while a Read waits, and never a byte lost.

// isTimeout checks err is what net returns for a passed deadline.
func isTimeout(t *testing.T, what string, err error) {
	t.Helper()
	var ne net.Error
	var oe *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) {
		t.Fatalf("%s: %v (%T), want a *net.OpError matching os.ErrDeadlineExceeded with Timeout() true", what, err, err)
	}
}

func TestConnReadDeadlineExpiresAndRevives(t *testing.T) {
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		c, s := viewPair(t, d, network, addr)
		defer closeAll(t, d, c, s)
		const dl = 30 * time.Millisecond
		type result struct {
			start   time.Time
			elapsed time.Duration
			err     error
		}
		r := wait(t, ad.Async(d, func(co *ad.Coro) (result, error) {
			start := time.Now()
			s.SetReadDeadline(start.Add(dl))
			_, err := s.Read(make([]byte, 8))
			return result{start, time.Since(start), err}, nil
		}))
		isTimeout(t, "Read past its deadline", r.err)
		if r.elapsed < dl {
			t.Fatalf("deadline of %v fired after %v", dl, r.elapsed)
		}
		if d.HasPendingOperations() {
			t.Fatal("an expired deadline left something pending")
		}
		got := wait(t, ad.Async(d, func(co *ad.Coro) (string, error) {
			// Still expired: fails at once, with data there or not, and
			// so it stays when the same deadline is set again.
			if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", err
			}
			s.SetReadDeadline(r.start.Add(dl))
			if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", fmt.Errorf("the passed deadline set again: %v", err)
			}
			if _, err := c.Write([]byte("one")); err != nil {
				return "", err
			}
			// A later deadline revives the connection...
			s.SetReadDeadline(time.Now().Add(time.Hour))
			buf := make([]byte, 8)
			n, err := s.Read(buf)
			if err != nil {
				return "", err
			}
			// ...and so does the zero time, after another expiry.
			s.SetReadDeadline(time.Now().Add(-time.Second))
			if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", err
			}
			s.SetReadDeadline(time.Time{})
			c.Write([]byte("two"))
			m, err := s.Read(buf[n:])
			return string(buf[:n+m]), err
		}))
		if got != "onetwo" {
			t.Fatalf("after revival: %q", got)
		}
	})
}

// A deadline in the past fails the next Read at once even with data
// waiting, which the Read after a revival then gets: nothing is lost.
func TestConnDeadlineInThePastLosesNothing(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c, s)
		got := wait(t, ad.Async(d, func(co *ad.Coro) (string, error) {
			c.Write([]byte("data"))
			ad.Await(co, d.SleepAsync(5*time.Millisecond))
			s.SetDeadline(time.Now().Add(-time.Millisecond))
			if _, err := s.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", err
			}
			if _, err := s.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", err
			}
			s.SetDeadline(time.Time{})
			buf := make([]byte, 4)
			_, err := io.ReadFull(s, buf)
			return string(buf), err
		}))
		if got != "data" {
			t.Fatal(got)
		}
	})
}

// A deadline changed while a Read waits applies to that Read: brought
// forward it ends it, pushed back it lets it wait for its data.
func TestConnDeadlineChangeWhilePending(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c, s)
		rd := ad.Async(d, func(co *ad.Coro) (int, error) {
			s.SetReadDeadline(time.Now().Add(time.Hour))
			return s.Read(make([]byte, 8))
		})
		ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			ad.Await(co, d.SleepAsync(time.Millisecond))
			return ad.Void{}, s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		})
		isTimeout(t, "Read whose deadline was brought forward", waitErr(t, rd))

		rd = ad.Async(d, func(co *ad.Coro) (int, error) {
			s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			return s.Read(make([]byte, 8))
		})
		ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			s.SetReadDeadline(time.Now().Add(time.Hour))
			ad.Await(co, d.SleepAsync(60*time.Millisecond))
			_, err := c.Write([]byte("late"))
			return ad.Void{}, err
		})
		if n := wait(t, rd); n != 4 {
			t.Fatalf("Read whose deadline was pushed back: %d bytes", n)
		}
		// Brought into the past while waiting: ends it at once.
		rd = ad.Async(d, func(co *ad.Coro) (int, error) { return s.Read(make([]byte, 8)) })
		wait(t, ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			return ad.Void{}, s.SetReadDeadline(time.Unix(1, 0))
		}))
		isTimeout(t, "Read whose deadline was set in the past", waitErr(t, rd))
	})
}

// The deadline fires in the round in which data arrives: a loop round
// fires its timers before it handles I/O, so the Read is stopped before it
// reads, and the data stays in the socket for the next Read.
func TestConnDeadlineSameRoundAsDataLosesNothing(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c, s)
		deadline := time.Now().Add(5 * time.Millisecond)
		rd := ad.Async(d, func(co *ad.Coro) (int, error) {
			s.SetReadDeadline(deadline)
			return s.Read(make([]byte, 8))
		})
		if rd.Finished() {
			t.Fatal(rd.Err())
		}
		// Nobody runs the loop now: the data arrives and the deadline
		// passes before its next round, which sees both at once. (The
		// sleep makes that condition; it synchronises nothing.)
		if _, err := unix.Write(int(c.FD()), []byte("kept")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(deadline) + 5*time.Millisecond)
		isTimeout(t, "Read whose deadline and data came in one round", waitErr(t, rd))
		got := wait(t, ad.Async(d, func(co *ad.Coro) (string, error) {
			s.SetReadDeadline(time.Time{})
			buf := make([]byte, 4)
			_, err := io.ReadFull(s, buf)
			return string(buf), err
		}))
		if got != "kept" {
			t.Fatalf("after the deadline: %q, want the data that came with it", got)
		}
	})
}

// A Read that completed is delivered even if its deadline passes before
// its procedure resumes (here another procedure, resumed first in the
// same round, sets a deadline in the past): the bytes were taken from the
// socket, so they are returned, and the next Read sees the deadline.
func TestConnDeadlineAfterCompletionDelivers(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c, s)
		rd := ad.Async(d, func(co *ad.Coro) (string, error) {
			buf := make([]byte, 8)
			n, err := s.Read(buf)
			if err != nil {
				return "", err
			}
			if _, err := s.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				return "", errors.New("second Read did not see the deadline")
			}
			return string(buf[:n]), nil
		})
		if _, err := unix.Write(int(c.FD()), []byte("taken")); err != nil {
			t.Fatal(err)
		}
		// Its timer fires at the start of the next round, before the
		// I/O that completes the Read: it is resumed first.
		ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			ad.Await(co, d.SleepAsync(0))
			return ad.Void{}, s.SetReadDeadline(time.Now().Add(-time.Second))
		})
		if got := wait(t, rd); got != "taken" {
			t.Fatalf("Read completed in the deadline's round: %q", got)
		}
	})
}

// A Write stopped by its deadline (the peer does not read) says how many
// bytes it wrote, and that is exactly what the peer gets.
func TestConnWriteDeadlineReportsWritten(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, s)
		big := make([]byte, 64<<20)
		type result struct {
			n   int
			err error
		}
		w := wait(t, ad.Async(d, func(co *ad.Coro) (result, error) {
			c.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
			n, err := c.Write(big)
			return result{n, err}, nil
		}))
		isTimeout(t, "Write to a peer that does not read", w.err)
		if w.n <= 0 || w.n >= len(big) {
			t.Fatalf("Write stopped by its deadline wrote %d of %d", w.n, len(big))
		}
		closeAll(t, d, c)
		got := wait(t, ad.Async(d, func(co *ad.Coro) (int64, error) { return io.Copy(io.Discard, s) }))
		if got != int64(w.n) {
			t.Fatalf("Write reported %d bytes, the peer got %d", w.n, got)
		}
	})
}

// Close stops the deadline timers: nothing stays pending on the loop.
func TestConnCloseStopsDeadlines(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		wait(t, ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			c.SetDeadline(time.Now().Add(time.Hour))
			s.SetDeadline(time.Now().Add(time.Hour))
			c.Close()
			s.Close()
			return ad.Void{}, nil
		}))
		if d.HasPendingOperations() {
			t.Fatal("closed views left their deadline timers pending")
		}
	})
}
