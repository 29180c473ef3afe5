package asyncdispatch

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The net.Listener view of a listening socket: Accept returns *Conn
// views. Who may call it is as for Conn (sock_conn_caller.go): an async
// procedure of its dispatcher is suspended until a connection comes; any
// other goroutine that does not run a loop is blocked meanwhile (the
// door), so http.Serve(listener, handler) works with a goroutine per
// connection, each using its Conn through the door; on a loop outside a
// procedure Accept is an error.
//
// What must stay true: after Close every Accept fails with an error
// matching net.ErrClosed, one waiting at the time included; the listener
// checks before every accept that its descriptor is still the
// registration it was made for.

// Listener is a net.Listener view of a listening socket registered with a
// dispatcher (see Dispatcher.Listener).
type Listener struct {
	d       *Dispatcher
	s       *fdState
	fd      AsyncFD
	network string
	addr    net.Addr
	closing atomic.Bool
	// dl is the accept deadline (SetDeadline), as a Conn's read deadline.
	dl connDeadline
}

// Listener returns a net.Listener view of the listening socket fd, which
// must be registered with d (Listen makes one). The view owns the socket:
// its Close closes it (a Unix socket's file is not removed). It must be
// called on d's goroutine. An fd that is not registered fails with
// ErrNotRegistered; a socket that is not listening with an error matching
// syscall.EINVAL.
func (d *Dispatcher) Listener(fd AsyncFD) (*Listener, error) {
	c, err := d.Conn(fd) // the same checks and addresses
	if err != nil {
		return nil, err
	}
	if on, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
		return nil, fmt.Errorf("asyncdispatch: Listener: fd %d is not a listening socket: %w", fd, unix.EINVAL)
	}
	return &Listener{d: d, s: c.s, fd: fd, network: c.network, addr: c.laddr}, nil
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// FD returns the listening socket.
func (l *Listener) FD() AsyncFD { return l.fd }

// Accept waits for the next connection and returns its view, a *Conn
// registered with the listener's dispatcher.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept returning the *Conn.
func (l *Listener) AcceptConn() (*Conn, error) {
	if l.closing.Load() {
		return nil, l.opErr(net.ErrClosed)
	}
	co, err := l.d.blockingCaller()
	switch {
	case co != nil:
		return l.accept(co)
	case err != nil:
		return nil, l.opErr(err)
	}
	return door(l.d, l.accept)
}

func (l *Listener) accept(co *Coro) (*Conn, error) {
	if l.closing.Load() || l.d.lookup(l.fd) != l.s {
		if l.d.closed {
			return nil, l.opErr(errDoorClosed)
		}
		return nil, l.opErr(net.ErrClosed)
	}
	if l.dl.expired {
		return nil, l.opErr(os.ErrDeadlineExceeded)
	}
	fd, err := l.dl.awaitAccept(co, l.d.Accept(l.fd, 0, false))
	if err != nil {
		switch err {
		case errDeadlineOp:
			err = os.ErrDeadlineExceeded
		case ErrClosedSocket:
			err = net.ErrClosed
		case ErrClosed:
			err = errDoorClosed
		}
		return nil, l.opErr(err)
	}
	c, err := l.d.Conn(fd)
	if err != nil {
		l.d.CloseSocket(fd)
		return nil, l.opErr(err)
	}
	return c, nil
}

func (l *Listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: l.network, Addr: l.addr, Err: err}
}

// Close closes the listening socket; an Accept waiting in it fails with an
// error matching net.ErrClosed, and so does every later one. From an async
// procedure it closes the socket at once, from anywhere else in the loop's
// next round (as Conn.Close).
func (l *Listener) Close() error {
	if !l.closing.CompareAndSwap(false, true) {
		return &net.OpError{Op: "close", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	if l.d.procCaller() != nil {
		return l.closeOnLoop()
	}
	l.d.post(func() { l.closeOnLoop() })
	return nil
}

func (l *Listener) closeOnLoop() error {
	l.dl.stop()
	if l.d.lookup(l.fd) != l.s {
		return nil
	}
	if err := l.d.CloseSocket(l.fd); err != nil {
		return &net.OpError{Op: "close", Net: l.network, Addr: l.addr, Err: err}
	}
	return nil
}

// SetDeadline sets the time after which a waiting or later Accept fails
// with an error matching os.ErrDeadlineExceeded (as *net.TCPListener's);
// the zero time removes it. A connection accepted before the deadline
// fired is returned.
func (l *Listener) SetDeadline(t time.Time) error {
	if l.closing.Load() {
		return &net.OpError{Op: "set", Net: l.network, Addr: l.addr, Err: net.ErrClosed}
	}
	if l.d.procCaller() != nil {
		l.setDeadline(t)
		return nil
	}
	if !l.d.post(func() { l.setDeadline(t) }) {
		return &net.OpError{Op: "set", Net: l.network, Addr: l.addr, Err: errDoorClosed}
	}
	return nil
}

func (l *Listener) setDeadline(t time.Time) {
	if !l.closing.Load() && l.d.lookup(l.fd) == l.s {
		l.dl.set(l.d, t)
	}
}

var _ net.Listener = (*Listener)(nil)
