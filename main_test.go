package asyncdispatch_test

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	ad "github.com/asyncdispatch/asyncdispatch"
)

// TestMain fails the run if the tests leak goroutines (suspended
// coroutines of a closed dispatcher included: each is a goroutine) or file
// descriptors (sockets, epoll and eventfd instances, pidfds, pipes), as
// src/net/main_test.go does.
func TestMain(m *testing.M) {
	flag.Parse()
	// The first timer starts the runtime's own netpoller (an epoll fd and
	// an eventfd): do that before taking the baseline.
	time.Sleep(time.Millisecond)
	snap := takeSnapshot()
	code := m.Run()
	if code == 0 && !fuzzing() {
		if d := ad.GetGlobalDispatcherIfAny(); d != nil {
			d.Close()
		}
		if err := settle(snap); err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process runs a fuzz target (as the
// coordinator or as a worker): the fuzzing engine keeps goroutines and
// pipes of its own, so the process-wide check does not apply. The fuzz
// targets check for leaks per input.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// snapshot is the goroutines and descriptors of the process at one time.
type snapshot struct {
	g   int
	fds map[string]string
}

func takeSnapshot() snapshot { return snapshot{runtime.NumGoroutine(), openFDs()} }

// settle waits (briefly: exiting goroutines need a moment) for the
// goroutine and fd counts to return to the snapshot.
func settle(s snapshot) error {
	var err error
	for i := 0; i < 200; i++ {
		err = nil
		if g := runtime.NumGoroutine(); g > s.g {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			err = fmt.Errorf("%d goroutines leaked (%d before, %d after):\n%s", g-s.g, s.g, g, buf)
		} else if extra := newFDs(s.fds); len(extra) > 0 {
			err = fmt.Errorf("file descriptors leaked: %s", strings.Join(extra, ", "))
		}
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

func openFDs() map[string]string {
	m := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		m[e.Name()] = target
	}
	return m
}

// newFDs lists the descriptors open now that were not in before, with
// what they are: "7 -> socket:[1234] (socket)", "9 -> anon_inode:[pidfd]
// (pidfd)".
func newFDs(before map[string]string) []string {
	var out []string
	for fd, target := range openFDs() {
		if before[fd] == target || strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue
		}
		out = append(out, fd+" -> "+target+" ("+fdKind(target)+")")
	}
	sort.Strings(out)
	return out
}

// fdKind names what a /proc/self/fd link points at.
func fdKind(target string) string {
	switch {
	case strings.HasPrefix(target, "socket:"):
		return "socket"
	case target == "anon_inode:[pidfd]":
		return "pidfd (AddProcess/WaitProcess)"
	case target == "anon_inode:[eventfd]":
		return "eventfd (AsyncEvent or a dispatcher's waker)"
	case target == "anon_inode:[eventpoll]":
		return "epoll instance (a dispatcher not closed)"
	case strings.HasPrefix(target, "pipe:"):
		return "pipe"
	}
	return "file"
}

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
