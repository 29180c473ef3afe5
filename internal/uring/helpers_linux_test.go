//go:build linux

package uring

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newRing makes a ring that the test closes, failing the test if Close
// leaves requests in flight.
func newRing(t testing.TB, o Options) *Ring {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// submit queues one SQE prepared by prep and submits it.
func submit(t testing.TB, r *Ring, prep func(*SQE)) {
	t.Helper()
	sqe := r.GetSQE()
	if sqe == nil {
		t.Fatal("GetSQE: SQ full")
	}
	prep(sqe)
	if _, err := r.Submit(); err != nil {
		t.Fatalf("Submit: %v", err)
	}
}

// waitCQEs waits (up to 10 s) until n completions have been reaped and
// returns them.
func waitCQEs(t testing.TB, r *Ring, n int) []CQE {
	t.Helper()
	var got []CQE
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d completions, want %d: %+v", len(got), n, got)
		}
		if _, err := r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
			t.Fatalf("SubmitAndWait: %v", err)
		}
		for c := range r.Completions() {
			got = append(got, c)
		}
	}
	return got
}

// waitCQE waits for the completion of user_data ud and returns it; other
// completions seen meanwhile are returned too.
func waitCQE(t testing.TB, r *Ring, ud uint64) (CQE, []CQE) {
	t.Helper()
	var others []CQE
	deadline := time.Now().Add(10 * time.Second)
	for {
		for c := range r.Completions() {
			if c.UserData == ud {
				return c, others
			}
			others = append(others, c)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completion for %d; others: %+v", ud, others)
		}
		if _, err := r.SubmitAndWait(1, 100*time.Millisecond); err != nil {
			t.Fatalf("SubmitAndWait: %v", err)
		}
	}
}

func socketpair(t testing.TB, typ int) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// listenTCP returns a listening non-blocking socket on 127.0.0.1 port 0
// and its address.
func listenTCP(t testing.TB) (int, *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4)
}

// rawInet4 is sa as the kernel's sockaddr_in, on the heap.
func rawInet4(sa *unix.SockaddrInet4) (*unix.RawSockaddrAny, uint32) {
	raw := new(unix.RawSockaddrAny)
	in := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
	in.Family = unix.AF_INET
	in.Port = uint16(sa.Port>>8 | sa.Port<<8&0xff00)
	in.Addr = sa.Addr
	return raw, unix.SizeofSockaddrInet4
}

// pollFd waits (up to 10 s) for events on fd.
func pollFd(t testing.TB, fd int, events int16) {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	for {
		n, err := unix.Poll(pfd, 10000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("poll fd %d: n=%d err=%v", fd, n, err)
		}
		return
	}
}

// tcpSocket is a new non-blocking, close-on-exec TCP socket.
func tcpSocket(t testing.TB) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// tcpPair returns the two ends of a loopback TCP connection as raw fds
// (non-blocking, close-on-exec).
func tcpPair(t testing.TB) (int, int) {
	t.Helper()
	lfd, sa := listenTCP(t)
	cfd := tcpSocket(t)
	t.Cleanup(func() { unix.Close(cfd) })
	if err := unix.Connect(cfd, sa); err != nil && err != unix.EINPROGRESS {
		t.Fatal(err)
	}
	pollFd(t, lfd, unix.POLLIN)
	afd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(afd) })
	pollFd(t, cfd, unix.POLLOUT)
	return cfd, afd
}
