package main

import (
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// output is written by the loop and by os/exec's copying goroutine; it
// tells a waiter when a line containing a given text has arrived.
type output struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{}, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.Write(p)
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.changed:
		case <-timeout:
			t.Fatalf("no %q in:\n%s", s, o)
		}
	}
}

func TestSubprocessExit(t *testing.T) {
	out := newOutput()
	code, err := run([]string{"sh", "-c", "echo child: hello; exit 3"}, time.Hour, out)
	if err != nil || code != 3 {
		t.Fatalf("code %d, %v", code, err)
	}
	for _, want := range []string{"child: hello\n", "exited after", "exit status 3\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// Ctrl-C reaches the loop through AddSignal, which stops the child; the
// child's exit ends the program.
func TestSubprocessInterrupt(t *testing.T) {
	out := newOutput()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := run([]string{"sleep", "30"}, 10*time.Millisecond, out)
		done <- result{code, err}
	}()
	out.waitFor(t, "still running") // the loop runs, the handler is in place
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	r := <-done
	if r.err != nil || r.code != 1 {
		t.Fatalf("code %d, %v", r.code, r.err)
	}
	for _, want := range []string{"interrupted: stopping the child", "signal: terminated"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

func TestSubprocessNoSuchCommand(t *testing.T) {
	if _, err := run([]string{"/nonexistent/command"}, time.Hour, newOutput()); err == nil {
		t.Fatal("no error")
	}
}
