package asyncdispatch

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
	"github.com/asyncdispatch/asyncdispatch/internal/sys"
)

// Sockets (Nim's asyncdispatch socket procedures), the contract of every
// operation in sock*.go:
//
//   - Try first. Recv, RecvInto, RecvFromInto, Send, SendTo and Accept
//     make the system call at once, as Go's internal/poll does (Nim never
//     does: it always waits for a poll first). Only on EAGAIN is the
//     operation queued on the descriptor; an operation that finishes at
//     once returns an already finished future (its callbacks and an Await
//     of it still never run inline). Order comes first, though: while an
//     operation of the same direction is queued on the descriptor (or its
//     list is being run), a new one does not try, it queues behind it, so
//     several outstanding sends — or receives, or accepts — on one
//     descriptor complete strictly in the order they were issued. One
//     exception saves a system call per message: a receive right after
//     one that read less than it asked for (or hit EAGAIN) finds the
//     socket most likely empty, so it waits for readiness instead of
//     trying (fdState.drained); the next read event lifts that.
//   - One allocation per operation: the op struct, which embeds its
//     future (Recv and RecvString allocate their buffer as well).
//   - An operation never fails with EAGAIN or EINTR; errors of the system
//     are *os.SyscallError values carrying the errno (errors.Is(err,
//     syscall.ECONNRESET) works).
//   - Every pending operation can be cancelled (Future.Cancel): it leaves
//     its descriptor's wait list, so no interest lingers, and it does no
//     I/O after that, whatever the order of callbacks and cancellations
//     (sock_op.go). An operation that completed before the Cancel keeps
//     its result (Cancel reports false).
//   - CloseSocket fails the pending operations with ErrClosedSocket while
//     the descriptor is still open, then closes it: nothing touches an fd
//     number after it was released for reuse (Nim #12652).

// SocketFlag is a set of socket operation flags (Nim's set[SocketFlag]).
type SocketFlag uint8

const (
	// SafeDisconn hides the disconnection errors ECONNRESET, EPIPE and
	// ENETRESET, exactly those (Nim's isDisconnectionError): a receive
	// gets an empty result, as at end of file, and a send completes
	// successfully, dropping what was not written; accept retries.
	SafeDisconn SocketFlag = 1 << iota
	// Peek receives without consuming (MSG_PEEK).
	Peek
)

// DefaultFlags is Nim's default flag set, {SafeDisconn}.
const DefaultFlags = SafeDisconn

// osFlags is the MSG_* value of the flags of a receive.
func (f SocketFlag) osFlags() int {
	if f&Peek != 0 {
		return unix.MSG_PEEK
	}
	return 0
}

var (
	// ErrClosedSocket: the socket was closed by CloseSocket while the
	// operation was pending. errors.Is(err, net.ErrClosed) is true for it
	// as well.
	ErrClosedSocket error = &aliasError{"asyncdispatch: socket closed", net.ErrClosed}

	// ErrNilBuffer: a nil buffer was given to receive into.
	ErrNilBuffer = errors.New("asyncdispatch: nil buffer")

	// ErrNoAddress: the name resolved to no address that can be used (of
	// the socket's family, for Connect), or the address is not valid.
	ErrNoAddress = errors.New("asyncdispatch: no usable address")
)

// isDisconn reports whether err is one of the errors SafeDisconn hides.
func isDisconn(err error) bool {
	return err == unix.ECONNRESET || err == unix.EPIPE || err == unix.ENETRESET
}

// sockState is the socket layer's part of a Dispatcher (its sock field).
type sockState struct {
	// onAcceptErr reports an accept back-off episode; nil logs it.
	onAcceptErr func(listener AsyncFD, err error)
	// backoff holds the listeners in (or just out of) an EMFILE episode,
	// by registration (sock_accept.go).
	backoff map[*fdState]*acceptBackoff
	// acceptRetries counts accept attempts that hit descriptor exhaustion
	// (for tests: the loop must not spin).
	acceptRetries int
	// lookup replaces the resolver (tests); nil means net.DefaultResolver.
	lookup func(host string) ([]netip.Addr, error)
	// fallbackDelay replaces Dial's Happy Eyeballs delay (tests); 0 means
	// DialFallbackDelay.
	fallbackDelay time.Duration
	// runG is the goroutine (curG) of the async procedure running on the
	// loop now, 0 while none does. A coroutine sets it whenever it is
	// resumed (resumed); switchTo puts back the value from before the
	// switch when it returns. So it only ever holds a goroutine that is
	// alive, and holds the caller's own exactly when the caller is the
	// running procedure. The net.Conn view asks (sock_conn_caller.go); it
	// is atomic because any goroutine may.
	runG atomic.Uintptr
}

