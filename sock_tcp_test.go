package asyncdispatch_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Nim's tasyncawait: a swarm of clients, each sending many lines to one
// server, which reads them back line by line.
func TestManyClientsManyLines(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		const clients, lines = 50, 100
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		readLines := func(co *ad.Coro, fd ad.AsyncFD) (int, error) {
			defer d.CloseSocket(fd)
			var pending []byte
			count, who := 0, -1
			for {
				data, err := ad.Await(co, d.Recv(fd, 4096, ad.DefaultFlags))
				if err != nil {
					return count, err
				}
				if len(data) == 0 {
					if len(pending) != 0 {
						return count, fmt.Errorf("unterminated line %q", pending)
					}
					return count, nil
				}
				pending = append(pending, data...)
				for {
					i := bytes.Index(pending, []byte("\r\n"))
					if i < 0 {
						break
					}
					var n, c int
					if _, err := fmt.Sscanf(string(pending[:i]), "Message %d from client %d", &n, &c); err != nil {
						return count, fmt.Errorf("line %q: %v", pending[:i], err)
					}
					if who < 0 {
						who = c
					}
					if n != count || c != who {
						return count, fmt.Errorf("line %q: want message %d from client %d", pending[:i], count, who)
					}
					count++
					pending = pending[i+2:]
				}
			}
		}
		server := async(d, func(co *ad.Coro) (int, error) {
			var conns []*ad.Future[int]
			for i := 0; i < clients; i++ {
				r, err := ad.Await(co, d.AcceptAddr(ln, ad.DefaultFlags, false))
				if err != nil {
					return 0, err
				}
				if r.Address != "127.0.0.1" {
					return 0, fmt.Errorf("AcceptAddr address %q", r.Address)
				}
				conns = append(conns, async(d, func(co *ad.Coro) (int, error) { return readLines(co, r.Client) }))
			}
			counts, err := ad.Await(co, ad.All(conns...))
			total := 0
			for _, n := range counts {
				total += n
			}
			return total, err
		})
		var cfs []*ad.Future[ad.Void]
		for c := 0; c < clients; c++ {
			cfs = append(cfs, async(d, func(co *ad.Coro) (ad.Void, error) {
				fd, err := ad.Await(co, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
				if err != nil {
					return ad.Void{}, err
				}
				defer d.CloseSocket(fd)
				for i := 0; i < lines; i++ {
					if _, err := ad.Await(co, d.SendString(fd, fmt.Sprintf("Message %d from client %d\r\n", i, c), ad.DefaultFlags)); err != nil {
						return ad.Void{}, err
					}
				}
				return ad.Void{}, nil
			}))
		}
		wait(t, ad.All(cfs...))
		if n := wait(t, server); n != clients*lines {
			t.Fatalf("server read %d lines, want %d", n, clients*lines)
		}
		d.CloseSocket(ln)
		if d.RegisteredDescriptors() != 0 {
			t.Fatalf("%d descriptors still registered", d.RegisteredDescriptors())
		}
	})
}

// A 32 MiB send to a slow reader: the send completes only when every byte
// is through, the bytes arrive intact, and a timer keeps firing on time
// meanwhile (Nim, with its blocking accepted sockets, froze the loop).
func TestHugeSendLoopStaysResponsive(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		if fl, _ := fdFlags(t, s); fl&unix.O_NONBLOCK == 0 {
			t.Fatal("accepted socket is blocking")
		}
		const total = 32 << 20
		data := make([]byte, total)
		for i := range data {
			data[i] = byte(i*131 + i>>16)
		}
		const tick = 10 * time.Millisecond
		var worst time.Duration
		ticks := 0
		last := time.Now()
		tm, err := d.AddTimer(tick, false, func(ad.AsyncFD) bool {
			now := time.Now()
			if late := now.Sub(last) - tick; late > worst {
				worst = late
			}
			last = now
			ticks++
			return false
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		sent := d.Send(s, data, ad.DefaultFlags)
		if sent.Finished() {
			t.Fatal("32 MiB went out at once; the test needs a full socket buffer")
		}
		got := wait(t, async(d, func(co *ad.Coro) (int, error) {
			buf := make([]byte, 64<<10)
			n := 0
			for n < total {
				k, err := ad.Await(co, d.RecvInto(c, buf, ad.DefaultFlags))
				if err != nil {
					return n, err
				}
				if k == 0 {
					return n, errors.New("early EOF")
				}
				if !bytes.Equal(buf[:k], data[n:n+k]) {
					return n, fmt.Errorf("corrupt data at %d", n)
				}
				n += k
				// Slow: a pause after every read.
				if _, err := ad.Await(co, d.SleepAsync(time.Millisecond)); err != nil {
					return n, err
				}
			}
			return n, nil
		}))
		wait(t, sent)
		tm.Stop()
		elapsed := time.Since(start)
		if got != total {
			t.Fatalf("read %d bytes", got)
		}
		t.Logf("32 MiB in %v, %d ticks, worst tick lateness %v", elapsed, ticks, worst)
		if worst > 250*time.Millisecond {
			t.Fatalf("a 10 ms timer was %v late while the send ran: the loop was blocked", worst)
		}
		if min := int(elapsed/tick) / 3; ticks < min {
			t.Fatalf("%d ticks in %v, want at least %d", ticks, elapsed, min)
		}
	})
}

