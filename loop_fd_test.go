package asyncdispatch_test

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/faults"
)

// A lazy disarm that fails (epoll_ctl says ENOMEM) leaves the interest
// armed and the dispatcher knowing it: the next AddRead on the descriptor
// needs no epoll_ctl and works. (When the failure was recorded as a
// success, the next AddRead tried EPOLL_CTL_ADD on a descriptor epoll
// still had and failed with EEXIST.)
func TestFailedDisarmLeavesInterestKnown(t *testing.T) {
	d := newD(t)
	a, b := socketPair(t, d)
	rawWrite(t, b, "data") // a stays readable: nobody reads it
	ran := 0
	if err := d.AddRead(a, func(ad.AsyncFD) bool { ran++; return true }); err != nil {
		t.Fatal(err)
	}
	if err := d.Poll(time.Second); err != nil || ran != 1 {
		t.Fatal(ran, err)
	}
	// The next event finds nobody waiting on a: the lazy disarm, which
	// fails once.
	in := faults.Install(t)
	fail := in.Add(&faults.Rule{Op: faults.EpollCtl, FDs: []int{int(a)}, Err: unix.ENOMEM, Limit: 1})
	keep := d.SleepAsync(50 * time.Millisecond) // something pending, so Poll waits
	if err := d.Poll(time.Second); err != nil {
		t.Fatal(err)
	}
	if fail.Acted() != 1 {
		t.Fatalf("the disarm was not tried (%d epoll_ctl calls failed)", fail.Acted())
	}
	keep.Cancel()
	if err := d.AddRead(a, func(ad.AsyncFD) bool { ran++; return true }); err != nil {
		t.Fatalf("AddRead after a failed disarm: %v", err)
	}
	for ran < 2 {
		if err := d.Poll(time.Second); err != nil {
			t.Fatal(err)
		}
	}
}
