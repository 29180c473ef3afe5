package asyncdispatch

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
	"github.com/asyncdispatch/asyncdispatch/internal/sockaddr"
)

// recvOp is a pending Recv, RecvString or RecvInto. result makes the
// future's value out of the buffer and the byte count.
type recvOp[T any] struct {
	futureOp[T]
	result func(buf []byte, n int) T
}

// ready makes one receive: true when the future is finished, false on
// EAGAIN (wait for the next readiness).
func (op *recvOp[T]) ready(s *fdState) bool {
	n, err, done := op.recvOnce(s)
	if !done {
		return false
	}
	if err != nil {
		op.fail(err)
	} else {
		op.complete(op.result(op.buf, n))
	}
	return true
}

// recvOnce makes one receive into b.buf on a ready descriptor; done is
// false on EAGAIN (wait for the next readiness). A reset under SafeDisconn
// is end of file. It keeps the fd's drained hint up to date.
func (b *opBase) recvOnce(s *fdState) (n int, err error, done bool) {
	n, err = s.recv(b.buf, b.flags)
	switch {
	case err == nil:
		if n > 0 && n < len(b.buf) {
			s.drained = true
		}
		return n, nil, true
	case err == unix.EAGAIN:
		s.drained = true
		return 0, nil, false
	case b.flags&SafeDisconn != 0 && isDisconn(err):
		return 0, nil, true
	case err == errPeekNotSocket:
		return 0, notSocketError(b, s, "Peek", "recv"), true
	case s.notSock:
		return 0, os.NewSyscallError("read", err), true
	}
	return 0, os.NewSyscallError("recv", err), true
}

// recv is recv(2) on a socket and read(2) on any other descriptor (a
// pipe, a FIFO, a terminal): the first ENOTSOCK is remembered, and the
// same call is made with read(2) at once and every time after. Peek needs
// a socket: on anything else it fails (errPeekNotSocket).
func (s *fdState) recv(p []byte, flags SocketFlag) (int, error) {
	if !s.notSock {
		n, err := sysRecv(s.fd, p, flags.osFlags())
		if err != unix.ENOTSOCK {
			return n, err
		}
		s.notSock = true
	}
	if flags&Peek != 0 {
		return 0, errPeekNotSocket
	}
	return sysRead(s.fd, p)
}

// send is send(2) with MSG_NOSIGNAL on a socket and write(2) on any other
// descriptor, as recv is.
func (s *fdState) send(p []byte) (int, error) {
	if !s.notSock {
		n, err := sysSend(s.fd, p)
		if err != unix.ENOTSOCK {
			return n, err
		}
		s.notSock = true
	}
	return sysWrite(s.fd, p)
}

// errPeekNotSocket: Peek on a descriptor that is not a socket (recv
// turns it into notSocketError).
var errPeekNotSocket = errors.New("asyncdispatch: Peek on a descriptor that is not a socket")

// notSocketError is the error of what needs a socket (what: Peek,
// RecvFromInto, SendTo) on a descriptor that is not one. It matches
// syscall.ENOTSOCK and holds an *os.SyscallError of call.
func notSocketError(b *opBase, s *fdState, what, call string) error {
	return fmt.Errorf("asyncdispatch: %s on fd %d: %s needs a socket, and fd %d is not one: %w",
		b.procName(), s.fd, what, s.fd, os.NewSyscallError(call, unix.ENOTSOCK))
}

func bytesResult(buf []byte, n int) []byte {
	if n == 0 {
		return []byte{}
	}
	return buf[:n:n]
}

// stringResult hands the buffer over to the string without copying: the
// buffer was made by RecvString and nothing else refers to it.
func stringResult(buf []byte, n int) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&buf[0], n)
}

func countResult(_ []byte, n int) int { return n }

func newRecv[T any](d *Dispatcher, name opName, fd AsyncFD, buf []byte, flags SocketFlag, result func([]byte, int) T) *Future[T] {
	op := &recvOp[T]{result: result}
	op.opBase = opBase{fd: fd, dir: poller.Read, name: name, buf: buf, flags: flags}
	op.fut.init(d, op, 3)
	return start(d, &op.fut, op)
}

