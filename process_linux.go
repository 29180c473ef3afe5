//go:build linux

package asyncdispatch

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/asyncdispatch/asyncdispatch/internal/poller"
)

// Processes (Nim's addProcess), on pidfds.
//
// Nim blocks SIGCHLD and waits on a signalfd: only children can be
// watched, a child that exited before the registration is never reported,
// and two registrations at once make poll fail with EAGAIN. A pidfd
// (pidfd_open, Linux 5.3) names one process for good and becomes readable
// when it exits, so here:
//   - any number of registrations, for the same or different processes,
//     work at once (each has its own pidfd);
//   - a child that exited before AddProcess is still reported: it is a
//     zombie until reaped, pidfd_open succeeds and the pidfd is readable
//     at once;
//   - any process of our pid namespace can be watched, not only children
//     (there is no permission check on pidfd_open);
//   - a pid that does not exist (or was reaped already) is an error at
//     once (ESRCH), not a registration that never fires (Nim #22758).
//
// Older kernels: without pidfd_open (before 5.3, or a seccomp filter that
// refuses it) AddProcess and WaitProcess return an error matching
// ErrProcessUnsupported and errors.ErrUnsupported, and nothing is
// registered. There is deliberately no fallback: a waitid-polling goroutine
// would only see children and a kill(pid, 0) poll cannot tell a recycled
// pid from the original, which is the bug pidfds exist to fix.
//
// Reaping and os/exec. AddProcess never reaps: the exited child stays a
// zombie until somebody waits for it, normally cmd.Wait (os/exec) or
// Process.Wait, which may run before or after the callback. (Go's own
// os.Process also holds a pidfd on modern kernels; the two pidfds are
// independent.) WaitProcess does reap a child, with waitid(P_PIDFD), to
// get its exit status: after it, cmd.Wait fails with ECHILD — call
// cmd.Process.Release instead, or use AddProcess and cmd.Wait. For a
// process that is not our child (or a child reaped elsewhere first)
// WaitProcess reports the exit with an unknown status.

// ErrProcessUnsupported: the kernel (or a seccomp filter) does not provide
// pidfd_open, needed by AddProcess and WaitProcess. errors.Is matches
// errors.ErrUnsupported too.
var ErrProcessUnsupported error = &aliasError{"asyncdispatch: process watching needs pidfd_open (Linux 5.3 or later)", errors.ErrUnsupported}

// pidfdOpen is pidfd_open(2); a variable so that tests can play an old
// kernel.
var pidfdOpen = func(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// openPidfd opens a pidfd for pid and sorts out the errors.
func openPidfd(pid int) (int, error) {
	if pid <= 0 {
		return -1, fmt.Errorf("%w: pid %d", ErrInvalidFD, pid)
	}
	for {
		fd, err := pidfdOpen(pid)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EINTR:
			continue
		case err == unix.ENOSYS, err == unix.EPERM:
			// EPERM is not an error pidfd_open documents: it is a seccomp
			// filter refusing the call (older container runtimes).
			return -1, fmt.Errorf("%w: %w", ErrProcessUnsupported, os.NewSyscallError("pidfd_open", err))
		}
		return -1, os.NewSyscallError("pidfd_open", err)
	}
}

// AddProcess calls cb once, on the loop, when the process pid exits (Nim's
// addProcess); cb receives the process's pidfd, valid only during the
// call (it is closed afterwards, whatever cb returns: an exit happens
// once). cb may close it itself with CloseSocket; it is then not closed a
// second time, so a descriptor that took its number meanwhile is safe.
// The process is not reaped. While waiting, the registration counts as an
// active descriptor.
//
// pid may be a child or any other process of our pid namespace, and may
// have exited already (a zombie child is reported at once). A pid that
// does not exist returns an error matching syscall.ESRCH; a kernel without
// pidfd_open, one matching ErrProcessUnsupported.
func (d *Dispatcher) AddProcess(pid int, cb Callback) error {
	if cb == nil {
		return ErrNilCallback
	}
	if d.closed {
		return ErrClosed
	}
	s, err := d.registerPidfd(pid)
	if err != nil {
		return err
	}
	fire := func(fd AsyncFD) bool {
		defer closePidfd(d, s)
		cb(fd)
		return true
	}
	if err := d.addWaiter(AsyncFD(s.fd), poller.Read, waiter{cb: fire}); err != nil {
		closePidfd(d, s)
		return err
	}
	return nil
}

