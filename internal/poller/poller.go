// Package poller is the dispatcher's only contact with the operating
// system's readiness API.
//
// Every backend (epoll today; io_uring and kqueue are further files with the
// same contract) provides a value satisfying Poller:
//
//	New() (Poller, error)    create the backend and its waker; every fd it
//	                         opens is close-on-exec.
//	Set(fd, token, want)     make the backend report exactly the readiness in
//	                         want for fd (want == 0 removes fd). Interest is
//	                         level-triggered: an fd stays reported while it
//	                         is ready and wanted. token comes back in Event
//	                         so the caller can drop events for an fd number
//	                         that was closed and reused (a generation tag, as
//	                         fdseq in Go's netpoll_epoll.go).
//	Wait(events, timeout)    block for at most timeout (negative: no limit,
//	                         0: never block), fill events, return how many.
//	                         A timeout is rounded up to the backend's
//	                         granularity, never down, so timers never fire
//	                         early, and capped at MaxWait: a longer wait
//	                         returns after MaxWait with no events, and the
//	                         caller, which knows its deadline, waits again.
//	                         A signal interrupting the wait is not an
//	                         event: Wait resumes waiting for the time left.
//	Wake()                   the only method safe from other goroutines: make
//	                         a concurrent or the next Wait return promptly.
//	                         Wakes coalesce; the waker is drained by Wait and
//	                         never shows up in events.
//	Fd()                     the backend's own descriptor (the epoll fd), for
//	                         GetIoHandler.
//	Close()                  release every descriptor the backend owns.
//
// Everything but Wake must be called from the goroutine that owns the
// dispatcher. The poller keeps no per-fd state beyond what the kernel keeps;
// callback lists, generations and the interest bookkeeping live in the
// dispatcher's fd table.
package poller

import "time"

// MaxWait is the longest one Wait blocks with a non-negative timeout:
// 1e9 ms, about 11.6 days, the cap of Go's runtime poller
// (netpoll_epoll.go). epoll_wait takes an int of milliseconds, and a
// larger timeout must not wrap around.
const MaxWait = 1e9 * time.Millisecond

// Interest is a set of readiness kinds.
type Interest uint8

const (
	Read  Interest = 1 << iota // readable, or a listener has a connection
	Write                      // writable, or a connect finished
)

// Event is one readiness report.
type Event struct {
	Token uint64   // as given to Set
	Ready Interest // what is ready
	Err   bool     // error or hang-up: run both directions' callbacks
}

// Poller is the backend contract described in the package comment.
type Poller interface {
	Set(fd int, token uint64, old, want Interest) error
	Wait(events []Event, timeout time.Duration) (int, error)
	Wake() error
	Fd() int
	Close() error
}