// resumed records that the calling coroutine runs now (coro.go calls it
// wherever a coroutine resumes).
func (s *sockState) resumed() { s.runG.Store(curG()) }

// sockFD returns the registration of fd for a socket operation, or the
// error the operation fails with.
func (d *Dispatcher) sockFD(fd AsyncFD) (*fdState, error) {
	d.checkOwner()
	if d.closed {
		return nil, ErrClosed
	}
	s := d.lookup(fd)
	if s == nil {
		return nil, fmt.Errorf("%w (fd %d)", ErrNotRegistered, fd)
	}
	return s, nil
}

// canTry reports whether a new operation in direction dir may make its
// system call at once: nothing may be queued before it.
func canTry(s *fdState, dir poller.Interest) bool {
	if s.busy {
		return false
	}
	if dir == poller.Read {
		return len(s.readers) == 0 && !s.drained
	}
	return len(s.writers) == 0
}

// failedFuture returns a future failed with err at once.
func failedFuture[T any](d *Dispatcher, name string, err error) *Future[T] {
	f := newNamed[T](d, name)
	f.tryFail(err)
	return f
}

// CreateAsyncNativeSocket creates a socket and registers it with the
// dispatcher with no interest, so it does not count as pending (Nim's
// createAsyncNativeSocket; Nim's defaults are AF_INET, SOCK_STREAM,
// IPPROTO_TCP, false). The socket is non-blocking, and close-on-exec unless
// inheritable. Unlike Nim, which returns -1, a failure is an error. The
// dispatcher owns the socket: its Close closes it.
func (d *Dispatcher) CreateAsyncNativeSocket(domain, sockType, protocol int, inheritable bool) (AsyncFD, error) {
	if d.closed {
		return InvalidFD, ErrClosed
	}
	flags := unix.SOCK_NONBLOCK
	if !inheritable {
		flags |= unix.SOCK_CLOEXEC
	}
	fd, err := sys.Socket(domain, sockType|flags, protocol)
	if err != nil {
		return InvalidFD, os.NewSyscallError("socket", err)
	}
	if _, err := d.register(AsyncFD(fd), true); err != nil {
		unix.Close(fd)
		return InvalidFD, err
	}
	return AsyncFD(fd), nil
}

// CloseSocket unregisters fd and closes it (Nim's closeSocket). Pending
// operations on it fail with ErrClosedSocket before the descriptor is
// closed, so nothing runs on an fd number that may already belong to
// someone else (Nim closes first: #12652). An fd that is not registered
// — never registered, unregistered, or closed already — is left alone and
// ErrNotRegistered is returned; closing twice is therefore an error, never
// a panic and never a close of someone else's descriptor. The error of
// close(2) itself is returned as an *os.SyscallError (close is not
// retried; the descriptor is released either way).
//
// A socket file of a Unix listener is not removed.
func (d *Dispatcher) CloseSocket(fd AsyncFD) error {
	s := d.lookup(fd)
	if s == nil {
		return fmt.Errorf("%w (fd %d)", ErrNotRegistered, fd)
	}
	d.unregister(s, ErrClosedSocket)
	d.stats.closed++
	d.forgetListener(s)
	var err error
	if s.closer != nil {
		s.closer()
	} else if e := unix.Close(s.fd); e != nil {
		err = os.NewSyscallError("close", e)
	}
	// A descriptor was freed: listeners backing off after EMFILE try
	// again now instead of at the end of their delay.
	d.wakeListeners()
	return err
}

// listenBacklog is passed to listen(2); the kernel caps it at
// net.core.somaxconn.
const listenBacklog = 65535