// A pidfd is closed exactly once, by whoever gets there first: the
// package when the wait is over, or a user's CloseSocket of its number
// (from AddProcess's callback, which is handed the number). CloseSocket
// closes an owned descriptor through its closer, so the pidfd's closer
// notes the close, and the package's own close of that number, which may
// by then belong to a new socket, does not happen. (Refusing the pidfd in
// CloseSocket would be the other way; closing a descriptor one was given
// is what callers expect to be allowed.)
type pidfd struct {
	fd     int
	closed bool
}

func (p *pidfd) close() {
	if !p.closed {
		p.closed = true
		unix.Close(p.fd)
	}
}

// registerPidfd opens a pidfd for pid and registers it, owned, with its
// closer.
func (d *Dispatcher) registerPidfd(pid int) (*fdState, error) {
	fd, err := openPidfd(pid)
	if err != nil {
		return nil, err
	}
	s, err := d.register(AsyncFD(fd), true)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.closer = (&pidfd{fd: fd}).close
	return s, nil
}

// closePidfd unregisters s if it is still registered, and closes its
// pidfd unless that was closed already (then s.fd may be someone else's).
func closePidfd(d *Dispatcher, s *fdState) {
	if d.lookup(AsyncFD(s.fd)) == s {
		d.unregister(s, ErrNotRegistered)
	}
	s.closer()
}

// ExitStatus is how a process ended, as WaitProcess reports it.
type ExitStatus struct {
	// Pid is the process.
	Pid int
	// Reaped is true when the process was our child and WaitProcess
	// collected (reaped) its status; false when it was not our child, or
	// was reaped by someone else first: it has exited, but how is
	// unknown, and Code is -1.
	Reaped bool
	// Code is the exit code, or -1 if the process was killed by a signal
	// or the status is unknown.
	Code int
	// Signal is the signal that killed the process, 0 if it exited.
	Signal syscall.Signal
	// CoreDumped: killed by a signal and dumped core.
	CoreDumped bool
}

// Exited reports whether the process exited normally (its Code is known).
func (s ExitStatus) Exited() bool { return s.Reaped && s.Signal == 0 }

// Success reports whether the process exited with code 0.
func (s ExitStatus) Success() bool { return s.Exited() && s.Code == 0 }

func (s ExitStatus) String() string {
	switch {
	case !s.Reaped:
		return fmt.Sprintf("process %d exited (status unknown: not our child)", s.Pid)
	case s.Signal != 0 && s.CoreDumped:
		return fmt.Sprintf("process %d killed by %v (core dumped)", s.Pid, s.Signal)
	case s.Signal != 0:
		return fmt.Sprintf("process %d killed by %v", s.Pid, s.Signal)
	}
	return fmt.Sprintf("process %d exited with code %d", s.Pid, s.Code)
}

// procWait is a WaitProcess: its future, its pidfd and the pending
// operation on the pidfd, in one allocation.
type procWait struct {
	fut Future[ExitStatus]
	d   *Dispatcher
	s   *fdState
	pid int
}

func (w *procWait) procName() string { return "WaitProcess" }

// cancel drops the wait and closes the pidfd (the caller fails the future).
func (w *procWait) cancel() bool {
	if w.s == nil {
		return false
	}
	w.d.removeOp(AsyncFD(w.s.fd), poller.Read, w)
	w.release()
	return true
}

func (w *procWait) release() {
	if w.s != nil {
		closePidfd(w.d, w.s)
		w.s = nil
	}
}

