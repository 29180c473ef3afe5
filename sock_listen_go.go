package asyncdispatch

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// Go-shaped listening. Listen takes network and address as net.Listen
// does, but resolves no name but "localhost" (which is the loopback
// address by definition, RFC 6761): a lookup may block, and Listen runs
// on the loop and returns at once. ListenContext takes any name and
// resolves it on a goroutine (sock_resolve.go), so the loop goes on
// meanwhile; for everything Listen takes it is Listen, at once.

// isLocalhost reports whether host is "localhost" (any case, with or
// without the final dot), which names the loopback address without a
// resolver (RFC 6761).
func isLocalhost(host string) bool {
	return strings.EqualFold(strings.TrimSuffix(host, "."), "localhost")
}

// ListenContext is Listen for any host name: a name Listen would refuse
// is resolved on a goroutine, without blocking the loop, and the socket
// is bound to its first address (its first IPv4 address for "tcp" and
// "udp", as net.Listen picks, the first of the family for the "4" and
// "6" networks); everything Listen accepts at once — an IP literal,
// "localhost", an empty host, a Unix path — completes at once, exactly as
// Listen. A name that cannot be resolved fails with the resolver's error,
// one without an address of the family with ErrNoAddress. When ctx ends
// first, the resolution is abandoned and the future fails with an error
// matching ctx.Err(). A nil ctx is context.Background().
func (d *Dispatcher) ListenContext(ctx context.Context, network, address string) *Future[AsyncFD] {
	f := newNamed[AsyncFD](d, "ListenContext")
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		f.tryFail(err)
		return f
	}
	host, port, name := listenName(network, address)
	if !name || d.closed {
		fd, err := d.Listen(network, address)
		if err != nil {
			f.tryFail(err)
		} else {
			f.tryComplete(fd)
		}
		return f
	}
	var (
		res  *resolution
		ctxf *Future[Void]
	)
	res = d.resolve(host, func(addrs []netip.Addr, err error) {
		if ctxf != nil {
			ctxf.Cancel()
		}
		if f.state != pending {
			return
		}
		if err != nil {
			f.tryFail(err)
			return
		}
		ip, ok := listenPick(network, addrs)
		if !ok {
			f.tryFail(fmt.Errorf("%w: %q has no address to listen on for %s", ErrNoAddress, host, network))
			return
		}
		fd, err := d.Listen(network, net.JoinHostPort(ip.String(), port))
		if err != nil {
			f.tryFail(err)
			return
		}
		f.tryComplete(fd)
	})
	f.src = &linked{name: "ListenContext", onCancel: func() bool {
		res.stop()
		if ctxf != nil {
			ctxf.Cancel()
		}
		return true
	}}
	if ctx.Done() != nil && f.state == pending {
		ctxf = FromContext(d, ctx)
		ctxf.addCallback(callback{fn: func() {
			if err := ctxf.errOrNil(); err != nil && !isCancel(err) && f.state == pending {
				res.stop()
				f.tryFail(err)
			}
		}})
	}
	return f
}

// listenName splits a TCP or UDP listen address whose host is a name
// Listen does not resolve; name is false for anything else (which Listen
// takes, or refuses, itself).
func listenName(network, address string) (host, port string, name bool) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return "", "", false
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil || host == "" || isLocalhost(host) {
		return "", "", false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", "", false
	}
	return host, port, true
}

// listenPick chooses the address to listen on among a name's.
func listenPick(network string, addrs []netip.Addr) (netip.Addr, bool) {
	want := 0
	switch network[len(network)-1] {
	case '4':
		want = unix.AF_INET
	case '6':
		want = unix.AF_INET6
	}
	var first netip.Addr
	for _, ip := range addrs {
		ip = ip.Unmap()
		switch {
		case !ip.IsValid():
		case want != 0 && familyOf(ip) == want:
			return ip, true
		case want == 0 && ip.Is4():
			return ip, true
		case want == 0 && !first.IsValid():
			first = ip
		}
	}
	return first, first.IsValid()
}
