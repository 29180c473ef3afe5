package asyncdispatch

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// AsyncError is how an error looks once it has crossed async procedures:
// the original error plus the procedures it passed through, innermost
// first (Nim's "Async traceback", without needing a debug build). Error()
// is the original message, unchanged; Trace() and the %+v verb show the
// procedures. errors.Is and errors.As see the original through Unwrap.
type AsyncError struct {
	Err   error
	Procs []string
}

func (e *AsyncError) Error() string { return e.Err.Error() }
func (e *AsyncError) Unwrap() error { return e.Err }

// Trace returns the error and the procedures it passed through.
func (e *AsyncError) Trace() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	b.WriteString("\nAsync traceback:")
	for i := len(e.Procs) - 1; i >= 0; i-- {
		b.WriteString("\n  ")
		b.WriteString(e.Procs[i])
	}
	return b.String()
}

// Format implements %+v as Trace.
func (e *AsyncError) Format(s fmt.State, verb rune) {
	if verb == 'v' && s.Flag('+') {
		fmt.Fprint(s, e.Trace())
		return
	}
	fmt.Fprint(s, e.Error())
}

// traced records that err left the async procedure c.
func traced(err error, c procCall) error {
	name := c.procName()
	var ae *AsyncError
	if errors.As(err, &ae) && ae == err {
		procs := make([]string, len(ae.Procs), len(ae.Procs)+1)
		copy(procs, ae.Procs)
		return &AsyncError{Err: ae.Err, Procs: append(procs, name)}
	}
	if ae != nil {
		// Wrapped by the user on the way: keep their wrapping, start a
		// new trace around it.
		return &AsyncError{Err: err, Procs: append(append([]string(nil), ae.Procs...), name)}
	}
	return &AsyncError{Err: err, Procs: []string{name}}
}

// Future tracking (Nim's -d:futureLogging and getFuturesInProgress, but
// switchable at run time and per dispatcher).

// FutureInfo describes a pending future.
type FutureInfo struct {
	Proc    string        // creating procedure
	Created time.Time     // when it was created
	Age     time.Duration // how long it has been pending
	Stack   string        // where it was created
	pcs     []uintptr
}

// SetTracking turns pending-future tracking on or off. When on, every
// future created on d records its creator, time and creation stack until it
// finishes (a few hundred nanoseconds per future); when off it costs one
// branch. Turning it off forgets what was tracked.
func (d *Dispatcher) SetTracking(on bool) {
	d.tracking = on
	if !on {
		d.inProgress = nil
	}
}

func (d *Dispatcher) track(f futureBase, skip int) {
	if d.inProgress == nil {
		d.inProgress = make(map[any]*FutureInfo)
	}
	pcs := make([]uintptr, 16)
	n := runtime.Callers(skip+1, pcs)
	d.inProgress[f] = &FutureInfo{Created: time.Now(), pcs: pcs[:n]}
}

func (d *Dispatcher) untrack(f futureBase) {
	delete(d.inProgress, f)
}

// FuturesInProgress lists the pending futures created while tracking was
// on, oldest first.
func (d *Dispatcher) FuturesInProgress() []FutureInfo {
	out := make([]FutureInfo, 0, len(d.inProgress))
	now := time.Now()
	for k, fi := range d.inProgress {
		f := k.(futureBase)
		info := *fi
		info.Proc = f.Proc()
		info.Age = now.Sub(fi.Created)
		var b strings.Builder
		frames := runtime.CallersFrames(fi.pcs)
		for {
			fr, more := frames.Next()
			fmt.Fprintf(&b, "%s\n\t%s:%d\n", fr.Function, fr.File, fr.Line)
			if !more {
				break
			}
		}
		info.Stack = b.String()
		info.pcs = nil
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

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
