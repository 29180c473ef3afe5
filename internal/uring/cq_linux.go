//go:build linux

package uring

import (
	"iter"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The completion side.
//
// Completions reads CQEs between the local head and the kernel's tail
// without a system call, copying each one out before the slot is given
// back. What must stay true:
//   - the tail is loaded atomically (acquire) before the CQEs it covers
//     are read; the head is stored atomically (release) only after they
//     have been copied, and the kernel may overwrite a slot as soon as
//     it sees the head pass it;
//   - the head is stored once per batch (and before any io_uring_enter,
//     see enter), not once per CQE;
//   - a completion carrying a reserved user_data (the waker's, an
//     internal timeout's, Close's cancel) is consumed here and never
//     yielded;
//   - completions the CQ had no room for wait in the kernel's overflow
//     list (IORING_FEAT_NODROP) and, with DEFER_TASKRUN or COOP_TASKRUN,
//     some wait as task work; both are signalled in the SQ flags
//     (IORING_SQ_CQ_OVERFLOW, IORING_SQ_TASKRUN), and Completions then
//     enters the kernel (GETEVENTS, no wait) to have them posted, and
//     goes on reading, so that none is left behind.

// Completions iterates over the completions ready now, in the order the
// kernel posted them, each copied out of the ring; breaking out of the
// loop leaves the rest for the next call. The loop body may use the Ring
// (GetSQE, Submit…); if it calls Close, the iteration stops.
func (r *Ring) Completions() iter.Seq[CQE] {
	return func(yield func(CQE) bool) {
		if r.closed {
			return
		}
		for {
			tail := atomic.LoadUint32(r.cqTail)
			for r.cqHeadLocal != tail {
				c := r.cqes[slot(r.cqHeadLocal, r.cqMask)]
				r.cqHeadLocal++
				if c.Flags&CQEFMore == 0 {
					r.inFlight--
				}
				if c.UserData >= ReservedUserData {
					r.internal(c)
					continue
				}
				if !yield(c) || r.closed {
					r.publishCQHead()
					return
				}
			}
			r.publishCQHead()
			if !r.needsFlush() {
				return
			}
			_, e := r.enter(0, 0, EnterGetEvents, nil, 0)
			if e != 0 && e != unix.EINTR && e != unix.EBUSY && e != unix.EAGAIN {
				return
			}
			if atomic.LoadUint32(r.cqTail) == r.cqHeadLocal {
				return
			}
		}
	}
}

// publishCQHead gives the slots read so far back to the kernel.
func (r *Ring) publishCQHead() {
	if r.cqHead != nil && atomic.LoadUint32(r.cqHead) != r.cqHeadLocal {
		// Release: the CQE copies above happen before the kernel may
		// reuse their slots.
		atomic.StoreUint32(r.cqHead, r.cqHeadLocal)
	}
}

// cqReady is how many CQEs are in the ring, not yet read.
func (r *Ring) cqReady() uint32 { return used(r.cqHeadLocal, atomic.LoadUint32(r.cqTail)) }

// CQReady is how many completions are ready in the CQ ring (internal ones
// included; completions still in the kernel's overflow list are not).
func (r *Ring) CQReady() uint32 {
	if r.closed {
		return 0
	}
	return r.cqReady()
}

// CQOverflowPending reports IORING_SQ_CQ_OVERFLOW: completions that found
// the CQ full wait in the kernel's overflow list; Completions and every
// Submit move them into the ring as it empties.
func (r *Ring) CQOverflowPending() bool {
	if r.closed {
		return false
	}
	return atomic.LoadUint32(r.sqFlags)&SQCQOverflow != 0
}

// CQDropped is the kernel's count of completions lost for good (the CQ
// ring's overflow counter: completions the kernel could not even queue in
// its overflow list). It stays 0 unless memory runs out.
func (r *Ring) CQDropped() uint32 {
	if r.closed {
		return 0
	}
	return atomic.LoadUint32(r.cqOverflow)
}

// internal handles a completion of the Ring's own.
func (r *Ring) internal(c CQE) {
	switch c.UserData {
	case udWake:
		// Clear after the wake's completion is consumed: a Wake that
		// finds woken still set has queued its work before the caller
		// looks at its queue (after this batch); one after this store
		// writes the eventfd again and posts a new completion.
		r.woken.Store(0)
		if c.Flags&CQEFMore == 0 {
			r.wakeArmed = false
		}
	case udTimeout:
		r.timeouts--
	}
}

// skipInternalTimeouts consumes internal timeout completions at the head
// of the CQ, so that a wait ended by one of them is not taken for a
// completion the caller waits for.
func (r *Ring) skipInternalTimeouts() {
	if r.timeouts == 0 {
		return
	}
	tail := atomic.LoadUint32(r.cqTail)
	for r.cqHeadLocal != tail {
		c := r.cqes[slot(r.cqHeadLocal, r.cqMask)]
		if c.UserData != udTimeout {
			break
		}
		r.cqHeadLocal++
		r.inFlight--
		r.internal(c)
	}
	r.publishCQHead()
}
