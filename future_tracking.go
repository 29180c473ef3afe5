package asyncdispatch

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

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
