//go:build linux

package uring

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendRecv sends msg from one end through the ring and receives it at the
// other, both through the ring; pollFirst arms the receive's poll first.
func sendRecv(t *testing.T, r *Ring, from, to int, msg []byte, pollFirst bool) {
	t.Helper()
	buf := make([]byte, 2*len(msg))
	rs := r.GetSQE()
	rs.PrepRecv(to, buf, 0, 10)
	if pollFirst {
		rs.PollFirst()
	}
	r.GetSQE().PrepSend(from, msg, 0, 11)
	got := waitCQEs(t, r, 2)
	for _, c := range got {
		switch c.UserData {
		case 10:
			if c.Res != int32(len(msg)) || !bytes.Equal(buf[:c.Res], msg) {
				t.Errorf("recv = %+v %q, want %q", c, buf[:max(c.Res, 0)], msg)
			}
		case 11:
			if c.Res != int32(len(msg)) {
				t.Errorf("send = %+v, want %d", c, len(msg))
			}
		default:
			t.Errorf("unexpected %+v", c)
		}
	}
}

func TestRecvSend(t *testing.T) {
	r := newRing(t, Options{})
	pairs := map[string]func(testing.TB) (int, int){
		"tcp":        tcpPair,
		"socketpair": func(t testing.TB) (int, int) { return socketpair(t, unix.SOCK_STREAM) },
	}
	for name, mk := range pairs {
		t.Run(name, func(t *testing.T) {
			a, b := mk(t)
			sendRecv(t, r, a, b, []byte("hello"), false)
			sendRecv(t, r, b, a, []byte("back"), true)
			// EOF: a receive pending when the peer shuts down writes
			// completes with 0.
			buf := make([]byte, 8)
			submit(t, r, func(s *SQE) { s.PrepRecv(b, buf, 0, 12) })
			unix.Shutdown(a, unix.SHUT_WR)
			if c, _ := waitCQE(t, r, 12); c.Res != 0 {
				t.Errorf("recv at EOF = %+v, want 0", c)
			}
		})
	}
}

// TestSendNoSigpipe: a send to a closed peer is EPIPE, not SIGPIPE (which
// would kill the test binary).
func TestSendNoSigpipe(t *testing.T) {
	r := newRing(t, Options{})
	a, b := tcpPair(t)
	unix.Close(b)
	msg := bytes.Repeat([]byte("x"), 1<<16)
	var last CQE
	for i := uint64(0); i < 20 && last.Res >= 0; i++ {
		submit(t, r, func(s *SQE) { s.PrepSend(a, msg, 0, 100+i) })
		last, _ = waitCQE(t, r, 100+i)
	}
	if last.Err() != unix.EPIPE && last.Err() != unix.ECONNRESET {
		t.Errorf("send to a closed peer: %+v (%v), want EPIPE or ECONNRESET", last, last.Err())
	}
}

func TestAcceptMultishotAndConnect(t *testing.T) {
	r := newRing(t, Options{})
	lfd, sa := listenTCP(t)
	submit(t, r, func(s *SQE) { s.PrepAcceptMultishot(lfd, 1) })
	raw, rawLen := rawInet4(sa)
	const n = 4
	for i := uint64(0); i < n; i++ {
		fd := tcpSocket(t)
		t.Cleanup(func() { unix.Close(fd) })
		submit(t, r, func(s *SQE) { s.PrepConnect(fd, raw, rawLen, 100+i) })
	}
	var accepted, connected int
	for _, c := range waitCQEs(t, r, 2*n) {
		switch {
		case c.UserData == 1:
			if c.Res < 0 || !c.More() {
				t.Fatalf("accept = %+v (%v), want an fd and F_MORE", c, c.Err())
			}
			fl, _ := unix.FcntlInt(uintptr(c.Res), unix.F_GETFL, 0)
			fd, _ := unix.FcntlInt(uintptr(c.Res), unix.F_GETFD, 0)
			if fl&unix.O_NONBLOCK == 0 || fd&unix.FD_CLOEXEC == 0 {
				t.Errorf("accepted fd flags %#x fd flags %#x: want O_NONBLOCK and FD_CLOEXEC", fl, fd)
			}
			unix.Close(int(c.Res))
			accepted++
		case c.UserData >= 100:
			if c.Res != 0 {
				t.Errorf("connect = %+v (%v)", c, c.Err())
			}
			connected++
		}
	}
	if accepted != n || connected != n {
		t.Errorf("accepted %d connected %d, want %d each", accepted, connected, n)
	}
	// The multishot accept is still armed: cancel it by user_data.
	submit(t, r, func(s *SQE) { s.PrepCancel(1, 2) })
	got := waitCQEs(t, r, 2)
	for _, c := range got {
		if c.UserData == 1 && (c.Res != -int32(unix.ECANCELED) || c.More()) {
			t.Errorf("cancelled accept = %+v", c)
		}
		if c.UserData == 2 && c.Res != 0 {
			t.Errorf("cancel = %+v", c)
		}
	}
}