// ready runs when the pidfd is readable: the process has exited.
func (w *procWait) ready(s *fdState) bool {
	fd := AsyncFD(s.fd)
	st, err := reap(int(fd), w.pid)
	if err == errNotYet {
		return false
	}
	w.release()
	if err != nil {
		w.fut.tryFail(err)
	} else {
		w.fut.tryComplete(st)
	}
	return true
}

// abort runs when the pidfd is unregistered under us: by Close of the
// dispatcher or a CloseSocket of its number, which close it (through the
// closer, which does nothing the second time), or by an Unregister of its
// number, after which nobody else would.
func (w *procWait) abort(err error) {
	if s := w.s; s != nil {
		w.s = nil
		s.closer()
	}
	w.fut.tryFail(err)
}

// WaitProcess returns a future that completes with the exit status of
// process pid when it exits (beyond Nim; an awaitable AddProcess). If pid
// is our child, it is reaped with waitid(P_PIDFD) (Linux 5.4) and the
// status is complete; otherwise the future completes with Reaped false and
// an unknown status. See the comment at the top of process_linux.go about
// os/exec: after WaitProcess has reaped a child started with os/exec, use
// cmd.Process.Release, not cmd.Wait.
//
// The future fails at once with the errors of AddProcess (ESRCH,
// ErrProcessUnsupported), with ErrClosed if the dispatcher is closed
// meanwhile; cancelling it stops watching and closes the pidfd.
func (d *Dispatcher) WaitProcess(pid int) *Future[ExitStatus] {
	w := &procWait{d: d, pid: pid}
	w.fut.init(d, w, 2)
	if d.closed {
		w.fut.Fail(ErrClosed)
		return &w.fut
	}
	s, err := d.registerPidfd(pid)
	if err != nil {
		w.fut.Fail(err)
		return &w.fut
	}
	w.s = s
	if err := d.addWaiter(AsyncFD(s.fd), poller.Read, waiter{op: w}); err != nil {
		w.release()
		w.fut.Fail(err)
	}
	return &w.fut
}

// errNotYet: waitid found the child still running (a spurious wakeup).
var errNotYet = errors.New("not exited yet")

// reap collects the status of the exited process behind pidfd.
func reap(pidfd, pid int) (ExitStatus, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED|unix.WNOHANG, nil)
		switch err {
		case nil:
		case unix.EINTR:
			continue
		case unix.ECHILD:
			// Not our child, or reaped by someone else first.
			return ExitStatus{Pid: pid, Code: -1}, nil
		default:
			return ExitStatus{}, os.NewSyscallError("waitid", err)
		}
		break
	}
	c := (*siginfoChild)(unsafe.Pointer(&info))
	if c.Pid == 0 {
		return ExitStatus{}, errNotYet
	}
	code := c.Code
	if isMIPS {
		code = c.Errno // si_errno and si_code are swapped on MIPS
	}
	st := ExitStatus{Pid: int(c.Pid), Reaped: true, Code: -1}
	switch code {
	case cldExited:
		st.Code = int(c.Status)
	case cldKilled:
		st.Signal = syscall.Signal(c.Status)
	case cldDumped:
		st.Signal = syscall.Signal(c.Status)
		st.CoreDumped = true
	}
	return st, nil
}

// siginfoChild is the SIGCHLD view of siginfo_t (as Go's
// internal/syscall/unix.SiginfoChild): three int32s, padding to align the
// union on 64-bit systems, then si_pid, si_uid, si_status.
type siginfoChild struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      [is64bit]int32
	Pid    int32
	Uid    uint32
	Status int32
	_      [128 - (6+is64bit)*4]byte
}

// si_code values of SIGCHLD (<signal.h>; not in x/sys/unix).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

const is64bit = int(^uintptr(0) >> 63)

var isMIPS = strings.HasPrefix(runtime.GOARCH, "mips")

var _ [unsafe.Sizeof(unix.Siginfo{}) - unsafe.Sizeof(siginfoChild{})]struct{} // no larger than siginfo_t
