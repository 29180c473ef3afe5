//go:build linux

package uring

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Prep helpers: each fills an SQE obtained from GetSQE for one operation.
//
// The memory contract. The kernel keeps the addresses an SQE carries and
// reads or writes through them asynchronously, until the request's final
// completion (for some operations it copies the argument earlier, when
// it consumes the SQE, but never rely on it): each helper says which
// memory that is. For all of that time the caller must
//   - keep the memory referenced from Go (a uint64 in ring memory is not
//     a reference: the garbage collector would free it), and
//   - not reuse it for anything else.
// The memory must not move either. Go's collector never moves heap
// objects, but goroutine stacks are moved when they grow, so the memory
// must be on the heap: every helper that takes an address makes it
// escape (escapes below), so that even a local array passed to it is
// allocated on the heap by the compiler. What a struct such as a
// unix.Msghdr points to escapes with it once it is stored in it.
//
// user_data is an opaque uint64 returned in the completion; the caller
// encodes what it needs (an index and a generation, say), never a Go
// pointer, and keeps it below ReservedUserData.
//
// SQE flags such as IOSQE_IO_LINK may be or'ed into sqe.Flags after the
// prep; IOSQE_CQE_SKIP_SUCCESS may not (see Ring.InFlight).

// alwaysFalse is never set; the compiler cannot know that, so whatever
// escapes stores to escapeSink must be heap-allocated by its caller.
var (
	alwaysFalse bool
	escapeSink  unsafe.Pointer
)

// escapes forces p to the heap (see above) at the cost of a load and a
// branch; nothing is ever stored.
func escapes(p unsafe.Pointer) {
	if alwaysFalse {
		escapeSink = p
	}
}

func bufAddr(b []byte) uint64 {
	p := unsafe.Pointer(unsafe.SliceData(b))
	escapes(p)
	return uint64(uintptr(p))
}

func ptrAddr(p unsafe.Pointer) uint64 {
	escapes(p)
	return uint64(uintptr(p))
}

// fileCurPos is the offset meaning "the file's current position", which
// is also the only one streams (pipes, sockets) accept besides 0
// (IORING_FEAT_RW_CUR_POS, 5.6).
const fileCurPos = ^uint64(0)

func (s *SQE) prep(op uint8, fd int, addr uint64, n uint32, off uint64, ud uint64) {
	s.Opcode = op
	s.Fd = int32(fd)
	s.Addr = addr
	s.Len = n
	s.Off = off
	s.UserData = ud
}

// PrepNop prepares a NOP: it completes with res 0 and touches no memory.
func (s *SQE) PrepNop(ud uint64) { s.prep(OpNop, -1, 0, 0, 0, ud) }

// PrepRecv prepares recv(fd, buf, msgFlags). The kernel writes into buf
// until the completion (res = bytes received, 0 at EOF).
func (s *SQE) PrepRecv(fd int, buf []byte, msgFlags uint32, ud uint64) {
	s.prep(OpRecv, fd, bufAddr(buf), uint32(len(buf)), 0, ud)
	s.OpFlags = msgFlags
}

// PollFirst sets IORING_RECVSEND_POLL_FIRST on a prepared RECV, SEND,
// RECVMSG or SENDMSG: the kernel arms a poll at once instead of trying
// the transfer first, which saves a failed attempt when the caller knows
// the socket is not ready (5.19).
func (s *SQE) PollFirst() { s.IoPrio |= RecvSendPollFirst }

