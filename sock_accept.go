package asyncdispatch

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
)

// Accepting, and surviving descriptor exhaustion.
//
// When accept4 fails with EMFILE (or ENFILE, ENOBUFS, ENOMEM) the
// connection stays in the listen backlog and the listener stays readable,
// so a loop that simply fails or retries spins at 100% CPU (Nim does;
// gnet, evio and nbio do the same). Here such an error neither fails the
// accept nor retries at once. What must stay true during an episode:
//   - the pending accepts stay queued, in order, on the listener (so they
//     still count as pending, CloseSocket and Unregister still abort them,
//     Cancel still removes them), but the listener's read interest is
//     disarmed: the loop sleeps;
//   - a one-shot timer re-arms it after a back-off delay, 10 ms doubling
//     up to 1 s; an accept that succeeds resets the delay;
//   - CloseSocket on the dispatcher frees a descriptor, so it re-arms
//     every backing-off listener at once (one accept4 each, no spinning:
//     a failure starts the next, longer delay);
//   - the episode is reported once (SetAcceptErrorHandler; the default
//     logs), from the callback queue; it ends when the backlog has been
//     drained (accept4 says EAGAIN), so a server that keeps hitting the
//     limit under churn is not reported again and again.

// Accept back-off bounds.
const (
	acceptBackoffMin = 10 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptBackoff is one listener's exhaustion episode.
type acceptBackoff struct {
	s *fdState
	// delay is the last back-off delay, 0 after a successful accept.
	delay time.Duration
	// timer is set while the listener is parked (read interest
	// disarmed); it re-arms the listener.
	timer *Timer
}

func (bo *acceptBackoff) parked() bool { return bo.timer != nil }

// isExhaustion reports the accept errors that mean "no descriptor or
// memory for the new connection right now".
func isExhaustion(err error) bool {
	return err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM
}

// AcceptResult is a connection accepted by AcceptAddr.
type AcceptResult struct {
	// Address is the peer's address without the port, as Nim formats it:
	// "127.0.0.1", "::1", an IPv4-mapped peer of a dual-stack listener as
	// plain IPv4 ("127.0.0.1"), and "unix" for an AF_UNIX peer.
	Address string
	// Client is the connected socket, registered with the dispatcher (and
	// owned by it), non-blocking, close-on-exec unless inheritable.
	Client AsyncFD
}

// acceptOp is a pending Accept (T is AsyncFD) or AcceptAddr (T is
// AcceptResult); the peer's address is received into the operation.
type acceptOp[T any] struct {
	futureOp[T]
	// s is the listener's registration when the accept started.
	s           *fdState
	inheritable bool
	alen        uint32
	rsa         unix.RawSockaddrAny
	// result makes the future's value of the new connection; rsa is nil
	// for Accept, which does not ask for the address. An error closes the
	// connection and fails the accept.
	result func(client AsyncFD, rsa *unix.RawSockaddrAny) (T, error)
}

func (op *acceptOp[T]) ready(*fdState) bool {
	var rsa *unix.RawSockaddrAny
	var alen *uint32
	if op.name == nameAcceptAddr {
		rsa, alen = &op.rsa, &op.alen
	}
	client, again, err := op.fut.d.acceptOne(&op.opBase, op.s, op.inheritable, rsa, alen)
	if again {
		return false
	}
	if err != nil {
		op.fail(err)
		return true
	}
	v, err := op.result(client, rsa)
	if err != nil {
		op.fut.d.CloseSocket(client)
		op.fail(err)
		return true
	}
	op.complete(v)
	return true
}

// cancel leaves the listener's list, and stops a back-off timer nobody
// waits for any more.
func (op *acceptOp[T]) cancel() bool {
	op.futureOp.cancel()
	if bo := op.fut.d.sock.backoff[op.s]; bo != nil && bo.parked() && len(op.s.readers) == 0 {
		bo.timer.Stop()
		bo.timer = nil
	}
	return true
}

// abort: the listener was unregistered or closed.
func (op *acceptOp[T]) abort(err error) {
	op.fail(err)
	if d := op.fut.d; d.lookup(op.fd) != op.s {
		d.forgetListener(op.s)
	}
}

// acceptOne accepts one connection on the listener b.fd (registration s).
// again means nothing can be accepted now: the backlog is empty (EAGAIN)
// or the listener is backing off; otherwise either client is registered or
// err is the accept's error.
func (d *Dispatcher) acceptOne(b *opBase, s *fdState, inheritable bool, rsa *unix.RawSockaddrAny, alen *uint32) (client AsyncFD, again bool, err error) {
	bo := d.sock.backoff[s]
	if bo != nil && bo.parked() {
		return InvalidFD, true, nil
	}
	flags := unix.SOCK_NONBLOCK
	if !inheritable {
		flags |= unix.SOCK_CLOEXEC
	}
	for {
		if alen != nil {
			*alen = unix.SizeofSockaddrAny
		}
		nfd, err := sysAccept4(int(b.fd), rsa, alen, flags)
		switch {
		case err == nil:
			if bo != nil {
				bo.delay = 0
			}
			if _, err := d.register(AsyncFD(nfd), true); err != nil {
				unix.Close(nfd)
				return InvalidFD, false, err
			}
			d.stats.accepted++
			return AsyncFD(nfd), false, nil
		case err == unix.EAGAIN:
			if bo != nil {
				// Backlog drained: the episode is over.
				delete(d.sock.backoff, s)
			}
			return InvalidFD, true, nil
		case err == unix.ECONNABORTED:
			// The connection died in the backlog: take the next (Go's
			// net does the same).
			continue
		case b.flags&SafeDisconn != 0 && isDisconn(err):
			continue // Nim retries these with SafeDisconn
		case isExhaustion(err):
			d.parkListener(s, err)
			return InvalidFD, true, nil
		}
		return InvalidFD, false, os.NewSyscallError("accept4", err)
	}
}

// parkListener starts or continues an exhaustion episode on s: disarm the
// read interest and re-arm it after the next back-off delay.
func (d *Dispatcher) parkListener(s *fdState, err error) {
	d.sock.acceptRetries++
	if d.sock.backoff == nil {
		d.sock.backoff = make(map[*fdState]*acceptBackoff)
	}
	bo := d.sock.backoff[s]
	if bo == nil {
		// Forget listeners that went away without CloseSocket.
		for k := range d.sock.backoff {
			if d.lookup(AsyncFD(k.fd)) != k {
				d.forgetListener(k)
			}
		}
		bo = &acceptBackoff{s: s}
		d.sock.backoff[s] = bo
		fd := AsyncFD(s.fd)
		serr := os.NewSyscallError("accept4", err)
		d.CallSoon(func() { d.reportAcceptError(fd, serr) })
	}
	switch {
	case bo.delay == 0:
		bo.delay = acceptBackoffMin
	case bo.delay < acceptBackoffMax:
		bo.delay = min(2*bo.delay, acceptBackoffMax)
	}
	d.disarmRead(s)
	if bo.timer != nil {
		bo.timer.Stop()
	}
	bo.timer, _ = d.AddTimer(bo.delay, true, func(AsyncFD) bool {
		bo.timer = nil
		d.unparkListener(bo)
		return true
	})
}

// unparkListener lets a backing-off listener's accepts try again.
func (d *Dispatcher) unparkListener(bo *acceptBackoff) {
	if bo.timer != nil {
		bo.timer.Stop()
		bo.timer = nil
	}
	s := bo.s
	if d.lookup(AsyncFD(s.fd)) != s {
		d.forgetListener(s)
		return
	}
	if len(s.readers) > 0 && d.setInterest(s, s.armed|poller.Read) != nil {
		// Could not re-arm (out of memory?): wait another round.
		d.parkListener(s, unix.ENOMEM)
	}
}

// wakeListeners re-arms every listener that is backing off (a descriptor
// was just freed).
func (d *Dispatcher) wakeListeners() {
	for _, bo := range d.sock.backoff {
		if bo.parked() {
			d.unparkListener(bo)
		}
	}
}

// forgetListener ends s's episode, if any (s is being closed).
func (d *Dispatcher) forgetListener(s *fdState) {
	bo := d.sock.backoff[s]
	if bo == nil {
		return
	}
	if bo.timer != nil {
		bo.timer.Stop()
		bo.timer = nil
	}
	delete(d.sock.backoff, s)
}

// disarmRead removes s's read interest while its readers stay queued.
// dispatchEvent keeps what it finds in s.armed, so this holds even when
// called from a ready callback of s.
func (d *Dispatcher) disarmRead(s *fdState) {
	d.setInterest(s, s.armed&^poller.Read)
}

func acceptedFD(client AsyncFD, _ *unix.RawSockaddrAny) (AsyncFD, error) { return client, nil }

func acceptedAddr(client AsyncFD, rsa *unix.RawSockaddrAny) (AcceptResult, error) {
	addr, err := peerHost(rsa, unix.SizeofSockaddrAny)
	return AcceptResult{Address: addr, Client: client}, err
}

// peerHost formats a peer address as Nim's getAddrString does: the IP
// address without port and zone ("127.0.0.1", "::1", an IPv4-mapped one
// as IPv4), "unix" for an AF_UNIX peer.
func peerHost(rsa *unix.RawSockaddrAny, alen uint32) (string, error) {
	ap, _, err := sockaddr.Decode(rsa, alen)
	switch {
	case err != nil:
		return "", fmt.Errorf("asyncdispatch: %w %d in getAddrString", err, rsa.Addr.Family)
	case !ap.IsValid():
		return "unix", nil
	}
	return sockaddr.Host(ap.Addr()), nil
}

// AcceptAddr accepts a connection on the listening socket fd and completes
// with the peer's address string and the new socket (Nim's acceptAddr; the
// address formats are those of AcceptResult). The new socket is registered
// with the dispatcher, non-blocking (Nim leaves it blocking, so one large
// send could freeze the loop) and close-on-exec unless inheritable.
//
// AcceptAddr tries accept4 at once, as Recv does (see sock.go); pending
// accepts on one listener complete in the order they were issued.
// ECONNABORTED is retried, and with SafeDisconn so are ECONNRESET, EPIPE
// and ENETRESET. When the process or system is out of descriptors
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) the accept does not fail and the loop
// does not spin: the listener backs off (10 ms doubling to 1 s, or until
// CloseSocket frees a descriptor), the episode is reported once through
// SetAcceptErrorHandler, and accepting resumes by itself. Other errors
// fail the future. The future can be cancelled; CloseSocket of the
// listener fails it with ErrClosedSocket.
func (d *Dispatcher) AcceptAddr(fd AsyncFD, flags SocketFlag, inheritable bool) *Future[AcceptResult] {
	return startAccept(d, nameAcceptAddr, fd, flags, inheritable, acceptedAddr)
}

