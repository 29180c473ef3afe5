package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncdispatch/asyncdispatch/internal/testkit/leakcheck"
	"github.com/asyncdispatch/asyncdispatch/internal/testkit/mainrun"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestSubprocessExit(t *testing.T) {
	out := mainrun.NewOutput()
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
	out := mainrun.NewOutput()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := run([]string{"sleep", "30"}, 10*time.Millisecond, out)
		done <- result{code, err}
	}()
	out.WaitLine(t, "still running") // the loop runs, the handler is in place
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
	if _, err := run([]string{"/nonexistent/command"}, time.Hour, mainrun.NewOutput()); err == nil {
		t.Fatal("no error")
	}
}
