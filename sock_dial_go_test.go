package asyncdispatch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Go-shaped dialing and listening: DialContext, DialConn, Listen with
// "localhost", ListenContext.

// acceptOne accepts one connection on ln as a view, in a procedure.
func acceptOne(d *ad.Dispatcher, ln *ad.Listener) *ad.Future[*ad.Conn] {
	return ad.Async(d, func(co *ad.Coro) (*ad.Conn, error) { return ln.AcceptConn() })
}

// Every stream network dials what Listen made: TCP on both loopbacks and
// on "localhost" (resolved), Unix sockets; the views exchange a message.
func TestDialContextStreamNetworks(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ lnet, laddr, dnet, host string }{
		{"tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1"},
		{"tcp6", "[::1]:0", "tcp6", "::1"},
		{"tcp4", "127.0.0.1:0", "tcp", "localhost"},
		{"tcp4", "127.0.0.1:0", "tcp", ""}, // the local system
		{"unix", filepath.Join(dir, "s"), "unix", ""},
		{"unix", "@asyncdispatch-dialcontext-test", "unix", ""},
	}
	for _, tc := range cases {
		t.Run(tc.dnet+" "+tc.host+" "+tc.laddr, func(t *testing.T) {
			withD(t, func(d *ad.Dispatcher) {
				ln := listenView(t, d, tc.lnet, tc.laddr)
				defer closeAll(t, d, ln)
				addr := ln.Addr().String()
				if tc.lnet != "unix" {
					_, port, _ := net.SplitHostPort(addr)
					addr = net.JoinHostPort(tc.host, port)
				}
				acc := acceptOne(d, ln)
				fd := wait(t, d.DialContext(context.Background(), tc.dnet, addr))
				s := wait(t, acc)
				got := wait(t, ad.Async(d, func(co *ad.Coro) (string, error) {
					c, err := d.Conn(fd)
					if err != nil {
						return "", err
					}
					defer c.Close()
					defer s.Close()
					if c.RemoteAddr().Network() != map[string]string{"tcp4": "tcp", "tcp6": "tcp", "unix": "unix"}[tc.lnet] {
						return "", fmt.Errorf("remote address %v of network %s", c.RemoteAddr(), c.RemoteAddr().Network())
					}
					c.Write([]byte("hi"))
					buf := make([]byte, 2)
					_, err = io.ReadFull(s, buf)
					return string(buf), err
				}))
				if got != "hi" {
					t.Fatal(got)
				}
			})
		})
	}
}

// Datagram networks: a connected UDP or unixgram socket whose view writes
// datagrams the bound end receives.
func TestDialContextDatagram(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ network, laddr string }{
		{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}, {"unixgram", filepath.Join(dir, "g")},
	} {
		t.Run(tc.network, func(t *testing.T) {
			withD(t, func(d *ad.Dispatcher) {
				srv, err := d.Listen(tc.network, tc.laddr)
				if err != nil {
					t.Fatal(err)
				}
				addr := tc.laddr
				if tc.network != "unixgram" {
					h, port, _ := ad.GetLocalAddr(srv)
					addr = net.JoinHostPort(h, strconv.Itoa(port))
				}
				fd := wait(t, d.DialContext(context.Background(), tc.network, addr))
				got := wait(t, ad.Async(d, func(co *ad.Coro) (string, error) {
					c, err := d.Conn(fd)
					if err != nil {
						return "", err
					}
					defer c.Close()
					if _, err := c.Write([]byte("datagram")); err != nil {
						return "", err
					}
					buf := make([]byte, 64)
					r, err := ad.Await(co, d.RecvFromInto(srv, buf, 0))
					return string(buf[:r.N]), err
				}))
				if got != "datagram" {
					t.Fatal(got)
				}
				d.CloseSocket(srv)
			})
		})
	}
}

// "tcp4" and "tcp6" try only their family among a name's addresses; a
// name with none of the family fails with ErrNoAddress.
func TestDialContextFamily(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ad.SetLookup(d, staticLookup("dual.test", "::1", "127.0.0.1"))
		ln := listenView(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, ln)
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		acc := acceptOne(d, ln)
		fd := wait(t, d.DialContext(context.Background(), "tcp4", "dual.test:"+port))
		if h, _, _ := ad.GetPeerAddr(fd); h != "127.0.0.1" {
			t.Fatalf("tcp4 dialled %s", h)
		}
		closeAll(t, d, wait(t, acc))
		d.CloseSocket(fd)
		ad.SetLookup(d, staticLookup("v4only.test", "127.0.0.1"))
		err := waitErr(t, d.DialContext(context.Background(), "tcp6", "v4only.test:"+port))
		if !errors.Is(err, ad.ErrNoAddress) {
			t.Fatalf("tcp6 to a name with only IPv4: %v", err)
		}
	})
}

