package asyncdispatch_test

import (
	"os"
	"strings"
	"testing"

	ad "github.com/asyncdispatch/asyncdispatch"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
)

// TestMain fails the run if the tests leak goroutines (suspended
// coroutines of a closed dispatcher included: each is a goroutine) or file
// descriptors (sockets, epoll and eventfd instances, pidfds, pipes), as
// src/net/main_test.go does; internal/testkit/leakcheck does the counting for
// every package.
func TestMain(m *testing.M) {
	os.Exit(leakcheck.Run(m, func() {
		if d := ad.GetGlobalDispatcherIfAny(); d != nil {
			d.Close()
		}
	}))
}

// snapshot is the goroutines and descriptors of the process at one time.
type snapshot = leakcheck.Snapshot

func takeSnapshot() snapshot                   { return leakcheck.Take() }
func settle(s snapshot) error                  { return s.Settle() }
func openFDs() map[string]string               { return leakcheck.OpenFDs() }
func newFDs(before map[string]string) []string { return leakcheck.NewFDs(before) }

// checkLeaks runs body and fails t if it leaves goroutines or descriptors
// behind once it returns (the dispatcher it used must be closed).
func checkLeaks(t *testing.T, body func()) {
	t.Helper()
	s := takeSnapshot()
	body()
	if err := settle(s); err != nil {
		t.Fatal(err)
	}
}

// newD makes a dispatcher closed at the end of the test.
func newD(t testing.TB) *ad.Dispatcher {
	t.Helper()
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// newCheckedD makes a dispatcher that mustClose closes at the end of the
// test (unless the test closed it already), checking that nothing of it is
// left and that the process is back to the goroutines and descriptors it
// had before the dispatcher was made.
func newCheckedD(t testing.TB) *ad.Dispatcher {
	t.Helper()
	s := takeSnapshot()
	d, err := ad.NewDispatcher()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mustClose(t, d, s) })
	return d
}

// mustClose closes d (if it is not closed yet) and fails t unless nothing
// is left: d holds no coroutine, descriptor, timer, queued callback,
// outstanding goroutine work or close hook, its epoll descriptor is
// gone, Done is closed, every later call says ErrClosed, and — once
// exiting goroutines are gone — the process has no goroutine or
// descriptor more than at s.
func mustClose(t testing.TB, d *ad.Dispatcher, s snapshot) {
	t.Helper()
	epfd := d.GetIoHandler()
	if epfd >= 0 {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if left := ad.Leftovers(d); len(left) > 0 {
		t.Errorf("after Close the dispatcher still holds %s", strings.Join(left, ", "))
	}
	select {
	case <-d.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if d.GetIoHandler() != -1 || d.HasPendingOperations() || d.ActiveDescriptors() != 0 || d.RegisteredDescriptors() != 0 {
		t.Errorf("after Close: GetIoHandler %d, pending %v, active %d, registered %d",
			d.GetIoHandler(), d.HasPendingOperations(), d.ActiveDescriptors(), d.RegisteredDescriptors())
	}
	if err := d.Poll(0); err != ad.ErrClosed {
		t.Errorf("Poll after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != ad.ErrClosed {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	if err := settle(s); err != nil {
		t.Error(err)
	}
}
