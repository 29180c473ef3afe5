package asyncdispatch

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
	"github.com/asyncdispatch/asyncdispatch/internal/sys"
)

// ConnectError is the error of a failed connection attempt of Connect or
// Dial: the address tried ("127.0.0.1:80", "[::1]:80", a Unix path) and
// why, usually an *os.SyscallError with the errno (errors.Is(err,
// syscall.ECONNREFUSED) works through it).
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string { return "connect " + e.Addr + ": " + e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// connectOp is a pending Connect: resolving, then trying the addresses
// one by one on the same socket.
type connectOp struct {
	futureOp[Void]
	domain int
	port   int
	addrs  []netip.Addr
	next   int
	cur    string // the address being tried, for its error
	res    *resolution
	queued bool // on the fd's write list
	// lastErr is the error of the last attempt, returned when every
	// address has failed.
	lastErr error
}

func (op *connectOp) cancel() bool {
	op.res.stop()
	op.res = nil
	if op.queued {
		op.futureOp.cancel()
		op.queued = false
	}
	return true
}

func (op *connectOp) abort(err error) {
	op.queued = false
	op.fail(err)
}

// ready: the socket became writable, the attempt in progress is over.
func (op *connectOp) ready(s *fdState) bool {
	switch err := connectResult(AsyncFD(s.fd)); err {
	case errConnecting:
		return false
	case nil:
		op.queued = false
		op.complete(Void{})
		return true
	default:
		op.lastErr = &ConnectError{Addr: op.cur, Err: err}
	}
	if op.tryNext() {
		return false
	}
	op.queued = false
	return true
}

// errConnecting: connectResult found the connection still in progress.
var errConnecting = errors.New("asyncdispatch: still connecting")

// connectResult reads the outcome of a non-blocking connect on a writable
// socket (as Go's netFD.connect does).
func connectResult(fd AsyncFD) error {
	nerr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	switch e := unix.Errno(nerr); e {
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		return errConnecting
	case unix.EISCONN:
		return nil
	case 0:
		// Writable with no error: connected, unless the socket is not
		// connecting at all (then waiting again would spin on a
		// level-triggered hang-up).
		if _, err := unix.Getpeername(int(fd)); err != nil {
			return os.NewSyscallError("connect", unix.ENOTCONN)
		}
		return nil
	default:
		return os.NewSyscallError("connect", e)
	}
}

// startConnect begins a non-blocking connect. It returns nil when
// connected, errConnecting when in progress, or the attempt's error.
func startConnect(fd AsyncFD, sa unix.Sockaddr) error {
	switch err := sys.Connect(int(fd), sa); err {
	case nil, unix.EISCONN:
		return nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		return errConnecting
	default:
		return os.NewSyscallError("connect", err)
	}
}

// tryNext starts connecting to the next address, skipping those that fail
// at once. It reports whether the op is waiting for writability; if not,
// the future is finished.
func (op *connectOp) tryNext() bool {
	for op.next < len(op.addrs) {
		ap := netip.AddrPortFrom(op.addrs[op.next], uint16(op.port))
		op.next++
		op.cur = ap.String()
		sa := sockaddr.Inet(ap)
		err := startConnect(op.fd, sa)
		if op.next > 1 && errors.Is(err, unix.ECONNABORTED) {
			// The socket still says "connecting" after the failed attempt
			// before: Linux answers the first connect after a failure with
			// ECONNABORTED and resets the socket; the second one connects.
			err = startConnect(op.fd, sa)
		}
		if op.waitFor(err) {
			return true
		}
		if op.fut.state != pending {
			return false
		}
	}
	op.fut.tryFail(op.lastErr)
	return false
}

// waitFor handles the outcome of startConnect: it reports whether the op
// now waits for writability; on success the future is completed, on
// failure lastErr is set.
func (op *connectOp) waitFor(err error) bool {
	switch err {
	case nil:
		op.fut.tryComplete(Void{})
		return false
	case errConnecting:
		if !op.queued {
			if err := op.fut.d.queueOp(op); err != nil {
				op.fut.tryFail(err)
				return false
			}
			op.queued = true
		}
		return true
	}
	op.lastErr = &ConnectError{Addr: op.cur, Err: err}
	return false
}

func (op *connectOp) resolved(addrs []netip.Addr, err error) {
	op.res = nil
	if op.fut.state != pending {
		return
	}
	if err != nil {
		op.fut.tryFail(err)
		return
	}
	for _, ip := range addrs {
		if familyOf(ip) == op.domain {
			op.addrs = append(op.addrs, ip)
		}
	}
	if len(op.addrs) == 0 {
		op.fut.tryFail(fmt.Errorf("%w: %q has no %s address", ErrNoAddress, op.cur, familyName(op.domain)))
		return
	}
	op.tryNext()
}

func familyName(domain int) string {
	switch domain {
	case unix.AF_INET:
		return "AF_INET"
	case unix.AF_INET6:
		return "AF_INET6"
	case unix.AF_UNIX:
		return "AF_UNIX"
	}
	return "family " + strconv.Itoa(domain)
}

// Connect connects the socket fd to address and port (Nim's connect).
// domain must be the socket's family (checked; a mismatch fails with an
// error matching syscall.EAFNOSUPPORT). For AF_UNIX, address is the
// socket path ("@name" for an abstract one) and port is ignored. Otherwise
// address is an IP literal or a name, resolved without blocking the loop;
// only the addresses of the socket's family are tried (an AF_INET6 socket
// does not try IPv4 addresses), in resolver order, one after the other on
// the same socket. When every attempt fails, the future fails with the
// last one's *ConnectError; when the name has no address of the family,
// with ErrNoAddress; when it cannot be resolved, with the resolver's
// error (a *net.DNSError).
//
// Cancelling the future stops the resolution or the attempt in progress;
// the socket is then in no defined state and should be closed.
func (d *Dispatcher) Connect(fd AsyncFD, address string, port int, domain int) *Future[Void] {
	op := &connectOp{domain: domain, port: port}
	op.opBase = opBase{fd: fd, dir: poller.Write, name: nameConnect}
	op.fut.init(d, op, 2)
	if _, err := d.sockFD(fd); err != nil {
		op.fut.tryFail(err)
		return &op.fut
	}
	got, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		op.fut.tryFail(os.NewSyscallError("getsockopt", err))
		return &op.fut
	}
	if got != domain {
		op.fut.tryFail(fmt.Errorf("asyncdispatch: Connect: socket %d is %s, not %s: %w",
			fd, familyName(got), familyName(domain), unix.EAFNOSUPPORT))
		return &op.fut
	}
	if domain == unix.AF_UNIX {
		sa, err := unixSockaddr(address)
		if err != nil {
			op.fut.tryFail(err)
			return &op.fut
		}
		op.cur = address
		op.waitFor(startConnect(fd, sa))
		if op.lastErr != nil {
			op.fut.tryFail(op.lastErr)
		}
		return &op.fut
	}
	if port < 0 || port > 65535 {
		op.fut.tryFail(fmt.Errorf("%w: port %d", ErrNoAddress, port))
		return &op.fut
	}
	op.cur = address
	op.res = d.resolve(address, op.resolved)
	return &op.fut
}