// Peer reset (SO_LINGER 0 makes close send RST): SafeDisconn turns it into
// end of file for receives and success for sends; without it they fail
// with the errno.
func TestPeerReset(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		reset := func() ad.AsyncFD {
			c, s := connPair(t, d)
			setLinger0(t, c)
			d.CloseSocket(c)
			return s
		}
		isReset := func(err error) bool {
			var se *os.SyscallError
			return errors.As(err, &se) && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
		}

		s := reset()
		if got := wait(t, d.Recv(s, 10, ad.SafeDisconn)); len(got) != 0 {
			t.Fatalf("SafeDisconn recv after reset: %q", got)
		}
		if got := wait(t, d.Recv(s, 10, ad.SafeDisconn)); len(got) != 0 {
			t.Fatalf("second recv after reset: %q", got)
		}
		wait(t, d.SendString(s, "into the void", ad.SafeDisconn))
		d.CloseSocket(s)

		s = reset()
		if err := waitErr(t, d.Recv(s, 10, 0)); !errors.Is(err, syscall.ECONNRESET) || !isReset(err) {
			t.Fatalf("recv after reset without SafeDisconn: %v", err)
		}
		if err := waitErr(t, d.SendString(s, "x", 0)); !isReset(err) {
			t.Fatalf("send after reset without SafeDisconn: %v", err)
		}
		d.CloseSocket(s)

		// The first operation after the reset is a send.
		s = reset()
		if err := waitErr(t, d.SendString(s, "x", 0)); !isReset(err) {
			t.Fatalf("send after reset: %v", err)
		}
		d.CloseSocket(s)
		s = reset()
		wait(t, d.SendString(s, "x", ad.SafeDisconn))
		d.CloseSocket(s)

		// The reset arrives while a receive and a large send are pending.
		for _, flags := range []ad.SocketFlag{0, ad.SafeDisconn} {
			c, s := connPair(t, d)
			rf := d.Recv(s, 10, flags)
			sf := d.Send(s, make([]byte, 32<<20), flags)
			if rf.Finished() || sf.Finished() {
				t.Fatal("operations finished before the reset")
			}
			setLinger0(t, c)
			d.CloseSocket(c)
			if flags == ad.SafeDisconn {
				if got := wait(t, rf); len(got) != 0 {
					t.Fatalf("pending SafeDisconn recv: %q", got)
				}
				wait(t, sf)
			} else {
				rerr, serr := waitErr(t, rf), waitErr(t, sf)
				if !isReset(rerr) || !isReset(serr) {
					t.Fatalf("pending ops after reset: recv %v, send %v", rerr, serr)
				}
			}
			d.CloseSocket(s)
		}
	})
}