// Recv receives at most size bytes from the socket fd (Nim's recv). The
// future completes with what is available — possibly fewer bytes, never
// an empty slice while the connection is open — and with an empty slice at
// end of file, every time it is called after that. With SafeDisconn a
// reset connection (ECONNRESET, EPIPE, ENETRESET) looks like end of file
// too; without it, it fails with that errno. Peek leaves the data in the
// socket. The result is a fresh slice of a buffer of size bytes (the
// unused capacity is not kept in the result's cap, but stays allocated
// while the slice lives); RecvInto reads into a buffer of yours instead.
//
// Recv tries the system call at once (unless the previous receive found
// the socket drained); the future may be complete on return (see the
// contract at the top of sock.go). Several pending
// receives on one socket complete in the order they were issued. A
// negative size fails with ErrNegative; an fd that is not registered with
// ErrNotRegistered; CloseSocket of fd fails it with ErrClosedSocket.
//
// fd may also be a pipe, a FIFO or a terminal registered with Register:
// the receive that finds it is not a socket (recv(2) says ENOTSOCK) uses
// read(2) instead, and so do all later ones. Peek needs a socket: on
// anything else it fails with an error matching syscall.ENOTSOCK.
func (d *Dispatcher) Recv(fd AsyncFD, size int, flags SocketFlag) *Future[[]byte] {
	if size < 0 {
		return failedFuture[[]byte](d, "Recv", fmt.Errorf("%w: Recv size %d", ErrNegative, size))
	}
	return newRecv(d, nameRecv, fd, make([]byte, size), flags, bytesResult)
}

// RecvString is Recv with a string result (Nim's recv returns a string);
// the bytes are not copied a second time.
func (d *Dispatcher) RecvString(fd AsyncFD, size int, flags SocketFlag) *Future[string] {
	if size < 0 {
		return failedFuture[string](d, "RecvString", fmt.Errorf("%w: RecvString size %d", ErrNegative, size))
	}
	return newRecv(d, nameRecvString, fd, make([]byte, size), flags, stringResult)
}

// RecvInto receives at most len(buf) bytes from fd into buf, and completes
// with the count, 0 at end of file (Nim's recvInto). It is Recv without
// the allocation of a buffer: the only allocation is the operation itself.
// buf must not be used until the future is finished (after a Cancel it is
// not touched any more). A nil buf fails with ErrNilBuffer. Everything else
// is as for Recv.
func (d *Dispatcher) RecvInto(fd AsyncFD, buf []byte, flags SocketFlag) *Future[int] {
	if buf == nil {
		return failedFuture[int](d, "RecvInto", ErrNilBuffer)
	}
	return newRecv(d, nameRecvInto, fd, buf, flags, countResult)
}

// sendOp is a pending Send or SendString.
type sendOp struct {
	futureOp[Void]
}

// ready writes as much as the socket takes. A partial write means the
// socket buffer is full: it waits for writability instead of making a call
// that would return EAGAIN. So one ready call writes at most one socket
// buffer, and a huge send cannot hold the loop.
func (op *sendOp) ready(s *fdState) bool {
	err, done := op.sendSome(s)
	if !done {
		return false
	}
	if err != nil {
		op.fail(err)
	} else {
		op.complete(Void{})
	}
	return true
}

// sendSome writes as much of b.buf as the socket takes, advancing b.buf
// and setting b.wrote once any byte went out; done is false while bytes
// are left (wait for writability). When done, b.buf is nil and err is the
// send's outcome: a reset under SafeDisconn counts as sent; an error after
// part of the data went out is also kept as the fd's werr, so the sends
// queued behind fail too (what they carry would arrive after a gap).
func (b *opBase) sendSome(s *fdState) (err error, done bool) {
	if s.werr != nil {
		b.buf = nil
		return s.werr, true
	}
	for len(b.buf) > 0 {
		n, err := s.send(b.buf)
		if err == unix.EAGAIN {
			return nil, false
		}
		if err != nil {
			b.buf = nil
			if b.flags&SafeDisconn != 0 && isDisconn(err) {
				return nil, true
			}
			call := "send"
			if s.notSock {
				call = "write"
			}
			serr := os.NewSyscallError(call, err)
			if b.wrote {
				s.werr = serr
			}
			return serr, true
		}
		if n > 0 {
			b.wrote = true
		}
		b.buf = b.buf[n:]
		if len(b.buf) > 0 {
			return nil, false
		}
	}
	b.buf = nil
	return nil, true
}