func TestConnectRefused(t *testing.T) {
	r := newRing(t, Options{})
	lfd, sa := listenTCP(t)
	unix.Close(lfd) // nothing listens on that port any more
	raw, rawLen := rawInet4(sa)
	fd := tcpSocket(t)
	t.Cleanup(func() { unix.Close(fd) })
	submit(t, r, func(s *SQE) { s.PrepConnect(fd, raw, rawLen, 1) })
	if c, _ := waitCQE(t, r, 1); c.Err() != unix.ECONNREFUSED {
		t.Errorf("connect = %+v (%v), want ECONNREFUSED", c, c.Err())
	}
}

func TestPollAddRemove(t *testing.T) {
	r := newRing(t, Options{})
	a, b := socketpair(t, unix.SOCK_STREAM)
	// One-shot: completes when b becomes readable.
	submit(t, r, func(s *SQE) { s.PrepPollAdd(b, unix.POLLIN, 1) })
	unix.Write(a, []byte("x"))
	if c, _ := waitCQE(t, r, 1); c.Res&unix.POLLIN == 0 || c.More() {
		t.Errorf("poll = %+v, want POLLIN without F_MORE", c)
	}
	// Multishot: one completion per edge, until removed.
	var one [1]byte
	unix.Read(b, one[:])
	submit(t, r, func(s *SQE) { s.PrepPollMultishot(b, unix.POLLIN, 2) })
	for i := 0; i < 2; i++ {
		unix.Write(a, []byte("y"))
		if c, _ := waitCQE(t, r, 2); c.Res&unix.POLLIN == 0 || !c.More() {
			t.Errorf("multishot poll %d = %+v, want POLLIN with F_MORE", i, c)
		}
		unix.Read(b, one[:])
	}
	submit(t, r, func(s *SQE) { s.PrepPollRemove(2, 3) })
	for _, c := range waitCQEs(t, r, 2) {
		if c.UserData == 2 && (c.Err() != unix.ECANCELED || c.More()) {
			t.Errorf("removed poll = %+v", c)
		}
		if c.UserData == 3 && c.Res != 0 {
			t.Errorf("poll remove = %+v", c)
		}
	}
	submit(t, r, func(s *SQE) { s.PrepPollRemove(2, 4) })
	if c, _ := waitCQE(t, r, 4); c.Err() != unix.ENOENT {
		t.Errorf("second poll remove = %+v, want ENOENT", c)
	}
}

func TestCancelPendingRecv(t *testing.T) {
	r := newRing(t, Options{})
	_, b := socketpair(t, unix.SOCK_STREAM)
	buf := make([]byte, 16)
	submit(t, r, func(s *SQE) { s.PrepRecv(b, buf, 0, 1) })
	submit(t, r, func(s *SQE) { s.PrepCancel(1, 2) })
	for _, c := range waitCQEs(t, r, 2) {
		switch {
		case c.UserData == 1 && c.Err() == unix.ECANCELED && !c.More():
		case c.UserData == 2 && c.Res == 0:
		default:
			t.Errorf("unexpected %+v (%v)", c, c.Err())
		}
	}
	// By fd: every request on b.
	for i := uint64(10); i < 13; i++ {
		submit(t, r, func(s *SQE) { s.PrepRecv(b, buf, 0, i) })
	}
	submit(t, r, func(s *SQE) { s.PrepCancelFd(b, 20) })
	for _, c := range waitCQEs(t, r, 4) {
		if c.UserData == 20 && c.Res != 3 {
			t.Errorf("cancel fd = %+v, want 3 cancelled", c)
		}
		if c.UserData < 20 && c.Err() != unix.ECANCELED {
			t.Errorf("recv %d = %+v, want ECANCELED", c.UserData, c)
		}
	}
	submit(t, r, func(s *SQE) { s.PrepCancel(1, 3) })
	if c, _ := waitCQE(t, r, 3); c.Err() != unix.ENOENT {
		t.Errorf("cancel of a finished request = %+v, want ENOENT", c)
	}
}