// PrepRecvMultishot prepares a multishot receive on fd with buffers from
// the provided buffer group (IOSQE_BUFFER_SELECT, IORING_RECV_MULTISHOT,
// 6.0). It posts one completion per chunk received, each with
// IORING_CQE_F_BUFFER and the buffer id (CQE.Buffer) and IORING_CQE_F_MORE
// while it stays armed. It ends (a completion without F_MORE) at EOF
// (res 0), on an error, when the group runs out of buffers (res
// -ENOBUFS: return buffers, then prepare a new one) or when the CQ is
// full. The kernel writes only into the group's buffers.
func (s *SQE) PrepRecvMultishot(fd int, group uint16, msgFlags uint32, ud uint64) {
	s.prep(OpRecv, fd, 0, 0, 0, ud)
	s.OpFlags = msgFlags
	s.Flags |= SQEBufferSelect
	s.BufIndex = group
	s.IoPrio |= RecvMultishot
}

// PrepSend prepares send(fd, buf, msgFlags|MSG_NOSIGNAL): a peer that
// has gone away is an EPIPE result, never a SIGPIPE. The kernel reads buf
// until the completion (res = bytes sent, possibly fewer than len(buf)).
func (s *SQE) PrepSend(fd int, buf []byte, msgFlags uint32, ud uint64) {
	s.prep(OpSend, fd, bufAddr(buf), uint32(len(buf)), 0, ud)
	s.OpFlags = msgFlags | unix.MSG_NOSIGNAL
}

// acceptFlags are the flags of every accepted socket: non-blocking (the
// dispatcher's sockets are) and close-on-exec (no fd leaks into
// children).
const acceptFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC

// PrepAccept prepares one accept4(fd, sa, salen, SOCK_NONBLOCK|
// SOCK_CLOEXEC). sa and salen may both be nil; otherwise *salen holds
// the size of *sa on entry, and the kernel writes the peer's address and
// its length into them until the completion (res = the new fd).
func (s *SQE) PrepAccept(fd int, sa *unix.RawSockaddrAny, salen *uint32, ud uint64) {
	s.prep(OpAccept, fd, ptrAddr(unsafe.Pointer(sa)), 0, ptrAddr(unsafe.Pointer(salen)), ud)
	s.OpFlags = acceptFlags
}

// PrepAcceptMultishot prepares a multishot accept (IORING_ACCEPT_MULTISHOT,
// 5.19): one completion per connection (res = the new fd, non-blocking
// and close-on-exec) with IORING_CQE_F_MORE while it stays armed. No
// address is returned (every completion would overwrite the same one):
// use getpeername. It touches no caller memory.
func (s *SQE) PrepAcceptMultishot(fd int, ud uint64) {
	s.prep(OpAccept, fd, 0, 0, 0, ud)
	s.OpFlags = acceptFlags
	s.IoPrio |= AcceptMultishot
}

// PrepConnect prepares connect(fd, sa, salen). The kernel reads *sa
// (salen bytes) until the completion (res 0 or -errno, e.g.
// -ECONNREFUSED).
func (s *SQE) PrepConnect(fd int, sa *unix.RawSockaddrAny, salen uint32, ud uint64) {
	s.prep(OpConnect, fd, ptrAddr(unsafe.Pointer(sa)), 0, uint64(salen), ud)
}

// PrepPollAdd prepares a one-shot poll for events (unix.POLLIN…) on fd:
// one completion, res = the events that are ready. No caller memory.
func (s *SQE) PrepPollAdd(fd int, events uint32, ud uint64) {
	s.prep(OpPollAdd, fd, 0, 0, 0, ud)
	s.OpFlags = pollEvents(events)
}

// PrepPollMultishot prepares an edge-triggered multishot poll
// (IORING_POLL_ADD_MULTI, 5.13): a completion each time fd becomes ready
// for events, with IORING_CQE_F_MORE while it stays armed. No caller
// memory.
func (s *SQE) PrepPollMultishot(fd int, events uint32, ud uint64) {
	s.PrepPollAdd(fd, events, ud)
	s.Len = PollAddMulti
}

// PrepPollRemove prepares the removal of the poll whose user_data is
// target: it completes with res 0 (removed; the poll itself completes
// with -ECANCELED) or -ENOENT (not found, e.g. already completed).
func (s *SQE) PrepPollRemove(target, ud uint64) {
	s.prep(OpPollRemove, -1, target, 0, 0, ud)
}

