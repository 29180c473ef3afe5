//go:build linux

package asyncdispatch

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/sys"
)

// The socket system calls of the operation paths. The calls themselves are
// internal/sys's (one system call each, replaceable by fault-injection
// tests); these helpers are the one place that retries EINTR, so callers
// see EAGAIN, success or a real error. The errno is returned bare; callers
// wrap it with os.NewSyscallError.

// sysRecv is recv(2): recvfrom without an address.
func sysRecv(fd int, p []byte, flags int) (int, error) {
	return sysRecvFrom(fd, p, flags, nil, nil)
}

// sysRecvFrom is recvfrom(2); rsa and alen may be nil.
func sysRecvFrom(fd int, p []byte, flags int, rsa *unix.RawSockaddrAny, alen *uint32) (int, error) {
	for {
		n, err := sys.RecvFrom(fd, p, flags, rsa, alen)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// sysSend is send(2) with MSG_NOSIGNAL: a write to a reset connection is
// an EPIPE error, never a SIGPIPE.
func sysSend(fd int, p []byte) (int, error) {
	return sysSendTo(fd, p, nil, 0)
}

// sysSendTo is sendto(2) with MSG_NOSIGNAL; sa may be nil.
func sysSendTo(fd int, p []byte, sa unsafe.Pointer, salen uint32) (int, error) {
	for {
		n, err := sys.SendTo(fd, p, unix.MSG_NOSIGNAL, sa, salen)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// sysAccept4 is accept4(2); rsa and alen may be nil.
func sysAccept4(fd int, rsa *unix.RawSockaddrAny, alen *uint32, flags int) (int, error) {
	for {
		nfd, err := sys.Accept4(fd, rsa, alen, flags)
		if err != unix.EINTR {
			return nfd, err
		}
	}
}

// sysRead is read(2), for a registered descriptor that is not a socket
// (a pipe, a FIFO, a terminal): fdState.recv.
func sysRead(fd int, p []byte) (int, error) {
	for {
		n, err := sys.Read(fd, p)
		if err != unix.EINTR {
			if err != nil {
				n = 0
			}
			return n, err
		}
	}
}

// sysWrite is write(2), for a registered descriptor that is not a
// socket. A write to a pipe with no reader fails with EPIPE: the Go
// runtime raises SIGPIPE only for writes to descriptors 1 and 2 made
// through package os, never for this one.
func sysWrite(fd int, p []byte) (int, error) {
	for {
		n, err := sys.Write(fd, p)
		if err != unix.EINTR {
			if err != nil {
				n = 0
			}
			return n, err
		}
	}
}
