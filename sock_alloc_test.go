package asyncdispatch_test

import (
	"testing"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// One allocation per operation, the op with its future inside, on the
// echo path: when the syscall succeeds at once and when it waits.
func TestSocketAllocations(t *testing.T) {
	if socketRace {
		t.Skip("allocation counts differ under the race detector")
	}
	withD(t, func(d *ad.Dispatcher) {
		c, s := connPair(t, d)
		msg := []byte("ping")
		// A full read (n == len(buf)) leaves the next receive free to try
		// at once; a short one makes it wait for readiness (fdState.drained).
		buf := make([]byte, len(msg))
		fast := testing.AllocsPerRun(1000, func() {
			sf := d.Send(c, msg, ad.DefaultFlags)
			rf := d.RecvInto(s, buf, ad.DefaultFlags)
			if !sf.Finished() || !rf.Finished() {
				panic("not finished at once")
			}
		})
		slow := testing.AllocsPerRun(1000, func() {
			rf := d.RecvInto(s, buf, ad.DefaultFlags)
			if rf.Finished() {
				panic("finished with no data")
			}
			d.Send(c, msg, ad.DefaultFlags)
			for !rf.Finished() {
				if err := d.Poll(-1); err != nil {
					panic(err)
				}
			}
		})
		t.Logf("allocations per send+receive: %.1f tried at once, %.1f waiting", fast, slow)
		if fast > 2 || slow > 2 {
			t.Fatalf("allocations per send+receive: %.1f at once, %.1f waiting; want 2 (one per operation)", fast, slow)
		}
		d.CloseSocket(c)
		d.CloseSocket(s)
	})
}
