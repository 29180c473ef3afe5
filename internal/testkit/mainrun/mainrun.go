// Package mainrun is the test support of the examples and of
// cmd/asyncdispatch: it runs a program's run function the way a user
// would (start it, wait for what it prints, press Ctrl-C) and collects its
// output.
package mainrun

import (
	"bytes"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Wait is how long a test waits for a line or for a program to exit.
const Wait = 10 * time.Second

// Output collects what a program writes, from any goroutine (the loop's,
// os/exec's copying goroutine), and hands its lines to a test that waits
// for them.
type Output struct {
	mu      sync.Mutex
	b       []byte
	seen    int           // b[:seen] holds the lines WaitLine went past
	ended   bool          // the program returned: no more lines will come
	changed chan struct{} // a signal that b or ended changed
}

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{changed: make(chan struct{}, 1)} }

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b = append(o.b, p...)
	o.signal()
	return len(p), nil
}

// signal wakes a waiter; o.mu is held.
func (o *Output) signal() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// String is everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.b)
}

// end records that the program returned.
func (o *Output) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = true
	o.signal()
}

// WaitLine returns the next line (without its newline) that contains s,
// going past the lines before it; it fails t if no such line comes within
// Wait or the program returns without printing one.
func (o *Output) WaitLine(t testing.TB, s string) string {
	t.Helper()
	timeout := time.After(Wait)
	for {
		o.mu.Lock()
		for {
			i := bytes.IndexByte(o.b[o.seen:], '\n')
			if i < 0 {
				break
			}
			line := string(o.b[o.seen : o.seen+i])
			o.seen += i + 1
			if strings.Contains(line, s) {
				o.mu.Unlock()
				return line
			}
		}
		ended := o.ended
		o.mu.Unlock()
		if ended {
			t.Fatalf("no line with %q; the program returned after:\n%s", s, o)
		}
		select {
		case <-o.changed:
		case <-timeout:
			t.Fatalf("no line with %q in:\n%s", s, o)
		}
	}
}

// Serve runs a server that serves until Ctrl-C — run, given the writer
// for its output — on a goroutine and returns its output. When the test
// ends, Serve presses Ctrl-C (sends the process SIGINT, which the server
// catches with AddSignal) and fails t unless run then returns nil within
// Wait.
func Serve(t testing.TB, run func(out io.Writer) error) *Output {
	t.Helper()
	// Should the server not catch SIGINT, the test fails below instead
	// of the signal killing the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, os.Interrupt)
	out := NewOutput()
	done := make(chan error, 1)
	go func() {
		err := run(out)
		out.end()
		done <- err
	}()
	t.Cleanup(func() {
		defer signal.Stop(guard)
		select {
		case err := <-done:
			t.Errorf("the server returned before Ctrl-C: %v", err)
			return
		default:
		}
		syscall.Kill(os.Getpid(), syscall.SIGINT) // Ctrl-C
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(Wait):
			t.Errorf("the server did not return after Ctrl-C; its output:\n%s", out)
		}
	})
	return out
}
