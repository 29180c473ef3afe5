//go:build linux

// Package sys is the dispatcher's seam to the kernel: the system calls of
// its I/O paths, each a package-level function variable.
//
// What must stay true:
//   - each function makes exactly one system call and returns its errno
//     bare (a unix.Errno, or nil): no retry on EINTR, no wrapping. Callers
//     retry EINTR in one helper each and wrap errors with
//     os.NewSyscallError, so a test that replaces a function sees every
//     attempt and its errors travel the real paths;
//   - production code calls the variables directly: one indirect call, no
//     allocation, no branch (the role of the hooks in Go's internal/poll
//     and of net/internal/socktest, without a lock on the hot path);
//   - only tests assign to them: internal/testkit/faults does, once, in its init
//     (before any goroutine could be reading them), with wrappers that
//     make the real call unless a test has put faults in force.
package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	// Socket is socket(2).
	Socket = unix.Socket

	// RecvFrom is recvfrom(2); rsa and alen may be nil (then it is
	// recv(2)).
	RecvFrom = recvFrom

	// SendTo is sendto(2); sa may be nil (then it is send(2)). Callers
	// pass MSG_NOSIGNAL in flags.
	SendTo = sendTo

	// Accept4 is accept4(2); rsa and alen may be nil.
	Accept4 = accept4

	// Connect is connect(2).
	Connect = unix.Connect

	// EpollWait is epoll_wait(2).
	EpollWait = unix.EpollWait

	// EpollCtl is epoll_ctl(2).
	EpollCtl = unix.EpollCtl

	// Read and Write are read(2) and write(2): the poller's eventfd
	// waker, and the I/O of registered descriptors that are not sockets
	// (pipes, FIFOs, terminals). They go through the scheduler (Syscall,
	// not RawSyscall): such a descriptor's O_NONBLOCK is shared with
	// whoever else has it open, and may have been cleared.
	Read  = unix.Read
	Write = unix.Write
)

// The calls below avoid x/sys's wrappers, which put the sockaddr on the
// heap on every call: the sockaddr lives in the operation that needs it,
// or nowhere. They are made with Syscall6, which tells the scheduler, and
// not RawSyscall6, although they are meant for non-blocking sockets only
// (the package creates its sockets non-blocking and Register makes a
// descriptor non-blocking): O_NONBLOCK belongs to the open file, not to
// the descriptor, and a child or a dup that shares the file may clear it.
// A raw call then blocks with the runtime unaware: it keeps its P, and
// every stop-the-world of the process (each garbage collection) waits for
// it. The scheduler's bookkeeping costs about 100 ns a call, 2-3% of a
// loopback echo round trip: not worth that hazard.

func recvFrom(fd int, p []byte, flags int, rsa *unix.RawSockaddrAny, alen *uint32) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd),
		uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags),
		uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(alen)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func sendTo(fd int, p []byte, flags int, sa unsafe.Pointer, salen uint32) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd),
		uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags),
		uintptr(sa), uintptr(salen))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func accept4(fd int, rsa *unix.RawSockaddrAny, alen *uint32, flags int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd),
		uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(alen)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
