package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

var styles = []struct {
	name      string
	callbacks bool
}{{"async", false}, {"callbacks", true}}

// Small messages come back as sent, and a large one too: 4 MiB written
// while it is being echoed, which fills the socket buffers both ways and
// makes the server wait for writability (back-pressure) many times.
func TestEcho(t *testing.T) {
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			r := start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
				return ServeEcho(d, ln, EchoConfig{Callbacks: st.callbacks, BufferSize: 1000})
			})
			c := r.dial(t)
			for _, msg := range []string{"hello\n", "x", "a somewhat longer line, longer than sixteen bytes\n"} {
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				if got := readFull(t, c, len(msg)); got != msg {
					t.Fatalf("echo of %q: %q", msg, got)
				}
			}
			big := make([]byte, 4<<20)
			for i := range big {
				big[i] = byte(i * 7)
			}
			werr := make(chan error, 1)
			go func() { _, err := c.Write(big); werr <- err }()
			got := make([]byte, len(big))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, big) {
				t.Fatal("4 MiB echo differs")
			}
			c.Close()
			// The server sees the end of the stream and forgets the
			// connection.
			r.waitConns(0)
		})
	}
}

// A silent connection is dropped after the idle timeout; one that keeps
// talking is not.
func TestEchoIdleTimeout(t *testing.T) {
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			const idle = 100 * time.Millisecond
			r := start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
				return ServeEcho(d, ln, EchoConfig{Callbacks: st.callbacks, IdleTimeout: idle})
			})
			silent, busy := r.dial(t), r.dial(t)
			t0 := time.Now()
			closed := make(chan time.Duration, 1)
			go func() { io.ReadAll(silent); closed <- time.Since(t0) }()
			for {
				// Pacing the busy client, not synchronisation.
				time.Sleep(idle / 5)
				if _, err := busy.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				if got := readFull(t, busy, 4); got != "ping" {
					t.Fatalf("busy connection got %q", got)
				}
				select {
				case el := <-closed:
					if el < idle {
						t.Fatalf("silent connection dropped after %v, before the idle timeout %v", el, idle)
					}
					if n := r.conns(); n != 1 {
						t.Fatalf("%d connections left, want the busy one", n)
					}
					return
				default:
				}
				if time.Since(t0) > limit {
					t.Fatal("the silent connection was never dropped")
				}
			}
		})
	}
}

// Shutdown drops live connections and Done finishes.
func TestEchoShutdown(t *testing.T) {
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			r := start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
				return ServeEcho(d, ln, EchoConfig{Callbacks: st.callbacks})
			})
			cs := []net.Conn{r.dial(t), r.dial(t), r.dial(t)}
			r.waitConns(3)
			r.stop()
			for _, c := range cs {
				waitEOF(t, c)
			}
		})
	}
}

// Steady state allocates nothing: the server's connection procedure uses
// the Coro forms of WaitReadable, RecvInto and Send (one reused operation
// each) and a pooled buffer; the client here does the same.
func TestEchoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	d, _, fd := loopSetup(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
		return ServeEcho(d, ln, EchoConfig{IdleTimeout: time.Minute})
	})
	msg := []byte("0123456789abcdef")
	per := mallocsPerRound(roundTrips(t, d, fd, msg, make([]byte, 64), func(got []byte) bool { return len(got) >= len(msg) }))
	t.Logf("%.3f allocations per echoed message, client and server together", per)
	if per > 0.05 {
		t.Fatalf("%.3f allocations per echoed message; want none in steady state", per)
	}
}

// A client that keeps its socket full does not keep the loop to itself:
// another client's echo still comes back promptly.
func TestEchoFairness(t *testing.T) {
	for _, st := range styles {
		t.Run(st.name, func(t *testing.T) {
			r := start(t, func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error) {
				return ServeEcho(d, ln, EchoConfig{Callbacks: st.callbacks})
			})
			flooder, ping := r.dial(t), r.dial(t)
			stop := flood(flooder, make([]byte, 64<<10))
			defer stop()
			// Let the flood build up (pacing, not synchronisation).
			time.Sleep(50 * time.Millisecond)
			t0 := time.Now()
			for range 5 {
				ping.Write([]byte("ping"))
				if got := readFull(t, ping, 4); got != "ping" {
					t.Fatal(got)
				}
			}
			if el := time.Since(t0); el > 2*time.Second {
				t.Fatalf("5 pings took %v during the flood", el)
			}
		})
	}
}
