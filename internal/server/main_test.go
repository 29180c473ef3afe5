package server

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// limit bounds every blocking step of a test: far above what any needs, so
// only a hang trips it.
const limit = 10 * time.Second

// running is a server whose dispatcher runs on a goroutine of its own, for
// tests that drive it with plain net.Conn clients.
type running struct {
	t    *testing.T
	d    *ad.Dispatcher
	srv  *Server
	addr string
	done chan error
}

// start serves on 127.0.0.1:0 and runs the loop until stop (registered as
// a cleanup, and callable earlier).
func start(t *testing.T, serve func(d *ad.Dispatcher, ln ad.AsyncFD) (*Server, error)) *running {
	t.Helper()
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := d.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	srv, err := serve(d, ln)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	r := &running{t: t, d: d, srv: srv, addr: srv.Addr(), done: make(chan error, 1)}
	go func() { r.done <- d.RunForever() }()
	t.Cleanup(r.stop)
	return r
}

// do runs fn on the loop and waits for it.
func (r *running) do(fn func()) {
	r.t.Helper()
	ch := make(chan struct{})
	if err := r.d.CallSoonThreadSafe(func() { fn(); close(ch) }); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(limit):
		r.t.Fatal("the loop did not run a callback")
	}
}

// stop shuts the server down, waits until every connection is gone, and
// closes the dispatcher.
func (r *running) stop() {
	if r.done == nil {
		return
	}
	err := r.d.CallSoonThreadSafe(func() {
		r.srv.Shutdown()
		r.srv.Done().AddCallback(func() { r.d.Close() })
	})
	if err == nil {
		select {
		case err = <-r.done:
		case <-time.After(limit):
			r.t.Fatal("the server did not stop")
		}
	}
	if err != nil {
		r.t.Errorf("RunForever: %v", err)
	}
	r.done = nil
}

func (r *running) conns() (n int) {
	r.do(func() { n = r.srv.Conns() })
	return n
}

// waitConns waits until the server has n live connections. There is no
// event for this, so it asks the loop again and again (each question is a
// round trip through the loop, not a sleep).
func (r *running) waitConns(n int) {
	r.t.Helper()
	deadline := time.Now().Add(limit)
	for r.conns() != n {
		if time.Now().After(deadline) {
			r.t.Fatalf("the server has %d connections, want %d", r.conns(), n)
		}
		runtime.Gosched()
	}
}

// dial connects to the server; the connection is closed at the end of
// the (sub)test t.
func (r *running) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", r.addr, limit)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(limit))
	t.Cleanup(func() { c.Close() })
	return c
}

// waitEOF reads until the server closes the connection; it returns what
// was read.
func waitEOF(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("waiting for the server to close: %v", err)
	}
	return string(b)
}

func readFull(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return string(b)
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 64<<10) }

// flood writes chunk to c again and again and reads and discards what
// comes back, each on a goroutine of its own, until stop: it closes c and
// waits for both.
func flood(c net.Conn, chunk []byte) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
	return func() { close(done); c.Close(); wg.Wait() }
}
