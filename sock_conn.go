package asyncdispatch

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
)

// The net.Conn view of a loop socket.
//
// A *Conn is a net.Conn over a socket registered with a dispatcher, so
// that code written for Go's io — bufio, crypto/tls, encoding/json,
// net/http's ReadRequest and Response.Write — runs unmodified inside an
// async procedure: its Read and Write suspend the procedure (a coroutine
// switch, co.RecvInto and co.Send underneath) and the loop goes on
// serving every other connection. No goroutine per connection.
//
// What must stay true:
//   - Read and Write behave as net's do: Write writes everything or
//     returns an error; Read of an empty buffer returns 0, nil without a
//     system call; io.EOF at the end of a stream; a reset is an error
//     (ECONNRESET, never hidden as SafeDisconn would), a write never
//     raises SIGPIPE; every other error is a *net.OpError with the view's
//     addresses, as net wraps its own;
//   - after Close (from anywhere) every Read and Write fails with an
//     error matching net.ErrClosed, and a Read or Write suspended at the
//     time fails with it too; Close twice returns an error. The view
//     checks before every operation that its descriptor is still the
//     registration it was made for, so a socket closed behind its back
//     (CloseSocket) reads as closed, never as the next socket to get the
//     same number;
//   - deadlines (sock_conn_deadline.go) never lose data: a receive that
//     completed is delivered even if its deadline fired in the same round;
//   - on the procedure's path, Read and Write allocate nothing in steady
//     state: they use the coroutine's reusable operation (sock_coro.go).
//
// Who may call what is in sock_conn_caller.go: the running procedure
// directly, other goroutines through the door, a loop outside a procedure
// not at all (an error).

// Conn is a net.Conn view of a stream or connected datagram socket
// registered with a dispatcher (see Dispatcher.Conn). Its methods may be
// called from the async procedures of its dispatcher — Read and Write
// suspend the procedure — and from any goroutine that does not run a loop,
// which they block while the loop does the I/O. Read, Write and Accept
// called on a loop outside an async procedure (in a callback) fail with an
// error matching ErrNotAsync: they would block the loop.
type Conn struct {
	d *Dispatcher
	// s is the registration the view was made for (checked before every
	// operation: see alive).
	s  *fdState
	fd AsyncFD
	// stream: SOCK_STREAM (an empty read is end of file); otherwise a
	// datagram socket, where an empty datagram is just that.
	stream  bool
	network string
	laddr   net.Addr
	raddr   net.Addr
	// closing: Close was called, on whatever goroutine; every later use
	// fails at once, even before the loop has closed the socket.
	closing atomic.Bool
	// rd and wd are the read and write deadlines (loop side).
	rd, wd connDeadline
}

// Conn returns a net.Conn view of the socket fd, which must be registered
// with d (a socket made by Listen, Dial, DialContext, Accept,
// CreateAsyncNativeSocket, or registered with Register). The view owns the
// socket from then on: its Close closes it. It must be called on d's
// goroutine (an async procedure or a callback). An fd that is not
// registered fails with ErrNotRegistered; one that is not a socket with an
// error matching syscall.ENOTSOCK.
//
// A TCP socket gets TCP_NODELAY, as net gives every TCP connection (see
// SetNoDelay). Make one view per socket: two views of one socket share it
// but not their deadlines.
func (d *Dispatcher) Conn(fd AsyncFD) (*Conn, error) {
	s, err := d.sockFD(fd)
	if err != nil {
		return nil, err
	}
	c := &Conn{d: d, s: s, fd: fd}
	if err := c.describe(); err != nil {
		return nil, err
	}
	return c, nil
}

