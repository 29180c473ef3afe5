package asyncdispatch_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// udpEchoServer echoes every datagram on fd to its sender until
// cancelled, checking with check first.
func udpEchoServer(d *ad.Dispatcher, fd ad.AsyncFD, check func(data []byte, r ad.RecvFromResult) error) *ad.Future[int] {
	return async(d, func(co *ad.Coro) (int, error) {
		buf := make([]byte, 2048)
		n := 0
		for {
			r, err := ad.Await(co, d.RecvFromInto(fd, buf, ad.DefaultFlags))
			if err != nil {
				return n, err
			}
			if err := check(buf[:r.N], r); err != nil {
				return n, err
			}
			var sf *ad.Future[ad.Void]
			if r.Path != "" {
				sf = d.SendToUnix(fd, buf[:r.N], r.Path, 0)
			} else {
				sf = d.SendTo(fd, buf[:r.N], r.From, 0)
			}
			if _, err := ad.Await(co, sf); err != nil {
				return n, err
			}
			n++
		}
	})
}

// UDP echo from many clients, over IPv4 and IPv6, with the senders'
// addresses checked on both sides.
func TestUDPEchoManyClients(t *testing.T) {
	for _, tc := range []struct{ net, host string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(tc.net, func(t *testing.T) {
			withD(t, func(d *ad.Dispatcher) {
				const clients, msgs = 40, 25
				srv, sport := listen(t, d, tc.net, netip.AddrPortFrom(netip.MustParseAddr(tc.host), 0).String())
				srvAddr := netip.AddrPortFrom(netip.MustParseAddr(tc.host), uint16(sport))
				addrs := make([]netip.AddrPort, clients)
				fds := make([]ad.AsyncFD, clients)
				for i := range fds {
					fd, port := listen(t, d, tc.net, netip.AddrPortFrom(netip.MustParseAddr(tc.host), 0).String())
					fds[i], addrs[i] = fd, netip.AddrPortFrom(netip.MustParseAddr(tc.host), uint16(port))
				}
				echoed := 0
				server := udpEchoServer(d, srv, func(data []byte, r ad.RecvFromResult) error {
					echoed++
					var c, m int
					if _, err := fmt.Sscanf(string(data), "client %d message %d", &c, &m); err != nil {
						return fmt.Errorf("datagram %q: %v", data, err)
					}
					if c < 0 || c >= clients || r.From != addrs[c] {
						return fmt.Errorf("datagram %q from %v, want from %v", data, r.From, addrs[c])
					}
					return nil
				})
				var cfs []*ad.Future[int]
				for i := range fds {
					cfs = append(cfs, async(d, func(co *ad.Coro) (int, error) {
						buf := make([]byte, 100)
						for m := 0; m < msgs; m++ {
							msg := fmt.Sprintf("client %d message %d", i, m)
							if _, err := ad.Await(co, d.SendTo(fds[i], []byte(msg), srvAddr, 0)); err != nil {
								return m, err
							}
							r, err := ad.Await(co, d.RecvFromInto(fds[i], buf, 0))
							if err != nil {
								return m, err
							}
							if string(buf[:r.N]) != msg || r.From != srvAddr {
								return m, fmt.Errorf("echo %q from %v, want %q from %v", buf[:r.N], r.From, msg, srvAddr)
							}
						}
						return msgs, nil
					}))
				}
				wait(t, ad.All(cfs...))
				if server.Finished() {
					t.Fatalf("server stopped: %v", server.Err())
				}
				server.Cancel()
				if err := waitErr(t, server); !errors.Is(err, ad.ErrCancelled) {
					t.Fatal(err)
				}
				if echoed != clients*msgs {
					t.Fatalf("server echoed %d datagrams, want %d", echoed, clients*msgs)
				}
				for _, fd := range append(fds, srv) {
					d.CloseSocket(fd)
				}
			})
		})
	}
}

