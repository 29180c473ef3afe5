package asyncdispatch_test

import (
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
// descriptors, as src/net/main_test.go does.
func TestMain(m *testing.M) {
	// The first timer starts the runtime's own netpoller (an epoll fd and
	// an eventfd): do that before taking the baseline.
	time.Sleep(time.Millisecond)
	fds0 := openFDs()
	g0 := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if d := ad.GetGlobalDispatcherIfAny(); d != nil {
			d.Close()
		}
		if err := settle(g0, fds0); err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// settle waits (briefly: exiting goroutines need a moment) for the
// goroutine and fd counts to return to the baseline.
func settle(g0 int, fds0 map[string]string) error {
	var err error
	for i := 0; i < 200; i++ {
		err = nil
		if g := runtime.NumGoroutine(); g > g0 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			err = fmt.Errorf("%d goroutines leaked (%d before, %d after):\n%s", g-g0, g0, g, buf)
		} else if extra := newFDs(fds0); len(extra) > 0 {
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

func newFDs(before map[string]string) []string {
	var out []string
	for fd, target := range openFDs() {
		if before[fd] == target || strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/fd") {
			continue
		}
		out = append(out, fd+" -> "+target)
	}
	sort.Strings(out)
	return out
}

// checkLeaks runs body and fails t if it leaves goroutines or descriptors
// behind once it returns (the dispatcher it used must be closed).
func checkLeaks(t *testing.T, body func()) {
	t.Helper()
	fds0 := openFDs()
	g0 := runtime.NumGoroutine()
	body()
	if err := settle(g0, fds0); err != nil {
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