// Listen creates a socket of network bound to address, registered with the
// dispatcher and owned by it (a convenience Nim users get from asyncnet).
// network is "tcp", "tcp4", "tcp6" (address "host:port", with an IP
// literal, "localhost" or an empty host, port 0 for an ephemeral one; a
// stream socket with SO_REUSEADDR, listening), "udp", "udp4", "udp6"
// (bound only), "unix" (a listening stream socket at the path address) or
// "unixgram" (a bound datagram socket). An empty host means every
// address: for "tcp" and
// "udp" a dual-stack IPv6 socket (IPv4 clients appear IPv4-mapped in
// RecvFromInto and as IPv4 in AcceptAddr), for the "4"/"6" networks the
// IPv4 or IPv6 wildcard. "localhost" is the loopback address, 127.0.0.1
// (::1 for "tcp6" and "udp6"), as net.Listen picks it. Other host names
// are not resolved, since that could block the loop: ListenContext
// resolves them on a goroutine. The socket is non-blocking and
// close-on-exec.
//
// An invalid address (a bad port, a host name but "localhost", an
// address of the wrong family, a Unix path that is empty, too long or has
// a NUL byte but is not abstract) fails with
// an error matching ErrNoAddress that is also a *net.AddrError; an unknown
// network with a *net.OpError holding a net.UnknownNetworkError; a closed
// dispatcher with ErrClosed.
func (d *Dispatcher) Listen(network, address string) (AsyncFD, error) {
	if d.closed {
		return InvalidFD, ErrClosed
	}
	la, err := parseListenAddr(network, address)
	if err != nil {
		return InvalidFD, err
	}
	fd, err := d.bindListen(la.domain, la.sockType, la.proto, la.sa, la.listen, la.v6only)
	if err != nil && la.fallback4 && errors.Is(err, unix.EAFNOSUPPORT) {
		// No IPv6 on this machine: the IPv4 wildcard then.
		sa := sockaddr.Inet(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(la.port)))
		return d.bindListen(unix.AF_INET, la.sockType, la.proto, sa, la.listen, false)
	}
	return fd, err
}

// listenAddr is what Listen makes of its network and address.
type listenAddr struct {
	domain, sockType, proto int
	sa                      unix.Sockaddr
	port                    int
	// listen: a stream socket, to listen(2) on; v6only sets
	// IPV6_V6ONLY; fallback4: the IPv6 wildcard of "tcp" or "udp", to be
	// replaced by the IPv4 one where there is no IPv6.
	listen, v6only, fallback4 bool
}

// parseListenAddr checks and converts Listen's arguments without touching
// the system (it is fuzzed: FuzzListenAddr). Every error matches
// ErrNoAddress and is a *net.AddrError, but for an unknown network, a
// *net.OpError with a net.UnknownNetworkError.
func parseListenAddr(network, address string) (listenAddr, error) {
	switch network {
	case "unix", "unixgram":
		st := unix.SOCK_STREAM
		if network == "unixgram" {
			st = unix.SOCK_DGRAM
		}
		sa, err := unixSockaddr(address)
		if err != nil {
			return listenAddr{}, err
		}
		return listenAddr{domain: unix.AF_UNIX, sockType: st, sa: sa, listen: network == "unix"}, nil
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return listenAddr{}, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return listenAddr{}, fmt.Errorf("%w: %w", ErrNoAddress, ae)
		}
		return listenAddr{}, addrError("invalid address", address)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return listenAddr{}, addrError("invalid port", address)
	}
	la := listenAddr{sockType: unix.SOCK_DGRAM, proto: unix.IPPROTO_UDP, port: port}
	if network[0] == 't' {
		la.sockType, la.proto, la.listen = unix.SOCK_STREAM, unix.IPPROTO_TCP, true
	}
	last := network[len(network)-1]
	var ip netip.Addr
	switch {
	case host != "":
		ip, err = netip.ParseAddr(host)
		switch {
		case err == nil:
		case isLocalhost(host):
			// The loopback address, without asking a resolver (RFC 6761):
			// IPv4 first, as net.Listen picks it.
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			if last == '6' {
				ip = netip.IPv6Loopback()
			}
		default:
			return listenAddr{}, addrError("a host name (Listen resolves only \"localhost\"; ListenContext resolves any name without blocking the loop)", host)
		}
		if ip.Is4In6() {
			ip = ip.Unmap()
		}
		if (last == '4' && !ip.Is4()) || (last == '6' && ip.Is4()) {
			return listenAddr{}, addrError("address of the wrong family for "+network, host)
		}
	case last == '4':
		ip = netip.IPv4Unspecified()
	default:
		ip = netip.IPv6Unspecified()
		la.v6only = last == '6'
		la.fallback4 = last != '6'
	}
	la.domain = familyOf(ip)
	la.sa = sockaddr.Inet(netip.AddrPortFrom(ip, uint16(port)))
	return la, nil
}