// Errors are *net.OpError values with Op "dial" around the reason.
func TestDialContextErrors(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		refusedFD, refusedPort := listen(t, d, "tcp4", "127.0.0.1:0")
		d.CloseSocket(refusedFD) // nobody listens there any more
		ad.SetLookup(d, staticLookup("known.test", "127.0.0.1"))
		cases := []struct {
			network, address string
			check            func(error) bool
		}{
			{"tcp", "127.0.0.1:" + strconv.Itoa(refusedPort), func(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }},
			{"tcp", "unknown.test:80", func(err error) bool { var de *net.DNSError; return errors.As(err, &de) }},
			{"ip", "127.0.0.1:1", func(err error) bool { var ue net.UnknownNetworkError; return errors.As(err, &ue) }},
			{"tcp", "127.0.0.1", func(err error) bool { return errors.Is(err, ad.ErrNoAddress) }},
			{"tcp", "127.0.0.1:65536", func(err error) bool { return errors.Is(err, ad.ErrNoAddress) }},
			{"unix", "", func(err error) bool { return errors.Is(err, ad.ErrNoAddress) }},
			{"unix", filepath.Join(t.TempDir(), "none"), func(err error) bool { return errors.Is(err, syscall.ENOENT) }},
		}
		for _, tc := range cases {
			err := waitErr(t, d.DialContext(context.Background(), tc.network, tc.address))
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "dial" || oe.Net != tc.network || !tc.check(err) {
				t.Errorf("DialContext(%q, %q): %v (%T)", tc.network, tc.address, err, err)
			}
		}
	})
}

// A context that ends stops the dial — while the name is resolved, and
// while connecting to an address that never answers — and fails it with
// ctx's error; nothing it made is left (withD checks for descriptors).
func TestDialContextCancelled(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		release := make(chan struct{})
		defer close(release)
		ad.SetLookup(d, func(host string) ([]netip.Addr, error) {
			if host == "slow.test" {
				<-release
			}
			return []netip.Addr{netip.MustParseAddr("::1")}, nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		f := d.DialContext(ctx, "tcp", "slow.test:80")
		d.CallSoon(cancel)
		if err := waitErr(t, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled while resolving: %v", err)
		}

		ln, port, undead := liveAndDead(t, d)
		defer undead()
		d.CloseSocket(ln)
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		before := d.RegisteredDescriptors()
		f = d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err := waitErr(t, f); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline while connecting: %v", err)
		}
		if n := d.RegisteredDescriptors(); n != before {
			t.Fatalf("a stopped dial left %d sockets registered", n-before)
		}
		if err := waitErr(t, d.DialContext(ctx, "tcp", "127.0.0.1:1")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial with an ended context: %v", err)
		}
		// Cancelling the future stops it the same way.
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		f = d.DialContext(ctx2, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		d.CallSoon(func() { f.Cancel() })
		if err := waitErr(t, f); !errors.Is(err, ad.ErrCancelled) {
			t.Fatalf("cancelled future: %v", err)
		}
		if n := d.RegisteredDescriptors(); n != before {
			t.Fatalf("a cancelled dial left %d sockets registered", n-before)
		}
	})
}

// DialConn in an async procedure: the view of a dialled connection, or
// the dial's error; outside a procedure it refuses.
func TestDialConn(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		ln := listenView(t, d, "tcp4", "127.0.0.1:0")
		defer closeAll(t, d, ln)
		acc := acceptOne(d, ln)
		c := wait(t, ad.Async(d, func(co *ad.Coro) (*ad.Conn, error) { return ad.DialConn(co, "tcp", ln.Addr().String()) }))
		s := wait(t, acc)
		if c.RemoteAddr().String() != s.LocalAddr().String() {
			t.Fatalf("%v dialled, %v accepted", c.RemoteAddr(), s.LocalAddr())
		}
		closeAll(t, d, c, s)
		err := waitErr(t, ad.Async(d, func(co *ad.Coro) (*ad.Conn, error) { return ad.DialConn(co, "tcp", "127.0.0.1:") }))
		if !errors.Is(err, ad.ErrNoAddress) {
			t.Fatal(err)
		}
		if _, err := ad.DialConn(nil, "tcp", ln.Addr().String()); !errors.Is(err, ad.ErrNotAsync) {
			t.Fatalf("DialConn without a procedure: %v", err)
		}
	})
}
