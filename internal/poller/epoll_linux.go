//go:build linux

package poller

import (
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/sys"
)

// epoll is the Linux backend: one epoll instance plus an eventfd waker.
//
// What must stay true:
//   - the waker is registered once, level-triggered, with a token no fd
//     can have (all ones); Wait drains it before returning so a wake costs
//     one extra epoll_wait round at most;
//   - woken is set before writing the eventfd and cleared by Wait, so
//     concurrent Wake calls write the eventfd once per Wait round;
//   - Set issues at most one epoll_ctl: ADD when old is 0, DEL when want is
//     0, MOD otherwise (a DEL also stops EPOLLHUP/EPOLLERR reports, which
//     epoll delivers even for an empty event mask).
type epoll struct {
	epfd   int
	wakefd int
	woken  atomic.Uint32
	raw    []unix.EpollEvent
	// ctl is Set's argument to epoll_ctl and drain Wait's buffer for
	// the waker, kept here so that passing them through internal/sys's
	// function variables costs no allocation (both are used on the
	// loop's goroutine only).
	ctl   unix.EpollEvent
	drain [8]byte
}

// wakeOne is what Wake adds to the eventfd counter (any non-zero value
// does). It is only ever read, so every Wake may share it.
var wakeOne = [8]byte{1}

const wakeToken = ^uint64(0)

// New creates the platform's default backend.
func New() (Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(wfd)
		unix.Close(epfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &epoll{epfd: epfd, wakefd: wfd, raw: make([]unix.EpollEvent, 256)}, nil
}

func setToken(ev *unix.EpollEvent, tok uint64) {
	ev.Fd = int32(uint32(tok))
	ev.Pad = int32(uint32(tok >> 32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func (p *epoll) Set(fd int, tok uint64, old, want Interest) error {
	if old == want {
		return nil
	}
	ev := &p.ctl
	*ev = unix.EpollEvent{}
	if want&Read != 0 {
		ev.Events |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if want&Write != 0 {
		ev.Events |= unix.EPOLLOUT
	}
	setToken(ev, tok)
	op := unix.EPOLL_CTL_MOD
	switch {
	case old == 0:
		op = unix.EPOLL_CTL_ADD
	case want == 0:
		op = unix.EPOLL_CTL_DEL
	}
	if err := sys.EpollCtl(p.epfd, op, fd, ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// waitMillis converts Wait's timeout to epoll_wait's: -1 (no limit) for
// a negative timeout, else milliseconds rounded up — a timer must never
// fire early (mio does the same) — and capped at MaxWait. The kernel
// reads the timeout as a 32-bit int: uncapped, a 30-day timeout would
// turn negative (wait forever) and 2³² ms + 20 ms would become 20 ms.
func waitMillis(timeout time.Duration) int {
	switch {
	case timeout < 0:
		return -1
	case timeout >= MaxWait:
		return int(MaxWait / time.Millisecond)
	}
	return int((timeout + time.Millisecond - 1) / time.Millisecond)
}

func (p *epoll) Wait(events []Event, timeout time.Duration) (int, error) {
	ms := waitMillis(timeout)
	raw := p.raw
	if len(events) < len(raw) {
		raw = raw[:len(events)]
	}
	n, err := sys.EpollWait(p.epfd, raw, ms)
	if err == unix.EINTR && ms != 0 {
		// A signal (Go's own preemption, SIGCHLD, a Notify'd signal) is
		// not a wakeup of the loop: wait again for the time that is left,
		// so Poll(t) still returns only on an event or after t.
		deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
		for err == unix.EINTR {
			if ms >= 0 {
				left := time.Until(deadline)
				if left <= 0 {
					return 0, nil
				}
				ms = waitMillis(left)
			}
			n, err = sys.EpollWait(p.epfd, raw, ms)
		}
	}
	if err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	k := 0
	for i := 0; i < n; i++ {
		r := &raw[i]
		tok := token(r)
		if tok == wakeToken {
			// Drain, then clear. The other order loses wakes: a Wake
			// between the clear and the drain writes, the drain eats
			// its write, and woken stays 1 over an empty eventfd, so
			// every later Wake skips its write and the loop sleeps
			// through them. In this order a Wake that finds woken
			// still set has queued its work before we return, and the
			// caller looks at its cross-goroutine queue after every
			// Wait; one after the clear writes (a spurious wake at
			// worst).
			sys.Read(p.wakefd, p.drain[:])
			p.woken.Store(0)
			continue
		}
		e := Event{Token: tok}
		if r.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLPRI) != 0 {
			e.Ready |= Read
		}
		if r.Events&unix.EPOLLOUT != 0 {
			e.Ready |= Write
		}
		if r.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			e.Err = true
			e.Ready |= Read | Write
		}
		events[k] = e
		k++
	}
	return k, nil
}

func (p *epoll) Wake() error {
	if p.woken.Swap(1) == 1 {
		return nil
	}
	for {
		_, err := sys.Write(p.wakefd, wakeOne[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil && err != unix.EAGAIN {
			return os.NewSyscallError("write", err)
		}
		return nil
	}
}

func (p *epoll) Fd() int { return p.epfd }

func (p *epoll) Close() error {
	err1 := unix.Close(p.wakefd)
	err2 := unix.Close(p.epfd)
	if err1 != nil {
		return os.NewSyscallError("close", err1)
	}
	if err2 != nil {
		return os.NewSyscallError("close", err2)
	}
	return nil
}