func newSend(d *Dispatcher, name opName, fd AsyncFD, data []byte, flags SocketFlag) *Future[Void] {
	op := &sendOp{}
	op.opBase = opBase{fd: fd, dir: poller.Write, name: name, buf: data, flags: flags}
	op.fut.init(d, op, 3)
	return start(d, &op.fut, op)
}

// Send writes all of data to the socket fd; the future completes only when
// every byte has been written (Nim's send). Several pending sends on one
// socket go out, and complete, strictly in the order they were issued,
// never interleaved. It never raises SIGPIPE (MSG_NOSIGNAL). With
// SafeDisconn a reset connection (ECONNRESET, EPIPE, ENETRESET) completes
// the future successfully and drops the rest; without it, the future fails
// with the errno. An empty send completes without a system call (after
// the sends queued before it).
//
// Send tries the system call at once: a send the socket buffer can take
// returns an already completed future (Nim completes it only after a
// poll). data is not copied: it must not be modified until the future is
// finished. Cancelling a send that has written part of data leaves the
// stream with a partial message.
//
// fd may also be a pipe, a FIFO or a terminal registered with Register:
// write(2) is used for it (see Recv). A write to a pipe whose reader is
// gone fails with EPIPE (hidden by SafeDisconn); no SIGPIPE is raised.
func (d *Dispatcher) Send(fd AsyncFD, data []byte, flags SocketFlag) *Future[Void] {
	return newSend(d, nameSend, fd, data, flags)
}

// SendString is Send for a string (Nim's send(string)); s is not copied.
func (d *Dispatcher) SendString(fd AsyncFD, s string, flags SocketFlag) *Future[Void] {
	return newSend(d, nameSendString, fd, bytesOf(s), flags)
}

// RecvFromResult is the result of RecvFromInto: one datagram's size and
// its sender.
type RecvFromResult struct {
	// N is the number of bytes received into buf[:N]; a datagram longer
	// than buf is truncated by the kernel.
	N int
	// From is the sender of an AF_INET or AF_INET6 datagram, as the
	// kernel reports it: on a dual-stack IPv6 socket an IPv4 sender is
	// IPv4-mapped (::ffff:127.0.0.1). Pass it back to SendTo unchanged to
	// answer. It is the zero AddrPort for other families.
	From netip.AddrPort
	// Path is the sender of an AF_UNIX datagram: its socket path, "@name"
	// for an abstract socket, "" for an unbound sender.
	Path string
}

// recvFromOp is a pending RecvFromInto; the sender's address is received
// into the operation itself.
type recvFromOp struct {
	futureOp[RecvFromResult]
	rsa  unix.RawSockaddrAny
	alen uint32
}

func (op *recvFromOp) ready(s *fdState) bool {
	if s.notSock {
		op.fail(notSocketError(&op.opBase, s, "a sender's address", "recvfrom"))
		return true
	}
	op.alen = unix.SizeofSockaddrAny
	n, err := sysRecvFrom(s.fd, op.buf, op.flags.osFlags(), &op.rsa, &op.alen)
	switch err {
	case nil:
	case unix.EAGAIN:
		return false
	case unix.ENOTSOCK:
		s.notSock = true
		op.fail(notSocketError(&op.opBase, s, "a sender's address", "recvfrom"))
		return true
	default:
		op.fail(os.NewSyscallError("recvfrom", err))
		return true
	}
	r := RecvFromResult{N: n}
	// An address of another family leaves both empty, as documented.
	r.From, r.Path, _ = sockaddr.Decode(&op.rsa, op.alen)
	op.complete(r)
	return true
}

