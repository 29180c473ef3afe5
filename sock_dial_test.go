package asyncdispatch_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
)

func TestDialIPv4IPv6(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		for _, tc := range []struct{ network, laddr, host, want string }{
			{"tcp4", "127.0.0.1:0", "127.0.0.1", "127.0.0.1"},
			{"tcp6", "[::1]:0", "::1", "::1"},
			// A dual-stack listener shows an IPv4 peer as IPv4.
			{"tcp", ":0", "127.0.0.1", "127.0.0.1"},
			{"tcp", ":0", "::1", "::1"},
			{"tcp", ":0", "::ffff:127.0.0.1", "127.0.0.1"},
		} {
			ln, port := listen(t, d, tc.network, tc.laddr)
			acc := d.AcceptAddr(ln, ad.DefaultFlags, false)
			c := wait(t, d.Dial(tc.host, port, unix.IPPROTO_TCP))
			r := wait(t, acc)
			if r.Address != tc.want {
				t.Errorf("%s %s, dial %s: AcceptAddr address %q, want %q", tc.network, tc.laddr, tc.host, r.Address, tc.want)
			}
			if peer, pport, err := ad.GetPeerAddr(r.Client); err != nil || peer != tc.want {
				t.Errorf("GetPeerAddr: %q %d %v", peer, pport, err)
			}
			wait(t, d.SendString(c, "ping", ad.DefaultFlags))
			if got := wait(t, d.RecvString(r.Client, 10, ad.DefaultFlags)); got != "ping" {
				t.Errorf("echo over %s: %q", tc.host, got)
			}
			for _, fd := range []ad.AsyncFD{c, r.Client, ln} {
				d.CloseSocket(fd)
			}
		}
		if d.RegisteredDescriptors() != 0 {
			t.Fatalf("%d descriptors left registered", d.RegisteredDescriptors())
		}
	})
}

// "localhost" goes through the real resolver, on its own goroutine.
func TestDialLocalhost(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln, port := listen(t, d, "tcp", ":0")
		defer d.CloseSocket(ln)
		f := d.Dial("localhost", port, unix.IPPROTO_TCP)
		if f.Finished() {
			t.Fatal("a name was resolved synchronously")
		}
		c := wait(t, f)
		s := wait(t, d.Accept(ln, ad.DefaultFlags, false))
		d.CloseSocket(c)
		d.CloseSocket(s)
	})
}

// A name that resolves to ::1 then 127.0.0.1, with only an IPv4
// listener: the IPv6 attempt is refused, and the next attempt starts at
// once (not after the fallback delay, set to an hour here).
func TestDialFallsBackToIPv4(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		defer d.CloseSocket(ln)
		ad.SetLookup(d, staticLookup("dual.test", "::1", "127.0.0.1"))
		ad.SetFallbackDelay(d, time.Hour)
		acc := d.AcceptAddr(ln, ad.DefaultFlags, false)
		c := wait(t, d.Dial("dual.test", port, unix.IPPROTO_TCP))
		if peer, _, _ := ad.GetPeerAddr(c); peer != "127.0.0.1" {
			t.Fatalf("connected to %q", peer)
		}
		r := wait(t, acc)
		if d.RegisteredDescriptors() != 3 {
			t.Fatalf("%d descriptors registered, want 3 (listener, two ends)", d.RegisteredDescriptors())
		}
		d.CloseSocket(c)
		d.CloseSocket(r.Client)
	})
}

