package asyncdispatch_test

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// cancellable is the part of a *Future[T] the operation tables use.
type cancellable interface {
	Cancel() bool
	Cancelled() bool
	Finished() bool
}

// opCase is one kind of operation, on a descriptor of its own.
type opCase struct {
	fd    ad.AsyncFD
	write bool // the op waits for writability
	start func() cancellable
	// ready makes fd ready in the op's direction; check verifies that
	// the op did no I/O.
	ready func(t *testing.T)
	check func(t *testing.T)
}

// cancelledOpCases are the operation kinds of the package that wait on a
// descriptor (the coroutine's reusable operation has its own test,
// TestCancelledCoroOpNeverDoesIO).
var cancelledOpCases = []struct {
	name string
	make func(t *testing.T, d *ad.Dispatcher) opCase
}{
	{"Recv", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, peer := connPair(t, d)
		return opCase{fd: a,
			start: func() cancellable { return d.Recv(a, 64, 0) },
			ready: func(t *testing.T) { rawWrite(t, peer, "kept") },
			check: func(t *testing.T) { expectRaw(t, a, "kept") }}
	}},
	{"RecvString", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, peer := connPair(t, d)
		return opCase{fd: a,
			start: func() cancellable { return d.RecvString(a, 64, 0) },
			ready: func(t *testing.T) { rawWrite(t, peer, "kept") },
			check: func(t *testing.T) { expectRaw(t, a, "kept") }}
	}},
	{"RecvInto", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, peer := connPair(t, d)
		return opCase{fd: a,
			start: func() cancellable { return d.RecvInto(a, make([]byte, 64), 0) },
			ready: func(t *testing.T) { rawWrite(t, peer, "kept") },
			check: func(t *testing.T) { expectRaw(t, a, "kept") }}
	}},
	{"RecvFromInto", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, port := listen(t, d, "udp4", "127.0.0.1:0")
		b, _ := listen(t, d, "udp4", "127.0.0.1:0")
		return opCase{fd: a,
			start: func() cancellable { return d.RecvFromInto(a, make([]byte, 64), 0) },
			ready: func(t *testing.T) {
				if err := unix.Sendto(int(b), []byte("kept"), 0, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T) { expectRaw(t, a, "kept") }}
	}},
	{"Send", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, peer := connPair(t, d)
		return opCase{fd: a, write: true,
			start: func() cancellable { return d.Send(a, []byte("never"), 0) },
			ready: func(*testing.T) {},
			check: func(t *testing.T) { expectRaw(t, peer, "") }}
	}},
	{"SendString", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, peer := connPair(t, d)
		return opCase{fd: a, write: true,
			start: func() cancellable { return d.SendString(a, "never", 0) },
			ready: func(*testing.T) {},
			check: func(t *testing.T) { expectRaw(t, peer, "") }}
	}},
	{"SendTo", func(t *testing.T, d *ad.Dispatcher) opCase {
		a, _ := listen(t, d, "udp4", "127.0.0.1:0")
		b, port := listen(t, d, "udp4", "127.0.0.1:0")
		return opCase{fd: a, write: true,
			start: func() cancellable { return d.SendTo(a, []byte("never"), mustAddrPort("127.0.0.1", port), 0) },
			ready: func(*testing.T) {},
			check: func(t *testing.T) { expectRaw(t, b, "") }}
	}},
	{"Accept", func(t *testing.T, d *ad.Dispatcher) opCase {
		return acceptCase(t, d, func(ln ad.AsyncFD) cancellable { return d.Accept(ln, 0, false) })
	}},
	{"AcceptAddr", func(t *testing.T, d *ad.Dispatcher) opCase {
		return acceptCase(t, d, func(ln ad.AsyncFD) cancellable { return d.AcceptAddr(ln, 0, false) })
	}},
}

// acceptCase: the op accepts on a listener with a connection waiting; a
// cancelled accept must leave it in the backlog.
func acceptCase(t *testing.T, d *ad.Dispatcher, accept func(ln ad.AsyncFD) cancellable) opCase {
	ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
	return opCase{fd: ln,
		start: func() cancellable { return accept(ln) },
		ready: func(t *testing.T) {
			c := rawConnect(t, port)
			t.Cleanup(func() { unix.Close(c) })
		},
		check: func(t *testing.T) {
			n := d.RegisteredDescriptors()
			fd := wait(t, d.Accept(ln, 0, false))
			if d.RegisteredDescriptors() != n+1 {
				t.Fatalf("the waiting connection was accepted already: %d descriptors, then %d", n, d.RegisteredDescriptors())
			}
			d.CloseSocket(fd)
		}}
}

// Every kind of operation goes through the same wait-list mechanism: one
// cancelled by an AddRead/AddWrite callback that runs ahead of it in the
// same readiness event (and stays on the list) does no I/O when the event
// reaches it, nor at the descriptor's next readiness — no receive, no
// send, no accept.
func TestCancelledOpNeverDoesIO(t *testing.T) {
	for _, c := range cancelledOpCases {
		t.Run(c.name, func(t *testing.T) {
			d := newD(t)
			oc := c.make(t, d)
			var f cancellable
			calls := 0
			cb := func(ad.AsyncFD) bool {
				calls++
				if calls == 1 {
					f.Cancel()
					return false
				}
				return true
			}
			add := d.AddRead
			if oc.write {
				add = d.AddWrite
			}
			if err := add(oc.fd, cb); err != nil {
				t.Fatal(err)
			}
			f = oc.start()
			if f.Finished() {
				t.Fatal("the operation did not queue behind the callback")
			}
			oc.ready(t)
			regs := d.RegisteredDescriptors()
			deadline := time.Now().Add(waitLimit)
			for calls < 2 {
				if time.Now().After(deadline) {
					t.Fatal("the callback never ran twice")
				}
				if err := d.Poll(100 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
			d.Poll(0)
			if !f.Cancelled() {
				t.Fatalf("not cancelled: %v", f)
			}
			if d.RegisteredDescriptors() != regs {
				t.Fatalf("registered descriptors: %d, then %d", regs, d.RegisteredDescriptors())
			}
			oc.check(t)
			if d.ActiveDescriptors() != 0 {
				t.Fatalf("%d descriptors still active", d.ActiveDescriptors())
			}
		})
	}
}

// rawWrite writes s to fd with write(2), around the dispatcher.
func rawWrite(t *testing.T, fd ad.AsyncFD, s string) {
	t.Helper()
	if n, err := unix.Write(int(fd), []byte(s)); n != len(s) || err != nil {
		t.Fatal(n, err)
	}
}

// expectRaw reads fd once with read(2), around the dispatcher, and
// checks that it gets want ("": nothing there).
func expectRaw(t *testing.T, fd ad.AsyncFD, want string) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Read(int(fd), buf)
	got := ""
	switch {
	case err == unix.EAGAIN:
	case err != nil:
		t.Fatal(err)
	default:
		got = string(buf[:n])
	}
	if got != want {
		t.Fatalf("fd %d holds %q, want %q", fd, got, want)
	}
}

// rawConnect connects a blocking socket of no dispatcher to 127.0.0.1:port
// and waits until the listener has the connection in its backlog.
func rawConnect(t *testing.T, port int) int {
	t.Helper()
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(c, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(c)
		t.Fatal(err)
	}
	return c
}
