package asyncdispatch_test

import (
	"testing"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// WithTimeout reports true for a future that completed in the round its
// timer fired in: the round fires due timers before it handles I/O, and
// the timer's callback used to report false for a receive whose bytes
// were there, and taken, in that very round.
func TestWithTimeoutSameRoundReportsCompletion(t *testing.T) {
	d := newD(t)
	a, peer := connPair(t, d)
	f := d.Recv(a, 64, 0)
	r := ad.WithTimeout(f, 0)
	rawWrite(t, peer, "data")
	kernelReady(t, a, unix.POLLIN)
	ok, err := ad.WaitFor(r)
	if !ok || err != nil {
		t.Fatalf("WithTimeout: %v, %v; the receive: %v", ok, err, f)
	}
}

// Cancelling WithTimeout's future removes its timer at once.
func TestWithTimeoutCancelRemovesTimer(t *testing.T) {
	d := newD(t)
	f := ad.NewFuture[int](d, "never")
	r := ad.WithTimeout(f, 1<<40)
	r.Cancel()
	d.Poll(0)
	if d.HasPendingOperations() {
		t.Fatal("WithTimeout's timer lingers after its future was cancelled")
	}
}