// A dual-stack UDP socket sees IPv4 senders IPv4-mapped, and answers them
// through that address; Dial with IPPROTO_UDP gives a connected datagram
// socket.
func TestUDPDualStackAndDial(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		srv, port := listen(t, d, "udp", ":0")
		defer d.CloseSocket(srv)
		echo := udpEchoServer(d, srv, func([]byte, ad.RecvFromResult) error { return nil })
		c := wait(t, d.Dial("127.0.0.1", port, unix.IPPROTO_UDP))
		defer d.CloseSocket(c)
		_, cport, _ := ad.GetLocalAddr(c)
		wait(t, d.SendString(c, "hello", 0))
		if got := wait(t, d.RecvString(c, 100, 0)); got != "hello" {
			t.Fatalf("echo: %q", got)
		}
		// Peek, then the same datagram again.
		wait(t, d.SendString(c, "peek", 0))
		buf := make([]byte, 100)
		r := wait(t, d.RecvFromInto(c, buf, ad.Peek))
		r2 := wait(t, d.RecvFromInto(c, buf, 0))
		if r.N != 4 || r2.N != 4 || string(buf[:4]) != "peek" || r.From != r2.From {
			t.Fatalf("peek %v then %v", r, r2)
		}
		if r.From.Port() != uint16(port) || !r.From.Addr().Is4() {
			t.Fatalf("echo came from %v", r.From)
		}
		echo.Cancel()
		waitErr(t, echo)

		// The server's view of the sender.
		rf := d.RecvFromInto(srv, buf, 0)
		wait(t, d.SendString(c, "who", 0))
		r = wait(t, rf)
		want := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), uint16(cport))
		if r.From != want {
			t.Fatalf("dual-stack sender %v, want %v", r.From, want)
		}
		if err := waitErr(t, d.SendTo(srv, buf, netip.AddrPort{}, 0)); !errors.Is(err, ad.ErrNoAddress) {
			t.Fatalf("SendTo the zero address: %v", err)
		}
	})
}

// Unix stream and datagram sockets: Connect by path, AcceptAddr's "unix",
// datagram senders by path (bound, abstract, unbound).
func TestUnixSockets(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		dir := t.TempDir()
		path := filepath.Join(dir, "stream.sock")
		ln, _ := listen(t, d, "unix", path)
		acc := d.AcceptAddr(ln, ad.DefaultFlags, false)
		c := mustSocketType(t, d, unix.AF_UNIX, unix.SOCK_STREAM)
		wait(t, d.Connect(c, path, 0, unix.AF_UNIX))
		r := wait(t, acc)
		if r.Address != "unix" {
			t.Fatalf("AcceptAddr of a Unix peer: %q", r.Address)
		}
		wait(t, d.SendString(c, "over unix", ad.DefaultFlags))
		if got := wait(t, d.RecvString(r.Client, 100, ad.DefaultFlags)); got != "over unix" {
			t.Fatalf("unix stream: %q", got)
		}
		if a, _, err := ad.GetLocalAddr(ln); err != nil || a != path {
			t.Fatalf("GetLocalAddr of a Unix listener: %q %v", a, err)
		}
		for _, fd := range []ad.AsyncFD{c, r.Client, ln} {
			d.CloseSocket(fd)
		}
		c = mustSocketType(t, d, unix.AF_UNIX, unix.SOCK_STREAM)
		if err := waitErr(t, d.Connect(c, filepath.Join(dir, "nobody"), 0, unix.AF_UNIX)); !errors.Is(err, unix.ENOENT) {
			t.Fatalf("connect to a missing path: %v", err)
		}
		d.CloseSocket(c)

		spath := filepath.Join(dir, "srv.dgram")
		srv, _ := listen(t, d, "unixgram", spath)
		var senders []string
		echo := udpEchoServer(d, srv, func(_ []byte, r ad.RecvFromResult) error {
			senders = append(senders, r.Path)
			return nil
		})
		abstract := fmt.Sprintf("@asyncdispatch-test-%d-%s", os.Getpid(), filepath.Base(dir))
		for _, cpath := range []string{filepath.Join(dir, "client.dgram"), abstract} {
			cl, _ := listen(t, d, "unixgram", cpath)
			wait(t, d.SendToUnix(cl, []byte("dgram"), spath, 0))
			buf := make([]byte, 100)
			r := wait(t, d.RecvFromInto(cl, buf, 0))
			if string(buf[:r.N]) != "dgram" || r.Path != spath {
				t.Fatalf("unix datagram echo: %q from %q", buf[:r.N], r.Path)
			}
			d.CloseSocket(cl)
		}
		// An unbound sender has no address to answer to.
		cl := mustSocketType(t, d, unix.AF_UNIX, unix.SOCK_DGRAM)
		wait(t, d.SendToUnix(cl, []byte("anon"), spath, 0))
		if err := waitErr(t, echo); !errors.Is(err, ad.ErrNoAddress) {
			t.Fatalf("echo to an unbound sender: %v", err)
		}
		d.CloseSocket(cl)
		want := []string{filepath.Join(dir, "client.dgram"), abstract, ""}
		if fmt.Sprint(senders) != fmt.Sprint(want) {
			t.Fatalf("senders %q, want %q", senders, want)
		}
		d.CloseSocket(srv)
	})
}

func mustSocketType(t testing.TB, d *ad.Dispatcher, domain, typ int) ad.AsyncFD {
	t.Helper()
	fd, err := d.CreateAsyncNativeSocket(domain, typ, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}