// Half-close: the client shuts down its sending side; the server reads to
// end of file (empty every time) and can still answer.
func TestHalfClose(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		wait(t, d.SendString(c, "request", ad.DefaultFlags))
		if err := unix.Shutdown(int(c), unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
		server := async(d, func(co *ad.Coro) (string, error) {
			var req []byte
			for {
				b, err := ad.Await(co, d.Recv(s, 3, ad.DefaultFlags))
				if err != nil {
					return "", err
				}
				if len(b) == 0 {
					break
				}
				req = append(req, b...)
			}
			for i := 0; i < 3; i++ {
				if b, err := ad.Await(co, d.Recv(s, 3, ad.DefaultFlags)); err != nil || len(b) != 0 {
					return "", fmt.Errorf("EOF again: %q %v", b, err)
				}
			}
			_, err := ad.Await(co, d.SendString(s, "response to "+string(req), ad.DefaultFlags))
			d.CloseSocket(s)
			return string(req), err
		})
		if req := wait(t, server); req != "request" {
			t.Fatalf("server read %q", req)
		}
		var resp []byte
		for {
			b := wait(t, d.Recv(c, 100, ad.DefaultFlags))
			if len(b) == 0 {
				break
			}
			resp = append(resp, b...)
		}
		if string(resp) != "response to request" {
			t.Fatalf("client read %q", resp)
		}
	})
}

// CloseSocket fails pending receives, sends and accepts with
// ErrClosedSocket at once, closes the descriptor, and leaves nothing
// pending.
func TestCloseSocketWithPendingOps(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		ln, _ := listen(t, d, "tcp4", "127.0.0.1:0")
		rf := d.Recv(s, 10, ad.DefaultFlags)
		rf2 := d.RecvInto(s, make([]byte, 10), ad.DefaultFlags)
		sf := d.Send(c, make([]byte, 64<<20), ad.DefaultFlags)
		sf2 := d.SendString(c, "queued behind", ad.DefaultFlags)
		af := d.AcceptAddr(ln, ad.DefaultFlags, false)
		af2 := d.Accept(ln, ad.DefaultFlags, false)
		if rf.Finished() || rf2.Finished() || sf.Finished() || sf2.Finished() || af.Finished() || af2.Finished() {
			t.Fatal("an operation finished early")
		}
		if n := d.ActiveDescriptors(); n != 3 {
			t.Fatalf("ActiveDescriptors %d, want 3", n)
		}
		for _, fd := range []ad.AsyncFD{s, c, ln} {
			if err := d.CloseSocket(fd); err != nil {
				t.Fatal(err)
			}
		}
		errs := []error{rf.Err(), rf2.Err(), sf.Err(), sf2.Err(), af.Err(), af2.Err()}
		for i, err := range errs {
			if !errors.Is(err, ad.ErrClosedSocket) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("op %d after CloseSocket: %v, want ErrClosedSocket", i, err)
			}
		}
		if d.ActiveDescriptors() != 0 || d.HasPendingOperations() || d.RegisteredDescriptors() != 0 {
			t.Fatalf("after CloseSocket: active %d, pending %v, registered %d",
				d.ActiveDescriptors(), d.HasPendingOperations(), d.RegisteredDescriptors())
		}
		for _, fd := range []ad.AsyncFD{s, c, ln} {
			if err := d.CloseSocket(fd); !errors.Is(err, ad.ErrNotRegistered) {
				t.Fatalf("second CloseSocket: %v", err)
			}
		}

		// Unregister fails them with ErrNotRegistered and leaves the fd
		// open (Nim orphans them).
		c, s = connPair(t, d)
		rf = d.Recv(s, 10, ad.DefaultFlags)
		if err := d.Unregister(s); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(rf.Err(), ad.ErrNotRegistered) || !isOpen(s) {
			t.Fatalf("Unregister: %v, open %v", rf.Err(), isOpen(s))
		}
		unix.Close(int(s))
		d.CloseSocket(c)

		// Dispatcher Close fails what is pending with ErrClosed.
		c, s = connPair(t, d)
		rf = d.Recv(s, 10, ad.DefaultFlags)
		d.Close()
		if !errors.Is(rf.Err(), ad.ErrClosed) || isOpen(s) || isOpen(c) {
			t.Fatalf("Close: %v, open %v %v", rf.Err(), isOpen(s), isOpen(c))
		}
	})
}

