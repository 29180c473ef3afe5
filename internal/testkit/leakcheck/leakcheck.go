// Package leakcheck fails a test binary that leaks goroutines or file
// descriptors, as src/net/main_test.go does: TestMain calls Main.
package leakcheck

import (
	"flag"
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
// A process running a fuzz target is not checked: the fuzzing engine keeps
// goroutines and pipes of its own (fuzz targets check per input).
func Main(m *testing.M) { os.Exit(Run(m, nil)) }

// Run is Main without the exit: before, if not nil, runs after the tests
// and before the check (to close what the package keeps for the whole run,
// such as a global dispatcher). It returns the exit code.
func Run(m *testing.M, before func()) int {
	flag.Parse()
	// Start what lives for the whole process before the baseline: the
	// runtime's netpoller (first timer) and the os/signal goroutine
	// (first Notify).
	time.Sleep(time.Millisecond)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	signal.Stop(c)
	s := Take()
	code := m.Run()
	if code == 0 && !fuzzing() {
		if before != nil {
			before()
		}
		if err := s.Settle(); err != nil {
			fmt.Fprintln(os.Stderr, "leak check:", err)
			code = 1
		}
	}
	return code
}

// fuzzing reports whether this process runs a fuzz target (as the
// coordinator or as a worker).
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// Snapshot is the goroutines and descriptors of the process at one time.
type Snapshot struct {
	g   int
	fds map[string]string
}

// Take records the goroutines and descriptors open now.
func Take() Snapshot { return Snapshot{runtime.NumGoroutine(), OpenFDs()} }

// FDs is the descriptor table of the snapshot (number → link target).
func (s Snapshot) FDs() map[string]string { return s.fds }

// Check fails t if goroutines or descriptors were left behind since s.
func (s Snapshot) Check(t testing.TB) {
	t.Helper()
	if err := s.Settle(); err != nil {
		t.Fatal(err)
	}
}

// Settle waits up to 2 s for the goroutine and descriptor counts to come
// back to s, and says what is left if they do not.
func (s Snapshot) Settle() error { return Settle(s.g, s.fds) }

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
		} else if extra := NewFDs(fds0); len(extra) > 0 {
			err = fmt.Errorf("file descriptors leaked: %s", strings.Join(extra, ", "))
		}
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// OpenFDs is the process's descriptor table: number → link target.
func OpenFDs() map[string]string {
	m := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		m[e.Name()] = target
	}
	return m
}

// NewFDs lists the sockets, pipes and anonymous inodes (epoll, eventfd,
// pidfd) open now and not in before, with what they are: "9 ->
// anon_inode:[pidfd] (pidfd)". Regular files are left out: the testing
// package keeps -cpuprofile and similar outputs open.
func NewFDs(before map[string]string) []string {
	var out []string
	for fd, target := range OpenFDs() {
		if before[fd] == target || !strings.HasPrefix(target, "socket:") &&
			!strings.HasPrefix(target, "pipe:") && !strings.HasPrefix(target, "anon_inode:") {
			continue
		}
		out = append(out, fd+" -> "+target+" ("+kind(target)+")")
	}
	sort.Strings(out)
	return out
}

// kind names what a /proc/self/fd link points at.
func kind(target string) string {
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
	return "anonymous inode"
}