// RecvFromInto receives one datagram into buf and completes with its size
// and sender (Nim's recvFromInto, with the sender returned rather than
// written through a pointer). Errors fail the future whatever the flags
// (as in Nim, SafeDisconn does not apply); Peek leaves the datagram
// queued. A nil buf fails with ErrNilBuffer. It tries first and keeps
// order as Recv does. On a descriptor that is not a socket it fails with
// an error matching syscall.ENOTSOCK.
func (d *Dispatcher) RecvFromInto(fd AsyncFD, buf []byte, flags SocketFlag) *Future[RecvFromResult] {
	if buf == nil {
		return failedFuture[RecvFromResult](d, "RecvFromInto", ErrNilBuffer)
	}
	op := &recvFromOp{}
	op.opBase = opBase{fd: fd, dir: poller.Read, name: nameRecvFromInto, buf: buf, flags: flags}
	op.fut.init(d, op, 2)
	return start(d, &op.fut, op)
}

// sendToOp is a pending SendTo or SendToUnix; the destination is kept in
// the operation in raw form.
type sendToOp struct {
	futureOp[Void]
	rsa   unix.RawSockaddrAny
	salen uint32
}

// ready makes one sendto: a datagram goes out whole or not at all.
func (op *sendToOp) ready(s *fdState) bool {
	if s.notSock {
		op.fail(notSocketError(&op.opBase, s, "a destination address", "sendto"))
		return true
	}
	_, err := sysSendTo(s.fd, op.buf, unsafe.Pointer(&op.rsa), op.salen)
	switch err {
	case nil:
		op.complete(Void{})
	case unix.EAGAIN:
		return false
	case unix.ENOTSOCK:
		s.notSock = true
		op.fail(notSocketError(&op.opBase, s, "a destination address", "sendto"))
	default:
		op.fail(os.NewSyscallError("sendto", err))
	}
	return true
}

func newSendTo(d *Dispatcher, name opName, fd AsyncFD, data []byte) *sendToOp {
	op := &sendToOp{}
	op.opBase = opBase{fd: fd, dir: poller.Write, name: name, buf: data}
	op.fut.init(d, op, 3)
	return op
}

// SendTo sends data as one datagram to the address to (Nim's sendTo, with
// a netip.AddrPort instead of a raw sockaddr). An IPv4 address goes to an
// AF_INET socket; an IPv6 or IPv4-mapped one to an AF_INET6 socket. flags
// are accepted for symmetry and, as in Nim, ignored: every error fails the
// future (SIGPIPE is never raised). It tries first and keeps order as Send
// does; data must not be modified until the future is finished. An
// invalid address fails with ErrNoAddress; a descriptor that is not a
// socket with an error matching syscall.ENOTSOCK.
func (d *Dispatcher) SendTo(fd AsyncFD, data []byte, to netip.AddrPort, flags SocketFlag) *Future[Void] {
	op := newSendTo(d, nameSendTo, fd, data)
	if op.salen = sockaddr.EncodeInet(&op.rsa, to); op.salen == 0 {
		op.fut.tryFail(fmt.Errorf("%w: SendTo %v", ErrNoAddress, to))
		return &op.fut
	}
	return start(d, &op.fut, op)
}

// SendToUnix is SendTo for an AF_UNIX datagram socket: path is the
// receiver's socket path ("@name" for an abstract socket). An empty or
// too long path, or one with a NUL byte (but for an abstract name),
// fails with ErrNoAddress.
func (d *Dispatcher) SendToUnix(fd AsyncFD, data []byte, path string, flags SocketFlag) *Future[Void] {
	op := newSendTo(d, nameSendToUnix, fd, data)
	if op.salen = sockaddr.EncodeUnix(&op.rsa, path); op.salen == 0 {
		op.fut.tryFail(fmt.Errorf("%w: SendToUnix path %q", ErrNoAddress, path))
		return &op.fut
	}
	return start(d, &op.fut, op)
}