// Every pending operation can be cancelled; it leaves its descriptor's
// list and takes nothing from the socket.
func TestCancelSocketOps(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		idle := func(what string) {
			t.Helper()
			if d.ActiveDescriptors() != 0 || d.HasPendingOperations() {
				t.Fatalf("%s: ActiveDescriptors %d, pending %v", what, d.ActiveDescriptors(), d.HasPendingOperations())
			}
		}
		rf := d.Recv(s, 10, ad.DefaultFlags)
		if !rf.Cancel() || !rf.Cancelled() {
			t.Fatal("Recv not cancelled")
		}
		idle("cancelled recv")
		d.SendString(c, "kept", ad.DefaultFlags)
		if got := wait(t, d.RecvString(s, 10, ad.DefaultFlags)); got != "kept" {
			t.Fatalf("after a cancelled recv: %q", got)
		}

		// A cancelled receive in the middle of the queue is skipped.
		r1 := d.RecvString(s, 2, ad.DefaultFlags)
		r2 := d.RecvString(s, 2, ad.DefaultFlags)
		r3 := d.RecvString(s, 2, ad.DefaultFlags)
		r2.Cancel()
		d.SendString(c, "aabb", ad.DefaultFlags)
		if a, b := wait(t, r1), wait(t, r3); a != "aa" || b != "bb" {
			t.Fatalf("around a cancelled recv: %q %q", a, b)
		}
		idle("queue")

		sf := d.Send(c, make([]byte, 64<<20), ad.DefaultFlags)
		if sf.Finished() {
			t.Fatal("64 MiB sent at once")
		}
		sf.Cancel()
		idle("cancelled send")

		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		af := d.Accept(ln, ad.DefaultFlags, false)
		af.Cancel()
		idle("cancelled accept")
		cl := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_TCP))
		acc := wait(t, d.Accept(ln, ad.DefaultFlags, false))
		d.CloseSocket(cl)
		d.CloseSocket(acc)

		u, _ := listen(t, d, "udp4", "127.0.0.1:0")
		uf := d.RecvFromInto(u, make([]byte, 10), 0)
		uf.Cancel()
		idle("cancelled recvfrom")

		// Cancelling an async procedure cancels the receive it awaits.
		// (A fresh connection: the cancelled send left part of its data.)
		d.CloseSocket(c)
		d.CloseSocket(s)
		c, s = connPair(t, d)
		p := async(d, func(co *ad.Coro) (ad.Void, error) {
			_, err := ad.Await(co, d.Recv(s, 10, ad.DefaultFlags))
			return ad.Void{}, err
		})
		if d.ActiveDescriptors() != 1 {
			t.Fatal("async recv not pending")
		}
		p.Cancel()
		if err := waitErr(t, p); !errors.Is(err, ad.ErrCancelled) {
			t.Fatalf("cancelled async: %v", err)
		}
		idle("cancelled async")
		for _, fd := range []ad.AsyncFD{c, s, ln, u} {
			d.CloseSocket(fd)
		}
	})
}

// A name that cannot be resolved fails the Dial without blocking, and a
// Dial cancelled while the name is being looked up leaves nothing pending.
func TestDialCancelWhileResolving(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		release := make(chan struct{})
		ad.SetLookup(d, func(host string) ([]netip.Addr, error) {
			<-release
			return nil, errors.New("too late")
		})
		f := d.Dial("slow.test", 80, unix.IPPROTO_TCP)
		if !d.HasPendingOperations() {
			t.Fatal("a lookup in flight is not pending work")
		}
		f.Cancel()
		if d.HasPendingOperations() {
			t.Fatal("a cancelled lookup is still pending work")
		}
		// Close of the dispatcher answers a lookup in flight.
		f = d.Dial("slow.test", 80, unix.IPPROTO_TCP)
		c := d.Connect(mustSocket(t, d, unix.AF_INET), "slow.test", 80, unix.AF_INET)
		d.Close()
		close(release)
		if !errors.Is(f.Err(), ad.ErrClosed) || !errors.Is(c.Err(), ad.ErrClosed) {
			t.Fatalf("lookups at Close: %v, %v", f.Err(), c.Err())
		}
	})
}

func mustSocket(t testing.TB, d *ad.Dispatcher, domain int) ad.AsyncFD {
	t.Helper()
	fd, err := d.CreateAsyncNativeSocket(domain, unix.SOCK_STREAM, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}
