//go:build linux

package asyncdispatch

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket system calls of the operation paths, without the
// allocations of x/sys's wrappers (unix.Recvfrom and unix.Accept4 put their
// sockaddr on the heap on every call): the sockaddr lives in the operation
// that needs it, or nowhere. Every helper retries EINTR itself, so callers
// see EAGAIN, success or a real error; the errno is returned bare, callers
// wrap it with os.NewSyscallError.

// sysRecv is recv(2): recvfrom without an address.
func sysRecv(fd int, p []byte, flags int) (int, error) {
	return sysRecvFrom(fd, p, flags, nil, nil)
}

// sysRecvFrom is recvfrom(2); rsa and alen may be nil.
func sysRecvFrom(fd int, p []byte, flags int, rsa *unix.RawSockaddrAny, alen *uint32) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd),
			uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags),
			uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(alen)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
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
		r, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd),
			uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL,
			uintptr(sa), uintptr(salen))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// sysAccept4 is accept4(2); rsa and alen may be nil.
func sysAccept4(fd int, rsa *unix.RawSockaddrAny, alen *uint32, flags int) (int, error) {
	for {
		r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd),
			uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(alen)), uintptr(flags), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	}
}