// startAccept makes an accept operation and either accepts at once (try
// first) or queues it on the listener; a backing-off listener stays
// disarmed.
func startAccept[T any](d *Dispatcher, name opName, fd AsyncFD, flags SocketFlag, inheritable bool, result func(AsyncFD, *unix.RawSockaddrAny) (T, error)) *Future[T] {
	op := &acceptOp[T]{inheritable: inheritable, result: result}
	op.opBase = opBase{fd: fd, dir: poller.Read, name: name, flags: flags}
	op.fut.init(d, op, 3)
	s, err := d.sockFD(fd)
	if err != nil {
		op.fail(err)
		return &op.fut
	}
	op.s = s
	if canTry(s, poller.Read) && op.ready(s) {
		d.charge()
		return &op.fut
	}
	if err := d.queueOp(op); err != nil {
		op.fail(err)
		return &op.fut
	}
	if bo := d.sock.backoff[s]; bo != nil && bo.parked() {
		d.disarmRead(s)
	}
	return &op.fut
}

// Accept is AcceptAddr without the address (Nim's accept). Unlike Nim's,
// which wraps acceptAddr and so finishes one callback round later, it
// completes as soon as the connection is accepted.
func (d *Dispatcher) Accept(fd AsyncFD, flags SocketFlag, inheritable bool) *Future[AsyncFD] {
	return startAccept(d, nameAccept, fd, flags, inheritable, acceptedFD)
}
