// Package leakcheck fails a test binary that leaks goroutines or file
// descriptors, as src/net/main_test.go does: TestMain calls Main.
package leakcheck

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Main runs the tests and then checks that the goroutines and descriptors
// the tests started are gone (waiting a little for exiting goroutines).
func Main(m *testing.M) {
	// Start what lives for the whole process before the baseline: the
	// runtime's netpoller (first timer) and the os/signal goroutine
	// (first Notify).
	time.Sleep(time.Millisecond)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	fds0 := openFDs()
	g0 := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if err := Settle(g0, fds0); err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Snapshot is the state Check compares with.
type Snapshot struct {
	g   int
	fds map[string]string
}

// Take records the goroutines and descriptors open now.
func Take() Snapshot { return Snapshot{runtime.NumGoroutine(), openFDs()} }

// Check fails t if goroutines or descriptors were left behind since s.
func (s Snapshot) Check(t testing.TB) {
	t.Helper()
	if err := Settle(s.g, s.fds); err != nil {
		t.Fatal(err)
	}
}

// Settle waits up to 2 s for the goroutine and descriptor counts to come
// back to the baseline.
func Settle(g0 int, fds0 map[string]string) error {
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

// newFDs lists the sockets, pipes and anonymous inodes (epoll, eventfd,
// pidfd) open now and not in before. Regular files are left out: the
// testing package keeps -cpuprofile and similar outputs open.
func newFDs(before map[string]string) []string {
	var out []string
	for fd, target := range openFDs() {
		if before[fd] == target || !strings.HasPrefix(target, "socket:") &&
			!strings.HasPrefix(target, "pipe:") && !strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		out = append(out, fd+" -> "+target)
	}
	sort.Strings(out)
	return out
}