// PrepCancel prepares the cancellation of the request whose user_data is
// target. The cancel completes with res 0 (found and cancelled; the
// request completes with -ECANCELED, or with its result if it finished
// first), -ENOENT (not found) or -EALREADY (running, may still complete).
func (s *SQE) PrepCancel(target, ud uint64) {
	s.prep(OpAsyncCancel, -1, target, 0, 0, ud)
}

// PrepCancelFd prepares the cancellation of every request on fd
// (IORING_ASYNC_CANCEL_FD|ALL, 5.19): res = how many were cancelled.
func (s *SQE) PrepCancelFd(fd int, ud uint64) {
	s.prep(OpAsyncCancel, fd, 0, 0, 0, ud)
	s.OpFlags = CancelFd | CancelAll
}

// prepCancelAny cancels every request of the ring (Close).
func (s *SQE) prepCancelAny(ud uint64) {
	s.prep(OpAsyncCancel, -1, 0, 0, 0, ud)
	s.OpFlags = CancelAny | CancelAll
}

// PrepRead prepares read(fd, buf) at the current position (pipes,
// eventfds and other streams). The kernel writes into buf until the
// completion.
func (s *SQE) PrepRead(fd int, buf []byte, ud uint64) {
	s.prep(OpRead, fd, bufAddr(buf), uint32(len(buf)), fileCurPos, ud)
}

// PrepWrite prepares write(fd, buf) at the current position. The kernel
// reads buf until the completion.
func (s *SQE) PrepWrite(fd int, buf []byte, ud uint64) {
	s.prep(OpWrite, fd, bufAddr(buf), uint32(len(buf)), fileCurPos, ud)
}

// PrepTimeout prepares a timeout of *ts (relative unless flags has
// TimeoutAbs): it completes with -ETIME when the time has passed, or with
// res 0 once count other completions have been posted (count 0: a pure
// timer), or -ECANCELED. The kernel reads *ts when it consumes the SQE;
// keep it until Submit returns.
func (s *SQE) PrepTimeout(ts *Timespec, count, flags uint32, ud uint64) {
	s.prep(OpTimeout, -1, ptrAddr(unsafe.Pointer(ts)), 1, uint64(count), ud)
	s.OpFlags = flags
}

// PrepRecvmsg prepares recvmsg(fd, msg, msgFlags) (UDP RecvFrom). The
// kernel reads *msg, the iovec array it points to, and writes into the
// buffers of the iovecs, the name buffer (msg.Name, msg.Namelen bytes)
// and the control buffer, and writes back msg.Namelen, msg.Controllen
// and msg.Flags, until the completion (res = bytes received).
func (s *SQE) PrepRecvmsg(fd int, msg *unix.Msghdr, msgFlags uint32, ud uint64) {
	s.prep(OpRecvmsg, fd, ptrAddr(unsafe.Pointer(msg)), 1, 0, ud)
	s.OpFlags = msgFlags
}

// PrepSendmsg prepares sendmsg(fd, msg, msgFlags|MSG_NOSIGNAL) (UDP
// SendTo). The kernel reads *msg, its iovec array and buffers, name and
// control buffer until the completion (res = bytes sent).
func (s *SQE) PrepSendmsg(fd int, msg *unix.Msghdr, msgFlags uint32, ud uint64) {
	s.prep(OpSendmsg, fd, ptrAddr(unsafe.Pointer(msg)), 1, 0, ud)
	s.OpFlags = msgFlags | unix.MSG_NOSIGNAL
}

// pollEvents puts poll events into sqe->poll32_events, whose 16-bit
// halves the kernel swaps on big-endian machines (the 32-bit events
// field replaced a 16-bit one, 5.9).
func pollEvents(events uint32) uint32 {
	if bigEndian {
		return events<<16 | events>>16
	}
	return events
}

var bigEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 0
}()