func staticLookup(name string, addrs ...string) func(string) ([]netip.Addr, error) {
	return func(host string) ([]netip.Addr, error) {
		if host != name {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, a := range addrs {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	}
}

// deadAddr makes host:port a TCP address whose SYNs are dropped (a
// listener with a full backlog that never accepts), like an unreachable
// host. It returns a function that closes its sockets, or the error of
// bind (the port may be taken on that address).
func deadAddr(t *testing.T, host string, port int) (func(), error) {
	t.Helper()
	ip := netip.MustParseAddr(host)
	fam := unix.AF_INET6
	sa := unix.Sockaddr(&unix.SockaddrInet6{Port: port, Addr: ip.As16()})
	if ip.Is4() {
		fam = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	}
	ln, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(ln, sa); err != nil {
		unix.Close(ln)
		return nil, err
	}
	// Backlog 0 holds one connection; SYNs after it are dropped.
	if err := unix.Listen(ln, 0); err != nil {
		t.Fatal(err)
	}
	fill, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fill, sa); err != nil {
		t.Fatal(err)
	}
	return func() {
		unix.Close(fill)
		unix.Close(ln)
	}, nil
}

// liveAndDead returns an IPv4 listener on 127.0.0.1 and its port, which
// is a dead address on ::1, and a function that undoes the dead address.
func liveAndDead(t *testing.T, d *ad.Dispatcher) (ad.AsyncFD, int, func()) {
	t.Helper()
	for try := 0; ; try++ {
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		undead, err := deadAddr(t, "::1", port)
		if err == nil {
			return ln, port, undead
		}
		d.CloseSocket(ln)
		if try == 10 {
			t.Fatalf("no port free on both 127.0.0.1 and ::1: %v", err)
		}
	}
}

// Happy Eyeballs: the IPv6 address is dead (SYNs dropped); the IPv4
// attempt starts after the fallback delay, wins, and the IPv6 attempt is
// closed.
func TestDialHappyEyeballs(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln, port, undead := liveAndDead(t, d)
		defer d.CloseSocket(ln)
		defer undead()
		ad.SetLookup(d, staticLookup("he.test", "::1", "127.0.0.1"))
		acc := d.Accept(ln, ad.DefaultFlags, false)
		start := time.Now()
		c := wait(t, d.Dial("he.test", port, unix.IPPROTO_TCP)) // the real 250 ms delay
		took := time.Since(start)
		if peer, _, _ := ad.GetPeerAddr(c); peer != "127.0.0.1" {
			t.Fatalf("connected to %q", peer)
		}
		if took < ad.DialFallbackDelay {
			t.Fatalf("IPv4 won after %v, before the fallback delay: was IPv6 not dead?", took)
		}
		s := wait(t, acc)
		if n := d.RegisteredDescriptors(); n != 3 {
			t.Fatalf("%d descriptors registered, want 3: the losing attempt was not closed", n)
		}
		if d.ActiveDescriptors() != 0 || d.HasPendingOperations() {
			t.Fatal("the losing attempt is still pending")
		}
		d.CloseSocket(c)
		d.CloseSocket(s)

		// Cancelling a Dial that hangs closes its sockets.
		f := d.Dial("::1", port, unix.IPPROTO_TCP)
		if f.Finished() || d.RegisteredDescriptors() != 2 {
			t.Fatalf("dial to a dead address: %v, %d registered", f, d.RegisteredDescriptors())
		}
		f.Cancel()
		if d.RegisteredDescriptors() != 1 || d.HasPendingOperations() {
			t.Fatalf("cancelled dial: %d registered, pending %v", d.RegisteredDescriptors(), d.HasPendingOperations())
		}

		// So does cancelling a Connect: its interest goes.
		fd := mustSocket(t, d, unix.AF_INET6)
		cf := d.Connect(fd, "::1", port, unix.AF_INET6)
		if cf.Finished() || d.ActiveDescriptors() != 1 {
			t.Fatal("connect to a dead address not pending")
		}
		cf.Cancel()
		if d.ActiveDescriptors() != 0 || d.HasPendingOperations() {
			t.Fatal("cancelled connect still pending")
		}
		d.CloseSocket(fd)
	})
}

// When every attempt fails, Dial fails with the last attempt's error.
func TestDialAllFail(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		port := closedPort(t, d)
		ad.SetLookup(d, staticLookup("refused.test", "127.0.0.2", "127.0.0.3", "::1"))
		err := waitErr(t, d.Dial("refused.test", port, unix.IPPROTO_TCP))
		var ce *ad.ConnectError
		if !errors.As(err, &ce) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("Dial: %v, want a *ConnectError with ECONNREFUSED", err)
		}
		var se *os.SyscallError
		if !errors.As(err, &se) {
			t.Fatalf("Dial: %v has no *os.SyscallError", err)
		}
		// Attempt order 127.0.0.2, ::1, 127.0.0.3: the last is 127.0.0.3.
		if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(port)).String(); ce.Addr != want {
			t.Fatalf("error of attempt %s, want the last one, %s", ce.Addr, want)
		}
		if d.RegisteredDescriptors() != 0 {
			t.Fatalf("%d sockets leaked", d.RegisteredDescriptors())
		}
		// Resolver errors come through as they are.
		err = waitErr(t, d.Dial("nowhere.test", port, unix.IPPROTO_TCP))
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Fatalf("Dial of an unknown name: %v", err)
		}
		ad.SetLookup(d, staticLookup("empty.test"))
		if err := waitErr(t, d.Dial("empty.test", port, unix.IPPROTO_TCP)); !errors.Is(err, ad.ErrNoAddress) {
			t.Fatalf("Dial of a name without addresses: %v", err)
		}
	})
}

// closedPort returns a TCP port nothing listens on (on any loopback
// address: it was free on the wildcard).
func closedPort(t *testing.T, d *ad.Dispatcher) int {
	t.Helper()
	ln, port := listen(t, d, "tcp", ":0")
	d.CloseSocket(ln)
	return port
}

