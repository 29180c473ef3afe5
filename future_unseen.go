package asyncdispatch

import (
	"log"
	"runtime"
	"sync/atomic"
)

// Unseen failures. A future that fails while nobody waits for it, and is
// then dropped without anyone reading its error, would lose the error
// silently (Nim's `discard fut`). Such futures carry a cleanup: if the
// garbage collector frees one whose error was never looked at, the error is
// reported to the unhandled-error handler.

var unhandled atomic.Pointer[func(error)]

// SetUnhandledErrorHandler sets the function that receives errors of
// failed futures that were dropped unread (nil restores the default, which
// logs them with the standard logger). It runs on a runtime goroutine, not
// on a loop: it must be safe for concurrent use.
func SetUnhandledErrorHandler(h func(error)) {
	if h == nil {
		unhandled.Store(nil)
		return
	}
	unhandled.Store(&h)
}

// UnhandledError is what the handler receives.
type UnhandledError struct {
	Proc string
	Err  error
}

func (e *UnhandledError) Error() string {
	return "asyncdispatch: future from " + e.Proc + " failed and its error was never read: " + e.Err.Error()
}
func (e *UnhandledError) Unwrap() error { return e.Err }

// failNote is shared by a failed future and its cleanup, which must not
// reference the future itself.
type failNote struct {
	seen atomic.Bool
	ue   UnhandledError
}

func watchUnseen[T any](f *Future[T]) {
	n := &failNote{ue: UnhandledError{Proc: f.Proc(), Err: f.err}}
	if f.dbg == nil {
		f.dbg = &futureDebug{}
	}
	f.dbg.note = n
	runtime.AddCleanup(f, reportUnseen, n)
}

func reportUnseen(n *failNote) {
	if n.seen.Load() {
		return
	}
	if h := unhandled.Load(); h != nil {
		(*h)(&n.ue)
		return
	}
	log.Print(n.ue.Error())
}
