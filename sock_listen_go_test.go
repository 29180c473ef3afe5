package asyncdispatch_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// Listen takes "localhost" as net.Listen does: the IPv4 loopback, the
// IPv6 one for tcp6 and udp6, without asking a resolver; other names it
// refuses, pointing to ListenContext.
func TestListenLocalhost(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		for _, tc := range []struct{ network, address, want string }{
			{"tcp", "localhost:0", "127.0.0.1"},
			{"tcp4", "LocalHost.:0", "127.0.0.1"},
			{"tcp6", "localhost:0", "::1"},
			{"udp", "localhost:0", "127.0.0.1"},
			{"udp6", "localhost:0", "::1"},
		} {
			fd, err := d.Listen(tc.network, tc.address)
			if err != nil {
				t.Fatalf("Listen(%s, %s): %v", tc.network, tc.address, err)
			}
			if h, port, _ := ad.GetLocalAddr(fd); h != tc.want || port == 0 {
				t.Errorf("Listen(%s, %s) bound %s:%d", tc.network, tc.address, h, port)
			}
			d.CloseSocket(fd)
		}
		_, err := d.Listen("tcp", "name.invalid:0")
		var ae *net.AddrError
		if !errors.Is(err, ad.ErrNoAddress) || !errors.As(err, &ae) {
			t.Fatalf("Listen on a name: %v", err)
		}
	})
}

// ListenContext resolves a name without blocking the loop and binds its
// first address (IPv4 first for "tcp"); a literal completes at once; a
// name that does not resolve fails with the resolver's error; a context
// that ends stops it.
func TestListenContext(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		release := make(chan struct{})
		defer close(release)
		lookup := staticLookup("svc.test", "::1", "127.0.0.1")
		ad.SetLookup(d, func(host string) ([]netip.Addr, error) {
			if host == "slow.test" {
				<-release
			}
			return lookup(host)
		})
		f := d.ListenContext(context.Background(), "tcp", "127.0.0.1:0")
		if !f.Finished() {
			t.Fatal("ListenContext of a literal did not complete at once")
		}
		d.CloseSocket(wait(t, f))
		for _, tc := range []struct{ network, want string }{{"tcp", "127.0.0.1"}, {"tcp6", "::1"}, {"udp4", "127.0.0.1"}} {
			fd := wait(t, d.ListenContext(context.Background(), tc.network, "svc.test:0"))
			if h, _, _ := ad.GetLocalAddr(fd); h != tc.want {
				t.Errorf("ListenContext(%s, svc.test:0) bound %s, want %s", tc.network, h, tc.want)
			}
			d.CloseSocket(fd)
		}
		var de *net.DNSError
		if err := waitErr(t, d.ListenContext(context.Background(), "tcp", "nowhere.test:0")); !errors.As(err, &de) {
			t.Fatalf("a name that does not resolve: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		f = d.ListenContext(ctx, "tcp", "slow.test:0")
		d.CallSoon(cancel)
		if err := waitErr(t, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled while resolving: %v", err)
		}
		if d.HasPendingOperations() {
			t.Fatal("a stopped ListenContext left work pending")
		}
	})
}

// The real resolver: "localhost" through ListenContext, and a name in the
// .invalid domain (RFC 6761: it never resolves).
func TestListenContextRealResolver(t *testing.T) {
	withD(t, func(d *ad.Dispatcher) {
		fd := wait(t, d.ListenContext(context.Background(), "tcp", "localhost:0"))
		if h, _, _ := ad.GetLocalAddr(fd); h != "127.0.0.1" {
			t.Fatalf("bound %s", h)
		}
		d.CloseSocket(fd)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := waitErr(t, d.ListenContext(ctx, "tcp", "no-such-host.invalid:0"))
		var de *net.DNSError
		if !errors.As(err, &de) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("an .invalid name: %v", err)
		}
	})
}
