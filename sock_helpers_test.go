package asyncdispatch_test

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Helpers of the socket tests. Everything runs on loopback with ephemeral
// ports; every wait is bounded by a generous deadline and none is a sleep.

// waitLimit bounds every WaitFor of the socket tests: far above what any
// of them needs, so only a hang trips it.
const waitLimit = 30 * time.Second

// wait runs f's loop until f finishes (or waitLimit passes) and returns
// its result.
func wait[T any](t testing.TB, f *ad.Future[T]) T {
	t.Helper()
	v, err := ad.WaitFor(ad.Timeout(f, waitLimit))
	if err != nil {
		t.Fatalf("%s: %v", f.Proc(), err)
	}
	return v
}

// waitErr is wait for a future expected to fail: it returns the error.
func waitErr[T any](t testing.TB, f *ad.Future[T]) error {
	t.Helper()
	v, err := ad.WaitFor(ad.Timeout(f, waitLimit))
	if err == nil {
		t.Fatalf("%s: succeeded with %v, want an error", f.Proc(), v)
	}
	return err
}

// listen makes a listener (or bound datagram socket) and returns it with
// its port.
func listen(t testing.TB, d *ad.Dispatcher, network, addr string) (ad.AsyncFD, int) {
	t.Helper()
	fd, err := d.Listen(network, addr)
	if err != nil {
		t.Fatalf("Listen(%s, %s): %v", network, addr, err)
	}
	_, port, err := ad.GetLocalAddr(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, port
}

// connPair returns the two ends of a TCP connection on 127.0.0.1, both
// registered with d: the dialled end and the accepted end.
func connPair(t testing.TB, d *ad.Dispatcher) (client, server ad.AsyncFD) {
	t.Helper()
	return connPairOn(t, d, "tcp4", "127.0.0.1:0", "127.0.0.1")
}

func connPairOn(t testing.TB, d *ad.Dispatcher, network, laddr, host string) (client, server ad.AsyncFD) {
	t.Helper()
	ln, port := listen(t, d, network, laddr)
	defer d.CloseSocket(ln)
	acc := d.Accept(ln, ad.DefaultFlags, false)
	client = wait(t, d.Dial(host, port, unix.IPPROTO_TCP))
	server = wait(t, acc)
	return client, server
}

// async runs body as an async procedure on d.
func async[T any](d *ad.Dispatcher, body func(co *ad.Coro) (T, error)) *ad.Future[T] {
	return ad.Async(d, body)
}

// fdFlags returns the O_ flags and the FD_ flags of fd.
func fdFlags(t testing.TB, fd ad.AsyncFD) (fl, fdfl int) {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	fdfl, err = unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl, fdfl
}

// isOpen reports whether fd is an open descriptor.
func isOpen(fd ad.AsyncFD) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// setLinger0 makes a close of fd send RST instead of FIN.
func setLinger0(t testing.TB, fd ad.AsyncFD) {
	t.Helper()
	if err := unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		t.Fatal(err)
	}
}

// withD runs body with a fresh dispatcher, closes it, and fails t if
// goroutines or descriptors were left behind.
func withD(t *testing.T, body func(d *ad.Dispatcher)) {
	t.Helper()
	checkLeaks(t, func() {
		d, err := ad.NewDispatcher()
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		body(d)
	})
}

func mustAddrPort(host string, port int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port))
}