func TestInterleave(t *testing.T) {
	p := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct{ in, want []netip.Addr }{
		{p(), p()},
		{p("::1", "::2", "1.1.1.1", "2.2.2.2", "3.3.3.3"), p("::1", "1.1.1.1", "::2", "2.2.2.2", "3.3.3.3")},
		{p("1.1.1.1", "2.2.2.2", "::1"), p("1.1.1.1", "::1", "2.2.2.2")},
		{p("::1", "::2"), p("::1", "::2")},
	} {
		if got := ad.Interleave(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Interleave(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestConnect(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln, port := listen(t, d, "tcp4", "127.0.0.1:0")
		defer d.CloseSocket(ln)
		accept := func() {
			t.Helper()
			d.CloseSocket(wait(t, d.Accept(ln, ad.DefaultFlags, false)))
		}
		fd := mustSocket(t, d, unix.AF_INET)
		wait(t, d.Connect(fd, "127.0.0.1", port, unix.AF_INET))
		accept()
		d.CloseSocket(fd)

		// The addresses are tried in order on the same socket: 127.0.0.2
		// refuses, 127.0.0.1 answers. The IPv6 one is not tried by an
		// AF_INET socket.
		ad.SetLookup(d, staticLookup("multi.test", "::1", "127.0.0.2", "127.0.0.1"))
		fd = mustSocket(t, d, unix.AF_INET)
		f := d.Connect(fd, "multi.test", port, unix.AF_INET)
		if f.Finished() {
			t.Fatal("a name was resolved synchronously")
		}
		wait(t, f)
		if peer, _, _ := ad.GetPeerAddr(fd); peer != "127.0.0.1" {
			t.Fatalf("connected to %q", peer)
		}
		accept()
		d.CloseSocket(fd)

		// All refused: the last attempt's error.
		closed := closedPort(t, d)
		fd = mustSocket(t, d, unix.AF_INET)
		err := waitErr(t, d.Connect(fd, "multi.test", closed, unix.AF_INET))
		var ce *ad.ConnectError
		if !errors.As(err, &ce) || !errors.Is(err, syscall.ECONNREFUSED) || ce.Addr != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(closed)).String() {
			t.Fatalf("Connect, all refused: %v", err)
		}
		d.CloseSocket(fd)

		// The socket's family must match, and the name must have an
		// address of it.
		fd = mustSocket(t, d, unix.AF_INET6)
		if err := waitErr(t, d.Connect(fd, "127.0.0.1", port, unix.AF_INET)); !errors.Is(err, syscall.EAFNOSUPPORT) {
			t.Fatalf("family mismatch: %v", err)
		}
		if err := waitErr(t, d.Connect(fd, "127.0.0.1", port, unix.AF_INET6)); !errors.Is(err, ad.ErrNoAddress) {
			t.Fatalf("IPv4 literal on an AF_INET6 socket: %v", err)
		}
		d.CloseSocket(fd)
		if d.RegisteredDescriptors() != 1 {
			t.Fatalf("%d registered", d.RegisteredDescriptors())
		}
	})
}

// Happy Eyeballs with both attempts connecting in the same round (each
// connect is reported in progress although it was made, and the second
// starts as soon as the loop runs): the first to be seen wins, the other
// is closed although it connected too, and only the winner stays
// registered.
func TestDialSameRoundLoserClosed(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln, port := listen(t, d, "tcp", ":0")
		defer d.CloseSocket(ln)
		ad.SetLookup(d, staticLookup("both.test", "::1", "127.0.0.1"))
		ad.SetFallbackDelay(d, time.Nanosecond)
		faults.Install(t).Add(&faults.Rule{Op: faults.Connect, Err: unix.EINPROGRESS, Real: true})
		c := wait(t, d.Dial("both.test", port, unix.IPPROTO_TCP))
		if n := d.RegisteredDescriptors(); n != 2 {
			t.Fatalf("%d descriptors registered, want 2 (listener, winner): a loser was kept", n)
		}
		if d.ActiveDescriptors() != 0 {
			t.Fatal("an attempt is still pending")
		}
		// Both connections reached the listener; the loser's was closed.
		s := wait(t, d.Accept(ln, 0, false))
		defer d.CloseSocket(s)
		acc := d.Accept(ln, 0, false)
		if acc.Finished() {
			if fd, err := acc.Read(); err == nil {
				if got := wait(t, d.Recv(fd, 8, ad.SafeDisconn)); len(got) != 0 {
					t.Fatalf("the loser's connection is open: %q", got)
				}
				d.CloseSocket(fd)
			}
		} else {
			t.Log("only one attempt reached the listener: the race did not happen this time")
			acc.Cancel()
		}
		d.CloseSocket(c)
	})
}
