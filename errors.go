package asyncdispatch

import (
	"context"
	"errors"
)

// Sentinel errors. Every error this package returns either is one of these
// or wraps one (test with errors.Is), or is an *os.SyscallError carrying the
// errno.
var (
	// ErrNoWork is returned by Poll and RunForever when the dispatcher has
	// nothing pending: no timer, no queued callback, no fd with a pending
	// operation or callback, no outstanding cross-goroutine work. The text
	// is Nim's, byte for byte.
	ErrNoWork = errors.New("No handles or timers registered in dispatcher.")

	// ErrClosed: the dispatcher was closed. Operations pending at Close
	// fail with it, and every later operation returns it.
	ErrClosed = errors.New("asyncdispatch: dispatcher is closed")

	// ErrCancelled: the future was cancelled. errors.Is(err,
	// context.Canceled) is true for it as well.
	ErrCancelled error = &aliasError{"asyncdispatch: future was cancelled", context.Canceled}

	// ErrTimeout: Timeout's deadline passed first. errors.Is(err,
	// context.DeadlineExceeded) is true for it as well.
	ErrTimeout error = &aliasError{"asyncdispatch: timed out", context.DeadlineExceeded}

	// ErrInProgress: Read of a future that has not finished (Nim's
	// "Future still in progress.").
	ErrInProgress = errors.New("Future still in progress.")

	// ErrNotRegistered: the fd is not registered with the dispatcher
	// (Nim's "File descriptor not registered.").
	ErrNotRegistered = errors.New("File descriptor not registered.")

	// ErrAlreadyRegistered: Register of an fd that is registered already.
	ErrAlreadyRegistered = errors.New("asyncdispatch: file descriptor already registered")

	// ErrInvalidFD: a negative descriptor.
	ErrInvalidFD = errors.New("asyncdispatch: invalid file descriptor")

	// ErrNestedLoop: WaitFor, Poll, Drain or RunForever was called from
	// inside the loop (an async procedure or a callback), which would nest
	// the event loop (Nim issue #11911). Use Await inside async code.
	ErrNestedLoop = errors.New("asyncdispatch: cannot run the event loop from inside an async procedure or callback; use Await")

	// ErrNotAsync: Await with a nil *Coro, i.e. outside an async procedure.
	ErrNotAsync = errors.New("asyncdispatch: Await outside an async procedure; use WaitFor")

	// ErrNilFuture: a nil *Future was passed.
	ErrNilFuture = errors.New("asyncdispatch: nil future")

	// ErrNilCallback: a nil callback was passed.
	ErrNilCallback = errors.New("asyncdispatch: nil callback")

	// ErrNegative: a negative size, count or duration where none is
	// allowed.
	ErrNegative = errors.New("asyncdispatch: negative argument")
)

// aliasError is a sentinel that also matches a standard library sentinel,
// so code written against context's errors keeps working.
type aliasError struct {
	msg   string
	alias error
}

func (e *aliasError) Error() string        { return e.msg }
func (e *aliasError) Is(target error) bool { return target == e.alias }
