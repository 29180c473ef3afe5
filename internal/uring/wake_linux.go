//go:build linux

package uring

import (
	"os"

	"golang.org/x/sys/unix"
)

// Waking a ring blocked in io_uring_enter from another goroutine.
//
// The Ring owns an eventfd watched by a multishot POLL_ADD (POLLIN,
// user_data udWake) on the ring itself: a write to the eventfd posts a
// completion, which ends any wait (it counts towards minComplete). This
// direction, rather than IORING_REGISTER_EVENTFD (which makes the ring
// signal an eventfd: the other way round), or MSG_RING (which needs a
// ring, or kernel 6.13 for IORING_REGISTER_SEND_MSG_RING, on the waking
// side), works from any goroutine on every kernel with multishot poll.
//
// What must stay true (the same protocol as the epoll poller's Wake):
//   - woken is set before the eventfd write and cleared when the wake's
//     completion is consumed (cq_linux.go, internal), so concurrent
//     Wakes cost one write and one completion per loop round;
//   - the poll is edge-triggered and the eventfd is never drained: every
//     write is an edge and posts a completion; the 64-bit counter cannot
//     overflow at one increment per round;
//   - the poll is re-armed when its completion lacks IORING_CQE_F_MORE
//     (the kernel ends a multishot request when the CQ is full, among
//     other reasons), and SubmitAndWait never blocks while it is not
//     armed. Re-arming over a non-zero counter posts a completion at
//     once: a spurious wake, never a lost one.

var wakeOne = [8]byte{1}

// armWake queues the waker's POLL_ADD if an SQE is free; the caller
// submits it.
func (r *Ring) armWake() {
	if r.wakeArmed || r.wakefd < 0 {
		return
	}
	sqe := r.GetSQE()
	if sqe == nil {
		return
	}
	sqe.PrepPollMultishot(r.wakefd, unix.POLLIN, udWake)
	r.wakeArmed = true
}

// Wake makes a SubmitAndWait in progress (or the next one) return. It is
// the one method safe to call from any goroutine, any number of times;
// it must not race with Close (the caller orders them, as for the epoll
// poller).
func (r *Ring) Wake() error {
	if r.woken.Swap(1) == 1 {
		return nil
	}
	for {
		_, err := unix.Write(r.wakefd, wakeOne[:])
		switch err {
		case unix.EINTR:
			continue
		case nil, unix.EAGAIN:
			return nil
		}
		return os.NewSyscallError("write", err)
	}
}
