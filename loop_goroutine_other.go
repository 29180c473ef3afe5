//go:build !amd64 && !arm64

package asyncdispatch

// curG identifies the calling goroutine (see loop_goroutine.go). Without
// an assembly stub it is the goroutine's id, from the first line of its
// stack trace ("goroutine 123 [running]:"): ids are never reused, so the
// comparisons stay exact, at about 2 µs a call.
func curG() uintptr { return uintptr(goid()) }
