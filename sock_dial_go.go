package asyncdispatch

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
)

// Go-shaped dialing and listening: network and address as net.Dial and
// net.Listen take them ("tcp", "localhost:8080"), a context to cancel
// with, errors as *net.OpError. They sit on the Nim-shaped forms (Dial,
// Connect, Listen), which stay for porters: Dial's Happy Eyeballs, the
// resolver that never blocks the loop.
//
// What must stay true: a dial that is cancelled (its future, or its
// context) leaves no socket behind, even one that connected in the round
// of the cancellation; a context that ends fails the future with an
// error matching ctx.Err().

// DialContext connects to address on network, as net.Dialer.DialContext
// does, and completes with the connected socket, registered with d and
// owned by it (Conn makes a net.Conn of it; DialConn does both in an
// async procedure).
//
// network is "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6" (address
// "host:port", host an IP literal or a name, resolved without blocking
// the loop; an empty host is the local system, port a number), or "unix",
// "unixgram", "unixpacket" (address a socket path, "@name" for an abstract
// one). For TCP and UDP every address of the name is tried with Happy
// Eyeballs (RFC 8305), as Dial does; "tcp4" and "tcp6" (and "udp4",
// "udp6") try only the addresses of their family.
//
// Errors are *net.OpError values with Op "dial" around the reason: the
// last attempt's *ConnectError, the resolver's error, ErrNoAddress for an
// address that is not valid or a name without an address of the family,
// net.UnknownNetworkError for an unknown network. When ctx ends first the
// dial is stopped, every socket it made is closed, and the future fails
// with an error matching ctx.Err(); so it does when ctx has ended
// already. Cancelling the future stops it the same way. A nil ctx is
// context.Background().
func (d *Dispatcher) DialContext(ctx context.Context, network, address string) *Future[AsyncFD] {
	g := &netDial{d: d, network: network}
	g.fut.init(d, g, 2)
	if ctx == nil {
		ctx = context.Background()
	}
	switch {
	case d.closed:
		g.fut.tryFail(g.opErr(ErrClosed))
		return &g.fut
	case ctx.Err() != nil:
		g.fut.tryFail(g.opErr(ctx.Err()))
		return &g.fut
	}
	if err := g.start(network, address); err != nil {
		g.fut.tryFail(g.opErr(err))
		return &g.fut
	}
	if ctx.Done() != nil {
		cf := FromContext(d, ctx)
		g.ctxf = cf
		cf.addCallback(callback{fn: func() { g.ctxDone(cf) }})
	}
	return &g.fut
}

// netDial is a pending DialContext: the dial it runs and the context it
// watches.
type netDial struct {
	fut     Future[AsyncFD]
	d       *Dispatcher
	network string
	// inner is the TCP or UDP dial (Dial's Happy Eyeballs); for Unix
	// sockets conn is the connect of ufd.
	inner *Future[AsyncFD]
	conn  *Future[Void]
	ufd   AsyncFD
	// ufdClosed: stop closed ufd; its number may belong to another socket
	// by the time the connect's outcome is read.
	ufdClosed bool
	// ctxf fails when the context ends.
	ctxf *Future[Void]
}

func (g *netDial) procName() string { return "DialContext" }

// cancel stops the dial (the caller fails the future).
func (g *netDial) cancel() bool {
	g.stop()
	return true
}

// stop stops the dial and the context watch; a dial that finished already
// is left to settle, which closes its socket.
func (g *netDial) stop() {
	if g.ctxf != nil {
		g.ctxf.Cancel()
	}
	if g.inner != nil {
		g.inner.Cancel()
	}
	if g.conn != nil && g.conn.Cancel() {
		g.d.CloseSocket(g.ufd)
		g.ufdClosed = true
	}
}

func (g *netDial) opErr(err error) error {
	return &net.OpError{Op: "dial", Net: g.network, Err: err}
}

// start parses network and address and starts the dial.
func (g *netDial) start(network, address string) error {
	d := g.d
	switch network {
	case "unix", "unixgram", "unixpacket":
		st := map[string]int{"unix": unix.SOCK_STREAM, "unixgram": unix.SOCK_DGRAM, "unixpacket": unix.SOCK_SEQPACKET}[network]
		if _, err := unixSockaddr(address); err != nil {
			return err
		}
		fd, err := d.CreateAsyncNativeSocket(unix.AF_UNIX, st, 0, false)
		if err != nil {
			return err
		}
		g.ufd = fd
		g.conn = d.Connect(fd, address, 0, unix.AF_UNIX)
		g.conn.addCallback(callback{fn: g.settleUnix})
		return nil
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return net.UnknownNetworkError(network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return addrError("invalid port", address)
	}
	proto := unix.IPPROTO_TCP
	if network[0] == 'u' {
		proto = unix.IPPROTO_UDP
	}
	family := 0
	switch network[len(network)-1] {
	case '4':
		family = unix.AF_INET
	case '6':
		family = unix.AF_INET6
	}
	if host == "" {
		// The local system, as net dials it.
		host = "127.0.0.1"
		if family == unix.AF_INET6 {
			host = "::1"
		}
	}
	g.inner = d.dial(host, port, proto, family, 4)
	g.inner.addCallback(callback{fn: g.settle})
	return nil
}

// settle: the TCP or UDP dial finished.
func (g *netDial) settle() {
	fd, err := g.inner.Read()
	g.finish(fd, err)
}

// settleUnix: the Unix connect finished.
func (g *netDial) settleUnix() {
	_, err := g.conn.Read()
	if err != nil && !g.ufdClosed {
		g.d.CloseSocket(g.ufd)
		g.ufdClosed = true
	}
	g.finish(g.ufd, err)
}

func (g *netDial) finish(fd AsyncFD, err error) {
	if g.ctxf != nil {
		g.ctxf.Cancel()
	}
	switch {
	case g.fut.state != pending:
		// Cancelled, or the context ended, in the round the dial
		// connected: nobody takes the socket.
		if err == nil {
			g.d.CloseSocket(fd)
		}
	case err != nil:
		g.fut.tryFail(g.opErr(err))
	default:
		g.fut.tryComplete(fd)
	}
}

// ctxDone: the context ended (or the watch was cancelled).
func (g *netDial) ctxDone(cf *Future[Void]) {
	err := cf.errOrNil()
	if err == nil || isCancel(err) || g.fut.state != pending {
		return
	}
	g.stop()
	g.fut.tryFail(g.opErr(err))
}

// DialConn connects to address on network (see DialContext) and returns
// a net.Conn view of the socket. It must be called from the async
// procedure running on co, which it suspends until the connection is
// made; cancelling the procedure cancels the dial.
func DialConn(co *Coro, network, address string) (*Conn, error) {
	if err := co.running(); err != nil {
		return nil, err
	}
	fd, err := Await(co, co.d.DialContext(context.Background(), network, address))
	if err != nil {
		return nil, err
	}
	c, err := co.d.Conn(fd)
	if err != nil {
		co.d.CloseSocket(fd)
		return nil, err
	}
	return c, nil
}