func TestReadWritePipe(t *testing.T) {
	r := newRing(t, Options{})
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	buf := make([]byte, 16)
	submit(t, r, func(s *SQE) { s.PrepRead(p[0], buf, 1) }) // pending: pipe empty
	submit(t, r, func(s *SQE) { s.PrepWrite(p[1], []byte("pipe"), 2) })
	for _, c := range waitCQEs(t, r, 2) {
		if c.Res != 4 {
			t.Errorf("%+v (%v), want 4", c, c.Err())
		}
	}
	if string(buf[:4]) != "pipe" {
		t.Errorf("read %q", buf[:4])
	}
}

func TestRecvmsgSendmsgUDP(t *testing.T) {
	r := newRing(t, Options{})
	sock := func() (int, *unix.SockaddrInet4) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		sa, _ := unix.Getsockname(fd)
		return fd, sa.(*unix.SockaddrInet4)
	}
	a, aAddr := sock()
	b, bAddr := sock()

	// The kernel reads and writes these until the completions: heap.
	type msgState struct {
		hdr  unix.Msghdr
		iov  unix.Iovec
		name unix.RawSockaddrAny
		buf  [64]byte
	}
	in := new(msgState)
	in.iov.Base = &in.buf[0]
	in.iov.SetLen(len(in.buf))
	in.hdr.Name = (*byte)(unsafe.Pointer(&in.name))
	in.hdr.Namelen = unix.SizeofSockaddrAny
	in.hdr.Iov = &in.iov
	in.hdr.SetIovlen(1)
	submit(t, r, func(s *SQE) { s.PrepRecvmsg(b, &in.hdr, 0, 1) })

	out := new(msgState)
	copy(out.buf[:], "datagram")
	out.iov.Base = &out.buf[0]
	out.iov.SetLen(8)
	raw, rawLen := rawInet4(bAddr)
	out.name = *raw
	out.hdr.Name = (*byte)(unsafe.Pointer(&out.name))
	out.hdr.Namelen = rawLen
	out.hdr.Iov = &out.iov
	out.hdr.SetIovlen(1)
	submit(t, r, func(s *SQE) { s.PrepSendmsg(a, &out.hdr, 0, 2) })

	for _, c := range waitCQEs(t, r, 2) {
		if c.Res != 8 {
			t.Errorf("%+v (%v), want 8", c, c.Err())
		}
	}
	if string(in.buf[:8]) != "datagram" {
		t.Errorf("received %q", in.buf[:8])
	}
	from := (*unix.RawSockaddrInet4)(unsafe.Pointer(&in.name))
	port := int(from.Port>>8 | from.Port<<8)
	if in.hdr.Namelen != unix.SizeofSockaddrInet4 || port != aAddr.Port || from.Addr != aAddr.Addr {
		t.Errorf("sender %v:%d (namelen %d), want %v:%d", from.Addr, port, in.hdr.Namelen, aAddr.Addr, aAddr.Port)
	}
}

// TestAcceptOneShot: a one-shot accept writes the peer's address and its
// length into caller memory and returns a non-blocking, close-on-exec fd.
func TestAcceptOneShot(t *testing.T) {
	r := newRing(t, Options{})
	lfd, sa := listenTCP(t)
	peer := new(struct {
		sa  unix.RawSockaddrAny
		len uint32
	})
	peer.len = unix.SizeofSockaddrAny
	submit(t, r, func(s *SQE) { s.PrepAccept(lfd, &peer.sa, &peer.len, 1) })
	c := tcpSocket(t)
	defer unix.Close(c)
	if err := unix.Connect(c, sa); err != nil && err != unix.EINPROGRESS {
		t.Fatal(err)
	}
	got, _ := waitCQE(t, r, 1)
	if got.Res < 0 || got.More() {
		t.Fatalf("accept = %+v (%v)", got, got.Err())
	}
	defer unix.Close(int(got.Res))
	fl, _ := unix.FcntlInt(uintptr(got.Res), unix.F_GETFL, 0)
	fd, _ := unix.FcntlInt(uintptr(got.Res), unix.F_GETFD, 0)
	if fl&unix.O_NONBLOCK == 0 || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("accepted fd: flags %#x, fd flags %#x", fl, fd)
	}
	local, err := unix.Getsockname(c)
	if err != nil {
		t.Fatal(err)
	}
	in := (*unix.RawSockaddrInet4)(unsafe.Pointer(&peer.sa))
	if peer.len != unix.SizeofSockaddrInet4 || in.Family != unix.AF_INET ||
		int(in.Port>>8|in.Port<<8) != local.(*unix.SockaddrInet4).Port {
		t.Errorf("peer address %+v (len %d), want the connecting socket's %+v", in, peer.len, local)
	}
}
