//go:build amd64 || arm64

package asyncdispatch

// curG identifies the calling goroutine: the address of the runtime's
// goroutine descriptor (g), read from thread-local storage on amd64 and
// from the g register on arm64 (loop_goroutine_*.s). It is compared and
// never dereferenced. A goroutine's g does not move while it lives, and
// two live goroutines never share one, so "curG() == x", for an x taken
// from a goroutine that is still alive, holds exactly on that goroutine.
// A g is reused once its goroutine has exited: a value may only be
// compared while its goroutine is known to be alive (see sockState.runG).
//
// Go gives no goroutine identity away but in a stack trace (about 2 µs);
// the net.Conn view asks "am I the async procedure running on this loop?"
// on every Read and Write, which must cost nanoseconds.
func curG() uintptr
