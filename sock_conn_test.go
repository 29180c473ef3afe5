package asyncdispatch_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// The net.Conn view inside async procedures: Go's io packages on loop
// sockets, on 127.0.0.1 and ::1.

// loopbacks are the listen addresses the view tests run on.
var loopbacks = []struct{ network, addr string }{
	{"tcp4", "127.0.0.1:0"},
	{"tcp6", "[::1]:0"},
}

// eachLoopback runs body on a fresh dispatcher (leak-checked) once per
// loopback address.
func eachLoopback(t *testing.T, body func(t *testing.T, d *ad.Dispatcher, network, addr string)) {
	for _, lb := range loopbacks {
		t.Run(lb.network, func(t *testing.T) {
			withD(t, func(d *ad.Dispatcher) { body(t, d, lb.network, lb.addr) })
		})
	}
}

// listenView makes a listener view on network and address.
func listenView(t testing.TB, d *ad.Dispatcher, network, addr string) *ad.Listener {
	t.Helper()
	fd, err := d.Listen(network, addr)
	if err != nil {
		t.Fatalf("Listen(%s, %s): %v", network, addr, err)
	}
	ln, err := d.Listener(fd)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// viewPair returns the two ends of a connection as views: the dialled end
// (DialConn) and the accepted end (Listener.AcceptConn), both made in
// async procedures.
func viewPair(t testing.TB, d *ad.Dispatcher, network, addr string) (client, server *ad.Conn) {
	t.Helper()
	ln := listenView(t, d, network, addr)
	acc := ad.Async(d, func(co *ad.Coro) (*ad.Conn, error) { return ln.AcceptConn() })
	cli := ad.Async(d, func(co *ad.Coro) (*ad.Conn, error) {
		return ad.DialConn(co, network, ln.Addr().String())
	})
	client, server = wait(t, cli), wait(t, acc)
	wait(t, ad.Async(d, func(co *ad.Coro) (ad.Void, error) { return ad.Void{}, ln.Close() }))
	return client, server
}

// closeAll closes views from an async procedure.
func closeAll(t testing.TB, d *ad.Dispatcher, cs ...io.Closer) {
	t.Helper()
	wait(t, ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
		for _, c := range cs {
			c.Close()
		}
		return ad.Void{}, nil
	}))
}

// The views report real addresses of net's types, both ends agreeing.
func TestConnAddresses(t *testing.T) {
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		c, s := viewPair(t, d, network, addr)
		defer closeAll(t, d, c, s)
		for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr()} {
			ta, ok := a.(*net.TCPAddr)
			if !ok || a.Network() != "tcp" || ta.Port == 0 || !ta.IP.IsLoopback() {
				t.Fatalf("address %#v (%T)", a, a)
			}
		}
		if c.LocalAddr().String() != s.RemoteAddr().String() || c.RemoteAddr().String() != s.LocalAddr().String() {
			t.Fatalf("ends disagree: client %v->%v, server %v->%v", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
		}
		if want := strings.Contains(addr, "::1"); strings.Contains(c.LocalAddr().String(), "[::1]") != want {
			t.Fatalf("family of %v", c.LocalAddr())
		}
	})
}

// A line protocol with bufio.Scanner and bufio.Writer on one side and
// bufio.Reader on the other, both async procedures on one loop.
func TestConnBufioLines(t *testing.T) {
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		c, s := viewPair(t, d, network, addr)
		srv := ad.Async(d, func(co *ad.Coro) (int, error) {
			defer s.Close()
			sc := bufio.NewScanner(s)
			w := bufio.NewWriter(s)
			n := 0
			for sc.Scan() {
				fmt.Fprintf(w, "%d %s\n", n, strings.ToUpper(sc.Text()))
				if err := w.Flush(); err != nil {
					return n, err
				}
				n++
			}
			return n, sc.Err()
		})
		cli := ad.Async(d, func(co *ad.Coro) (string, error) {
			defer c.Close()
			r := bufio.NewReader(c)
			var out strings.Builder
			for i := 0; i < 100; i++ {
				if _, err := fmt.Fprintf(c, "line %d\n", i); err != nil {
					return "", err
				}
				l, err := r.ReadString('\n')
				if err != nil {
					return "", err
				}
				out.WriteString(l)
			}
			return out.String(), nil
		})
		got := wait(t, cli)
		if n := wait(t, srv); n != 100 {
			t.Fatalf("server saw %d lines", n)
		}
		if !strings.HasPrefix(got, "0 LINE 0\n1 LINE 1\n") || !strings.HasSuffix(got, "99 LINE 99\n") {
			t.Fatalf("got %q...", got[:40])
		}
	})
}

