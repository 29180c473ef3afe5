package asyncdispatch

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
)

// DialFallbackDelay is how long Dial lets a connection attempt run alone
// before it starts the next one alongside (RFC 8305's Connection Attempt
// Delay, whose recommended value this is).
const DialFallbackDelay = 250 * time.Millisecond

// Dial is Happy Eyeballs (RFC 8305), where Nim tries the addresses one
// after the other and so waits out a dead IPv6 address (a full TCP
// timeout) before it tries IPv4. What must stay true:
//   - the attempt order is the resolver's order with the families
//     interleaved (first address family count 1): the first address's
//     family, then the other, then the first...;
//   - the next attempt starts when the previous one fails or when it has
//     run for DialFallbackDelay without finishing, whichever is first;
//     earlier attempts keep running;
//   - the first attempt to connect wins; every other one is stopped and
//     its socket closed; the winner is the only socket left registered;
//   - when every attempt has failed, the future fails with the error of
//     the last attempt in attempt order (Nim's "last attempt's error").
// The resolution itself asks for both families at once and waits for both
// (RFC 8305's separate AAAA/A queries and its Resolution Delay are not
// done).

// dialOp is a pending Dial.
type dialOp struct {
	fut      Future[AsyncFD]
	d        *Dispatcher
	address  string
	port     int
	sockType int
	protocol int
	// family, if not 0, is the only address family tried (AF_INET or
	// AF_INET6: DialContext's "tcp4", "udp6"...).
	family int
	// addrs are the addresses in attempt order; next is the next to try.
	addrs []netip.Addr
	next  int
	// running are the attempts in progress, in attempt order.
	running []*dialAttempt
	// lastErr is the error of the attempt lastIdx, the failed attempt
	// latest in attempt order.
	lastErr error
	lastIdx int
	// timer starts the next attempt after the fallback delay.
	timer *Timer
	res   *resolution
}

// dialAttempt is one connection attempt: a socket of its own, waiting for
// writability.
type dialAttempt struct {
	opBase
	op   *dialOp
	idx  int
	addr netip.AddrPort
	// done: the attempt is over (it failed, won or was stopped); a late
	// abort or readiness is ignored.
	done bool
}

func (a *dialAttempt) ready(s *fdState) bool {
	if a.done {
		return true
	}
	err := connectResult(AsyncFD(s.fd))
	switch err {
	case errConnecting:
		return false
	case nil:
		a.op.win(a)
	default:
		a.op.lost(a, &ConnectError{Addr: a.addr.String(), Err: err})
	}
	return true
}

// abort: the socket was closed or unregistered under the attempt (by
// Close of the dispatcher, or by someone who guessed its number).
func (a *dialAttempt) abort(err error) {
	if a.done {
		return
	}
	op := a.op
	if op.d.closed {
		a.done = true
		op.stopAll()
		op.fut.tryFail(err)
		return
	}
	op.lost(a, &ConnectError{Addr: a.addr.String(), Err: err})
}

func (op *dialOp) procName() string { return "Dial" }

func (op *dialOp) cancel() bool {
	op.res.stop()
	op.res = nil
	op.stopAll()
	return true
}

// stopAll stops the fallback timer and every running attempt.
func (op *dialOp) stopAll() {
	if op.timer != nil {
		op.timer.Stop()
		op.timer = nil
	}
	running := op.running
	op.running = nil
	for _, a := range running {
		if !a.done {
			a.done = true
			if !op.d.closed {
				op.d.CloseSocket(a.fd)
			}
		}
	}
}

func (op *dialOp) win(a *dialAttempt) {
	a.done = true
	op.running = slices.DeleteFunc(op.running, func(x *dialAttempt) bool { return x == a })
	op.stopAll()
	op.fut.tryComplete(a.fd)
}

// lost ends a failed attempt and moves on.
func (op *dialOp) lost(a *dialAttempt, err error) {
	a.done = true
	op.running = slices.DeleteFunc(op.running, func(x *dialAttempt) bool { return x == a })
	if op.d.lookup(a.fd) != nil {
		op.d.CloseSocket(a.fd)
	}
	op.record(a.idx, err)
	op.startNext()
}

func (op *dialOp) record(idx int, err error) {
	if op.lastErr == nil || idx >= op.lastIdx {
		op.lastErr, op.lastIdx = err, idx
	}
}

func (op *dialOp) resolved(addrs []netip.Addr, err error) {
	op.res = nil
	if op.fut.state != pending {
		return
	}
	if err != nil {
		op.fut.tryFail(err)
		return
	}
	if op.family != 0 {
		var kept []netip.Addr
		for _, ip := range addrs {
			if ip = ip.Unmap(); familyOf(ip) == op.family {
				kept = append(kept, ip)
			}
		}
		addrs = kept
	}
	op.addrs = interleave(addrs)
	if len(op.addrs) == 0 {
		if op.family != 0 {
			op.fut.tryFail(fmt.Errorf("%w: %q has no %s address", ErrNoAddress, op.address, familyName(op.family)))
			return
		}
		op.fut.tryFail(fmt.Errorf("%w: %q resolved to nothing", ErrNoAddress, op.address))
		return
	}
	op.startNext()
}

