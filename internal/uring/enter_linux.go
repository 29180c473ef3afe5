//go:build linux

package uring

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Entering the kernel: Submit and SubmitAndWait.
//
// What must stay true:
//   - every io_uring_enter goes through enter, which first publishes the
//     CQ head (so the kernel sees every slot already read as free) and
//     then counts the SQEs the kernel consumed by the SQ head's advance,
//     not by the return value (with IORING_ENTER_GETEVENTS the kernel
//     returns the submit count and drops the wait's error, or the wait's
//     error when nothing was submitted);
//   - EINTR is never a wakeup: Go preempts goroutines with SIGURG, and a
//     signal interrupts a waiting io_uring_enter; the wait is resumed for
//     the time left, as the epoll poller does;
//   - one kernel wait is at most maxWait long, and a longer timeout is a
//     loop of capped waits, each ending in ETIME and re-entered with the
//     time left (measured from one start, so nothing accumulates or
//     overflows: time.Duration(math.MaxInt64) is a plain, very long
//     wait). The cap keeps the timespec far from the edges of the
//     kernel's conversions (to jiffies before 6.1, to a ktime added to
//     the current time since), whatever the kernel version;
//   - a wait with a timeout uses IORING_ENTER_EXT_ARG (5.11) and falls
//     back to an internal TIMEOUT SQE (user_data udTimeout, swallowed by
//     the completion side) on kernels without IORING_FEAT_EXT_ARG.

// maxWait caps one kernel wait (see above); a day costs one extra system
// call a day.
const maxWait = 24 * time.Hour

// enter is the one caller of io_uring_enter.
func (r *Ring) enter(toSubmit, minComplete, flags uint32, arg unsafe.Pointer, argSize uintptr) (consumed int, e unix.Errno) {
	r.publishCQHead()
	before := atomic.LoadUint32(r.sqHead)
	r.enters++
	_, e = sysEnter(r.fd, toSubmit, minComplete, flags, arg, argSize)
	consumed = int(used(before, atomic.LoadUint32(r.sqHead)))
	r.inFlight += consumed
	return consumed, e
}

// needsFlush reports whether completions are parked in the kernel: in the
// CQ overflow list (IORING_SQ_CQ_OVERFLOW) or as task work that only an
// io_uring_enter with IORING_ENTER_GETEVENTS runs (IORING_SQ_TASKRUN,
// with COOP_TASKRUN or DEFER_TASKRUN and TASKRUN_FLAG).
func (r *Ring) needsFlush() bool {
	return atomic.LoadUint32(r.sqFlags)&(SQCQOverflow|SQTaskrun) != 0
}

// Submit hands every SQE obtained from GetSQE to the kernel and returns
// how many it consumed, without waiting for completions. When
// completions are parked in the kernel (see needsFlush) it also asks the
// kernel to post them. On ErrBusy the SQEs not consumed stay queued:
// reap completions and call Submit again.
func (r *Ring) Submit() (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	if !r.wakeArmed {
		r.armWake()
	}
	total := 0
	for {
		toSubmit := r.flushSQ()
		var flags uint32
		if r.needsFlush() {
			flags = EnterGetEvents
		}
		if toSubmit == 0 && flags == 0 {
			return total, nil
		}
		n, e := r.enter(toSubmit, 0, flags, nil, 0)
		total += n
		switch e {
		case 0:
			// Without IORING_SETUP_SUBMIT_ALL the kernel stops at the
			// first SQE that fails to prepare (posting its error as a
			// completion): go on with the rest.
			if n == 0 || r.SQReady() == 0 {
				return total, nil
			}
		case unix.EINTR:
		default:
			return total, r.enterErr(e)
		}
	}
}

// SubmitAndWait submits like Submit, then waits until at least
// minComplete completions are ready (the waker's counts: Wake ends the
// wait), or timeout has passed (a negative timeout waits for ever; 0 does
// not wait). It returns the number of SQEs consumed. A timeout is not an
// error; the caller reaps with Completions in either case.
//
// On kernels without IORING_FEAT_EXT_ARG the timeout is an internal
// TIMEOUT SQE, and one left from an earlier call can end a wait early: a
// spurious return, which the caller treats like any other.
func (r *Ring) SubmitAndWait(minComplete uint32, timeout time.Duration) (int, error) {
	if r.closed {
		return 0, ErrClosed
	}
	if timeout == 0 || minComplete == 0 {
		return r.Submit()
	}
	total := 0
	if !r.wakeArmed {
		// Never block without the waker armed: a Wake would be lost.
		if r.armWake(); !r.wakeArmed {
			n, err := r.Submit() // frees SQ slots, and arms the waker
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	var start time.Time
	if timeout > 0 {
		start = time.Now()
	}
	for {
		toSubmit := r.flushSQ()
		if toSubmit == 0 && r.cqReady() >= minComplete {
			return total, nil
		}
		flags := EnterGetEvents
		var arg unsafe.Pointer
		var argSize uintptr
		if timeout > 0 {
			left := timeout - time.Since(start)
			if left <= 0 {
				n, err := r.Submit()
				return total + n, err
			}
			wait := min(left, maxWait)
			if r.features&FeatExtArg != 0 {
				r.ts = durationToTimespec(wait)
				r.extArg = getEventsArg{Ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
				flags |= EnterExtArg
				arg, argSize = unsafe.Pointer(&r.extArg), unsafe.Sizeof(r.extArg)
			} else {
				if !r.armTimeout(wait, minComplete) {
					n, err := r.Submit()
					total += n
					if err != nil {
						return total, err
					}
					continue
				}
				toSubmit = r.flushSQ()
			}
		}
		n, e := r.enter(toSubmit, minComplete, flags, arg, argSize)
		total += n
		switch e {
		case 0, unix.EINTR, unix.ETIME:
			// Done, interrupted, or one capped wait over: the internal
			// timeout's completion (fallback) is not one the caller
			// waits for; with the time left, wait again.
			r.skipInternalTimeouts()
			if r.cqReady() >= minComplete {
				return total, nil
			}
		default:
			return total, r.enterErr(e)
		}
	}
}

// armTimeout queues the internal TIMEOUT SQE of a wait without
// IORING_ENTER_EXT_ARG: it completes after d, or once count other
// completions have been posted, so a stale one does not linger. The
// kernel copies the Timespec when it consumes the SQE.
func (r *Ring) armTimeout(d time.Duration, count uint32) bool {
	sqe := r.GetSQE()
	if sqe == nil {
		return false
	}
	r.ts = durationToTimespec(d)
	sqe.PrepTimeout(&r.ts, count, 0, udTimeout)
	r.timeouts++
	return true
}

// durationToTimespec splits d (>= 0) without overflow.
func durationToTimespec(d time.Duration) Timespec {
	return Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
}

// enterErr classifies an io_uring_enter errno.
func (r *Ring) enterErr(e unix.Errno) error {
	err := os.NewSyscallError("io_uring_enter", e)
	switch e {
	case unix.EAGAIN, unix.EBUSY:
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case unix.EEXIST:
		return fmt.Errorf("%w: %w", ErrWrongThread, err)
	case unix.EBADR:
		return fmt.Errorf("%w: %w", ErrCQDropped, err)
	}
	return err
}
