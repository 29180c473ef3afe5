//go:build linux

// Package uring is the foundation of the io_uring backend: one Ring (an
// io_uring instance with its SQ ring, CQ ring and SQE array mapped once),
// prep helpers for the operations an event loop issues, submission and
// waiting (with a timeout and a cross-goroutine Wake), completion
// iteration without a system call, provided buffer rings, and a probe
// saying whether io_uring can be used at all. It calls the kernel
// directly through golang.org/x/sys/unix; there is no cgo.
//
// The loop's round with a Ring:
//
//	sqe := r.GetSQE()                  // nil: SQ full, Submit first
//	sqe.PrepRecv(fd, buf, 0, ud)       // buf: heap, kept until the completion
//	r.SubmitAndWait(1, timeout)        // submit, block until ≥1 completion, Wake or timeout
//	for c := range r.Completions() {   // no system call
//		... c.UserData, c.Res, c.More(), c.Buffer() ...
//	}
//
// Contracts, each stated in full where it is kept:
//   - one goroutine owns a Ring; only Wake may be called from others
//     (ring_linux.go); with Options.SingleIssuer that goroutine is also
//     locked to its OS thread (thread_linux.go);
//   - memory an SQE points to is the caller's, on the heap, referenced
//     and unchanged until the request's final completion (prep_linux.go);
//   - user_data is the caller's opaque value below ReservedUserData;
//   - each request ends with exactly one completion without
//     IORING_CQE_F_MORE, which the Ring counts (InFlight) so that Close
//     can wait for the kernel to let go of the caller's memory.
//
// Availability: Available() says once per process whether io_uring can
// be used and, if not, why (ErrUnavailable); a dispatcher falls back to
// epoll then. ASYNCDISPATCH_IOURING=enosys|eperm simulates a kernel
// without io_uring or a seccomp/sysctl refusal (probe_linux.go).
package uring