// addrError is an invalid address: a *net.AddrError that also matches
// ErrNoAddress.
func addrError(why, addr string) error {
	return fmt.Errorf("%w: %w", ErrNoAddress, &net.AddrError{Err: why, Addr: addr})
}

func (d *Dispatcher) bindListen(domain, sockType, proto int, sa unix.Sockaddr, listen, v6only bool) (AsyncFD, error) {
	fd, err := d.CreateAsyncNativeSocket(domain, sockType, proto, false)
	if err != nil {
		return InvalidFD, err
	}
	fail := func(op string, err error) (AsyncFD, error) {
		d.CloseSocket(fd)
		return InvalidFD, os.NewSyscallError(op, err)
	}
	if domain == unix.AF_INET6 {
		v := 0
		if v6only {
			v = 1
		}
		if err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil {
			return fail("setsockopt", err)
		}
	}
	if listen && domain != unix.AF_UNIX {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if err := unix.Bind(int(fd), sa); err != nil {
		return fail("bind", err)
	}
	if listen {
		if err := unix.Listen(int(fd), listenBacklog); err != nil {
			return fail("listen", err)
		}
	}
	return fd, nil
}

func familyOf(ip netip.Addr) int {
	if ip.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// unixSockaddr checks a socket path; a leading '@' names an abstract
// socket (as in Go's net package).
func unixSockaddr(path string) (*unix.SockaddrUnix, error) {
	if !sockaddr.ValidUnixPath(path) {
		return nil, addrError("invalid Unix socket path", path)
	}
	return &unix.SockaddrUnix{Name: path}, nil
}

// GetLocalAddr returns the local address of a socket (Nim's
// nativesockets.getLocalAddr): the address string as AcceptAddr formats it
// ("127.0.0.1", "::1") and the port; for a Unix socket, its path (empty if
// unbound) and port 0.
func GetLocalAddr(fd AsyncFD) (address string, port int, err error) {
	var rsa unix.RawSockaddrAny
	alen, err := sockaddr.Getsockname(int(fd), &rsa)
	if err != nil {
		return "", 0, os.NewSyscallError("getsockname", err)
	}
	return hostPort(&rsa, alen)
}

// GetPeerAddr returns the address of a connected socket's peer (Nim's
// nativesockets.getPeerAddr), formatted as GetLocalAddr does.
func GetPeerAddr(fd AsyncFD) (address string, port int, err error) {
	var rsa unix.RawSockaddrAny
	alen, err := sockaddr.Getpeername(int(fd), &rsa)
	if err != nil {
		return "", 0, os.NewSyscallError("getpeername", err)
	}
	return hostPort(&rsa, alen)
}

func hostPort(rsa *unix.RawSockaddrAny, alen uint32) (string, int, error) {
	ap, path, err := sockaddr.Decode(rsa, alen)
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("asyncdispatch: %w %d", err, rsa.Addr.Family)
	case !ap.IsValid():
		return path, 0, nil
	}
	return sockaddr.Host(ap.Addr()), int(ap.Port()), nil
}

// bytesOf views s as bytes without copying, for operations that only read
// (sends); the bytes must never be written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// SetAcceptErrorHandler sets the function told when a listener starts
// backing off because the process or system ran out of descriptors
// (EMFILE, ENFILE, ENOBUFS, ENOMEM on accept): once per episode, from the
// loop, with the listener and the error. nil restores the default, which
// logs the condition with the log package. See AcceptAddr.
func (d *Dispatcher) SetAcceptErrorHandler(h func(listener AsyncFD, err error)) {
	d.sock.onAcceptErr = h
}

func (d *Dispatcher) reportAcceptError(listener AsyncFD, err error) {
	if h := d.sock.onAcceptErr; h != nil {
		h(listener, err)
		return
	}
	log.Printf("asyncdispatch: accept on fd %d: %v; backing off until descriptors are free", listener, err)
}