// io.Copy both ways at once on one connection (a reader and a writer
// procedure on the client, an echo with io.Copy on the server), then
// io.ReadFull, end of file and a read of nothing.
func TestConnCopyReadFullEOF(t *testing.T) {
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		c, s := viewPair(t, d, network, addr)
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: many socket buffers
		echo := ad.Async(d, func(co *ad.Coro) (int64, error) {
			n, err := io.Copy(s, s)
			if err != nil {
				return n, err
			}
			return n, s.CloseWrite()
		})
		send := ad.Async(d, func(co *ad.Coro) (int64, error) {
			n, err := io.Copy(c, bytes.NewReader(data))
			if err != nil {
				return n, err
			}
			return n, c.CloseWrite()
		})
		recv := ad.Async(d, func(co *ad.Coro) ([]byte, error) {
			var b bytes.Buffer
			_, err := io.Copy(&b, c)
			return b.Bytes(), err
		})
		if n := wait(t, send); n != int64(len(data)) {
			t.Fatalf("sent %d", n)
		}
		if n := wait(t, echo); n != int64(len(data)) {
			t.Fatalf("echoed %d", n)
		}
		if got := wait(t, recv); !bytes.Equal(got, data) {
			t.Fatalf("received %d bytes, not what was sent", len(got))
		}
		closeAll(t, d, c, s)

		c, s = viewPair(t, d, network, addr)
		defer closeAll(t, d, c, s)
		r := ad.Async(d, func(co *ad.Coro) (string, error) {
			if n, err := s.Read(nil); n != 0 || err != nil {
				return "", fmt.Errorf("Read(nil) = %d, %v", n, err)
			}
			buf := make([]byte, 10)
			if _, err := io.ReadFull(s, buf); err != nil {
				return "", err
			}
			rest, err := io.ReadAll(s)
			if err != nil {
				return "", err
			}
			n, err := s.Read(make([]byte, 10))
			if n != 0 || err != io.EOF {
				return "", fmt.Errorf("at the end: %d, %v; want 0, io.EOF", n, err)
			}
			return string(buf) + "|" + string(rest), nil
		})
		w := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			for _, p := range []string{"he", "llo", " wor", "ld"} {
				if _, err := c.Write([]byte(p)); err != nil {
					return ad.Void{}, err
				}
				ad.Await(co, d.SleepAsync(time.Millisecond))
			}
			return ad.Void{}, c.CloseWrite()
		})
		wait(t, w)
		if got := wait(t, r); got != "hello worl|d" {
			t.Fatalf("ReadFull: %q", got)
		}
	})
}

// encoding/json streaming: an Encoder and a Decoder on each side.
func TestConnJSONStream(t *testing.T) {
	type msg struct {
		N    int
		Text string
	}
	eachLoopback(t, func(t *testing.T, d *ad.Dispatcher, network, addr string) {
		c, s := viewPair(t, d, network, addr)
		defer closeAll(t, d, c, s)
		srv := ad.Async(d, func(co *ad.Coro) (int, error) {
			dec, enc := json.NewDecoder(s), json.NewEncoder(s)
			n := 0
			for {
				var m msg
				if err := dec.Decode(&m); err == io.EOF {
					return n, s.CloseWrite()
				} else if err != nil {
					return n, err
				}
				m.N *= 2
				if err := enc.Encode(m); err != nil {
					return n, err
				}
				n++
			}
		})
		cli := ad.Async(d, func(co *ad.Coro) (int, error) {
			enc, dec := json.NewEncoder(c), json.NewDecoder(c)
			for i := 0; i < 200; i++ {
				if err := enc.Encode(msg{N: i, Text: strings.Repeat("x", i*50)}); err != nil {
					return i, err
				}
				var m msg
				if err := dec.Decode(&m); err != nil {
					return i, err
				}
				if m.N != 2*i || len(m.Text) != i*50 {
					return i, fmt.Errorf("reply %d: %+v", i, m.N)
				}
			}
			c.CloseWrite()
			if _, err := dec.Token(); err != io.EOF {
				return 0, fmt.Errorf("after the last reply: %v", err)
			}
			return 200, nil
		})
		if n := wait(t, cli); n != 200 {
			t.Fatal(n)
		}
		if n := wait(t, srv); n != 200 {
			t.Fatal(n)
		}
	})
}

// Close while a Read is suspended fails that Read with net.ErrClosed;
// every later use fails the same way; a second Close is an error; the
// socket is closed.
func TestConnCloseWhileSuspended(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c)
		rd := ad.Async(d, func(co *ad.Coro) (int, error) { return s.Read(make([]byte, 8)) })
		cl := ad.Async(d, func(co *ad.Coro) (ad.Void, error) {
			ad.Await(co, d.SleepAsync(time.Millisecond))
			return ad.Void{}, s.Close()
		})
		err := waitErr(t, rd)
		wait(t, cl)
		var oe *net.OpError
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("suspended Read after Close: %v", err)
		}
		if isOpen(s.FD()) {
			t.Fatal("Close left the socket open")
		}
		after := wait(t, ad.Async(d, func(co *ad.Coro) ([]error, error) {
			_, rerr := s.Read(make([]byte, 1))
			_, werr := s.Write([]byte("x"))
			return []error{rerr, werr, s.Close(), s.SetDeadline(time.Now())}, nil
		}))
		for i, err := range after {
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("use %d after Close: %v", i, err)
			}
		}
	})
}

