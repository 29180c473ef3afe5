//go:build linux

package uring

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Tearing a Ring down.
//
// What must stay true:
//   - nothing is unmapped or closed while the kernel may still use an
//     address it was given: Close first cancels every request
//     (ASYNC_CANCEL with IORING_ASYNC_CANCEL_ANY|ALL, 5.19) and reaps
//     until InFlight is 0, bounded by closeDrainTimeout;
//   - completions reaped on the way are the caller's (CloseWith): one
//     may carry a resource, such as an accepted fd;
//   - release runs once, and after it no method touches ring memory:
//     the ring pointers are cleared and every entry point checks closed.

// closeDrainTimeout bounds how long Close waits for cancelled requests
// to report.
const closeDrainTimeout = 2 * time.Second

// Close cancels every request in flight, waits (up to 2 s) for their
// final completions, which it discards, then unregisters and unmaps the
// BufRings, unmaps the rings and closes the ring fd and the eventfd.
//
// Waiting matters: closing the ring fd does not stop requests
// synchronously (the kernel cancels them from a workqueue), so a receive
// could still write into a buffer after an immediate unmap or after the
// caller let the garbage collector have it. After Close returns with
// InFlight() == 0, the kernel holds no address the caller gave it.
//
// Discarding matters too: a completion may carry a resource, such as the
// fd of an accepted connection; CloseWith hands such completions to the
// caller instead.
//
// With SingleIssuer, Close must run on the ring's thread like every
// other call (from another thread the cancel fails with EEXIST and Close
// only tears down). Close must not run concurrently with Wake. A second
// Close returns nil.
func (r *Ring) Close() error { return r.CloseWith(nil) }

// CloseWith is Close, passing every completion of the caller's reaped
// while draining (those already in the CQ, and those of the cancelled
// requests) to last, if not nil, before anything is unmapped.
func (r *Ring) CloseWith(last func(CQE)) error {
	if r.closed {
		return nil
	}
	r.drainForClose(last)
	return r.release()
}

func (r *Ring) drainForClose(last func(CQE)) {
	if r.ringMem == nil || r.inFlight <= 0 {
		return
	}
	sqe := r.GetSQE()
	if sqe == nil {
		if _, err := r.Submit(); err != nil {
			return
		}
		if sqe = r.GetSQE(); sqe == nil {
			return
		}
	}
	sqe.prepCancelAny(udCloseCancel)
	start := time.Now()
	for r.inFlight > 0 && time.Since(start) < closeDrainTimeout {
		if _, err := r.SubmitAndWait(1, 20*time.Millisecond); err != nil && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrCQDropped) {
			return
		}
		for c := range r.Completions() {
			if last != nil {
				last(c)
			}
		}
	}
}

// release undoes New, for a ring in any state of construction. It runs
// once (Close checks closed; New calls it only on failure).
func (r *Ring) release() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, b := range r.bufRings {
		keep(b.release())
	}
	r.bufRings = nil
	for _, m := range []*[]byte{&r.sqeMem, &r.cqMem, &r.ringMem} {
		if *m != nil {
			if err := unix.Munmap(*m); err != nil {
				keep(os.NewSyscallError("munmap", err))
			}
			*m = nil
		}
	}
	r.sqes, r.cqes = nil, nil
	r.sqHead, r.sqTail, r.sqFlags = nil, nil, nil
	r.cqHead, r.cqTail, r.cqOverflow = nil, nil, nil
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil {
			keep(os.NewSyscallError("close", err))
		}
		r.fd = -1
	}
	if r.wakefd >= 0 {
		// wakefd keeps its value: Wake reads it from other goroutines
		// without synchronisation, and release runs once.
		if err := unix.Close(r.wakefd); err != nil {
			keep(os.NewSyscallError("close", err))
		}
	}
	r.closed = true
	return first
}
