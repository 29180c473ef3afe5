//go:build !amd64 && !arm64

package asyncdispatch

import "runtime"

// curG identifies the calling goroutine (see sock_goroutine.go). Without
// an assembly stub it is the goroutine's id, from the first line of its
// stack trace ("goroutine 123 [running]:"): ids are never reused, so the
// comparisons stay exact, at about 2 µs a call.
func curG() uintptr {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	var id uintptr
	for _, c := range b[len("goroutine "):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uintptr(c-'0')
	}
	return id
}