// describe fills in the network and the addresses of c's socket.
func (c *Conn) describe() error {
	fd := int(c.fd)
	st, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	c.stream = st == unix.SOCK_STREAM
	c.network = networkOf(dom, st)
	if c.network == "tcp" {
		// As net does for every TCP connection: small writes (a TLS
		// record, a response header) go out at once instead of waiting
		// for the peer's delayed ACK (Nagle's algorithm: 40 ms stalls).
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	var rsa unix.RawSockaddrAny
	if alen, err := sockaddr.Getsockname(fd, &rsa); err == nil {
		c.laddr = netAddr(c.network, &rsa, alen)
	} else {
		c.laddr = netAddr(c.network, nil, 0)
	}
	if alen, err := sockaddr.Getpeername(fd, &rsa); err == nil {
		c.raddr = netAddr(c.network, &rsa, alen)
	}
	return nil
}

// networkOf names a socket's network as net does.
func networkOf(domain, sockType int) string {
	if domain == unix.AF_UNIX {
		switch sockType {
		case unix.SOCK_DGRAM:
			return "unixgram"
		case unix.SOCK_SEQPACKET:
			return "unixpacket"
		}
		return "unix"
	}
	if sockType == unix.SOCK_DGRAM {
		return "udp"
	}
	return "tcp"
}

// netAddr converts a raw socket address to net's type for network
// (*net.TCPAddr, *net.UDPAddr, *net.UnixAddr). An IPv4-mapped address of
// a dual-stack socket is shown as IPv4, as net shows it. A nil rsa gives
// the zero address of the network's type.
func netAddr(network string, rsa *unix.RawSockaddrAny, alen uint32) net.Addr {
	var ap netip.AddrPort
	var path string
	if rsa != nil {
		ap, path, _ = sockaddr.Decode(rsa, alen)
	}
	switch network {
	case "tcp":
		if !ap.IsValid() {
			return &net.TCPAddr{}
		}
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	case "udp":
		if !ap.IsValid() {
			return &net.UDPAddr{}
		}
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return &net.UnixAddr{Name: path, Net: network}
}

// LocalAddr returns the socket's local address (*net.TCPAddr,
// *net.UDPAddr or *net.UnixAddr), as it was when the view was made.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's address, as it was when the view was
// made; nil for a datagram socket that was not connected.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetNoDelay turns Nagle's algorithm off (true, the default of a view,
// as net's) or on for a TCP socket, as *net.TCPConn's does. It may be
// called from any goroutine.
func (c *Conn) SetNoDelay(noDelay bool) error {
	if c.closing.Load() {
		return &net.OpError{Op: "set", Net: c.network, Source: c.laddr, Addr: c.raddr, Err: net.ErrClosed}
	}
	v := 0
	if noDelay {
		v = 1
	}
	if err := unix.SetsockoptInt(int(c.fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, v); err != nil {
		return &net.OpError{Op: "set", Net: c.network, Source: c.laddr, Addr: c.raddr, Err: os.NewSyscallError("setsockopt", err)}
	}
	return nil
}

// FD returns the socket.
func (c *Conn) FD() AsyncFD { return c.fd }

// Dispatcher returns the dispatcher the socket is registered with.
func (c *Conn) Dispatcher() *Dispatcher { return c.d }

// Read reads up to len(p) bytes (see the type's documentation for who may
// call it). It returns io.EOF at the end of a stream, and an error
// matching os.ErrDeadlineExceeded when the read deadline has passed.
func (c *Conn) Read(p []byte) (int, error) {
	if c.closing.Load() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	co, err := c.d.blockingCaller()
	switch {
	case co != nil:
		return c.read(co, p)
	case err != nil:
		return 0, c.opErr("read", err)
	}
	return door(c.d, func(co *Coro) (int, error) { return c.read(co, p) })
}

// Write writes all of p or returns an error saying why not, with the
// number of bytes written before it (see the type's documentation for who
// may call it).
func (c *Conn) Write(p []byte) (int, error) {
	if c.closing.Load() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	co, err := c.d.blockingCaller()
	switch {
	case co != nil:
		return c.write(co, p)
	case err != nil:
		return 0, c.opErr("write", err)
	}
	return door(c.d, func(co *Coro) (int, error) { return c.write(co, p) })
}

// alive reports whether the view may still use its socket: it was not
// closed, and its descriptor is still the registration it was made for.
func (c *Conn) alive() bool {
	return !c.closing.Load() && c.d.lookup(c.fd) == c.s
}

// read is Read on the loop, in the procedure running on co.
func (c *Conn) read(co *Coro, p []byte) (int, error) {
	if !c.alive() {
		return 0, c.opErr("read", c.goneErr())
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.rd.expired {
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	op := co.use(nameRecvInto, c.fd, poller.Read, 2)
	op.buf = p
	n, err := c.rd.await(co, op)
	op.buf = nil
	switch {
	case err != nil:
		return 0, c.ioErr("read", err)
	case n == 0 && c.stream:
		return 0, io.EOF
	}
	return n, nil
}

// write is Write on the loop, in the procedure running on co.
func (c *Conn) write(co *Coro, p []byte) (int, error) {
	if !c.alive() {
		return 0, c.opErr("write", c.goneErr())
	}
	if c.wd.expired {
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	if len(p) == 0 {
		return 0, nil
	}
	op := co.use(nameSend, c.fd, poller.Write, 2)
	op.buf = p
	_, err := c.wd.await(co, op)
	// What is left of p: all of it sent but for a deadline, which stops
	// the send where it was (a failed send forgets how far it got).
	left := len(p)
	switch {
	case err == nil:
		left = 0
	case err == errDeadlineOp:
		left = len(op.buf)
	}
	op.buf = nil
	if err != nil {
		return len(p) - left, c.ioErr("write", err)
	}
	return len(p), nil
}

// goneErr is why a view that is not alive cannot be used.
func (c *Conn) goneErr() error {
	if c.d.closed {
		return errDoorClosed
	}
	return net.ErrClosed
}

// ioErr wraps the error of an operation of the view as net would.
func (c *Conn) ioErr(op string, err error) error {
	switch {
	case err == errDeadlineOp:
		err = os.ErrDeadlineExceeded
	case err == ErrClosedSocket:
		err = net.ErrClosed
	case err == ErrClosed:
		err = errDoorClosed
	}
	return c.opErr(op, err)
}

func (c *Conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// Close closes the socket. A Read or Write suspended or waiting in it
// fails with an error matching net.ErrClosed, and so does every later
// one; a second Close returns such an error. From the async procedure it
// closes the socket at once; from anywhere else the loop closes it in its
// next round (after the dispatcher was closed there is nothing left to
// close: the dispatcher closed the sockets it owned).
func (c *Conn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return &net.OpError{Op: "close", Net: c.network, Source: c.laddr, Addr: c.raddr, Err: net.ErrClosed}
	}
	if c.d.procCaller() != nil {
		return c.closeOnLoop()
	}
	c.d.post(func() { c.closeOnLoop() })
	return nil
}

func (c *Conn) closeOnLoop() error {
	c.rd.stop()
	c.wd.stop()
	if c.d.lookup(c.fd) != c.s {
		return nil // closed behind the view's back, or by Close of d
	}
	if err := c.d.CloseSocket(c.fd); err != nil {
		return c.opErr("close", err)
	}
	return nil
}

// CloseWrite shuts down the writing side of a stream socket (the peer
// reads end of file), as *net.TCPConn's does; net/http uses it.
func (c *Conn) CloseWrite() error { return c.shutdown("close", unix.SHUT_WR) }

// CloseRead shuts down the reading side of a stream socket.
func (c *Conn) CloseRead() error { return c.shutdown("close", unix.SHUT_RD) }

// shutdown may be called from anywhere: shutdown(2) touches no loop state,
// and a Read or Write waiting on the loop sees its effect as readiness.
func (c *Conn) shutdown(op string, how int) error {
	if c.closing.Load() {
		return c.opErr(op, net.ErrClosed)
	}
	if err := unix.Shutdown(int(c.fd), how); err != nil {
		return c.opErr(op, os.NewSyscallError("shutdown", err))
	}
	return nil
}

// SetDeadline sets the read and write deadlines (see SetReadDeadline).
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadline(t, true, true) }

// SetReadDeadline sets the time after which a pending or later Read fails
// with an error matching os.ErrDeadlineExceeded (a *net.OpError whose
// Timeout is true), as net's does: a time in the past fails them at once,
// a later time (or the zero time, no deadline) lets them work again, and
// a change applies to a Read that is waiting already. A read that had
// completed when its deadline fired returns its bytes. The deadline is a
// timer on the loop, one per direction, made once and reused.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline is SetReadDeadline for Write. A write stopped by its
// deadline returns the number of bytes it had written.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c *Conn) setDeadline(t time.Time, r, w bool) error {
	if c.closing.Load() {
		return &net.OpError{Op: "set", Net: c.network, Addr: c.laddr, Err: net.ErrClosed}
	}
	if c.d.procCaller() != nil {
		c.applyDeadline(t, r, w)
		return nil
	}
	if !c.d.post(func() { c.applyDeadline(t, r, w) }) {
		return &net.OpError{Op: "set", Net: c.network, Addr: c.laddr, Err: errDoorClosed}
	}
	return nil
}

// applyDeadline is the deadline setters' part on the loop.
func (c *Conn) applyDeadline(t time.Time, r, w bool) {
	if !c.alive() {
		return
	}
	if r {
		c.rd.set(c.d, t)
	}
	if w {
		c.wd.set(c.d, t)
	}
}

var _ net.Conn = (*Conn)(nil)
