package asyncdispatch

import (
	"runtime"
	"sync"
)

// Goroutine identity from stack traces: the slow, portable half of
// loop_goroutine.go. Only error paths, the net.Conn view's door and the
// opt-in owner check call these; the hot paths compare curG values.

// stackBufs holds goid's buffers: runtime.Stack's buffer escapes, and the
// owner check must not add an allocation to every operation.
var stackBufs = sync.Pool{New: func() any { return new([64]byte) }}

// goid is the calling goroutine's id, read from the first line of its
// stack trace ("goroutine 123 [running]:"). Ids are never reused.
func goid() int64 {
	buf := stackBufs.Get().(*[64]byte)
	defer stackBufs.Put(buf)
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	var id int64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + int64(c-'0')
	}
	return id
}

// loopFrames are the functions whose frames put a goroutine on a loop:
// every callback runs under runOnce (Poll), drainReady (ScheduleCallbacks)
// or teardown (Close), and every coroutine — the package's and any other
// iter.Pull one — starts in runtime.corostart.
var loopFrames = []string{
	pkgPrefix + "(*Dispatcher).runOnce",
	pkgPrefix + "(*Dispatcher).drainReady",
	pkgPrefix + "(*Dispatcher).teardown",
	"runtime.corostart",
}

// onLoop reports whether the calling goroutine is running some
// dispatcher's loop or is a coroutine. A loop entry point refused there is
// a nested call (ErrNestedLoop), refused anywhere else another goroutine's
// (ErrWrongGoroutine); a blocking call of the net.Conn view there would
// deadlock the loop.
func onLoop() bool { return stackHas(loopFrames...) }

// stackHas reports whether any of the named functions has a frame on the
// calling goroutine's stack. It walks the whole stack: the frames that
// tell are at its bottom.
func stackHas(names ...string) bool {
	var arr [64]uintptr
	pcs := arr[:]
	for {
		n := runtime.Callers(2, pcs)
		if n < len(pcs) {
			pcs = pcs[:n]
			break
		}
		pcs = make([]uintptr, 2*len(pcs))
	}
	frames := runtime.CallersFrames(pcs)
	for {
		fr, more := frames.Next()
		for _, n := range names {
			if fr.Function == n {
				return true
			}
		}
		if !more {
			return false
		}
	}
}
