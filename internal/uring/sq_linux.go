//go:build linux

package uring

import "sync/atomic"

// The submission side.
//
// GetSQE hands out the slot at sqeTail if the kernel has consumed enough
// of the ring (its head) for one more; the caller fills it (with a prep
// helper) and Submit publishes all filled slots at once by storing the
// tail. What must stay true:
//   - a slot is written only between GetSQE and the next flush, and the
//     kernel reads it only after the tail store that covers it, which
//     is an atomic store (release): the SQE's contents are visible to
//     the kernel before the tail is;
//   - the kernel's head is loaded atomically (acquire): it advances the
//     head once it has copied an SQE, and only then may the slot be
//     reused;
//   - without IORING_SETUP_SQPOLL (never used here) the kernel reads the
//     SQ only inside io_uring_enter, so SQEs handed out but not yet
//     filled are never seen half-written as long as the caller fills
//     each one before its next Submit.

// GetSQE returns a zeroed SQE to fill, or nil when the SQ is full (the
// kernel has not yet consumed the SQEs already queued) or the Ring is
// closed. Submit consumes
// them and frees their slots. The SQE belongs to the caller only until
// the next Submit or SubmitAndWait, which hands every SQE obtained so far
// to the kernel: fill each one before that.
func (r *Ring) GetSQE() *SQE {
	if r.closed {
		return nil
	}
	head := atomic.LoadUint32(r.sqHead)
	if free(head, r.sqeTail, r.sqEntries) == 0 {
		return nil
	}
	sqe := &r.sqes[slot(r.sqeTail, r.sqMask)]
	r.sqeTail++
	*sqe = SQE{}
	return sqe
}

// SQReady is how many SQEs are filled and waiting for Submit (taken from
// GetSQE but not yet consumed by the kernel).
func (r *Ring) SQReady() uint32 {
	if r.closed {
		return 0
	}
	return used(atomic.LoadUint32(r.sqHead), r.sqeTail)
}

// SQSpace is how many more SQEs GetSQE can hand out before a Submit.
func (r *Ring) SQSpace() uint32 {
	if r.closed {
		return 0
	}
	return free(atomic.LoadUint32(r.sqHead), r.sqeTail, r.sqEntries)
}

// flushSQ publishes every SQE handed out so far and returns how many the
// kernel has still to consume.
func (r *Ring) flushSQ() uint32 {
	if r.sqeHead != r.sqeTail {
		r.sqeHead = r.sqeTail
		// Release: the SQE stores above happen before the kernel can
		// observe the new tail.
		atomic.StoreUint32(r.sqTail, r.sqeTail)
	}
	// The kernel only ever moves the head up to the tail we stored.
	return used(atomic.LoadUint32(r.sqHead), r.sqeTail)
}