// interleave orders addresses for Happy Eyeballs: resolver order within
// each family, families alternating, the first address's family first.
func interleave(addrs []netip.Addr) []netip.Addr {
	var first, other []netip.Addr
	for _, ip := range addrs {
		if !ip.IsValid() {
			continue
		}
		if len(first) == 0 || ip.Is4() == first[0].Is4() {
			first = append(first, ip)
		} else {
			other = append(other, ip)
		}
	}
	out := make([]netip.Addr, 0, len(first)+len(other))
	for i := 0; i < len(first) || i < len(other); i++ {
		if i < len(first) {
			out = append(out, first[i])
		}
		if i < len(other) {
			out = append(out, other[i])
		}
	}
	return out
}

// startNext starts the next attempt (and those after it that fail at
// once). When there is none left and nothing runs, the future fails.
func (op *dialOp) startNext() {
	if op.fut.state != pending {
		return
	}
	if op.timer != nil {
		op.timer.Stop()
		op.timer = nil
	}
	d := op.d
	for op.next < len(op.addrs) {
		idx := op.next
		op.next++
		ap := netip.AddrPortFrom(op.addrs[idx], uint16(op.port))
		fd, err := d.CreateAsyncNativeSocket(familyOf(ap.Addr()), op.sockType, op.protocol, false)
		if err != nil {
			op.record(idx, &ConnectError{Addr: ap.String(), Err: err})
			continue
		}
		switch err := startConnect(fd, sockaddr.Inet(ap)); err {
		case nil:
			op.win(&dialAttempt{opBase: opBase{fd: fd}, op: op, idx: idx, addr: ap})
			return
		case errConnecting:
			a := &dialAttempt{op: op, idx: idx, addr: ap}
			a.opBase = opBase{fd: fd, dir: poller.Write, name: nameDialAttempt}
			if err := d.queueOp(a); err != nil {
				d.CloseSocket(fd)
				op.record(idx, &ConnectError{Addr: ap.String(), Err: err})
				continue
			}
			op.running = append(op.running, a)
			if op.next < len(op.addrs) {
				op.timer, _ = d.AddTimer(op.fallbackDelay(), true, func(AsyncFD) bool {
					op.timer = nil
					op.startNext()
					return true
				})
			}
			return
		default:
			d.CloseSocket(fd)
			op.record(idx, &ConnectError{Addr: ap.String(), Err: err})
		}
	}
	if len(op.running) == 0 {
		op.fut.tryFail(op.lastErr)
	}
}

func (op *dialOp) fallbackDelay() time.Duration {
	if d := op.d.sock.fallbackDelay; d > 0 {
		return d
	}
	return DialFallbackDelay
}

// sockTypeOf maps a protocol to its socket type as Nim's toSockType does.
func sockTypeOf(protocol int) int {
	switch protocol {
	case unix.IPPROTO_TCP:
		return unix.SOCK_STREAM
	case unix.IPPROTO_UDP:
		return unix.SOCK_DGRAM
	}
	return unix.SOCK_RAW
}

// Dial resolves address (an IP literal or a name, without blocking the
// loop), connects a new socket to one of its addresses and completes with
// that socket, registered with the dispatcher and owned by it (Nim's dial;
// Nim's default protocol is IPPROTO_TCP, UDP gives a connected datagram
// socket). It tries every address, IPv6 and IPv4, with Happy Eyeballs
// (RFC 8305): in resolver order with the families interleaved, starting
// the next attempt as soon as the previous one fails or after
// DialFallbackDelay (250 ms) without an answer, so a dead IPv6 address
// costs a quarter second instead of a TCP timeout. The first connection
// wins and the other attempts are closed. When every attempt fails the
// future fails with the last attempt's *ConnectError (errors.Is(err,
// syscall.ECONNREFUSED) works through it); when the name cannot be
// resolved, with the resolver's error. Cancelling the future stops
// everything and closes every socket it made.
func (d *Dispatcher) Dial(address string, port int, protocol int) *Future[AsyncFD] {
	return d.dial(address, port, protocol, 0, 3)
}

// dial is Dial restricted to family (0: any); skip is for tracking.
func (d *Dispatcher) dial(address string, port, protocol, family, skip int) *Future[AsyncFD] {
	op := &dialOp{d: d, address: address, port: port, protocol: protocol, sockType: sockTypeOf(protocol), family: family}
	op.fut.init(d, op, skip)
	if d.closed {
		op.fut.tryFail(ErrClosed)
		return &op.fut
	}
	if port < 0 || port > 65535 {
		op.fut.tryFail(fmt.Errorf("%w: port %d", ErrNoAddress, port))
		return &op.fut
	}
	op.res = d.resolve(address, op.resolved)
	return &op.fut
}