// A reset connection is an error for Read (never end of file: the view
// does not use SafeDisconn) and Write (EPIPE or ECONNRESET, no SIGPIPE);
// the loop and another connection on it go on.
func TestConnResetIsAnError(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		c2, s2 := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c, s, c2, s2)
		setLinger0(t, c.FD())
		closeAll(t, d, c) // RST
		res := wait(t, ad.Async(d, func(co *ad.Coro) ([]error, error) {
			_, rerr := s.Read(make([]byte, 8))
			var werr error
			for i := 0; i < 100 && werr == nil; i++ {
				_, werr = s.Write([]byte("after the reset"))
			}
			return []error{rerr, werr}, nil
		}))
		if !errors.Is(res[0], syscall.ECONNRESET) {
			t.Fatalf("Read after the peer's reset: %v, want ECONNRESET", res[0])
		}
		if !errors.Is(res[1], syscall.EPIPE) && !errors.Is(res[1], syscall.ECONNRESET) {
			t.Fatalf("Write after the peer's reset: %v, want EPIPE or ECONNRESET", res[1])
		}
		var oe *net.OpError
		if !errors.As(res[1], &oe) || oe.Op != "write" {
			t.Fatalf("Write error %T is not a write *net.OpError", res[1])
		}
		got := wait(t, ad.Async(d, func(co *ad.Coro) (string, error) {
			if _, err := c2.Write([]byte("still here")); err != nil {
				return "", err
			}
			buf := make([]byte, 10)
			_, err := io.ReadFull(s2, buf)
			return string(buf), err
		}))
		if got != "still here" {
			t.Fatal(got)
		}
	})
}

// Read, Write and Accept called on the loop outside an async procedure (a
// callback) fail at once with an error matching ErrNotAsync: waiting
// there would deadlock the loop. Close and deadlines work from there.
func TestConnFromCallbackIsAnError(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		ln := listenView(t, d, "tcp4", "127.0.0.1:0")
		errs := make(chan error, 3)
		d.CallSoon(func() {
			_, err := s.Read(make([]byte, 1))
			errs <- err
			_, err = s.Write([]byte("x"))
			errs <- err
			_, err = ln.Accept()
			errs <- err
		})
		wait(t, d.SleepAsync(time.Millisecond))
		for i := 0; i < 3; i++ {
			err := <-errs
			var oe *net.OpError
			if !errors.Is(err, ad.ErrNotAsync) || !errors.As(err, &oe) {
				t.Fatalf("call %d from a callback: %v", i, err)
			}
		}
		d.CallSoon(func() {
			s.SetReadDeadline(time.Now().Add(-time.Second))
			ln.Close()
		})
		wait(t, d.SleepAsync(time.Millisecond))
		err := waitErr(t, ad.Async(d, func(co *ad.Coro) (int, error) { return s.Read(make([]byte, 1)) }))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("deadline set from a callback: %v", err)
		}
		if isOpen(ln.FD()) {
			t.Fatal("listener Close from a callback left it open")
		}
		closeAll(t, d, c, s)
	})
}

// A socket closed behind the view's back (CloseSocket of its fd) reads as
// closed, even when its number already belongs to a new socket: the view
// never reads or writes someone else's connection.
func TestConnSocketClosedBehindItsBack(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c)
		old := s.FD()
		d.CloseSocket(old)
		a, b := connPair(t, d) // the lowest free numbers: old is one of them
		defer d.CloseSocket(a)
		defer d.CloseSocket(b)
		if a != old && b != old {
			t.Logf("fd %d was not reused (got %d, %d)", old, a, b)
		}
		wait(t, d.Send(a, []byte("theirs"), 0))
		errs := wait(t, ad.Async(d, func(co *ad.Coro) ([]error, error) {
			_, rerr := s.Read(make([]byte, 16))
			_, werr := s.Write([]byte("mine"))
			return []error{rerr, werr}, nil
		}))
		for i, err := range errs {
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("use %d of a view whose socket was closed: %v", i, err)
			}
		}
		if got := string(wait(t, d.Recv(b, 16, 0))); got != "theirs" {
			t.Fatalf("the socket that got the number received %q", got)
		}
	})
}

// The view's TCP sockets have TCP_NODELAY, as net's; SetNoDelay changes
// it. An empty Write writes nothing and succeeds.
func TestConnNoDelayAndEmptyWrite(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := viewPair(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, c, s)
		nodelay := func(fd ad.AsyncFD) int {
			v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if nodelay(c.FD()) == 0 || nodelay(s.FD()) == 0 {
			t.Fatal("a view's TCP socket without TCP_NODELAY")
		}
		if err := c.SetNoDelay(false); err != nil || nodelay(c.FD()) != 0 {
			t.Fatalf("SetNoDelay(false): %v", err)
		}
		n := wait(t, ad.Async(d, func(co *ad.Coro) (int, error) { return c.Write(nil) }))
		if n != 0 {
			t.Fatal(n)
		}
	})
}
